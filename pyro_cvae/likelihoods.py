"""Pixel likelihoods p(x | decoder output): the distributions a decoder parameterises.

A decoder emits `params_per_pixel * 784` numbers per image; a likelihood turns them into a
distribution over `[N, 784]` grey levels in [0, 1] (batch shape `[N, 784]`; the model
adds `.to_event(1)`), and into the mean image shown to users.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 784
_EPS = 1e-4


class Likelihood(nn.Module):
    """Base class. `params_per_pixel`: the decoder's outputs per pixel."""

    params_per_pixel = 1

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The expected image `[N, 784]` in [0, 1]."""
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """Bernoulli with logits, scoring grey levels as soft targets (the classic MNIST CVAE)."""

    def distribution(self, params):
        return dist.Bernoulli(logits=params, validate_args=False)

    def mean(self, params):
        return torch.sigmoid(params)


class ContinuousBernoulliLikelihood(Likelihood):
    """The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019): a proper density on [0, 1]."""

    def distribution(self, params):
        return dist.ContinuousBernoulli(logits=params, validate_args=False)

    def mean(self, params):
        return dist.ContinuousBernoulli(logits=params, validate_args=False).mean


class BetaLikelihood(Likelihood):
    """Beta(a, b) per pixel; observations are clamped into (eps, 1 - eps)."""

    params_per_pixel = 2

    def _concentrations(self, params):
        a, b = params.unflatten(-1, (2, -1)).unbind(-2)
        return F.softplus(a) + _EPS, F.softplus(b) + _EPS

    def distribution(self, params):
        a, b = self._concentrations(params)
        return _ClampedBeta(a, b, validate_args=False)

    def mean(self, params):
        a, b = self._concentrations(params)
        return a / (a + b)


class _ClampedBeta(dist.Beta):
    def log_prob(self, value):
        return super().log_prob(value.clamp(_EPS, 1 - _EPS))


class GaussianLikelihood(Likelihood):
    """Normal(sigmoid(params), sigma) with one learned sigma per pixel (in grey levels)."""

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((PIXELS,), -2.0))

    def distribution(self, params):
        return dist.Normal(torch.sigmoid(params), self.log_scale.exp(), validate_args=False)

    def mean(self, params):
        return torch.sigmoid(params)


# The implementation of each name in `config.LIKELIHOODS` (the registry the run settings
# and the CLI read without importing torch).
IMPLEMENTATIONS = {
    "bernoulli": BernoulliLikelihood,
    "continuous-bernoulli": ContinuousBernoulliLikelihood,
    "beta": BetaLikelihood,
    "gaussian": GaussianLikelihood,
}


def make_likelihood(name: str) -> Likelihood:
    """A fresh likelihood module for one of `config.LIKELIHOODS`."""
    return IMPLEMENTATIONS[name]()
