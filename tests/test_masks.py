"""Every mask parses and covers the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_cvae.errors import DataError
from pyro_cvae.masks import NAMED_MASKS, parse_mask, random_training_holes

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
    holes = parse_mask(name).holes(3)
    assert holes.shape == (3, 28, 28) and holes.dtype == torch.bool
    assert torch.equal(holes[0], _region(*EXPECTED[name])) and torch.equal(holes[0], holes[2])


def test_every_named_mask_is_tested():
    assert set(NAMED_MASKS) == set(EXPECTED)


def test_box_mask_covers_its_rectangle():
    hole = parse_mask("box:3,5,10,4").holes(1)[0]
    assert torch.equal(hole, _region(slice(3, 13), slice(5, 9)))


def test_not_mask_is_the_complement():
    assert torch.equal(
        parse_mask("not:quadrant-bl").holes(1)[0], ~_region(*EXPECTED["quadrant-bl"])
    )


def test_random_pixels_drops_about_p_and_differs_per_image():
    holes = parse_mask("random-pixels:0.3").holes(200, torch.Generator().manual_seed(0))
    assert abs(holes.float().mean().item() - 0.3) < 0.01
    assert not torch.equal(holes[0], holes[1])


def test_png_mask_white_is_the_hole(tmp_path):
    picture = np.zeros((28, 28), np.uint8)
    picture[2:6, 10:20] = 255
    Image.fromarray(picture).save(tmp_path / "m.png")
    assert torch.equal(
        parse_mask(str(tmp_path / "m.png")).holes(1)[0], _region(slice(2, 6), slice(10, 20))
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
        parse_mask(text)


def test_training_holes_mix_named_boxes_and_dropout():
    holes = random_training_holes(2000, torch.Generator().manual_seed(0))
    assert holes.shape == (2000, 784) and holes.dtype == torch.bool
    named = torch.stack(list(NAMED_MASKS.values())).view(9, -1)
    is_named = (holes[:, None] == named[None]).all(-1).any(-1)
    assert 0.45 < is_named.float().mean() < 0.6
    fractions = holes.float().mean(-1)
    assert fractions.min() > 0 and fractions.max() < 1
