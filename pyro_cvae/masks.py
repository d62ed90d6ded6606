"""Hole masks: named regions, boxes, random pixels, mask images, and the training sampler.

A mask names the *hole*: a boolean tensor `[28, 28]` (or `[N, 28, 28]`), `True` where a
pixel is missing and must be filled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DataError

SIZE = 28
HALF = SIZE // 2


def _region(rows: slice, cols: slice) -> torch.Tensor:
    hole = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    hole[rows, cols] = True
    return hole


_TOP, _BOTTOM, _ALL = slice(0, HALF), slice(HALF, SIZE), slice(0, SIZE)
NAMED_MASKS: dict[str, torch.Tensor] = {
    "top-half": _region(_TOP, _ALL),
    "bottom-half": _region(_BOTTOM, _ALL),
    "left-half": _region(_ALL, _TOP),
    "right-half": _region(_ALL, _BOTTOM),
    "quadrant-tl": _region(_TOP, _TOP),
    "quadrant-tr": _region(_TOP, _BOTTOM),
    "quadrant-bl": _region(_BOTTOM, _TOP),
    "quadrant-br": _region(_BOTTOM, _BOTTOM),
    "center": _region(slice(7, 21), slice(7, 21)),
}
MASK_HELP = (
    "top-half, bottom-half, left-half, right-half, quadrant-tl, quadrant-tr, quadrant-bl, "
    "quadrant-br, center, random-pixels:P, box:ROW,COL,H,W, a 28x28 PNG (white = hole), "
    "or not:MASK for the complement (e.g. not:quadrant-bl: only that quadrant is observed)"
)


@dataclass(frozen=True)
class MaskSpec:
    """A parsed `--mask` value. `fixed` is `[28, 28]` bool, or None for random pixels."""

    text: str
    fixed: torch.Tensor | None = None
    pixel_probability: float = 0.0

    def holes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masks for `n` images: bool `[n, 28, 28]`, a fresh draw per image for random pixels."""
        if self.fixed is not None:
            return self.fixed.expand(n, SIZE, SIZE).clone()
        return torch.rand(n, SIZE, SIZE, generator=generator) < self.pixel_probability


def _box(text: str, args: str) -> torch.Tensor:
    parts = args.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise DataError(f"mask {text!r}: expected box:ROW,COL,H,W with four whole numbers")
    row, col, height, width = (int(p) for p in parts)
    if height < 1 or width < 1 or row + height > SIZE or col + width > SIZE:
        raise DataError(f"mask {text!r}: the box must have H, W >= 1 and lie inside 28x28")
    return _region(slice(row, row + height), slice(col, col + width))


def _pixel_probability(text: str, args: str) -> float:
    try:
        probability = float(args)
    except ValueError:
        raise DataError(f"mask {text!r}: expected random-pixels:P with P a number") from None
    if not 0.0 < probability <= 1.0:
        raise DataError(f"mask {text!r}: P must be in (0, 1]")
    return probability


def read_mask_image(path: str | Path) -> torch.Tensor:
    """A PNG mask, 28x28 (grey or colour): pixels brighter than half are the hole."""
    from .images import read_png

    image = read_png(path)
    if image.shape != (SIZE, SIZE):
        raise DataError(
            f"{path}: a mask image must be 28x28, got {image.shape[1]}x{image.shape[0]}"
        )
    hole = image > 0.5
    if not hole.any():
        raise DataError(f"{path}: the mask image has no white (hole) pixels")
    return hole


def parse_mask(text: str) -> MaskSpec:
    """Parse a `--mask` value (see `MASK_HELP`)."""
    text = text.strip()
    if text.startswith("not:"):
        if text[4:].lstrip().startswith("not:"):
            raise DataError(f"mask {text[:40]!r}: not: cannot be nested; name the hole itself")
        inner = parse_mask(text[4:])
        if inner.fixed is None:
            raise DataError(f"mask {text!r}: not: takes a fixed mask, not random pixels")
        if inner.fixed.all():
            raise DataError(f"mask {text!r}: the complement is empty")
        return MaskSpec(text, ~inner.fixed)
    if text in NAMED_MASKS:
        return MaskSpec(text, NAMED_MASKS[text])
    kind, _, args = text.partition(":")
    if kind == "box" and args:
        return MaskSpec(text, _box(text, args))
    if kind == "random-pixels" and args:
        return MaskSpec(text, pixel_probability=_pixel_probability(text, args))
    if text.lower().endswith(".png"):
        return MaskSpec(text, read_mask_image(text))
    raise DataError(f"unknown mask {text!r}; use {MASK_HELP}")


def random_training_holes(
    n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Holes for training: bool `[n, 784]`, one per image, drawn from a mixture.

    Half are the named masks (uniformly), a quarter random rectangles of 4..24 pixels a
    side, a quarter random pixel drop-out with a drop rate uniform in [0.1, 0.9].
    """
    named = torch.stack(list(NAMED_MASKS.values())).view(len(NAMED_MASKS), -1)
    choice = torch.randint(len(NAMED_MASKS), (n,), generator=generator)
    holes = named[choice]

    heights = torch.randint(4, 25, (n,), generator=generator)
    widths = torch.randint(4, 25, (n,), generator=generator)
    tops = (torch.rand(n, generator=generator) * (SIZE - heights + 1)).long()
    lefts = (torch.rand(n, generator=generator) * (SIZE - widths + 1)).long()
    grid = torch.arange(SIZE)
    in_rows = (grid >= tops[:, None]) & (grid < (tops + heights)[:, None])
    in_cols = (grid >= lefts[:, None]) & (grid < (lefts + widths)[:, None])
    boxes = (in_rows[:, :, None] & in_cols[:, None, :]).view(n, -1)

    rates = 0.1 + 0.8 * torch.rand(n, 1, generator=generator)
    dropout = torch.rand(n, SIZE * SIZE, generator=generator) < rates

    kind = torch.rand(n, 1, generator=generator)
    holes = torch.where(kind < 0.5, holes, torch.where(kind < 0.75, boxes, dropout))
    return holes.to(device)
