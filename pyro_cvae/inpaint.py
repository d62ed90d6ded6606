"""Hole filling: `fill_holes` picks the method that suits the model; the amortized method.

Two methods fill a hole. "amortized": a model trained with `--condition pixels` draws
y ~ p(y | observed) from its classifier (unless the label is given), z from its prior
net, and decodes the hole (here). "posterior": a label/none model's generative story is
conditioned on the observed pixels by importance sampling (`posterior.inpaint_posterior`).

Images are float32 `[N, C, H, W]` in [0, 1] of the model's shape; holes bool `[N, H, W]`
(True = fill, all channels); labels int64 `[N]` or None. Completions are
`[N, K, C, H, W]`: observed pixels copied from the input exactly, hole pixels the mean of
p(x | z, y) for a sampled z (and y).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from .config import RunConfig
from .errors import UsageError
from .model import CVAE, TemperedLatent
from .scoring import chunks

METHODS = ("amortized", "posterior")


def merge(images: torch.Tensor, holes: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Observed pixels from `images` `[N, C, H, W]`, hole pixels (`holes` `[N, H, W]`) from
    `filled` `[N, K, C, H, W]`: `[N, K, C, H, W]`."""
    return torch.where(holes[:, None, None], filled, images[:, None])


@torch.no_grad()
def inpaint_amortized(
    model: CVAE,
    images: torch.Tensor,
    holes: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    samples: int = 1,
    seed: int | None = None,
    temperature: float = 1.0,
    guidance: float = 0.0,
    label_temperature: float = 1.0,
) -> torch.Tensor:
    """K completions per image `[N, K, C, H, W]` from a hole-filling model's own
    conditional p(y, z | observed).

    A missing label is drawn from the model's classifier p(y | observed) (its logits
    divided by `label_temperature`, 0: the most probable label), then
    z ~ p(z | observed, y) from the prior net: its mean moved away from that of
    p(z | observed) by `guidance` w >= 0 (labels given only;
    `InpaintingCVAE.latent_prior`), its standard deviations multiplied by `temperature`
    (`model.TemperedLatent`). The hole is the decoder's mean.
    """
    if model.fill_method != "amortized":
        raise UsageError(
            "--method amortized needs a run trained with --condition pixels; use --method posterior"
        )
    if not math.isfinite(guidance) or guidance < 0:
        raise UsageError(f"the guidance must be a number of at least 0, got {guidance}")
    if guidance and labels is None:
        raise UsageError("--guidance needs the label the fill should follow (--label or --labels)")
    if label_temperature != 1.0 and labels is not None:
        raise UsageError(
            "--label-temperature is for fills with no label; leave out --label and --labels"
        )
    tempered = TemperedLatent(temperature, label_temperature)
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, hole = model.flat_images(images), model.flat_holes(holes)
    y = None if labels is None else labels.to(model.device)
    rows_x, rows_hole = x.repeat(samples, 1), hole.repeat(samples, 1)
    rows_y = None if y is None else y.repeat(samples)
    means = []
    for part in chunks(len(rows_x)):
        with poutine.block(), tempered:
            params = model.model(
                rows_x[part],
                None if rows_y is None else rows_y[part],
                rows_hole[part],
                guidance=guidance,
            )
        means.append(model.likelihood.mean(params))
    filled = torch.cat(means).view(samples, *images.shape).transpose(0, 1).cpu()
    return merge(images.cpu(), holes.cpu(), filled)


def fill_temperature(
    model: CVAE, config: RunConfig, method: str | None = None, given: float | None = None
) -> float:
    """The temperature a run's fills are drawn at by `method` (None: the model's own):
    `given` (a `--temperature`), else the run's `sample_temperature` for the amortized
    method and 1 for the posterior one, which draws from the posterior itself."""
    if given is not None:
        return given
    return config.sample_temperature if (method or model.fill_method) == "amortized" else 1.0


def fill_holes(
    model: CVAE,
    images: torch.Tensor,
    holes: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    method: str | None = None,
    samples: int = 1,
    particles: int = 200,
    rounds: int = 5,
    seed: int | None = None,
    temperature: float = 1.0,
    guidance: float = 0.0,
    label_temperature: float = 1.0,
) -> torch.Tensor:
    """K completions `[N, K, C, H, W]` of images `[N, C, H, W]` with holes `[N, H, W]`, the
    label of each `[N]` or None: what `pyro-cvae inpaint` runs.

    `method` None is the model's own (`model.fill_method`: amortized for pixels runs,
    posterior otherwise); `particles` and `rounds` are the posterior method's,
    `temperature`, `guidance` and `label_temperature` the amortized one's (the posterior
    method draws from the posterior).
    """
    method = method or model.fill_method
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    model.check_labels(labels is not None)
    if labels is not None and len(labels) != len(images):
        raise UsageError(f"{len(labels)} labels but {len(images)} images to fill")
    if method == "amortized":
        return inpaint_amortized(
            model,
            images,
            holes,
            labels,
            samples=samples,
            seed=seed,
            temperature=temperature,
            guidance=guidance,
            label_temperature=label_temperature,
        )
    if temperature != 1.0 or guidance or label_temperature != 1.0:
        raise UsageError(
            "--temperature, --guidance and --label-temperature go with --method amortized "
            "(a pixels run)"
        )
    from .posterior import inpaint_posterior

    return inpaint_posterior(
        model, images, holes, labels, samples=samples, particles=particles, rounds=rounds, seed=seed
    )
