"""The judge: a digit classifier trained briefly on real bundled MNIST images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyro_cvae import digit_classifier
from pyro_cvae.data import load_split
from pyro_cvae.digit_classifier import (
    accuracy,
    load_classifier,
    load_or_train_judge,
    predict,
    random_shifts,
    save_classifier,
    train_classifier,
)
from pyro_cvae.errors import CheckpointError


@pytest.fixture(scope="module")
def test_split():
    test = load_split("mnist", "test")
    return test.images[:1000], test.labels[:1000]


@pytest.fixture(scope="module")
def brief_classifier():
    """Two epochs on 3000 training images (a few seconds on a CPU)."""
    train = load_split("mnist", "train")
    return train_classifier(train.images[:3000], train.labels[:3000], epochs=2, seed=0)


def test_brief_training_beats_chance_by_a_wide_margin(brief_classifier, test_split):
    images, labels = test_split
    assert accuracy(brief_classifier, images, labels) > 0.7  # chance is 0.1


def test_predict_returns_one_int64_digit_per_image(brief_classifier, test_split):
    predictions = predict(brief_classifier, test_split[0][:7])
    assert predictions.dtype == torch.int64
    assert predictions.shape == (7,)
    assert ((predictions >= 0) & (predictions <= 9)).all()


def test_save_load_round_trip_gives_identical_predictions(
    brief_classifier, test_split, tmp_path: Path
):
    path = tmp_path / "judge.pt"
    save_classifier(brief_classifier, path)
    loaded = load_classifier(path)
    assert torch.equal(predict(loaded, test_split[0]), predict(brief_classifier, test_split[0]))


def test_load_refuses_objects_that_are_not_plain_data(tmp_path: Path):
    path = tmp_path / "judge.pt"
    torch.save({"format": digit_classifier.FORMAT, "payload": Path("x")}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_classifier(path)


def test_load_reports_a_truncated_file(brief_classifier, tmp_path: Path):
    path = tmp_path / "judge.pt"
    save_classifier(brief_classifier, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(
        CheckpointError, match="not a pyro-cvae digit classifier|damaged digit classifier"
    ):
        load_classifier(path)


def test_load_refuses_a_file_that_is_not_a_classifier(tmp_path: Path):
    path = tmp_path / "judge.pt"
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="not a pyro-cvae digit classifier"):
        load_classifier(path)


def test_random_shifts_move_digits_by_at_most_two_pixels(test_split):
    images = test_split[0][:50, 0]  # [50, 28, 28]
    shifted = random_shifts(images, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    # MNIST digits sit inside a centred 20x20 box, so a shift of 2 never cuts ink off.
    assert torch.allclose(shifted.sum((1, 2)), images.sum((1, 2)))
    assert not torch.equal(shifted, images)


def test_judge_is_cached_and_retrained_when_the_recipe_changes(
    tiny_data, tmp_path: Path, monkeypatch
):
    path = tmp_path / "judge.pt"
    first = load_or_train_judge(path, epochs=1, data_dir=tiny_data)
    assert path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("the cached judge should have been used")

    monkeypatch.setattr(digit_classifier, "train_classifier", refuse)
    cached = load_or_train_judge(path, epochs=1, data_dir=tiny_data)
    images = load_split("mnist", "test", tiny_data).images
    assert torch.equal(predict(cached, images), predict(first, images))
    with pytest.raises(AssertionError, match="cached judge"):
        load_or_train_judge(path, epochs=2, data_dir=tiny_data)
