"""Pixel likelihoods p(x | decoder output): the distributions a decoder parameterises.

A decoder emits `params_per_pixel * D` numbers per image, D = channels * height * width
values (sub-pixels); a likelihood turns them into a distribution over the `[N, D]` values
in [0, 1] (batch shape `[N, D]`; the model adds `.to_event(1)`), and into the mean image
shown to users. `discrete` likelihoods give probabilities of the 256 levels of 8-bit
images, so their negative log-likelihoods convert to bits per dimension.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

_EPS = 1e-4
LEVELS = 256  # of an 8-bit sub-pixel
MIN_LOG_SCALE = -7.0


class Likelihood(nn.Module):
    """Base class. `params_per_pixel`: the decoder's outputs per value; `discrete`:
    whether `log_prob` is a probability of 8-bit levels (not a density)."""

    params_per_pixel = 1
    discrete = False

    def distribution(self, params: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The expected image `[N, D]` in [0, 1]."""
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
    """Normal(sigmoid(params), sigma) with one learned sigma per value (in grey levels)."""

    def __init__(self, num_values: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((num_values,), -2.0))

    def distribution(self, params):
        return dist.Normal(torch.sigmoid(params), self.log_scale.exp(), validate_args=False)

    def mean(self, params):
        return torch.sigmoid(params)


