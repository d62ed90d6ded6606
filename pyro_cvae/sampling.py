"""Generation from a trained model: label-conditional samples, the latent map, style analogies.

Images come back as float32 `[N, C, H, W]` in [0, 1], the model's shape: the mean of
p(x | z, y) for each sampled z (the usual way to show a CVAE's samples).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from .errors import UsageError
from .model import CVAE, TemperedLatent


def _check_sampling(model: CVAE, labels) -> None:
    """A `UsageError` unless `model` draws images from its prior for these labels."""
    if not model.generative:
        raise UsageError("this run fills holes (--condition pixels); use `pyro-cvae inpaint`")
    model.check_labels(labels is not None)
    if model.num_labels and labels is None:
        raise UsageError(
            "this run is label-conditioned: give the labels to draw (--label L[,L...])"
        )


@torch.no_grad()
def sample_images(
    model: CVAE,
    labels: list[int] | None,
    n: int,
    *,
    seed: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """`n` images per label, grouped by label: `[len(labels) * n, C, H, W]`.

    `labels=None` draws `n` images from a model without labels. Runs the Pyro model
    itself, with z drawn from its prior p(z | y); a `temperature` below 1 draws z from
    that Gaussian with its scales multiplied by `temperature` (0: its mean), images
    closer to the typical one of each label, as NVAE and Glow sample.
    """
    _check_sampling(model, labels)
    tempered = TemperedLatent(temperature)
    if seed is not None:
        pyro.set_rng_seed(seed)
    label_tensor = None
    if labels is not None:
        label_tensor = torch.tensor(labels, device=model.device).repeat_interleave(n)
    count = n if labels is None else len(labels) * n
    with poutine.block(), tempered:
        params = model.model(None, label_tensor, num_images=count)
    return model.likelihood.mean(params).view(-1, *model.image_shape).cpu()


LATENT_SIDE = 15  # the latent map: points per side
LATENT_EXTENT = 2.0  # and how far it reaches, in standard deviations of p(z | y)


def latent_grid(side: int = LATENT_SIDE, extent: float = LATENT_EXTENT) -> torch.Tensor:
    """The points of the latent map: a `side x side` grid over [-extent, extent]^2 in
    standard deviations of p(z | y), row by row from the top left (first coordinate to the
    right, second up): `[side * side, 2]`."""
    axis = torch.linspace(extent, -extent, side)
    rows, cols = torch.meshgrid(axis, -axis, indexing="ij")
    return torch.stack([cols.flatten(), rows.flatten()], dim=-1)


@torch.no_grad()
def decode_latent_points(model: CVAE, label: int | None, points: torch.Tensor) -> torch.Tensor:
    """The mean image of p(x | z, y) at z = mean + stddev * point of p(z | y) for label
    `label` (None for an unconditioned model), for points `[M, 2]` in standard deviations:
    `[M, C, H, W]`. Needs a model with a latent map (`has_latent_map`)."""
    _check_sampling(model, None if label is None else [label])
    if not has_latent_map(model):
        raise UsageError("the latent map needs a label or none run with z_dim 2")
    points = points.to(model.device, torch.float32)
    y = None if label is None else torch.full((len(points),), label, device=model.device)
    prior = model.prior(y, len(points))
    z = prior.mean + prior.stddev * points
    return model.likelihood.mean(model.decode(z, y)).view(-1, *model.image_shape).cpu()


def latent_map(model: CVAE, side: int = LATENT_SIDE, extent: float = LATENT_EXTENT) -> torch.Tensor:
    """Decode the `latent_grid` for each label (one panel for an unconditioned model):
    `[panels, side, side, C, H, W]`. Needs a generative model with `z_dim == 2`
    (`has_latent_map`)."""
    grid = latent_grid(side, extent)
    labels = range(model.num_labels) if model.num_labels else [None]
    panels = [decode_latent_points(model, label, grid) for label in labels]
    return torch.stack(panels).view(len(panels), side, side, *model.image_shape)


def has_latent_map(model: CVAE) -> bool:
    """Whether `latent_map` can draw the model: a generative model with a 2-d latent."""
    return model.generative and model.z_dim == 2


@torch.no_grad()
def render_styles(
    model: CVAE,
    style_images: torch.Tensor,
    labels: list[int],
    style_labels: torch.Tensor | None = None,
    *,
    particles: int = 100,
    seed: int | None = None,
) -> torch.Tensor:
    """Analogies: each style image's z rendered as every requested label.

    style_images `[M, C, H, W]`; their own labels `style_labels` `[M]`, inferred by Bayes'
    rule (`posterior.label_posterior`) when None. z is the guide's mean q(z | x, y).
    Returns `[len(labels) * M, C, H, W]`: all M styles as the first label, then the next.
    """
    from .posterior import label_posterior

    _check_sampling(model, labels)
    if not model.num_labels:
        raise UsageError("style analogies need a label-conditioned run (--condition label)")
    if seed is not None:
        pyro.set_rng_seed(seed)
    device = model.device
    m = len(style_images)
    x = model.flat_images(style_images)
    if style_labels is None:
        style_labels = label_posterior(model, style_images, particles=particles).argmax(dim=1)
    loc, _ = model.encode(x, style_labels.to(device))
    targets = torch.tensor(labels, device=device).repeat_interleave(m)
    params = model.decode(loc.repeat(len(labels), 1), targets)
    return model.likelihood.mean(params).view(-1, *model.image_shape).cpu()
