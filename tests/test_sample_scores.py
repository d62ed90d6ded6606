"""`evaluate --samples`: sample scores by a cached classifier of the run's dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pyro_cvae import judge
from pyro_cvae.checkpoint import load_run
from pyro_cvae.config import RunConfig
from pyro_cvae.data import load_run_split
from pyro_cvae.errors import DataError
from pyro_cvae.judge import blur, load_classifier
from pyro_cvae.model import build_model
from pyro_cvae.sample_scores import frechet_distance, score_samples, training_stand_ins

from .conftest import run_cli


@pytest.fixture(scope="module")
def scored(label_run, tmp_path_factory):
    """`evaluate --samples 30 --json` of the tiny label run, with a user cache of its own:
    (the sample report, the cache folder). The judge trains for 12 epochs, not its 30,
    to keep the suite fast; the recipe is otherwise the real one."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.setitem(judge.EPOCHS, "digits", 12)
        result = run_cli("evaluate", label_run, "--images", 50, "--particles", 2,
                         "--samples", 30, "--json", "--device", "cpu")  # fmt: skip
        yield json.loads(result.output)["samples"], cache


def test_evaluate_scores_the_samples_of_a_label_run(scored):
    report, cache = scored
    assert report["per_class"] == 30 and report["images"] == 300
    assert report["temperature"] == 1.0  # the run's own: it was trained without one
    assert list(report["named_as_asked"]["per_class"]) == [str(d) for d in range(10)]
    assert report["classifier_test_accuracy"] > 0.9
    assert report["named_as_asked"]["overall"] > 0.3  # chance: 0.1; this 3-epoch run: 0.48
    assert 0 < report["frechet_distance_test_halves"] < report["frechet_distance"]
    assert report["real_images_same_size"] == 250  # at most half of the 500 test images
    assert 0 < report["frechet_distance_real_same_size"] < report["frechet_distance"]
    # 30 training digits of each class, real digits: nearer the test images than the
    # samples of a 3-epoch run
    assert report["training_images_same_size"] == 300
    assert 0 < report["frechet_distance_training_same_size"] < report["frechet_distance"]
    assert Path(report["classifier_file"]).parent == cache / "pyro-cvae" / "judges"


def test_the_classifier_is_trained_once_and_the_table_shows_the_scores(
    scored, label_run, monkeypatch
):
    report, cache = scored
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    judge_file = Path(report["classifier_file"])
    stamp = judge_file.stat().st_mtime_ns
    result = run_cli("evaluate", label_run, "--images", 20, "--particles", 2, "--samples", 5,
                     "--temperature", 0.5)  # fmt: skip
    assert judge_file.stat().st_mtime_ns == stamp
    assert "samples: 5 per class, 50 images, temperature 0.5;" in result.output
    assert "named as the class asked:" in result.output
    assert "50 training images:" in result.output  # 5 of each digit, as the samples
    assert "Frechet distance to the test images" in result.output


def test_a_pixels_run_has_no_samples_to_score(pixels_run):
    result = run_cli("evaluate", pixels_run, "--samples", 5, expect=2)
    assert "a pixels run fills holes" in result.output
    assert "Traceback" not in result.output


def test_a_sharp_model_is_nearer_the_test_images_than_a_blurred_copy(scored, label_run):
    report, _ = scored
    judge = load_classifier(report["classifier_file"])
    loaded = load_run(label_run)
    model, test = loaded.model, load_run_split(loaded.config, "test", loaded.data_dir)

    def score():
        return score_samples(
            model, judge, test.images, test.labels, test.class_names, per_class=50, seed=0
        )["frechet_distance"]

    sharp = score()
    mean = model.likelihood.mean
    model.likelihood.mean = lambda params: blur(mean(params).view(-1, 1, 28, 28), 1.5).flatten(1)
    try:
        blurred = score()
    finally:
        del model.likelihood.mean
    # 472-481 against 638-644 over seeds 0-3 for this 3-epoch run
    assert blurred > 1.2 * sharp, (sharp, blurred)


def test_the_training_stand_ins_are_drawn_as_the_samples_are():
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 40)
    rows = training_stand_ins(labels, 3, 10, labelled=True)
    assert len(rows.unique()) == len(rows) == 23  # 10, all 3 of class 1, 10
    assert torch.bincount(labels[rows]).tolist() == [10, 3, 10]
    assert not torch.equal(rows[:10], torch.arange(10))  # at random, not the first ten
    assert torch.equal(rows, training_stand_ins(labels, 3, 10, labelled=True))  # seeded
    unlabelled = training_stand_ins(labels, 3, 10, labelled=False)
    assert len(unlabelled.unique()) == len(unlabelled) == 30
    assert len(training_stand_ins(labels, 10, 10, labelled=False)) == 93  # all there are


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=generator, dtype=torch.float64)
    b = 2 * torch.randn(20000, 3, generator=generator, dtype=torch.float64) + 1
    # N(0, I) against N(1, 4 I) in 3 dimensions: 3 * 1^2 + 3 * (1 + 4 - 2 * 2) = 6
    assert frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_too_few_test_images_is_a_clear_error(scored, label_run):
    report, _ = scored
    loaded = load_run(label_run)
    test = load_run_split(loaded.config, "test", loaded.data_dir)
    with pytest.raises(DataError, match="at least 4 test images, the test split has 3"):
        score_samples(
            loaded.model,
            load_classifier(report["classifier_file"]),
            test.images[:3],
            test.labels[:3],
            test.class_names,
            per_class=2,
            seed=0,
        )


def test_a_model_without_labels_gets_the_shares_of_the_classes(scored, label_run):
    report, _ = scored
    judge = load_classifier(report["classifier_file"])
    loaded = load_run(label_run)
    test = load_run_split(loaded.config, "test", loaded.data_dir)
    model = build_model(RunConfig(condition="none")).eval()
    scores = score_samples(
        model, judge, test.images, test.labels, test.class_names, per_class=3, seed=0
    )
    assert "named_as_asked" not in scores and scores["images"] == 30
    assert "frechet_distance_training_same_size" not in scores  # no training split given
    train = load_run_split(loaded.config, "train", loaded.data_dir)
    with_train = score_samples(model, judge, test.images, test.labels, test.class_names,
                               per_class=3, seed=0, train_images=train.images,
                               train_labels=train.labels)  # fmt: skip
    assert with_train["training_images_same_size"] == 30
    assert with_train["frechet_distance_training_same_size"] > 0
    assert sum(scores["class_shares"].values()) == pytest.approx(1.0)