class DiscretizedLogistic(dist.TorchDistribution):
    """A logistic distribution of mean `loc` and scale exp(`log_scale`) (same shape), binned
    to the 256 levels k/255 of an 8-bit value in [0, 1], the end bins open (PixelCNN++,
    Salimans et al. 2017): `log_prob` is the log-probability of a value's level."""

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.unit_interval

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, validate_args=None) -> None:
        self.loc, self.log_scale = loc, log_scale
        super().__init__(loc.shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return DiscretizedLogistic(self.loc.expand(shape), self.log_scale.expand(shape))

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.clamp(0.0, 1.0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        half_bin = 0.5 / (LEVELS - 1)
        inverse_scale = torch.exp(-self.log_scale)
        centred = value - self.loc
        upper, lower = inverse_scale * (centred + half_bin), inverse_scale * (centred - half_bin)
        log_cdf_upper = F.logsigmoid(upper)  # the lowest level's bin: (-inf, upper]
        log_survival_lower = F.logsigmoid(-lower)  # the highest level's: [lower, inf)
        mass = torch.sigmoid(upper) - torch.sigmoid(lower)
        middle = inverse_scale * centred  # where the bin is too narrow for a stable difference
        log_density = middle - self.log_scale - 2.0 * F.softplus(middle)
        inner = torch.where(
            mass > 1e-5,
            torch.log(mass.clamp_min(1e-12)),
            log_density + math.log(2 * half_bin),
        )
        return torch.where(
            value < half_bin,
            log_cdf_upper,
            torch.where(value > 1.0 - half_bin, log_survival_lower, inner),
        )

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            u = torch.rand(shape, device=self.loc.device).clamp(1e-5, 1.0 - 1e-5)
            x = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
            return torch.round(x.clamp(0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)


class DiscretizedLogisticLikelihood(Likelihood):
    """The discretized logistic per sub-pixel for 8-bit images: mean sigmoid(a), log-scale
    b (at least -7), from two decoder outputs per value."""

    params_per_pixel = 2
    discrete = True

    def _loc_and_log_scale(self, params):
        a, b = params.unflatten(-1, (2, -1)).unbind(-2)
        return torch.sigmoid(a), b.clamp_min(MIN_LOG_SCALE)

    def distribution(self, params):
        return DiscretizedLogistic(*self._loc_and_log_scale(params))

    def mean(self, params):
        return self._loc_and_log_scale(params)[0]


class DiscretizedLogisticRGB(DiscretizedLogistic):
    """The discretized logistic of each sub-pixel of a colour image whose green and blue
    means move with the earlier channels' values (PixelCNN++'s linear dependence between
    the channels of a pixel): for values `[..., 3 * H * W]` (channel-major) with base
    means m, coefficients a, b, c in (-1, 1) (one of each per pixel),

        red ~ L(m_r),  green ~ L(m_g + a (red - m_r)),
        blue ~ L(m_b + b (red - m_r) + c (green - m_g)),

    so the log-probability of an image is the sum over its values, each scored given the
    pixel's earlier channels. The mean of each channel stays m (up to the end bins).
    `loc` (m), `log_scale` and `coeffs` (a, b, c as the three planes) are each
    `[..., 3 * H * W]`."""

    arg_constraints = {**DiscretizedLogistic.arg_constraints, "coeffs": constraints.real}

    def __init__(self, loc, log_scale, coeffs, validate_args=None) -> None:
        self.coeffs = coeffs
        super().__init__(loc, log_scale)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return DiscretizedLogisticRGB(
            self.loc.expand(shape), self.log_scale.expand(shape), self.coeffs.expand(shape)
        )

    def _shifted_loc(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of each value given its pixel's earlier channels' `value`s."""
        red_loc, green_loc, blue_loc = self.loc.unflatten(-1, (3, -1)).unbind(-2)
        a, b, c = self.coeffs.unflatten(-1, (3, -1)).unbind(-2)
        red, green, _ = value.unflatten(-1, (3, -1)).unbind(-2)
        red_residual, green_residual = red - red_loc, green - green_loc
        return torch.cat(
            [
                red_loc.expand_as(red_residual),
                green_loc + a * red_residual,
                blue_loc + b * red_residual + c * green_residual,
            ],
            dim=-1,
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        loc = self._shifted_loc(value)
        return DiscretizedLogistic(loc, self.log_scale.expand_as(loc)).log_prob(value)

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Channel by channel, each given the values drawn before it."""
        shape = self._extended_shape(torch.Size(sample_shape))
        value = torch.zeros(shape, device=self.loc.device)
        planes = value.shape[-1] // 3
        for channel in range(3):
            drawn = DiscretizedLogistic(self._shifted_loc(value), self.log_scale.expand(shape))
            fresh = drawn.sample()
            part = slice(channel * planes, (channel + 1) * planes)
            value[..., part] = fresh[..., part]
        return value


class DiscretizedLogisticRGBLikelihood(Likelihood):
    """`DiscretizedLogisticRGB` for colour images: base mean sigmoid(a), log-scale b (at
    least -7) and a dependence coefficient tanh(c), from three decoder outputs per value."""

    params_per_pixel = 3
    discrete = True

    def _parts(self, params):
        a, b, c = params.unflatten(-1, (3, -1)).unbind(-2)
        return torch.sigmoid(a), b.clamp_min(MIN_LOG_SCALE), torch.tanh(c)

    def distribution(self, params):
        return DiscretizedLogisticRGB(*self._parts(params))

    def mean(self, params):
        return self._parts(params)[0]


# The implementation of each name in `config.LIKELIHOODS` (the registry the run settings
# and the CLI read without importing torch).
IMPLEMENTATIONS = {
    "bernoulli": BernoulliLikelihood,
    "continuous-bernoulli": ContinuousBernoulliLikelihood,
    "beta": BetaLikelihood,
    "gaussian": GaussianLikelihood,
    "discretized-logistic": DiscretizedLogisticLikelihood,
    "discretized-logistic-rgb": DiscretizedLogisticRGBLikelihood,
}


def make_likelihood(name: str, num_values: int | None = None) -> Likelihood:
    """A fresh likelihood module for one of `config.LIKELIHOODS`, for images of
    `num_values` values (channels * height * width; needed by "gaussian", whose scales
    are learned per value)."""
    if name == "gaussian":
        if num_values is None:
            raise ValueError("the gaussian likelihood needs num_values (C * H * W)")
        return GaussianLikelihood(num_values)
    return IMPLEMENTATIONS[name]()
