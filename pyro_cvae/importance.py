"""Importance-sampled log-likelihoods, vectorised over particles.

For a model p(x, z | c) and a proposal q(z | ...) written as a Pyro guide, each particle
z_k ~ q gives a log-weight log p(x, z_k | c) - log q(z_k); the log-likelihood estimate is
logsumexp_k(w_k) - log K (a lower bound in expectation that tightens as K grows, Burda et
al. 2016). Particles are folded into the batch: a chunk of B images runs as one batch of
K * B rows, so every network call is one large matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def site_log_probs(trace, exclude: Sequence[str] = ()) -> torch.Tensor:
    """Sum of the batch-shaped log-densities of the sample sites in `trace` (`[rows]`)."""
    trace.compute_log_prob()
    total = 0.0
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and name not in exclude:
            total = total + site["log_prob"]
    return total


def log_weights(model, guide, args: tuple, exclude: Sequence[str] = ()) -> torch.Tensor:
    """log p(observed, latents) - log q(latents) per row `[rows]`, one particle each.

    `args` are passed to both `guide` and `model`; the model is replayed on the guide's
    latents. Sites named in `exclude` are left out of the model's side (e.g. a label
    that is conditioned on, not scored).
    """
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    return site_log_probs(model_trace, exclude) - site_log_probs(guide_trace)


def repeat_rows(tensor: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """`[B, ...]` -> `[k * B, ...]`: particle-major copies (row k * B + b is image b)."""
    if tensor is None:
        return None
    return tensor.repeat(k, *([1] * (tensor.dim() - 1)))


@torch.no_grad()
def log_likelihood(
    weigh: Callable[[int, slice], torch.Tensor], n: int, particles: int, chunk_rows: int = 65536
) -> torch.Tensor:
    """Importance-sampled log-likelihood per image, `[n]` in nats.

    `weigh(k, rows)` returns the log-weights `[k * B]` (particle-major) of `k` particles
    for the images `rows` (a slice of length B). Images are taken in chunks of about
    `chunk_rows // particles`; the particles of a chunk are split when they exceed it.
    """
    per_chunk = max(1, chunk_rows // particles)
    out = []
    for start in range(0, n, per_chunk):
        rows = slice(start, min(n, start + per_chunk))
        size = rows.stop - rows.start
        done, pieces = 0, []
        while done < particles:
            k = min(particles - done, max(1, chunk_rows // size))
            pieces.append(weigh(k, rows).view(k, size))
            done += k
        weights = torch.cat(pieces)
        out.append(torch.logsumexp(weights, dim=0) - math.log(particles))
    return torch.cat(out)
