"""Generation from a trained model: label-conditional samples and the latent map.

Images come back as float32 `[N, 28, 28]` in [0, 1]: the mean of p(x | z, y) for each
sampled z (the usual way to show a Bernoulli-likelihood CVAE's samples).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from .model import LabelCVAE

SIZE = 28


@torch.no_grad()
def sample_images(
    model: LabelCVAE, labels: list[int] | None, n: int, *, seed: int | None = None
) -> torch.Tensor:
    """`n` images per label, grouped by label: `[len(labels) * n, 28, 28]`.

    `labels=None` draws `n` images, the label (for label models) from its prior.
    Runs the Pyro model itself, with z drawn from its prior N(0, I).
    """
    if seed is not None:
        pyro.set_rng_seed(seed)
    device = next(model.parameters()).device
    label_tensor = None
    if labels is not None:
        label_tensor = torch.tensor(labels, device=device).repeat_interleave(n)
    count = n if labels is None else len(labels) * n
    with poutine.block():
        params = model.model(None, label_tensor, num_images=count)
    return model.likelihood.mean(params).view(-1, SIZE, SIZE).cpu()


@torch.no_grad()
def latent_map(model: LabelCVAE, side: int = 15, extent: float = 2.0) -> torch.Tensor:
    """Decode a `side x side` grid of z over [-extent, extent]^2 for each label (one panel
    for an unconditioned model): `[panels, side, side, 28, 28]`. Needs `z_dim == 2`."""
    if model.z_dim != 2:
        raise ValueError("the latent map needs a model with z_dim 2")
    device = next(model.parameters()).device
    axis = torch.linspace(extent, -extent, side, device=device)
    rows, cols = torch.meshgrid(axis, -axis, indexing="ij")
    z = torch.stack([cols.flatten(), rows.flatten()], dim=-1)
    panels = []
    for label in range(model.num_labels) if model.num_labels else [None]:
        cond = z.new_zeros(len(z), 0)
        if label is not None:
            cond = torch.nn.functional.one_hot(
                torch.full((len(z),), label, device=device), model.num_labels
            ).float()
        panels.append(model.likelihood.mean(model.decoder(z, cond)).view(side, side, SIZE, SIZE))
    return torch.stack(panels).cpu()


@torch.no_grad()
def render_styles(
    model: LabelCVAE,
    style_images: torch.Tensor,
    labels: list[int],
    style_labels: torch.Tensor | None = None,
    *,
    particles: int = 100,
    seed: int | None = None,
) -> torch.Tensor:
    """Analogies: each style image's z rendered as every requested label.

    style_images `[M, 28, 28]`; their own labels `style_labels` `[M]`, inferred by Bayes'
    rule (`posterior.label_posterior`) when None. z is the guide's mean q(z | x, y).
    Returns `[len(labels) * M, 28, 28]`: all M styles as the first label, then the next.
    """
    from .posterior import label_posterior

    if seed is not None:
        pyro.set_rng_seed(seed)
    device = next(model.parameters()).device
    m = len(style_images)
    x = style_images.reshape(m, -1).to(device)
    if style_labels is None:
        no_hole = torch.zeros_like(x, dtype=torch.bool)
        style_labels = label_posterior(model, x, no_hole, particles=particles).argmax(dim=1)
    style_labels = style_labels.to(device)
    one_hot = torch.nn.functional.one_hot
    loc, _ = model.encoder(x, one_hot(style_labels, model.num_labels).float())
    targets = torch.tensor(labels, device=device).repeat_interleave(m)
    cond = one_hot(targets, model.num_labels).float()
    params = model.decoder(loc.repeat(len(labels), 1), cond)
    return model.likelihood.mean(params).view(-1, SIZE, SIZE).cpu()
