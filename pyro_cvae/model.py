"""The CVAEs as Pyro model/guide pairs: the only place with `pyro.sample` for training.

Shapes: images `[N, 784]` float in [0, 1]; labels `[N]` int64 in 0..9; hole `[N, 784]`
bool, True where a pixel is missing. Losses are in nats per image.

`LabelCVAE` (Sohn et al. 2015 / Doersch 2016, conditioned on the label, or a plain VAE
with `num_labels=0`):

    z ~ N(0, I),   x ~ p(x | decoder(z, y)),   guide q(z | x, y) = N(encoder(x, y))

`InpaintingCVAE` (Sohn et al.'s structured-output CVAE, conditioned on observed pixels):

    y ~ Cat(classifier(obs, hole))           observed when the label is known
    z ~ N(prior_net(obs, hole, y))
    x[hole] ~ p(x | generation_net(z, obs, hole, y)),  only hole pixels scored
    guide q(z | x, hole, y) = N(recognition_net(x, hole, y))

The networks are plain `nn.Module`s passed in, so research code can swap them without
touching the Pyro code (see `build_model` for the defaults and docs/extending.md).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from .config import RunConfig
from .likelihoods import Likelihood, make_likelihood
from .nets import Classifier, Decoder, GaussianEncoder


def _one_hot(labels: torch.Tensor | None, num_labels: int, n: int, like: torch.Tensor):
    """`[n, num_labels]` float one-hot codes (`[n, 0]` when the model has no labels)."""
    if num_labels == 0:
        return like.new_zeros(n, 0)
    return F.one_hot(labels, num_labels).to(like.dtype)


class LabelCVAE(nn.Module):
    """The label-conditioned CVAE (`num_labels=0`: the plain VAE).

    encoder(pixels `[N, 784]`, cond `[N, num_labels]`) -> (loc, scale) `[N, z_dim]`;
    decoder(z `[N, z_dim]`, cond) -> likelihood parameters `[N, channels * 784]`.
    `label_prior` `[num_labels]`: p(y), the training set's label frequencies, used when a
    label is not given.
    """

    def __init__(
        self,
        *,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        z_dim: int,
        num_labels: int,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.z_dim, self.num_labels = z_dim, num_labels
        self.register_buffer(
            "label_prior", torch.full((max(num_labels, 1),), 1.0 / max(num_labels, 1))
        )

    def _cond(self, labels, n, like):
        return _one_hot(labels, self.num_labels, n, like)

    def model(
        self,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hole: torch.Tensor | None = None,
        *,
        num_images: int | None = None,
    ) -> torch.Tensor:
        """p(x, z | y). `images` `[N, 784]` observed (None: sampled, with `num_images`);
        `hole` `[N, 784]` bool: those pixels are left out of the likelihood. A missing label
        is sampled from `label_prior` as the site "label". Returns the parameters `[N, C*784]`."""
        pyro.module("cvae", self)
        n = len(images) if images is not None else num_images
        zeros = self.label_prior.new_zeros(n, self.z_dim)
        with pyro.plate("data", n):
            if labels is None and self.num_labels:
                labels = pyro.sample("label", dist.Categorical(self.label_prior))
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            params = self.decoder(z, self._cond(labels, n, z))
            pixels = self.likelihood.distribution(params)
            if hole is not None:
                pixels = pixels.mask(~hole)
            pyro.sample("x", pixels.to_event(1), obs=images)
        return params

    def guide(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        hole: torch.Tensor | None = None,
        *,
        num_images: int | None = None,
    ) -> torch.Tensor:
        """q(z | x, y) for whole images `[N, 784]`; the label is required for label models."""
        pyro.module("cvae", self)
        if self.num_labels and labels is None:
            raise ValueError("the guide of a label model needs the labels")
        with pyro.plate("data", len(images)):
            loc, scale = self.encoder(images, self._cond(labels, len(images), images))
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class InpaintingCVAE(nn.Module):
    """The structured-output CVAE that fills holes.

    prior_net / recognition_net: (pixels `[N, 2 * 784]`, one-hot label `[N, 10]`) ->
    (loc, scale); generation_net: (z, `[N, 2 * 784 + 10]`) -> parameters `[N, C * 784]`;
    classifier: `[N, 2 * 784]` -> label logits. The pixel channels are the observed image
    (hole set to 0) and the hole mask for the prior, generation and classifier nets, and
    the whole image and the hole mask for the recognition net.
    """

    def __init__(
        self,
        *,
        prior_net: nn.Module,
        recognition_net: nn.Module,
        generation_net: nn.Module,
        classifier: nn.Module,
        likelihood: Likelihood,
        z_dim: int,
        num_labels: int,
    ) -> None:
        super().__init__()
        self.prior_net, self.recognition_net = prior_net, recognition_net
        self.generation_net, self.classifier = generation_net, classifier
        self.likelihood = likelihood
        self.z_dim, self.num_labels = z_dim, num_labels

    @staticmethod
    def observed_channels(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """`[N, 2 * 784]`: the image with its hole zeroed, then the hole mask."""
        return torch.cat([images.masked_fill(hole, 0.0), hole.to(images.dtype)], dim=-1)

    def model(
        self,
        images: torch.Tensor,
        hole: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """p(y, z, x[hole] | x[observed]). `images` `[N, 784]`: only pixels outside `hole`
        are read. `targets` `[N, 784]`: the true images scored on the hole (None while
        filling). A missing label is sampled from the classifier. Returns parameters."""
        pyro.module("cvae", self)
        observed = self.observed_channels(images, hole)
        with pyro.plate("data", len(images)):
            labels = pyro.sample(
                "label", dist.Categorical(logits=self.classifier(observed)), obs=labels
            )
            cond = F.one_hot(labels, self.num_labels).to(images.dtype)
            loc, scale = self.prior_net(observed, cond)
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            params = self.generation_net(z, torch.cat([observed, cond], dim=-1))
            pixels = self.likelihood.distribution(params).mask(hole)
            pyro.sample("x", pixels.to_event(1), obs=targets)
        return params

    def guide(
        self,
        images: torch.Tensor,
        hole: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q(z | whole image, hole, y); needs the label and the whole image (`targets`)."""
        pyro.module("cvae", self)
        if labels is None or targets is None:
            raise ValueError("the guide needs the labels and the whole images (targets)")
        with pyro.plate("data", len(images)):
            pixels = torch.cat([targets, hole.to(targets.dtype)], dim=-1)
            cond = F.one_hot(labels, self.num_labels).to(targets.dtype)
            loc, scale = self.recognition_net(pixels, cond)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def build_model(config: RunConfig) -> LabelCVAE | InpaintingCVAE:
    """The default networks for a run: the classic MNIST CVAE MLPs (or conv, `arch="conv"`)."""
    likelihood = make_likelihood(config.likelihood)
    hidden, arch, z_dim = config.hidden, config.arch, config.z_dim
    if config.condition == "pixels":
        labels = config.num_labels
        return InpaintingCVAE(
            prior_net=GaussianEncoder(
                channels=2, cond_dim=labels, z_dim=z_dim, hidden=hidden, arch=arch
            ),
            recognition_net=GaussianEncoder(
                channels=2, cond_dim=labels, z_dim=z_dim, hidden=hidden, arch=arch
            ),
            generation_net=Decoder(
                z_dim=z_dim,
                cond_dim=2 * config.num_pixels + labels,
                hidden=hidden,
                out_channels=likelihood.channels,
                arch=arch,
            ),
            classifier=Classifier(
                channels=2, num_labels=labels, hidden=hidden, arch=arch, dropout=0.3
            ),
            likelihood=likelihood,
            z_dim=z_dim,
            num_labels=labels,
        )
    labels = config.num_labels if config.condition == "label" else 0
    return LabelCVAE(
        encoder=GaussianEncoder(channels=1, cond_dim=labels, z_dim=z_dim, hidden=hidden, arch=arch),
        decoder=Decoder(
            z_dim=z_dim, cond_dim=labels, hidden=hidden, out_channels=likelihood.channels, arch=arch
        ),
        likelihood=likelihood,
        z_dim=z_dim,
        num_labels=labels,
    )
