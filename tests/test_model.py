"""Model/guide shapes, a finite ELBO, and training that lowers the test loss."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_cvae.config import RunConfig
from pyro_cvae.data import load_split
from pyro_cvae.masks import random_training_holes
from pyro_cvae.model import build_model
from pyro_cvae.scoring import negative_elbo_sum
from pyro_cvae.train import Trainer


@pytest.fixture(scope="module")
def batch():
    split = load_split("mnist", "test")
    return split.images[:64].reshape(64, -1), split.labels[:64]


@pytest.mark.parametrize("condition", ["label", "none"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli", "beta", "gaussian"])
def test_label_model_and_guide_shapes_and_finite_elbo(batch, condition, likelihood):
    x, y = batch
    model = build_model(
        RunConfig(condition=condition, z_dim=3, hidden=(32, 16), likelihood=likelihood)
    )
    labels = y if condition == "label" else None
    guide_trace = poutine.trace(model.guide).get_trace(x, labels)
    model_trace = poutine.trace(poutine.replay(model.model, guide_trace)).get_trace(x, labels)
    assert guide_trace.nodes["z"]["value"].shape == (64, 3)
    assert model_trace.nodes["x"]["fn"].event_shape == (784,)
    assert model_trace.nodes["x"]["fn"].batch_shape == (64,)
    loss = Trace_ELBO().loss(model.model, model.guide, x, labels)
    assert torch.isfinite(torch.tensor(loss))


def test_pixels_model_scores_only_the_hole(batch):
    x, y = batch
    model = build_model(RunConfig(condition="pixels", z_dim=4, hidden=(32, 16)))
    hole = random_training_holes(64, torch.Generator().manual_seed(0), size=(28, 28))
    trace = poutine.trace(model.model).get_trace(x, y, hole)
    site = trace.nodes["x"]
    per_pixel = (
        site["fn"].base_dist.base_dist.log_prob(x)
        if hasattr(site["fn"].base_dist, "base_dist")
        else None
    )
    log_prob = site["fn"].log_prob(x)
    assert log_prob.shape == (64,)
    if per_pixel is not None:
        torch.testing.assert_close(log_prob, (per_pixel * hole).sum(-1))
    changed = x.clone()
    changed[~hole] = 1.0 - changed[~hole]
    torch.testing.assert_close(site["fn"].log_prob(changed), log_prob)


@pytest.mark.parametrize("condition", ["label", "none", "pixels"])
def test_training_loss_is_the_pyro_elbo(batch, condition):
    """The loss the trainer optimises equals Trace_ELBO's up to Monte Carlo noise."""
    x, y = batch
    pyro.set_rng_seed(0)
    model = build_model(RunConfig(condition=condition, z_dim=2, hidden=(64, 32)))
    hole = model.training_holes(64, torch.Generator().manual_seed(1))
    args = (x, y if condition != "none" else None, hole)
    ours = torch.stack([negative_elbo_sum(model, *args).detach() for _ in range(200)])
    reference = torch.tensor(
        [Trace_ELBO().loss(model.model, model.guide, *args) for _ in range(200)]
    )
    gap = (ours.mean() - reference.mean()).abs()
    noise = (ours.var() / 200 + reference.var() / 200).sqrt()
    assert gap < 4 * noise + 1e-3 * reference.mean().abs()


