"""Conditioning a label/none model on observed pixels: Bayes' rule by importance sampling.

The generative model p(y) p(z) p(x | z, y) of a `LabelCVAE` is conditioned on the pixels
outside the hole only (the model's likelihood is masked with `Distribution.mask`), and
the label, when not given, is enumerated over its values. For each image, label and
particle, z is drawn from a defensive proposal: an even mixture of the guide q(z | x, y)
applied to the image with its hole zeroed, and the prior N(0, I). With several rounds,
each later round adds a Gaussian fitted to the weighted particles so far, which matters
when a large hole leaves the guide a poor guess; every particle is then weighed against
the mixture of all rounds' proposals (adaptive multiple importance sampling). The
normalised weights give p(y | observed) (classification) and posterior samples of (y, z)
whose decoded hole pixels are completions.

Shapes: images `[N, C, H, W]` in [0, 1] of the model's shape; holes `[N, H, W]` bool
(None: whole images); labels int64 `[N]` or None. The particles are scored by `scoring.weigh`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from .errors import UsageError
from .model import CVAE
from .scoring import chunks, weigh

FIT_MIN_SCALE = 0.05
FIT_SPREAD = 2.0
# Half digits named with 100 particles x 5 rounds beat 1,000 particles x 1 round in 60%
# of the time (docs/inpainting.md); whole digits gain nothing from rounds.
ROUNDS_WITH_HOLES = 5


def default_rounds(holes: torch.Tensor | None) -> int:
    """The adaptive rounds `label_posterior` uses unless told: 1 for whole images,
    `ROUNDS_WITH_HOLES` when any pixel of `holes` is missing."""
    return ROUNDS_WITH_HOLES if holes is not None and bool(holes.any()) else 1


def proposal(model: CVAE, images, labels, hole=None, *, num_images=None, fitted=None):
    """A Pyro guide for z: 0.5 q(z | image with hole zeroed, y) + 0.5 p(z | y).

    `fitted` (loc, scale), each `[rows, z_dim]`: a Gaussian fitted to earlier rounds'
    weighted particles; it then takes half the mass, the guide and the prior a quarter each.
    """
    loc, scale = model.encode(images, labels, hole)
    prior = model.prior(labels, len(images))
    prior_loc, prior_scale = prior.mean, prior.stddev  # a full covariance's diagonal
    if fitted is None:
        locs, scales, mass = [loc, prior_loc], [scale, prior_scale], [0.5, 0.5]
    else:
        locs = [loc, prior_loc, fitted[0]]
        scales = [scale, prior_scale, fitted[1]]
        mass = [0.25, 0.25, 0.5]
    mixture = dist.MixtureSameFamily(
        dist.Categorical(probs=loc.new_tensor(mass).expand(len(images), -1)),
        dist.Normal(torch.stack(locs, dim=-2), torch.stack(scales, dim=-2)).to_event(1),
    )
    with pyro.plate("data", len(images)):
        return pyro.sample("z", mixture)


@dataclass
class Particles:
    """Weighted (y, z) particles for a batch of B images.

    log_weights `[Y, K, B]`: log p(y) + log p(x_obs, z | y) - log q(z), Y candidate labels
    (all labels when none was given, else the given one), K particles (all rounds'), q the
    proposals' mixture. z `[Y, K, B, z_dim]`.
    labels `[Y, B]`: the label each row of candidates stands for.
    """

    log_weights: torch.Tensor
    z: torch.Tensor
    labels: torch.Tensor | None


@torch.no_grad()
def weighted_particles(
    model: CVAE, images, holes, labels, particles: int, rounds: int = 1
) -> Particles:
    """Importance-sample (y, z) for B flat images `[B, D]` with holes `[B, H * W]`: Y * B
    rows, K particles each.

    The particles are a plate around proposal and model (`scoring.weigh`), so
    the encoder runs once per image and label, the decoder once per particle. With
    `rounds` > 1, each round after the first adds to the proposal a Gaussian fitted to
    the weighted particles so far (adaptive importance sampling), and the particles of
    all rounds are returned, K = rounds * particles.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
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
    pool = _Pool()
    pool.add(_importance_round(model, x, y, h, particles, fitted=None))
    for _ in range(rounds - 1):
        pool.add(_importance_round(model, x, y, h, particles, _fit_gaussian(*pool.weights())))
    log_w, z = pool.weights()
    count = len(z)
    return Particles(
        log_weights=log_w.view(count, y_count, b).transpose(0, 1) + log_prior,
        z=z.view(count, y_count, b, -1).transpose(0, 1),
        labels=candidates,
    )


@dataclass
class _Round:
    """One round's particles z `[K, rows, z_dim]`, log p(x_obs, z | y) `[K, rows]` as
    log_p, and its proposal (a distribution with batch shape `[K, rows]`: every round
    draws the same K)."""

    z: torch.Tensor
    log_p: torch.Tensor
    proposal: dist.Distribution


def _importance_round(model, x, y, h, particles: int, fitted) -> _Round:
    """Draw `particles` z per row from `proposal` (with `fitted`, if any) and score them
    under the model conditioned on the observed pixels of x `[rows, D]`."""
    guide = functools.partial(proposal, model, fitted=fitted)
    scored = weigh(model.model, guide, (x, y, h), particles)
    site = scored.guide_trace.nodes["z"]
    return _Round(site["value"], scored.log_p, site["fn"])


class _Pool:
    """The rounds so far, with every round's proposal scored at every round's particles
    (`log_q[i][j]`: proposal j at the particles of round i, `[K, rows]`), so that a new
    round costs one proposal evaluation per earlier round, not a recomputation of all."""

    def __init__(self) -> None:
        self.rounds: list[_Round] = []
        self.log_q: list[list[torch.Tensor]] = []

    def add(self, new: _Round) -> None:
        for old, scores in zip(self.rounds, self.log_q):
            scores.append(new.proposal.log_prob(old.z))
        self.rounds.append(new)
        self.log_q.append([each.proposal.log_prob(new.z) for each in self.rounds])

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-weights `[R * K, rows]` and particles `[R * K, rows, z_dim]` of all R
        rounds, each particle weighed against the even mixture of the R proposals (the
        deterministic mixture of Cornuet et al.'s adaptive multiple importance sampling,
        2012)."""
        count = len(self.rounds)
        log_ws = [
            each.log_p - torch.logsumexp(torch.stack(scores), 0) + math.log(count)
            for each, scores in zip(self.rounds, self.log_q)
        ]
        return torch.cat(log_ws), torch.cat([each.z for each in self.rounds])


def _fit_gaussian(log_w: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian (loc, scale), each `[rows, z_dim]`, fitted to particles z
    `[K, rows, z_dim]` with log-weights `[K, rows]`.

    The weights are clipped first, the largest sqrt(K) of them to the smallest of those
    (Koblents & Miguez's nonlinear population Monte Carlo, 2015), so that a round whose
    weight sits on one particle still fits a spread, not a point. The spread is the
    weighted standard deviation widened FIT_SPREAD times and kept at least FIT_MIN_SCALE.
    """
    top = min(len(z), max(2, math.isqrt(len(z))))
    floor = log_w.topk(top, dim=0).values[-1]
    w = torch.softmax(torch.minimum(log_w, floor), dim=0)[..., None]
    loc = (w * z).sum(0)
    var = (w * (z - loc) ** 2).sum(0)
    return loc, (FIT_SPREAD * var.sqrt()).clamp_min(FIT_MIN_SCALE)


def _on_device(model: CVAE, images, holes, labels):
    """images `[N, C, H, W]`, holes `[N, H, W]` (None: none), labels `[N]` or None -> flat
    images `[N, D]`, holes `[N, H * W]` and the labels, on the model's device."""
    x = model.flat_images(images)
    if holes is None:
        holes = torch.zeros(len(images), *images.shape[2:], dtype=torch.bool)
    return x, model.flat_holes(holes), None if labels is None else labels.to(model.device)


@torch.no_grad()
def label_posterior(
    model: CVAE,
    images: torch.Tensor,
    holes: torch.Tensor | None = None,
    *,
    particles: int = 100,
    rounds: int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """p(y | observed pixels) `[N, num_labels]` by Bayes' rule: p(y) p(x_obs | y), each
    marginal likelihood importance-sampled with `rounds` adaptive rounds of `particles`
    particles (see `weighted_particles`). `holes` None: whole images. `rounds` None:
    `default_rounds(holes)`, 1 for whole images and 5 when pixels are missing, where
    several pay. This is `pyro-cvae classify`."""
    if not (model.generative and model.num_labels):
        raise UsageError("classify needs a run trained with --condition label")
    rounds = default_rounds(holes) if rounds is None else rounds
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, h, _ = _on_device(model, images, holes, None)
    out = []
    for part in chunks(len(x), model.num_labels * particles):
        found = weighted_particles(model, x[part], h[part], None, particles, rounds)
        log_evidence = torch.logsumexp(found.log_weights, dim=1) - math.log(found.z.shape[1])
        out.append(torch.softmax(log_evidence, dim=0).T)
    return torch.cat(out).cpu()


@torch.no_grad()
def inpaint_posterior(
    model: CVAE,
    images: torch.Tensor,
    holes: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    samples: int = 1,
    particles: int = 200,
    rounds: int = 5,
    seed: int | None = None,
) -> torch.Tensor:
    """K completions `[N, K, C, H, W]` from the posterior p(y, z | observed pixels).

    (y, z) are resampled from the weighted particles of `rounds` adaptive rounds of
    `particles` each (see `weighted_particles`); the hole is the mean of p(x | z, y).
    Observed pixels are copied from the input.
    """
    from .inpaint import merge

    if not model.generative:
        raise UsageError(
            "posterior inpainting needs a run trained with --condition label or none; "
            "this run fills holes (--condition pixels): use --method amortized"
        )
    model.check_labels(labels is not None)
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, h, y_given = _on_device(model, images, holes, labels)
    y_count = model.num_labels if (model.num_labels and labels is None) else 1
    filled = []
    for part in chunks(len(x), y_count * particles):
        given = None if y_given is None else y_given[part]
        found = weighted_particles(model, x[part], h[part], given, particles, rounds)
        b = part.stop - part.start
        weights = found.log_weights.reshape(-1, b).T  # [B, Y * K]
        picks = torch.multinomial(torch.softmax(weights, dim=-1), samples, replacement=True)
        z_all = found.z.reshape(-1, b, model.z_dim)  # [Y * K, B, z_dim]
        columns = torch.arange(b, device=x.device)[:, None].expand(-1, samples)
        z = z_all[picks, columns].reshape(b * samples, -1)
        y = None
        if found.labels is not None:
            y_rows = found.labels.repeat_interleave(found.z.shape[1], dim=0)  # [Y * K, B]
            y = y_rows[picks, columns].reshape(-1)
        means = model.likelihood.mean(model.decode(z, y))
        filled.append(means.view(b, samples, *images.shape[1:]))
    return merge(images.cpu(), holes.cpu(), torch.cat(filled).cpu())
