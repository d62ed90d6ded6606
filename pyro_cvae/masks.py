"""Hole masks: named regions, boxes, random pixels, mask images, and the training sampler.

A mask names the *hole*: a boolean tensor `[H, W]` (or `[N, H, W]`), `True` where a pixel
is missing and must be filled (all its channels). Masks are made for an image size
(H, W): named regions are fractions of the image (`top-half`: the first H // 2 rows,
`center`: the middle half in each direction), boxes are in pixels, mask images must have
the image's size.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DataError


def _rows_cols(name: str, height: int, width: int) -> tuple[slice, slice]:
    """The region a named mask covers in an image of height x width."""
    top, bottom = slice(0, height // 2), slice(height // 2, height)
    left, right = slice(0, width // 2), slice(width // 2, width)
    everything_h, everything_w = slice(0, height), slice(0, width)
    middle = (
        slice(height // 4, height // 4 + height // 2),
        slice(width // 4, width // 4 + width // 2),
    )
    return {
        "top-half": (top, everything_w),
        "bottom-half": (bottom, everything_w),
        "left-half": (everything_h, left),
        "right-half": (everything_h, right),
        "quadrant-tl": (top, left),
        "quadrant-tr": (top, right),
        "quadrant-bl": (bottom, left),
        "quadrant-br": (bottom, right),
        "center": middle,
    }[name]


NAMED_MASKS = (
    "top-half",
    "bottom-half",
    "left-half",
    "right-half",
    "quadrant-tl",
    "quadrant-tr",
    "quadrant-bl",
    "quadrant-br",
    "center",
)
MASK_HELP = (
    "top-half, bottom-half, left-half, right-half, quadrant-tl, quadrant-tr, quadrant-bl, "
    "quadrant-br, center, random-pixels:P, box:ROW,COL,H,W (pixels), a PNG of the image's "
    "size (white = hole), or not:MASK for the complement (e.g. not:quadrant-bl: only that "
    "quadrant is observed)"
)


def named_mask(name: str, size: tuple[int, int]) -> torch.Tensor:
    """The named region (one of `NAMED_MASKS`) of an image of `size` (H, W): `[H, W]` bool."""
    hole = torch.zeros(*size, dtype=torch.bool)
    hole[_rows_cols(name, *size)] = True
    return hole


@dataclass(frozen=True)
class MaskSpec:
    """A parsed `--mask` value: `kind` "named" (`name`), "box" (`box` ROW, COL, H, W),
    "random" (`pixel_probability`) or "image" (`image` `[H, W]` bool), the complement
    when `negate`."""

    text: str
    kind: str
    name: str = ""
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    pixel_probability: float = 0.0
    image: torch.Tensor | None = None
    negate: bool = False

    def fixed(self, size: tuple[int, int]) -> torch.Tensor:
        """The hole `[H, W]` of a mask that is the same for every image (not random pixels),
        in an image of `size` (H, W); a `DataError` when it does not fit that size."""
        height, width = size
        if self.kind == "named":
            hole = named_mask(self.name, size)
        elif self.kind == "box":
            row, col, h, w = self.box
            if row + h > height or col + w > width:
                raise DataError(f"mask {self.text!r}: the box must lie inside {height}x{width}")
            hole = torch.zeros(*size, dtype=torch.bool)
            hole[row : row + h, col : col + w] = True
        elif self.kind == "image":
            if tuple(self.image.shape) != tuple(size):
                got = f"{self.image.shape[1]}x{self.image.shape[0]}"
                raise DataError(
                    f"{self.text}: a mask image must be {width}x{height} like the images, got {got}"
                )
            hole = self.image
        else:
            raise DataError(f"mask {self.text!r}: random pixels differ from image to image")
        if self.negate:
            hole = ~hole
            if not hole.any():
                raise DataError(f"mask {self.text!r}: the complement is empty")
        return hole

    def holes(
        self, n: int, generator: torch.Generator | None = None, *, size: tuple[int, int]
    ) -> torch.Tensor:
        """Masks for `n` images of `size` (H, W): bool `[n, H, W]`, a fresh draw per image
        for random pixels."""
        if self.kind == "random":
            return torch.rand(n, *size, generator=generator) < self.pixel_probability
        return self.fixed(size).expand(n, *size).clone()


def _box(text: str, args: str) -> tuple[int, int, int, int]:
    parts = args.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise DataError(f"mask {text!r}: expected box:ROW,COL,H,W with four whole numbers")
    row, col, height, width = (int(p) for p in parts)
    if height < 1 or width < 1:
        raise DataError(f"mask {text!r}: the box must have H, W >= 1")
    return row, col, height, width


def _pixel_probability(text: str, args: str) -> float:
    try:
        probability = float(args)
    except ValueError:
        raise DataError(f"mask {text!r}: expected random-pixels:P with P a number") from None
    if not 0.0 < probability <= 1.0:
        raise DataError(f"mask {text!r}: P must be in (0, 1]")
    return probability


def read_mask_image(path: str | Path) -> torch.Tensor:
    """A PNG mask (grey or colour): pixels brighter than half are the hole; `[H, W]` bool."""
    from .images import read_picture

    hole = read_picture(path, channels=1)[0] > 0.5
    if not hole.any():
        raise DataError(f"{path}: the mask image has no white (hole) pixels")
    return hole


def parse_mask(text: str) -> MaskSpec:
    """Parse a `--mask` value (see `MASK_HELP`); its size is checked when it is applied."""
    text = text.strip()
    if text.startswith("not:"):
        if text[4:].lstrip().startswith("not:"):
            raise DataError(f"mask {text[:40]!r}: not: cannot be nested; name the hole itself")
        inner = parse_mask(text[4:])
        if inner.kind == "random":
            raise DataError(f"mask {text!r}: not: takes a fixed mask, not random pixels")
        return MaskSpec(text, inner.kind, inner.name, inner.box, image=inner.image, negate=True)
    if text in NAMED_MASKS:
        return MaskSpec(text, "named", name=text)
    kind, _, args = text.partition(":")
    if kind == "box" and args:
        return MaskSpec(text, "box", box=_box(text, args))
    if kind == "random-pixels" and args:
        return MaskSpec(text, "random", pixel_probability=_pixel_probability(text, args))
    if text.lower().endswith(".png"):
        return MaskSpec(text, "image", image=read_mask_image(text))
    raise DataError(f"unknown mask {text!r}; use {MASK_HELP}")


def training_mask(text: str) -> MaskSpec:
    """A `--train-mask` value: a fixed mask a run can keep in its config as text and
    rebuild from it (a named region, a box, or the complement of one); a `DataError` for
    random pixels and mask images. Its `.text` is the value stripped."""
    spec = parse_mask(text)
    if spec.kind not in ("named", "box"):
        raise DataError(
            f"train mask {text!r}: a named region, a box, or not: one of them (random pixels "
            "are in the training mixture already; a mask image is not kept with the run)"
        )
    return spec


@functools.lru_cache(maxsize=4)
def fixed_training_masks(size: tuple[int, int], extra: tuple[str, ...] = ()) -> torch.Tensor:
    """Every named mask of an image of `size`, then each of `extra` (`training_mask`s),
    flat: `[len(NAMED_MASKS) + len(extra), H * W]`, made once per (size, extra) and shared
    (the training sampler asks for it every step: never change it in place); a `DataError`
    for an extra mask that does not fit."""
    masks = [named_mask(name, size) for name in NAMED_MASKS]
    masks += [training_mask(text).fixed(size) for text in extra]
    return torch.stack(masks).view(len(masks), -1)


def _box_sides(side: int) -> tuple[int, int]:
    """The smallest and largest side of a random training box in an image side: 4..24 of 28
    pixels, scaled with the image."""
    return max(1, round(side * 4 / 28)), max(1, round(side * 24 / 28))


def random_training_holes(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    *,
    size: tuple[int, int],
    extra: tuple[str, ...] = (),
) -> torch.Tensor:
    """Holes for training images of `size` (H, W): bool `[n, H * W]`, one per image, drawn
    from a mixture.

    Half are fixed masks, uniformly: the named masks and the `extra` ones (`--train-mask`
    texts such as `not:quadrant-bl`, `training_mask`), a quarter random rectangles of 1/7
    to 6/7 of the image a side (4..24 pixels of 28), a quarter random pixel drop-out with
    a drop rate uniform in [0.1, 0.9].
    """
    height, width = size
    named = fixed_training_masks(tuple(size), tuple(extra))
    choice = torch.randint(len(named), (n,), generator=generator)
    holes = named[choice]

    (low_h, high_h), (low_w, high_w) = _box_sides(height), _box_sides(width)
    heights = torch.randint(low_h, high_h + 1, (n,), generator=generator)
    widths = torch.randint(low_w, high_w + 1, (n,), generator=generator)
    tops = (torch.rand(n, generator=generator) * (height - heights + 1)).long()
    lefts = (torch.rand(n, generator=generator) * (width - widths + 1)).long()
    rows, cols = torch.arange(height), torch.arange(width)
    in_rows = (rows >= tops[:, None]) & (rows < (tops + heights)[:, None])
    in_cols = (cols >= lefts[:, None]) & (cols < (lefts + widths)[:, None])
    boxes = (in_rows[:, :, None] & in_cols[:, None, :]).view(n, -1)

    rates = 0.1 + 0.8 * torch.rand(n, 1, generator=generator)
    dropout = torch.rand(n, height * width, generator=generator) < rates

    kind = torch.rand(n, 1, generator=generator)
    holes = torch.where(kind < 0.5, holes, torch.where(kind < 0.75, boxes, dropout))
    return holes.to(device)
