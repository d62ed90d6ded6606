"""The judge: a digit classifier trained briefly on real bundled MNIST images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyro_cvae import judge
from pyro_cvae.data import load_split
from pyro_cvae.errors import CheckpointError
from pyro_cvae.judge import (
    accuracy,
    load_classifier,
    load_or_train_judge,
    predict,
    random_affine,
    random_shifts,
    save_classifier,
    train_classifier,
)


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
    torch.save({"format": judge.FORMAT, "payload": Path("x")}, path)
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


def test_random_affine_turns_scales_and_moves_each_digit_its_own_way(test_split):
    images = test_split[0][:50]  # [50, 1, 28, 28]
    moved = random_affine(images, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and moved.dtype == images.dtype
    assert moved.min() >= 0 and moved.max() <= 1
    # Scaling by at most 10% changes the ink by at most about 21% (area), resampling aside.
    ratio = moved.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ((ratio > 0.7) & (ratio < 1.3)).all()
    assert ((moved - images).abs().sum((1, 2, 3)) > 1).all()  # every digit is changed
    # Each image gets its own draw: ten copies of one digit come out ten different ways.
    copies = random_affine(images[:1].expand(10, -1, -1, -1), torch.Generator().manual_seed(1))
    gaps = (copies[:, None] - copies[None]).abs().sum((2, 3, 4))  # [10, 10]
    assert (gaps + torch.eye(10) * 1e9 > 1).all()
    # The ink's centre stays within SHIFT pixels plus what a small turn and scaling move it.
    rows = torch.arange(28.0)[None, :, None]

    def centre_row(x):
        return (x[:, 0] * rows).sum((1, 2)) / x[:, 0].sum((1, 2))

    assert (centre_row(moved) - centre_row(images)).abs().max() < judge.SHIFT + 2
    grey = random_affine(images[:, 0], torch.Generator().manual_seed(0))  # [50, 28, 28]
    assert torch.equal(grey, moved[:, 0])


def _axis_degrees(images: torch.Tensor) -> torch.Tensor:
    """The angle `[N]` in degrees of the principal axis of the ink of images `[N, 1, H, W]`."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ink = images[:, 0] / images[:, 0].sum((1, 2), keepdim=True)
    dy = rows - (ink * rows).sum((1, 2), keepdim=True)
    dx = cols - (ink * cols).sum((1, 2), keepdim=True)
    mu20, mu02, mu11 = (
        (ink * dx**2).sum((1, 2)),
        (ink * dy**2).sum((1, 2)),
        (ink * dx * dy).sum((1, 2)),
    )
    return torch.rad2deg(0.5 * torch.atan2(2 * mu11, mu20 - mu02))


def test_random_affine_turns_by_at_most_rotation_degrees(monkeypatch):
    monkeypatch.setattr(judge, "SHIFT", 0)
    monkeypatch.setattr(judge, "SCALING", 0.0)
    bars = torch.zeros(200, 1, 28, 28)
    bars[:, :, 13:15, 4:24] = 1.0  # a level bar through the centre
    angles = _axis_degrees(random_affine(bars, torch.Generator().manual_seed(0)))
    assert angles.abs().max() <= judge.ROTATION + 1  # resampling blurs the bar a little
    assert angles.abs().max() > judge.ROTATION * 0.8  # the turns reach out to the bound
    assert (angles > 1).any() and (angles < -1).any()  # both ways


def test_random_affine_without_turns_or_scalings_shifts_by_whole_pixels(test_split):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(judge, "ROTATION", 0.0)
        patch.setattr(judge, "SCALING", 0.0)
        images = test_split[0][:50]
        moved = random_affine(images, torch.Generator().manual_seed(0))
    s = judge.SHIFT
    padded = torch.nn.functional.pad(images, (s, s, s, s))
    shifts = torch.stack(
        [
            padded[..., s + dy : s + dy + 28, s + dx : s + dx + 28]
            for dy in range(-s, s + 1)
            for dx in range(-s, s + 1)
        ]
    )  # [(2 SHIFT + 1)^2, 50, 1, 28, 28]
    nearest = (shifts - moved).abs().amax((2, 3, 4)).amin(0)  # [50]
    assert (nearest < 1e-4).all()


