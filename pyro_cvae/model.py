"""The CVAEs as Pyro model/guide pairs: the only place with `pyro.sample` for training.

Every model here is a `CVAE` and shares one call signature, for `model` and `guide` alike:

    model(images=None, labels=None, hole=None, *, num_images=None)
    guide(images, labels=None, hole=None, *, num_images=None)

Shapes: images `[N, 784]` float in [0, 1]; labels `[N]` int64 in 0..num_labels-1 (None:
not given); hole `[N, 784]` bool, True where a pixel is missing. Losses are in nats per
image. What a model can do is answered by the model itself (`CVAE.generative`,
`CVAE.fill_method`, `CVAE.training_holes`, ...), so no caller needs to know its class.

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
from .errors import UsageError
from .likelihoods import Likelihood, make_likelihood
from .masks import random_training_holes
from .nets import Classifier, Decoder, GaussianEncoder


class CVAE(nn.Module):
    """The interface every model shares (see the module's docstring for the signature).

    Attributes: `z_dim`, `num_labels` (0: no labels), `likelihood`. Class attributes
    answer what a model supports:

    - `generative`: it draws whole images from its prior p(z) and can be conditioned on
      observed pixels by Bayes' rule (sampling, latent maps, `classify`, posterior
      inpainting);
    - `fill_method`: the hole-filling method that suits it, "posterior" (condition the
      generative model) or "amortized" (a network trained to fill holes).
    """

    generative = True
    fill_method = "posterior"
    z_dim: int
    num_labels: int
    likelihood: Likelihood

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.parameters()).device

    def one_hot(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """`[n, num_labels]` one-hot codes of `labels` `[n]` (`[n, 0]` without labels)."""
        if not self.num_labels:
            return torch.zeros(n, 0, device=self.device)
        return F.one_hot(labels, self.num_labels).float()

    def training_holes(
        self, n: int, generator: torch.Generator | None = None, device="cpu"
    ) -> torch.Tensor | None:
        """The holes `[n, 784]` bool to train on, one per image, or None for whole images."""
        return None

    def fit_label_prior(self, labels: torch.Tensor) -> None:
        """Learn p(y) from the training labels `[N]` where the model keeps one."""

    def check_labels(self, given: bool) -> None:
        """A `UsageError` when labels are given to a model without them."""
        if given and not self.num_labels:
            raise UsageError("this run was trained with --condition none: leave out the labels")


class LabelCVAE(CVAE):
    """The label-conditioned CVAE (`num_labels=0`: the plain VAE).

    encoder(pixels `[N, 784]`, cond `[N, num_labels]`) -> (loc, scale) `[N, z_dim]`;
    decoder(z `[..., N, z_dim]`, cond) -> likelihood parameters `[..., N, P * 784]`, P the
    likelihood's parameters per pixel. `label_prior` `[num_labels]`: p(y), the training
    set's label frequencies, used when a label is not given.
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

    def fit_label_prior(self, labels: torch.Tensor) -> None:
        """p(y) := the label frequencies of `labels` `[N]`."""
        if self.num_labels:
            counts = torch.bincount(labels, minlength=self.num_labels).float()
            self.label_prior.copy_(counts / counts.sum())

    def encode(self, images, labels=None, hole=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale) `[N, z_dim]` of q(z | x, y) for images `[N, 784]`, their hole
        pixels (`hole` `[N, 784]` bool, if any) set to 0."""
        seen = images if hole is None else images.masked_fill(hole, 0.0)
        return self.encoder(seen, self.one_hot(labels, len(images)))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters `[..., N, P * 784]` for z `[..., N, z_dim]` (leading
        particle dimensions share the labels `[N]`)."""
        return self.decoder(z, self.one_hot(labels, z.shape[-2]))

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
        is sampled from `label_prior` as the site "label". Returns the parameters."""
        pyro.module("cvae", self)
        n = len(images) if images is not None else num_images
        zeros = self.label_prior.new_zeros(n, self.z_dim)
        with pyro.plate("data", n):
            if labels is None and self.num_labels:
                labels = pyro.sample("label", dist.Categorical(self.label_prior))
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            params = self.decoder(z, self.one_hot(labels, n))
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
        """q(z | x, y) for images `[N, 784]` (the hole's pixels, if any, set to 0); the
        label is required for label models."""
        pyro.module("cvae", self)
        if self.num_labels and labels is None:
            raise ValueError("the guide of a label model needs the labels")
        with pyro.plate("data", len(images)):
            loc, scale = self.encode(images, labels, hole)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class InpaintingCVAE(CVAE):
    """The structured-output CVAE that fills holes.

    prior_net / recognition_net: (pixels `[N, 2 * 784]`, one-hot label `[N, 10]`) ->
    (loc, scale); generation_net: (z, `[N, 2 * 784 + 10]`) -> parameters `[N, P * 784]`;
    classifier: `[N, 2 * 784]` -> label logits. The pixel planes are the observed image
    (hole set to 0) and the hole mask for the prior, generation and classifier nets, and
    the whole image and the hole mask for the recognition net.
    """

    generative = False
    fill_method = "amortized"

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

    def training_holes(self, n, generator=None, device="cpu"):
        """A fresh hole per image from the training mixture (`masks.random_training_holes`)."""
        return random_training_holes(n, generator, device)

    @staticmethod
    def observed_channels(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """`[N, 2 * 784]`: the image with its hole zeroed, then the hole mask."""
        return torch.cat([images.masked_fill(hole, 0.0), hole.to(images.dtype)], dim=-1)

    def model(
        self,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hole: torch.Tensor | None = None,
        *,
        num_images: int | None = None,
    ) -> torch.Tensor:
        """p(y, z, x[hole] | x[observed]). `images` `[N, 784]`: the pixels outside `hole`
        condition, those inside are the observations scored (to fill the hole instead,
        run the model under `poutine.uncondition`, or read the parameters it returns). A
        missing label is sampled from the classifier. Returns the parameters."""
        pyro.module("cvae", self)
        if images is None or hole is None:
            raise ValueError("the hole-filling model needs the images and their holes")
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
        """q(z | whole image, hole, y); needs the whole images, the labels and the holes."""
        pyro.module("cvae", self)
        if labels is None or hole is None:
            raise ValueError("the guide needs the whole images, the labels and the holes")
        with pyro.plate("data", len(images)):
            pixels = torch.cat([images, hole.to(images.dtype)], dim=-1)
            cond = F.one_hot(labels, self.num_labels).to(images.dtype)
            loc, scale = self.recognition_net(pixels, cond)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def build_model(config: RunConfig) -> CVAE:
    """The default networks for a run: the classic MNIST CVAE MLPs (or conv, `arch="conv"`)."""
    likelihood = make_likelihood(config.likelihood)
    hidden, arch, z_dim = config.hidden, config.arch, config.z_dim
    if config.condition == "pixels":
        labels = config.num_labels

        def observed_encoder():  # the observed (or whole) image and the hole mask
            return GaussianEncoder(
                in_channels=2, cond_dim=labels, z_dim=z_dim, hidden=hidden, arch=arch
            )

        return InpaintingCVAE(
            prior_net=observed_encoder(),
            recognition_net=observed_encoder(),
            generation_net=Decoder(
                z_dim=z_dim,
                cond_dim=2 * config.num_pixels + labels,
                hidden=hidden,
                out_channels=likelihood.params_per_pixel,
                arch=arch,
            ),
            classifier=Classifier(
                in_channels=2, num_labels=labels, hidden=hidden, arch=arch, dropout=0.3
            ),
            likelihood=likelihood,
            z_dim=z_dim,
            num_labels=labels,
        )
    labels = config.num_labels if config.condition == "label" else 0
    return LabelCVAE(
        encoder=GaussianEncoder(
            in_channels=1, cond_dim=labels, z_dim=z_dim, hidden=hidden, arch=arch
        ),
        decoder=Decoder(
            z_dim=z_dim,
            cond_dim=labels,
            hidden=hidden,
            out_channels=likelihood.params_per_pixel,
            arch=arch,
        ),
        likelihood=likelihood,
        z_dim=z_dim,
        num_labels=labels,
    )
