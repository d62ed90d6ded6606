"""Conditioning a label/none model on observed pixels: Bayes' rule by importance sampling.

The generative model p(y) p(z) p(x | z, y) of a `LabelCVAE` is conditioned on the pixels
outside the hole only (the model's likelihood is masked with `Distribution.mask`), and
the label, when not given, is enumerated over its values. For each image, label and
particle, z is drawn from a defensive proposal: an even mixture of the guide q(z | x, y)
applied to the image with its hole zeroed, and the prior N(0, I). The normalised weights
give p(y | observed) (classification) and posterior samples of (y, z) whose decoded hole
pixels are completions.

Shapes: images `[N, 28, 28]` or `[N, 784]` in [0, 1]; holes the same shape, bool;
labels int64 `[N]` or None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine

from .importance import in_particles, site_log_probs
from .inpaint import flat_on_device, merge
from .model import LabelCVAE

SIZE = 28
CHUNK_ROWS = 65536


def proposal(model: LabelCVAE, images, labels, hole=None, *, num_images=None):
    """A Pyro guide for z: 0.5 q(z | image with hole zeroed, y) + 0.5 N(0, I)."""
    seen = images if hole is None else images.masked_fill(hole, 0.0)
    cond = (
        F.one_hot(labels, model.num_labels).to(images.dtype)
        if model.num_labels
        else images.new_zeros(len(images), 0)
    )
    loc, scale = model.encoder(seen, cond)
    locs = torch.stack([loc, torch.zeros_like(loc)], dim=-2)
    scales = torch.stack([scale, torch.ones_like(scale)], dim=-2)
    mixture = dist.MixtureSameFamily(
        dist.Categorical(logits=loc.new_zeros(len(images), 2)),
        dist.Normal(locs, scales).to_event(1),
    )
    with pyro.plate("data", len(images)):
        return pyro.sample("z", mixture)


@dataclass
class Particles:
    """Weighted (y, z) particles for a batch of B images.

    log_weights `[Y, K, B]`: log p(y) + log p(x_obs, z | y) - log q(z), Y candidate labels
    (all labels when none was given, else the given one), K particles. z `[Y, K, B, z_dim]`.
    labels `[Y, B]`: the label each row of candidates stands for.
    """

    log_weights: torch.Tensor
    z: torch.Tensor
    labels: torch.Tensor | None


@torch.no_grad()
def weighted_particles(model: LabelCVAE, images, holes, labels, particles: int) -> Particles:
    """Importance-sample (y, z) for B images `[B, 784]`: Y * B rows, K particles each.

    The particles are a plate around proposal and model (`importance.in_particles`), so
    the encoder runs once per image and label, the decoder once per particle.
    """
    b = len(images)
    if model.num_labels and labels is None:
        candidates = torch.arange(model.num_labels, device=images.device)[:, None].expand(-1, b)
        log_prior = model.label_prior.log()[:, None, None]
    elif model.num_labels:
        candidates, log_prior = labels[None], 0.0
    else:
        candidates, log_prior = None, 0.0
    y_count = 1 if candidates is None else len(candidates)
    x, h = images.repeat(y_count, 1), holes.repeat(y_count, 1)
    y = None if candidates is None else candidates.reshape(-1)
    guide_trace = poutine.trace(in_particles(proposal, particles)).get_trace(model, x, y, h)
    replayed = poutine.replay(in_particles(model.model, particles), trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(x, y, h)
    log_w = site_log_probs(model_trace) - site_log_probs(guide_trace)  # [K, Y * B]
    z = guide_trace.nodes["z"]["value"]  # [K, Y * B, z_dim]
    return Particles(
        log_weights=log_w.view(particles, y_count, b).transpose(0, 1) + log_prior,
        z=z.view(particles, y_count, b, -1).transpose(0, 1),
        labels=candidates,
    )


def _chunks(n: int, rows_per_image: int):
    per_chunk = max(1, CHUNK_ROWS // rows_per_image)
    for start in range(0, n, per_chunk):
        yield slice(start, min(n, start + per_chunk))


@torch.no_grad()
def label_posterior(model: LabelCVAE, images, holes, *, particles: int = 100, seed=None):
    """p(y | observed pixels) `[N, num_labels]` by Bayes' rule: p(y) p(x_obs | y), each
    marginal likelihood importance-sampled with `particles` particles."""
    if not model.num_labels:
        raise ValueError("classification needs a label-conditioned model (--condition label)")
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, h, _ = flat_on_device(model, images, holes, None)
    out = []
    for part in _chunks(len(x), model.num_labels * particles):
        found = weighted_particles(model, x[part], h[part], None, particles)
        log_joint = torch.logsumexp(found.log_weights, dim=1) - math.log(particles)
        out.append(torch.softmax(log_joint, dim=0).T)
    return torch.cat(out).cpu()


@torch.no_grad()
def inpaint_posterior(
    model: LabelCVAE,
    images: torch.Tensor,
    holes: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    samples: int = 1,
    particles: int = 1000,
    seed: int | None = None,
) -> torch.Tensor:
    """K completions `[N, K, 28, 28]` from the posterior p(y, z | observed pixels).

    (y, z) are resampled from the weighted particles; the hole is the mean of
    p(x | z, y). Observed pixels are copied from the input.
    """
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, h, y_given = flat_on_device(model, images, holes, labels)
    y_count = model.num_labels if (model.num_labels and labels is None) else 1
    filled = []
    for part in _chunks(len(x), y_count * particles):
        found = weighted_particles(
            model, x[part], h[part], None if y_given is None else y_given[part], particles
        )
        b = part.stop - part.start
        weights = found.log_weights.reshape(-1, b).T  # [B, Y * K]
        picks = torch.multinomial(torch.softmax(weights, dim=-1), samples, replacement=True)
        z_all = found.z.reshape(-1, b, model.z_dim)  # [Y * K, B, z_dim]
        columns = torch.arange(b, device=x.device)[:, None].expand(-1, samples)
        z = z_all[picks, columns].reshape(b * samples, -1)
        cond = x.new_zeros(b * samples, 0)
        if found.labels is not None:
            y_rows = found.labels.repeat_interleave(found.z.shape[1], dim=0)  # [Y * K, B]
            y = y_rows[picks, columns].reshape(-1)
            cond = F.one_hot(y, model.num_labels).to(x.dtype)
        means = model.likelihood.mean(model.decoder(z, cond))
        filled.append(means.view(b, samples, SIZE, SIZE))
    return merge(
        images.reshape(-1, SIZE, SIZE).cpu(),
        holes.reshape(-1, SIZE, SIZE).cpu(),
        torch.cat(filled).cpu(),
    )
