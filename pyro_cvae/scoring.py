"""Scoring under a model/guide pair: Pyro traces in, ELBO terms and importance log-weights out.

The one layer that turns a guide trace and the model replayed on it into numbers, for
every caller: training (the one-particle ELBO, differentiable), `evaluate` (the held-out
negative ELBO and importance-sampled likelihoods) and posterior inference (log-weights of
particles drawn from a proposal written as a guide). All figures are nats.

Particles are one `pyro.plate("particles", K, dim=-2)` around model and guide (the data
plate is dim -1): networks that read only the conditioning run once per image, and only
what depends on z runs on the `[K, B, z_dim]` particles. Work is split into chunks of at
most `CHUNK_ROWS` (particle, image) rows, the one setting that bounds memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

CHUNK_ROWS = 8192


def chunks(n: int, rows_per_item: int = 1) -> Iterator[slice]:
    """Slices of `range(n)` holding at most `CHUNK_ROWS` rows each (at least one item),
    when each item (an image) costs `rows_per_item` rows (its particles, its labels...)."""
    per_chunk = max(1, CHUNK_ROWS // rows_per_item)
    for start in range(0, n, per_chunk):
        yield slice(start, min(n, start + per_chunk))


def in_particles(fn: Callable, particles: int) -> Callable:
    """`fn` run inside a plate of `particles` copies at dim -2 (the data plate is dim -1)."""

    def vectorized(*args, **kwargs):
        with pyro.plate("particles", particles, dim=-2):
            return fn(*args, **kwargs)

    return vectorized


def trace_pair(model: Callable, guide: Callable, args: tuple, particles: int | None = None):
    """(guide trace, model trace replayed on the guide's latents), both run on `args`;
    with `particles`, inside a particle plate (`in_particles`)."""
    if particles is not None:
        model, guide = in_particles(model, particles), in_particles(guide, particles)
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    return guide_trace, model_trace


def _scored_sites(trace, exclude: Sequence[str] = ()):
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and name not in exclude:
            yield name, site


def elbo_parts(model: Callable, guide: Callable, args: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-particle ELBO estimate in two parts, each batch-shaped `[B]`, in nats: the
    log-likelihood of the observed sites, and minus the KL divergence of the latent ones
    (their sum is the ELBO). Every model here has both kinds of site (the image, z).

    As Pyro's `TraceMeanField_ELBO`: an observed site adds log p(x | ...), a latent site
    -KL(q || p) in closed form (log p(z) - log q(z) at the guide's sample where torch
    knows no closed form). Differentiable in the parameters; nothing is read back from
    the device.
    """
    guide_trace, model_trace = trace_pair(model, guide, args)
    log_likelihood, negative_kl = 0.0, 0.0
    for name, site in _scored_sites(model_trace):
        if site["is_observed"]:
            term = site["fn"].log_prob(site["value"])
        else:
            q = guide_trace.nodes[name]["fn"]
            try:
                term = -kl_divergence(q, site["fn"])
            except NotImplementedError:
                term = site["fn"].log_prob(site["value"]) - q.log_prob(site["value"])
        term = scale_and_mask(term, site["scale"], site["mask"])
        if site["is_observed"]:
            log_likelihood = log_likelihood + term
        else:
            negative_kl = negative_kl + term
    return log_likelihood, negative_kl


def negative_elbo_sum(cvae, *args) -> torch.Tensor:
    """-ELBO summed over the batch (a scalar, nats) of `cvae.model`/`cvae.guide` on `args`
    (the models' shared signature: images, labels, hole): the training loss."""
    return -bounds(cvae, 1, *args).sum()


def negative_elbo_parts(cvae, *args) -> torch.Tensor:
    """`[2]`: the negative log-likelihood part and the KL part of the -ELBO (`elbo_parts`),
    each summed over the batch (nats), of `cvae.model`/`cvae.guide` on `args`; they add up
    to `negative_elbo_sum`. KL warm-up weighs the second."""
    log_likelihood, negative_kl = elbo_parts(cvae.model, cvae.guide, args)
    return -torch.stack([log_likelihood.sum(), negative_kl.sum()])


def bounds(cvae, particles: int, *args) -> torch.Tensor:
    """A lower bound on log p(x | ...) per image `[B]` (nats) of `cvae.model`/`cvae.guide`
    on `args` (images, labels, hole), differentiable: with one particle the ELBO
    (`elbo_parts`), with K > 1 the importance-weighted bound of Burda et al. 2016,
    log (1/K) sum_k p(x, z_k | y) / q(z_k | x, y), z_k drawn from the guide,
    reparameterized (equal to the ELBO in expectation at K = 1, tighter as K grows)."""
    if particles == 1:
        return sum(elbo_parts(cvae.model, cvae.guide, args))
    log_weights = weigh(cvae.model, cvae.guide, args, particles).log_weights
    return torch.logsumexp(log_weights, dim=0) - math.log(particles)


def label_bounds(cvae, particles: int, images, hole=None) -> torch.Tensor:
    """`bounds` of images `[B, D]` (and their hole `[B, H * W]` bool, or None) under each
    label of a label model: `[L, B]`, row y the bound on log p(x | y). One batch of L * B
    rows, so the labels share every network call."""
    count, n = cvae.num_labels, len(images)
    every = torch.arange(count, device=images.device).repeat_interleave(n)
    repeated_hole = None if hole is None else hole.repeat(count, 1)
    return bounds(cvae, particles, images.repeat(count, 1), every, repeated_hole).view(count, n)


@torch.no_grad()
def negative_elbo(cvae, images, labels=None, holes=None) -> float:
    """Mean -ELBO in nats per image over images `[N, ...]` (labels `[N]`, holes `[N, ...]`
    bool or None), in chunks of `CHUNK_ROWS` images."""
    total = 0.0
    for part in chunks(len(images)):
        y = None if labels is None else labels[part]
        hole = None if holes is None else holes[part]
        total += negative_elbo_sum(cvae, images[part], y, hole).item()
    return total / len(images)


def _log_density(trace, exclude: Sequence[str] = ()) -> torch.Tensor:
    """Sum of the log-densities of the sample sites in `trace`, batch-shaped."""
    trace.compute_log_prob()
    total = 0.0
    for _, site in _scored_sites(trace, exclude):
        total = total + site["log_prob"]
    return total


@dataclass
class Weighted:
    """Particles scored by `weigh`: `log_p` log p(observed, latents) `[K, B]` under the
    model, and the guide's trace, which holds the particles
    (`guide_trace.nodes[name]["value"]`) and their proposal distributions."""

    log_p: torch.Tensor
    guide_trace: object

    @property
    def log_q(self) -> torch.Tensor:
        """log q(latents) `[K, B]` under the guide."""
        return _log_density(self.guide_trace).expand_as(self.log_p)

    @property
    def log_weights(self) -> torch.Tensor:
        """log p - log q `[K, B]`: the importance log-weights."""
        return self.log_p - self.log_q


def weigh(
    model: Callable, guide: Callable, args: tuple, particles: int, exclude: Sequence[str] = ()
) -> Weighted:
    """Draw `particles` latents per image from `guide`, replay `model` on them, score them.

    `args` go to both. Sites named in `exclude` are left out of the model's side (e.g. a
    label that is conditioned on rather than scored).
    """
    guide_trace, model_trace = trace_pair(model, guide, args, particles)
    return Weighted(_log_density(model_trace, exclude).expand(particles, -1), guide_trace)


@torch.no_grad()
def log_likelihood(
    weights: Callable[[int, slice], torch.Tensor], n: int, particles: int
) -> torch.Tensor:
    """Importance-sampled log-likelihood per image, `[n]` in nats: logsumexp_k(w_k) - log K
    (a lower bound in expectation that tightens as K grows, Burda et al. 2016).

    `weights(k, rows)` returns the log-weights `[k, B]` of `k` particles for the images
    `rows` (a slice of length B). Images go in chunks of `CHUNK_ROWS // particles`; a
    chunk's particles are split when they alone exceed `CHUNK_ROWS`.
    """
    out = []
    for rows in chunks(n, particles):
        size = rows.stop - rows.start
        done, pieces = 0, []
        while done < particles:
            k = min(particles - done, max(1, CHUNK_ROWS // size))
            pieces.append(weights(k, rows))
            done += k
        out.append(torch.logsumexp(torch.cat(pieces), dim=0) - math.log(particles))
    return torch.cat(out)