def test_short_training_lowers_the_test_loss():
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    config = RunConfig(epochs=2, hidden=(128, 64))
    trainer = Trainer(
        config, train.images[:3000], train.labels[:3000], test.images[:1000], test.labels[:1000]
    )
    from pyro_cvae.train import test_loss

    before = test_loss(trainer.model, trainer.test_x, trainer.test_y)
    history = trainer.run()
    assert history[-1].test_loss < before - 100
    assert history[-1].test_loss < history[0].test_loss


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_colour_label_model_with_a_learned_prior_is_the_pyro_elbo(arch):
    """A colour label run (learned p(z | y), RGB logistic): the trainer's loss (analytic
    KL to the learned prior) equals Trace_ELBO's up to Monte Carlo noise."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3 * 16 * 16, generator=generator)
    y = torch.randint(0, 10, (32,), generator=generator)
    pyro.set_rng_seed(0)
    config = RunConfig(
        z_dim=4,
        hidden=(32,),
        arch=arch,
        conv_width=8,
        image_shape=(3, 16, 16),
        likelihood="discretized-logistic-rgb",
        prior="learned",
    )
    model = build_model(config)
    with torch.no_grad():  # a prior that is not N(0, I) and differs by label
        model.z_prior.loc.weight.normal_(0, 1, generator=generator)
        model.z_prior.log_scale.weight.normal_(0, 0.3, generator=generator)
    ours = torch.stack([negative_elbo_sum(model, x, y, None).detach() for _ in range(100)])
    reference = torch.tensor(
        [Trace_ELBO().loss(model.model, model.guide, x, y) for _ in range(100)]
    )
    gap = (ours.mean() - reference.mean()).abs()
    noise = (ours.var() / 100 + reference.var() / 100).sqrt()
    assert gap < 4 * noise + 1e-3 * reference.mean().abs()
    loc_0 = model.prior(torch.zeros(1, dtype=torch.long), 1).mean
    loc_1 = model.prior(torch.ones(1, dtype=torch.long), 1).mean
    assert not torch.equal(loc_0, loc_1)


def _kl_to_prior(model, x, y) -> torch.Tensor:
    """KL(q(z | x, y) || p(z | y)) per image `[N]`, nats, as the ELBO computes it."""
    q = pyro.distributions.Normal(*model.encode(x, y)).to_event(1)
    return torch.distributions.kl_divergence(q, model.prior(y, len(y)))


def test_the_learned_prior_refit_to_the_aggregate_posterior_is_the_best_gaussian(batch):
    """After an epoch the learned p(z | y) is refit in closed form: each label's mean is
    the mean of its images' posterior means, the KL of the images to it can only fall
    (no Gaussian fits them better), the ELBO with it is still Pyro's Trace_ELBO, and
    weights saved before the refit existed still load, unfitted."""
    x, y = batch
    config = RunConfig(z_dim=4, hidden=(64, 32), prior="learned", epochs=1, batch_size=32)
    trainer = Trainer(config, x.reshape(-1, 1, 28, 28), y, x.reshape(-1, 1, 28, 28), y)
    trainer.run()
    model = trainer.model.eval()
    assert model.z_prior.is_fitted
    with torch.no_grad():
        for label in y.unique():
            rows = y == label
            fitted = model.prior(y[rows][:1], 1).mean[0]
            torch.testing.assert_close(fitted, model.encode(x[rows], y[rows])[0].mean(0))
        after = _kl_to_prior(model, x, y).sum()
        model.train()  # the diagonal Gaussian it learned by gradient
        before = _kl_to_prior(model, x, y).sum()
        model.eval()
    assert after < before
    ours = torch.stack([negative_elbo_sum(model, x, y, None).detach() for _ in range(100)])
    reference = torch.tensor(
        [Trace_ELBO().loss(model.model, model.guide, x, y) for _ in range(100)]
    )
    noise = (ours.var() / 100 + reference.var() / 100).sqrt()
    assert (ours.mean() - reference.mean()).abs() < 4 * noise + 1e-3 * reference.mean().abs()
    old_weights = {
        name: value for name, value in model.state_dict().items() if "fitted" not in name
    }
    unfitted = build_model(config)
    unfitted.load_state_dict(old_weights)
    assert not unfitted.z_prior.is_fitted


def test_a_learned_prior_is_for_label_runs_only():
    with pytest.raises(ValueError, match="label runs"):
        RunConfig(condition="none", prior="learned")


@pytest.mark.parametrize("condition", ["label", "pixels"])
def test_networks_are_registered_with_pyro_except_where_the_caller_optimises_them(batch, condition):
    x, y = batch
    model = build_model(RunConfig(condition=condition, z_dim=3, hidden=(32, 16)))
    hole = model.training_holes(len(x), device="cpu")
    pyro.clear_param_store()
    with model.unregistered():
        unregistered = negative_elbo_sum(model, x, y, hole)
    assert not list(pyro.get_param_store().keys())
    pyro.set_rng_seed(0)
    registered = negative_elbo_sum(model, x, y, hole)
    names = {f"cvae$$${name}" for name, _ in model.named_parameters()}
    assert set(pyro.get_param_store().keys()) == names
    pyro.set_rng_seed(0)
    with model.unregistered(), model.unregistered():  # nested, as callers may
        torch.testing.assert_close(negative_elbo_sum(model, x, y, hole), registered)
    assert model.registers_params
    assert torch.isfinite(unregistered)
