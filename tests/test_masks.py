"""Every mask parses and covers the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_cvae.errors import DataError
from pyro_cvae.masks import (
    NAMED_MASKS,
    named_mask,
    parse_mask,
    random_training_holes,
    training_mask,
)

EXPECTED = {
    "top-half": (slice(0, 14), slice(0, 28)),
    "bottom-half": (slice(14, 28), slice(0, 28)),
    "left-half": (slice(0, 28), slice(0, 14)),
    "right-half": (slice(0, 28), slice(14, 28)),
    "quadrant-tl": (slice(0, 14), slice(0, 14)),
    "quadrant-tr": (slice(0, 14), slice(14, 28)),
    "quadrant-bl": (slice(14, 28), slice(0, 14)),
    "quadrant-br": (slice(14, 28), slice(14, 28)),
    "center": (slice(7, 21), slice(7, 21)),
}


def _region(rows, cols):
    hole = torch.zeros(28, 28, dtype=torch.bool)
    hole[rows, cols] = True
    return hole


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_named_masks_cover_exactly_their_region(name):
    holes = parse_mask(name).holes(3, size=(28, 28))
    assert holes.shape == (3, 28, 28) and holes.dtype == torch.bool
    assert torch.equal(holes[0], _region(*EXPECTED[name])) and torch.equal(holes[0], holes[2])


def test_every_named_mask_is_tested():
    assert set(NAMED_MASKS) == set(EXPECTED)


def test_box_mask_covers_its_rectangle():
    hole = parse_mask("box:3,5,10,4").holes(1, size=(28, 28))[0]
    assert torch.equal(hole, _region(slice(3, 13), slice(5, 9)))


def test_not_mask_is_the_complement():
    assert torch.equal(
        parse_mask("not:quadrant-bl").holes(1, size=(28, 28))[0], ~_region(*EXPECTED["quadrant-bl"])
    )


def test_random_pixels_drops_about_p_and_differs_per_image():
    holes = parse_mask("random-pixels:0.3").holes(
        200, torch.Generator().manual_seed(0), size=(28, 28)
    )
    assert abs(holes.float().mean().item() - 0.3) < 0.01
    assert not torch.equal(holes[0], holes[1])


def test_png_mask_white_is_the_hole(tmp_path):
    picture = np.zeros((28, 28), np.uint8)
    picture[2:6, 10:20] = 255
    Image.fromarray(picture).save(tmp_path / "m.png")
    assert torch.equal(
        parse_mask(str(tmp_path / "m.png")).holes(1, size=(28, 28))[0],
        _region(slice(2, 6), slice(10, 20)),
    )


@pytest.mark.parametrize(
    "text",
    [
        "top",
        "box:1,2,3",
        "box:20,20,10,10",
        "box:a,b,c,d",
        "random-pixels:2",
        "random-pixels:x",
        "not:random-pixels:0.5",
    ],
)
def test_bad_masks_are_refused_with_a_data_error(text):
    with pytest.raises(DataError):
        parse_mask(text).holes(1, size=(28, 28))


@pytest.mark.parametrize("size", [(32, 32), (30, 18), (9, 9)])
def test_named_masks_are_fractions_of_any_image(size):
    height, width = size
    top = parse_mask("top-half").holes(2, size=size)
    assert top.shape == (2, *size) and top[0].sum() == (height // 2) * width
    assert top[0, : height // 2].all() and not top[0, height // 2 :].any()
    center = named_mask("center", size)
    assert center.sum() == (height // 2) * (width // 2)
    assert center[height // 4, width // 4] and not center[0, 0]
    assert torch.equal(parse_mask("not:top-half").holes(1, size=size)[0], ~top[0])


def test_a_box_or_a_mask_image_of_another_size_is_refused(tmp_path):
    with pytest.raises(DataError, match="inside 16x16"):
        parse_mask("box:10,10,8,8").holes(1, size=(16, 16))
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="must be 32x32 like the images, got 28x28"):
        parse_mask(str(tmp_path / "m.png")).holes(1, size=(32, 32))


def test_training_boxes_scale_with_the_image():
    holes = random_training_holes(4000, torch.Generator().manual_seed(0), size=(64, 64))
    assert holes.shape == (4000, 64 * 64)
    named = torch.stack([named_mask(n, (64, 64)).flatten() for n in NAMED_MASKS])
    is_named = (holes[:, None] == named[None]).all(-1).any(-1)
    assert 0.45 < is_named.float().mean() < 0.6


def test_training_holes_mix_named_boxes_and_dropout():
    holes = random_training_holes(2000, torch.Generator().manual_seed(0), size=(28, 28))
    assert holes.shape == (2000, 784) and holes.dtype == torch.bool
    named = torch.stack([named_mask(name, (28, 28)) for name in NAMED_MASKS]).view(9, -1)
    is_named = (holes[:, None] == named[None]).all(-1).any(-1)
    assert 0.45 < is_named.float().mean() < 0.6
    fractions = holes.float().mean(-1)
    assert fractions.min() > 0 and fractions.max() < 1


def test_extra_training_masks_share_the_fixed_half_uniformly():
    """`--train-mask not:quadrant-bl` (one quadrant seen) and a box join the nine named
    regions: each of the eleven is drawn for about 1/22 of the images."""
    extra = ("not:quadrant-bl", "box:2,3,10,12")
    holes = random_training_holes(
        22000, torch.Generator().manual_seed(0), size=(28, 28), extra=extra
    )
    fixed = torch.stack(
        [named_mask(name, (28, 28)) for name in NAMED_MASKS]
        + [parse_mask(text).fixed((28, 28)) for text in extra]
    ).view(11, -1)
    shares = (holes[:, None] == fixed[None]).all(-1).float().mean(0)
    assert ((shares - 1 / 22).abs() < 0.008).all(), shares
    without = random_training_holes(22000, torch.Generator().manual_seed(0), size=(28, 28))
    assert not (without == fixed[9]).all(-1).any()  # never only one quadrant seen by default


@pytest.mark.parametrize("text", ["random-pixels:0.5", "not:random-pixels:0.5", "mask.png"])
def test_a_training_mask_must_be_fixed_and_kept_with_the_run(text, tmp_path):
    if text.endswith(".png"):
        Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / text)
        text = str(tmp_path / text)
    with pytest.raises(DataError):
        training_mask(text)