def test_judge_is_cached_and_retrained_when_the_recipe_changes(
    tiny_data, tmp_path: Path, monkeypatch
):
    path = tmp_path / "judge.pt"
    first = load_or_train_judge(path, epochs=1, data_dir=tiny_data)
    assert path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("the cached judge should have been used")

    monkeypatch.setattr(judge, "train_classifier", refuse)
    cached = load_or_train_judge(path, epochs=1, data_dir=tiny_data)
    images = load_split("mnist", "test", tiny_data).images
    assert torch.equal(predict(cached, images), predict(first, images))
    with pytest.raises(AssertionError, match="cached judge"):
        load_or_train_judge(path, epochs=2, data_dir=tiny_data)
    with pytest.raises(AssertionError, match="cached judge"):
        load_or_train_judge(path, epochs=1, data_dir=tiny_data, augmentation="shifts")


def test_a_digit_judge_saved_before_its_augmentation_was_recorded_is_retrained(
    tiny_data, tmp_path: Path, monkeypatch
):
    path = tmp_path / "judge.pt"
    old = load_or_train_judge(path, epochs=1, data_dir=tiny_data, augmentation="shifts")
    document = torch.load(path, weights_only=True)
    del document["recipe"]["augmentation"]  # as files written before 2026-11-27
    torch.save(document, path)
    monkeypatch.setattr(judge, "train_classifier", lambda *a, **k: old)
    load_or_train_judge(path, epochs=1, data_dir=tiny_data, augmentation="shifts")
    assert "augmentation" not in torch.load(path, weights_only=True)["recipe"]  # read as is

    def retrained(*args, augmentation, **kwargs):
        assert augmentation == "affine"
        return old

    monkeypatch.setattr(judge, "train_classifier", retrained)
    load_or_train_judge(path, epochs=1, data_dir=tiny_data)
    assert torch.load(path, weights_only=True)["recipe"]["augmentation"] == "affine"


def test_an_unknown_augmentation_is_refused(test_split):
    with pytest.raises(ValueError, match="augmentation must be one of"):
        train_classifier(*test_split, epochs=1, augmentation="flips")


def _coloured_squares(n: int, seed: int):
    """Noisy 16x16 pictures `[n, 3, 16, 16]` whose class (0..2) is the colour of a
    square at a random place on a grey ground."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    images = 0.5 + 0.1 * torch.randn(n, 3, 16, 16, generator=generator)
    corners = torch.randint(0, 10, (n, 2), generator=generator)
    for i in range(n):
        r, c = corners[i].tolist()
        images[i, :, r : r + 6, c : c + 6] = 0.1
        images[i, labels[i], r : r + 6, c : c + 6] = 0.9
    return images.clamp(0, 1), labels


def test_a_picture_judge_learns_colour_classes_and_reads_them_blurred(tmp_path: Path):
    images, labels = _coloured_squares(600, seed=0)
    model = train_classifier(images, labels, epochs=6, seed=0)
    assert isinstance(model, judge.PictureClassifier)
    test_images, test_labels = _coloured_squares(300, seed=1)
    assert accuracy(model, test_images, test_labels) > 0.9  # chance is 1/3
    assert accuracy(model, judge.blur(test_images, 1.0), test_labels) > 0.9
    path = tmp_path / "judge.pt"
    save_classifier(model, path)
    assert torch.equal(predict(load_classifier(path), test_images), predict(model, test_images))


def test_a_picture_judge_saved_before_its_width_was_recorded_still_loads(tmp_path: Path):
    model = judge.PictureClassifier(width=32)
    del model.config["width"]  # as files written before the width was a setting
    path = tmp_path / "old.pt"
    save_classifier(model, path)
    images = _coloured_squares(8, seed=3)[0]
    loaded = load_classifier(path)
    assert loaded.config["width"] == 32
    assert torch.equal(predict(loaded, images), predict(model, images))


def test_blur_keeps_shape_and_mean_and_smooths():
    images = _coloured_squares(4, seed=2)[0]
    blurred = judge.blur(images, 1.0)
    assert blurred.shape == images.shape
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.01)
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * images.diff(dim=-1).abs().mean()
    assert torch.equal(judge.blur(images, 0.0), images)


def test_colour_shifts_repeat_the_edge_and_keep_the_picture():
    images = _coloured_squares(8, seed=3)[0]
    shifted = random_shifts(images, torch.Generator().manual_seed(0), edge="replicate")
    assert shifted.shape == images.shape
    # every shifted picture is its own picture moved by at most 2 pixels
    for moved, original in zip(shifted, images):
        assert any(
            torch.equal(moved[:, 2:-2, 2:-2], original[:, 2 + dy : 14 + dy, 2 + dx : 14 + dx])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
