"""Hole filling with a model trained with `--condition pixels` (amortized: the prior net).

Images are float32 `[N, 28, 28]` in [0, 1]; holes bool `[N, 28, 28]` (True = fill);
labels int64 `[N]` or None. Completions are `[N, K, 28, 28]`: observed pixels copied
from the input exactly, hole pixels the mean of p(x | z, y) for a sampled z (and y).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from .model import InpaintingCVAE

SIZE = 28
CHUNK = 4096


def merge(images: torch.Tensor, holes: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Observed pixels from `images`, hole pixels from `filled` (`[N, K, 28, 28]`)."""
    return torch.where(holes[:, None], filled, images[:, None])


def flat_on_device(model, images, holes, labels):
    """images `[N, 28, 28]`, holes the same, labels `[N]` or None -> `[N, 784]`, `[N, 784]`
    and labels, on the model's device."""
    device = next(model.parameters()).device
    n = len(images)
    x = images.reshape(n, -1).to(device)
    h = holes.reshape(n, -1).to(device)
    return x, h, None if labels is None else labels.to(device)


@torch.no_grad()
def inpaint_amortized(
    model: InpaintingCVAE,
    images: torch.Tensor,
    holes: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    samples: int = 1,
    seed: int | None = None,
) -> torch.Tensor:
    """K completions per image from the model's own conditional p(y, z | observed).

    A missing label is drawn from the model's classifier p(y | observed), then
    z ~ p(z | observed, y) from the prior net; the hole is the decoder's mean.
    """
    if seed is not None:
        pyro.set_rng_seed(seed)
    n = len(images)
    x, hole, y = flat_on_device(model, images, holes, labels)
    rows_x, rows_hole = x.repeat(samples, 1), hole.repeat(samples, 1)
    rows_y = None if y is None else y.repeat(samples)
    means = []
    for start in range(0, len(rows_x), CHUNK):
        part = slice(start, start + CHUNK)
        with poutine.block():
            params = model.model(rows_x[part], rows_hole[part], None if y is None else rows_y[part])
        means.append(model.likelihood.mean(params))
    filled = torch.cat(means).view(samples, n, SIZE, SIZE).transpose(0, 1).cpu()
    return merge(images.cpu(), holes.cpu(), filled)
