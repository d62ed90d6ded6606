"""The 8-bit likelihoods: proper probabilities over the 256 levels, and samples that
follow them."""

from __future__ import annotations

import pytest
import torch

from pyro_cvae.likelihoods import LEVELS, make_likelihood

LEVEL_VALUES = torch.arange(LEVELS) / (LEVELS - 1)


def _params(name: str, pixels: int, seed: int) -> torch.Tensor:
    """Random decoder outputs for `pixels` colour pixels: `[3 * P * pixels]`."""
    per_value = make_likelihood(name).params_per_pixel
    generator = torch.Generator().manual_seed(seed)
    params = torch.randn(per_value, 3 * pixels, generator=generator)
    params[1] = params[1] - 3.0  # log-scales around e^-3 of the [0, 1] range
    return params.flatten()


@pytest.mark.parametrize("name", ["discretized-logistic", "discretized-logistic-rgb"])
def test_each_value_gets_a_probability_of_each_level_summing_to_one(name):
    likelihood = make_likelihood(name)
    distribution = likelihood.distribution(_params(name, pixels=4, seed=0))
    generator = torch.Generator().manual_seed(1)
    for channel in range(3):
        # every value at a random level, then one channel swept over all 256 levels
        values = LEVEL_VALUES[torch.randint(0, LEVELS, (12,), generator=generator)]
        sweep = values.repeat(LEVELS, 1)
        sweep[:, channel * 4 : (channel + 1) * 4] = LEVEL_VALUES[:, None]
        probabilities = distribution.log_prob(sweep).exp()[:, channel * 4 : (channel + 1) * 4]
        assert torch.allclose(probabilities.sum(0), torch.ones(4), atol=1e-3)


def test_rgb_samples_follow_the_dependence_between_channels():
    likelihood = make_likelihood("discretized-logistic-rgb")
    # one grey pixel, scale e^-3, green and blue following red closely (coefficients 0.9)
    params = torch.tensor([0.0, 0.0, 0.0, -3.0, -3.0, -3.0, 1.5, 1.5, 0.0])
    distribution = likelihood.distribution(params)
    samples = distribution.sample((4000,))  # [4000, 3]
    correlation = torch.corrcoef(samples.T)
    assert correlation[0, 1] > 0.6 and correlation[0, 2] > 0.6  # 0.67 in theory
    assert torch.allclose(samples.mean(0), likelihood.mean(params), atol=0.01)
    # samples score better under their own distribution than under independent channels
    independent = make_likelihood("discretized-logistic").distribution(params[:6])
    gain = distribution.log_prob(samples).sum(-1) - independent.log_prob(samples).sum(-1)
    assert gain.mean() > 0.5  # nats per pixel


def test_the_rgb_likelihood_is_refused_for_grey_runs():
    from pyro_cvae.config import RunConfig

    with pytest.raises(ValueError, match="colour images only"):
        RunConfig(likelihood="discretized-logistic-rgb")
    RunConfig(likelihood="discretized-logistic-rgb", image_shape=(3, 32, 32), arch="conv")
