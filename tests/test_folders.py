"""A folder of the user's own pictures as a dataset, and every command on colour images:
tiny folders made here (no ../shared needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_cvae import data, image_folders
from pyro_cvae.errors import DataError

from .conftest import run_cli
from .test_reliability_input import fails

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_folder(root: Path, per_class: int = 20, size=(16, 16), test: bool = False) -> Path:
    """ROOT/train/<colour>/*.png|jpg (and ROOT/test/... when `test`): noisy flat colours."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", 4)) if test else (("train", per_class),):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.normal(0, 20, (*size, 3))
                picture = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(picture).save(folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_classes_are_the_sorted_folders_and_a_seeded_tenth_is_held_out(tmp_path):
    root = make_folder(tmp_path / "pics")
    train = data.load_split("folder", "train", root)
    test = data.load_split("folder", "test", root)
    assert train.class_names == ("blue", "green", "red") and train.held_out
    assert train.images.shape == (54, 3, 16, 16) and test.images.shape == (6, 3, 16, 16)
    assert torch.bincount(test.labels).tolist() == [2, 2, 2]
    again = data.load_split("folder", "test", root)
    assert torch.equal(again.images, test.images)
    red = train.images[train.labels == 2].mean((0, 2, 3))
    assert red[0] > 0.7 and red[1] < 0.3


def test_both_splits_are_read_with_one_listing_of_the_folder(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pics", per_class=5, test=True)
    listings = []
    listing = image_folders._listing
    monkeypatch.setattr(image_folders, "_listing", lambda *a: listings.append(a) or listing(*a))
    train, test = data.load_splits("folder", root)
    assert len(listings) == 1
    assert torch.equal(train.images, data.load_split("folder", "train", root).images)
    assert torch.equal(test.labels, data.load_split("folder", "test", root).labels)
    mnist_train, mnist_test = data.load_splits("mnist")
    assert len(mnist_train.labels) > len(mnist_test.labels) > 0


def test_a_test_folder_is_the_test_split(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=5, test=True)
    assert len(data.load_split("folder", "train", root).labels) == 15
    test = data.load_split("folder", "test", root)
    assert len(test.labels) == 12 and not test.held_out


def test_resizing_grey_and_differing_sizes(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=4)
    Image.new("RGB", (20, 12)).save(root / "train" / "red" / "odd.png")
    with pytest.raises(DataError, match="differ in size.*--image-size"):
        data.load_split("folder", "train", root)
    grey = data.load_split("folder", "train", root, size=(8, 10), channels=1)
    assert grey.images.shape == (10, 1, 8, 10)  # 13 pictures, one of each class held out


def test_an_unreadable_picture_is_named(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=3)
    (root / "train" / "blue" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg: not a readable PNG or JPEG"):
        data.load_split("folder", "train", root)


def test_a_second_load_reads_the_cache_not_the_pictures(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pics", per_class=30)
    first = data.load_split("folder", "train", root)

    def refuse(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(image_folders, "_decode", refuse)
    started = time.perf_counter()
    assert torch.equal(data.load_split("folder", "train", root).images, first.images)
    assert time.perf_counter() - started < 2.0
    (root / "train" / "red" / "new.png").write_bytes(
        (root / "train" / "red" / "001.png").read_bytes()
    )
    monkeypatch.undo()  # a new file is a new listing: decoded again, then split
    splits = [data.load_split("folder", split, root) for split in ("train", "test")]
    assert sum(len(split.labels) for split in splits) == 91


@pytest.fixture(scope="module")
def colour_runs(tmp_path_factory):
    """A label run and a pixels run trained briefly on a tiny colour folder."""
    base = tmp_path_factory.mktemp("colour")
    root = make_folder(base / "pics", per_class=30)
    cache = pytest.MonkeyPatch()
    cache.setenv("XDG_CACHE_HOME", str(base / "cache"))
    common = ("--dataset", "folder", "--data-dir", root, "--batch-size", 27, "--hidden", "32")
    for condition, z_dim in (("label", 1), ("pixels", 4)):
        run_cli("train", *common, "--condition", condition, "--epochs", 100, "--z-dim", z_dim,
                "--lr", 0.003, "--out", base / condition, "--device", "cpu")  # fmt: skip
    yield base, root
    cache.undo()


def test_a_colour_label_run_draws_the_class_asked_for(colour_runs, tmp_path):
    base, _ = colour_runs
    config = json.loads((base / "label" / "metrics.json").read_text())["config"]
    assert config["image_shape"] == [3, 16, 16]
    assert config["likelihood"] == "discretized-logistic-rgb" and config["prior"] == "learned"
    assert config["class_names"] == ["blue", "green", "red"] and config["arch"] == "conv"
    run_cli("sample", base / "label", "--label", "red,blue", "--n", 20, "--out", tmp_path / "s")
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (40, 16, 16, 3)
    red, blue = samples[:20].mean((0, 1, 2)), samples[20:].mean((0, 1, 2))
    # red minus blue ink: 0.77 to 1.46 over seeds 0-2 (a label ignored would give 0)
    assert (red[0] - red[2]) - (blue[0] - blue[2]) > 0.3


def test_colour_completions_keep_the_observed_pixels(colour_runs, tmp_path):
    base, root = colour_runs
    pictures = root / "train" / "green"
    for condition in ("pixels", "label"):
        out = tmp_path / condition
        run_cli("inpaint", base / condition, "--mask", "top-half", "--input", pictures,
                "--samples", 2, "--particles", 10, "--rounds", 1, "--out", out)  # fmt: skip
        filled = np.load(f"{out}.npy")
        originals = np.stack(
            [np.asarray(Image.open(p), np.float32) / 255 for p in sorted(pictures.iterdir())]
        )
        assert filled.shape == (30, 2, 16, 16, 3)
        np.testing.assert_allclose(filled[:, :, 8:], np.repeat(originals[:, None, 8:], 2, 1))


def test_colour_classify_and_evaluate_in_bits_per_dimension(colour_runs, tmp_path):
    base, root = colour_runs
    run_cli("classify", base / "label", "--input", root / "train" / "red", "--particles", 10,
            "--out", tmp_path / "c")  # fmt: skip
    found = json.loads((tmp_path / "c.json").read_text())
    assert found["classes"] == ["blue", "green", "red"] and found["names"].count("red") >= 24
    report = json.loads(run_cli("evaluate", base / "label", "--particles", 5, "--json").output)
    bits = report["test_nll_bits_per_dim"]["mean"]
    assert bits == pytest.approx(report["test_nll"]["mean"] / (768 * np.log(2)), rel=1e-4)
    assert bits < 8.0  # a uniform guess over 256 levels


def test_evaluate_reads_the_cached_pictures_the_run_was_trained_on(colour_runs):
    base, root = colour_runs
    cached = sorted((base / "cache" / "pyro-cvae" / "folders").glob("*.pt"))
    report = json.loads(run_cli("evaluate", base / "pixels", "--particles", 2, "--images", 5,
                                "--json").output)  # fmt: skip
    assert sorted((base / "cache" / "pyro-cvae" / "folders").glob("*.pt")) == cached
    assert len(cached) == 1
    assert all("baseline_nn" not in row for row in report["masks"].values())  # MNIST's own


def test_images_too_small_for_conv_networks_are_one_clear_line(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=3, size=(1, 8))
    fails("train", "--dataset", "folder", "--data-dir", root, "--epochs", 1,
          "--out", tmp_path / "r", match="conv networks need images of at least 2x2 pixels")  # fmt: skip


def test_a_label_that_is_not_a_class_lists_the_classes(colour_runs, tmp_path):
    base, _ = colour_runs
    fails("sample", base / "label", "--label", "cat", "--out", tmp_path / "s", code=2,
          match="label 'cat' is not a class of this run; its classes are blue, green, red")  # fmt: skip
