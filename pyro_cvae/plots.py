"""Figures with matplotlib (Agg backend): loss curves, sample grids, latent maps,
inpainting panels. Images are float `[..., C, H, W]` in [0, 1], grey (C = 1, drawn dark on
light) or colour (C = 3); every function writes a PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    """Write the figure as a PNG atomically (a crash never leaves half a file)."""
    try:
        atomic_write(
            path, lambda handle: fig.savefig(handle, format="png", dpi=100, bbox_inches="tight")
        )
    finally:
        _pyplot().close(fig)


def tile(images: torch.Tensor | np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Lay `rows * cols` images `[rows * cols, C, H, W]` out as one picture (row-major),
    `[rows*(H+pad)-pad, cols*(W+pad)-pad]` for grey images, `[..., 3]` for colour ones,
    with `pad` pixels of 1.0 between them."""
    images = np.asarray(images, dtype=np.float32)
    images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    h, w = images.shape[1:3]
    grid = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[3:]), np.float32)
    for i, image in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = image
    return grid


def _show(ax, grid: np.ndarray) -> None:
    """Grey pictures dark on light (as digits are drawn), colour ones as they are."""
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid.clip(0, 1), interpolation="nearest")


def image_grid(
    images: torch.Tensor, rows: int, path: str | Path, row_names: Sequence[str] | None = None
) -> None:
    """Save `images` `[rows * cols, C, H, W]` as a grid, one row per group (e.g. per label)."""
    plt = _pyplot()
    cols = len(images) // rows
    grid = tile(images, rows, cols)
    side = images.shape[-2]
    fig, ax = plt.subplots(figsize=(max(2.0, cols * 0.45), max(1.0, rows * 0.45)))
    _show(ax, grid)
    ax.set_xticks([])
    if row_names:
        ax.set_yticks([r * (side + 1) + side // 2 for r in range(rows)], list(row_names))
    else:
        ax.set_yticks([])
    _save(fig, path)


def loss_curves(
    history: Sequence[dict], path: str | Path, values_per_image: int | None = None
) -> None:
    """Train and test negative ELBO against epoch: in nats per image, or, given the
    `values_per_image` D of a discrete (8-bit) likelihood, in bits per dimension
    (nats / (D ln 2))."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    scale = 1.0 if values_per_image is None else 1.0 / (values_per_image * math.log(2))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_loss"] * scale for h in history], marker=".", label="train")
    ax.plot(epochs, [h["test_loss"] * scale for h in history], marker=".", label="test")
    ax.set_xlabel("epoch")
    unit = "nats per image" if values_per_image is None else "bits per dimension"
    ax.set_ylabel(f"negative ELBO ({unit})")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def latent_map(maps: torch.Tensor, names: Sequence[str], path: str | Path) -> None:
    """Decoded images over a z grid: `maps` `[panels, side, side, C, H, W]`, one panel per
    label."""
    plt = _pyplot()
    panels, side = maps.shape[0], maps.shape[1]
    cols = min(panels, 5)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for panel, name in enumerate(names):
        ax = axes.flat[panel]
        _show(ax, tile(maps[panel].reshape(-1, *maps.shape[3:]), side, side, pad=0))
        ax.set_title(name)
    _save(fig, path)


def inpainting_panels(
    inputs: torch.Tensor,
    holes: torch.Tensor,
    completions: torch.Tensor,
    path: str | Path,
    originals: torch.Tensor | None = None,
) -> None:
    """One row per image: the input `[N, C, H, W]` with its hole (`holes` `[N, H, W]`) shown
    grey, the K completions `[N, K, C, H, W]`, and the original when known."""
    plt = _pyplot()
    shown = inputs.clone().masked_fill(holes[:, None], 0.35)
    columns = [shown[:, None], completions]
    if originals is not None:
        columns.append(originals[:, None])
    rows = torch.cat(columns, dim=1)
    n, cols = rows.shape[:2]
    grid = tile(rows.reshape(-1, *rows.shape[2:]), n, cols)
    side = rows.shape[-1]
    fig, ax = plt.subplots(figsize=(max(2.0, cols * 0.6), max(1.0, n * 0.6)))
    _show(ax, grid)
    names = ["input"] + [f"#{k + 1}" for k in range(completions.shape[1])]
    if originals is not None:
        names.append("original")
    ax.set_xticks([c * (side + 1) + side // 2 for c in range(cols)], names, fontsize=7)
    ax.set_yticks([])
    _save(fig, path)
