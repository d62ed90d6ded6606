"""Importance-sampled log-likelihoods, vectorised over particles.

For a model p(x, z | c) and a proposal q(z | ...) written as a Pyro guide, each particle
z_k ~ q gives a log-weight log p(x, z_k | c) - log q(z_k); the log-likelihood estimate is
logsumexp_k(w_k) - log K (a lower bound in expectation that tightens as K grows, Burda et
al. 2016). The K particles are one `pyro.plate("particles", K, dim=-2)` around model and
guide: networks that read only the conditioning run once per image, and only the decoder
runs on the `[K, B, z_dim]` particles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def site_log_probs(trace, exclude: Sequence[str] = ()) -> torch.Tensor:
    """Sum of the batch-shaped log-densities of the sample sites in `trace`."""
    trace.compute_log_prob()
    total = 0.0
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and name not in exclude:
            total = total + site["log_prob"]
    return total


def in_particles(fn: Callable, particles: int) -> Callable:
    """`fn` run inside a plate of `particles` copies at dim -2 (the data plate is dim -1)."""

    def vectorized(*args, **kwargs):
        with pyro.plate("particles", particles, dim=-2):
            return fn(*args, **kwargs)

    return vectorized


def log_weights(
    model, guide, args: tuple, particles: int, exclude: Sequence[str] = ()
) -> torch.Tensor:
    """log p(observed, latents) - log q(latents): `[particles, B]` for a batch of B images.

    `args` go to both `guide` and `model`; the model is replayed on the guide's latents.
    Sites named in `exclude` are left out of the model's side (e.g. a label that is
    conditioned on rather than scored).
    """
    guide_trace = poutine.trace(in_particles(guide, particles)).get_trace(*args)
    replayed = poutine.replay(in_particles(model, particles), trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(*args)
    weights = site_log_probs(model_trace, exclude) - site_log_probs(guide_trace)
    return weights.expand(particles, -1)


@torch.no_grad()
def log_likelihood(
    weigh: Callable[[int, slice], torch.Tensor], n: int, particles: int, chunk_rows: int = 65536
) -> torch.Tensor:
    """Importance-sampled log-likelihood per image, `[n]` in nats.

    `weigh(k, rows)` returns the log-weights `[k, B]` of `k` particles for the images
    `rows` (a slice of length B). Images go in chunks of about `chunk_rows // particles`;
    a chunk's particles are split when they alone exceed `chunk_rows`.
    """
    per_chunk = max(1, chunk_rows // particles)
    out = []
    for start in range(0, n, per_chunk):
        rows = slice(start, min(n, start + per_chunk))
        size = rows.stop - rows.start
        done, pieces = 0, []
        while done < particles:
            k = min(particles - done, max(1, chunk_rows // size))
            pieces.append(weigh(k, rows))
            done += k
        out.append(torch.logsumexp(torch.cat(pieces), dim=0) - math.log(particles))
    return torch.cat(out)
