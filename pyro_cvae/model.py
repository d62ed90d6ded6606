"""The CVAEs as Pyro model/guide pairs: the only place with `pyro.sample` for training.

Every model here is a `CVAE` and shares one call signature, for `model` and `guide` alike:

    model(images=None, labels=None, hole=None, *, num_images=None)
    guide(images, labels=None, hole=None, *, num_images=None)

Shapes: images flat, `[N, D]` float in [0, 1], D = C * H * W values of an `image_shape`
(C, H, W), channel-major; labels `[N]` int64 in 0..num_labels-1 (None: not given); hole
`[N, H * W]` bool, True where a pixel is missing (all its channels). Losses are in nats per
image. What a model can do is answered by the model itself (`CVAE.generative`,
`CVAE.fill_method`, `CVAE.training_holes`, ...), so no caller needs to know its class.

`LabelCVAE` (Sohn et al. 2015 / Doersch 2016, conditioned on the label, or a plain VAE
with `num_labels=0`):

    z ~ p(z | y),   x ~ p(x | decoder(z, y)),   guide q(z | x, y) = N(encoder(x, y))

p(z | y) is N(0, I), or a learned Gaussian per label (`z_prior`, `--prior learned`):
diagonal while it trains, then refit after every epoch, in closed form, to the full-
covariance Gaussian that matches each label's aggregate posterior (the mean over its
training images of q(z | x, y)): for the encoder and decoder as they stand, the Gaussian
p(z | y) with the highest ELBO. The refit one is the prior in eval mode: sampling,
hole filling, classification, evaluation (`LabelCVAE.fit_prior_to_posterior`).
With `train_holes` > 0 a share of the training images get a random hole (their likelihood
is then over the observed pixels only: the ELBO of p(x_obs | y)), and the encoder reads the
hole mask beside the pixels, so that the guide learns q(z | x_obs, y) for partly observed
images as well as for whole ones.

`InpaintingCVAE` (Sohn et al.'s structured-output CVAE, conditioned on observed pixels):

    y ~ Cat(classifier(obs, hole))           observed when the label is known
    z ~ N(prior_net(obs, hole, y))
    x[hole] ~ p(x | generation_net(z, obs, hole, y)),  only hole pixels scored
    guide q(z | x, hole, y) = N(recognition_net(x, hole, y))

With a `baseline_net` (`--baseline-guess`: Sohn et al.'s initial guess, as in Pyro's CVAE
example), a deterministic network predicts the hole from the observed pixels, and the classifier,
the prior and the generation nets see its prediction, the hole filled with the mean of
its pixel distribution, where they would see zeros: an initial guess for the CVAE to
refine. It trains on its own loss, -log p(x[hole] | baseline_net(obs)) (`auxiliary_loss`),
beside the ELBO; the guess reaches the other nets detached, as from a network trained
first, so the model is still p(y, z, x[hole] | obs) and its bounds are unchanged in kind.

The networks are plain `nn.Module`s passed in, so research code can swap them without
touching the Pyro code (see `build_model` for the defaults and docs/extending.md).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import kl_divergence, register_kl

from .config import RunConfig
from .errors import DataError, UsageError
from .likelihoods import Likelihood, make_likelihood
from .masks import fixed_training_masks, random_training_holes
from .nets import Classifier, Decoder, GaussianEncoder, LabelPrior
from .scoring import chunks


@register_kl(dist.Independent, dist.MultivariateNormal)
def _kl_diagonal_full(q, p) -> torch.Tensor:
    """KL(q || p) `[...]` for the guides' q = Normal(loc, scale).to_event(1) and a refit
    full-covariance prior p (`LabelCVAE.prior` in eval mode), in nats."""
    if not isinstance(q.base_dist, dist.Normal) or q.reinterpreted_batch_ndims != 1:
        raise NotImplementedError
    diagonal = torch.diag_embed(q.base_dist.scale)
    return kl_divergence(dist.MultivariateNormal(q.base_dist.loc, scale_tril=diagonal), p)


class TemperedLatent(Messenger):
    """Within: the latent site "z" of a model is drawn from its Gaussian with the standard
    deviations (the Cholesky factor of a full covariance) multiplied by `temperature` in
    [0, 1] (0: its mean), the reduced-temperature sampling of NVAE and Glow; an
    unobserved "label" site is drawn from its categorical with the logits divided by
    `label_temperature` in [0, 1] (0: the most probable label). Observed sites and other
    latents are left alone. A `UsageError` for a temperature outside [0, 1]."""

    def __init__(self, temperature: float, label_temperature: float = 1.0) -> None:
        for name, value in (("temperature", temperature), ("label temperature", label_temperature)):
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"the {name} must be in [0, 1], got {value}")
        super().__init__()
        self.temperature, self.label_temperature = temperature, label_temperature

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"]:
            return
        if msg["name"] == "label" and self.label_temperature != 1.0:
            msg["fn"] = _tempered_categorical(msg["fn"], self.label_temperature)
        if msg["name"] != "z" or self.temperature == 1.0:
            return
        gaussian = msg["fn"]  # Normal(loc, scale).to_event(1), or a MultivariateNormal
        if self.temperature == 0.0:
            msg["fn"] = dist.Delta(gaussian.mean, event_dim=1)
        elif isinstance(gaussian, dist.MultivariateNormal):
            tril = self.temperature * gaussian.scale_tril
            msg["fn"] = dist.MultivariateNormal(gaussian.loc, scale_tril=tril)
        else:
            normal = gaussian.base_dist
            msg["fn"] = dist.Normal(normal.loc, self.temperature * normal.scale).to_event(1)


def _tempered_categorical(categorical, temperature: float):
    """The categorical `categorical` (logits `[..., L]`) at `temperature` in [0, 1): the
    logits divided by it; 0: all the mass on the most probable class."""
    logits = categorical.logits
    if temperature == 0.0:
        top = logits.argmax(-1, keepdim=True)
        logits = torch.full_like(logits, -math.inf).scatter(-1, top, 0.0)
        return dist.Categorical(logits=logits)
    # from the largest logit, so that a tiny temperature still leaves it finite
    shifted = logits - logits.max(-1, keepdim=True).values
    return dist.Categorical(logits=shifted / temperature)


def describe_shape(shape) -> str:
    """ "28x28 grey" or "32x32 colour" for an image shape (C, H, W)."""
    channels, height, width = shape
    return f"{width}x{height} {'grey' if channels == 1 else 'colour'}"


class CVAE(nn.Module):
    """The interface every model shares (see the module's docstring for the signature).

    Attributes: `image_shape` (C, H, W), `z_dim`, `num_labels` (0: no labels),
    `likelihood`. Class attributes answer what a model supports:

    - `generative`: it draws whole images from its prior p(z) and can be conditioned on
      observed pixels by Bayes' rule (sampling, latent maps, `classify`, posterior
      inpainting);
    - `fill_method`: the hole-filling method that suits it, "posterior" (condition the
      generative model) or "amortized" (a network trained to fill holes).
    """

    generative = True
    fill_method = "posterior"
    image_shape: tuple[int, int, int]
    z_dim: int
    num_labels: int
    likelihood: Likelihood

    #: Whether `model` and `guide` register the networks in Pyro's param store
    #: (`pyro.module`), as `pyro.infer.SVI` with a Pyro optimizer needs. See `unregistered`.
    registers_params = True

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.parameters()).device

    @contextlib.contextmanager
    def unregistered(self) -> Iterator[None]:
        """Within: `model` and `guide` leave the param store alone, for callers that
        optimise `parameters()` themselves (the `Trainer`). Registering every tensor
        under a trace cost about 1.5 ms of a 43 ms CIFAR-10 conv training step."""
        before = self.__dict__.get("registers_params")
        self.registers_params = False
        try:
            yield
        finally:
            if before is None:
                del self.registers_params
            else:
                self.registers_params = before

    def _register(self) -> None:
        if self.registers_params:
            pyro.module("cvae", self)

    def one_hot(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """`[n, num_labels]` one-hot codes of `labels` `[n]` (`[n, 0]` without labels)."""
        if not self.num_labels:
            return torch.zeros(n, 0, device=self.device)
        return F.one_hot(labels, self.num_labels).float()

    def flat_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images `[N, C, H, W]` of the model's `image_shape` as `[N, D]` on its device; a
        `DataError` naming both shapes when they are not the model's."""
        if tuple(images.shape[1:]) != self.image_shape:
            raise DataError(
                f"the images are {describe_shape(images.shape[1:])} but the run was trained "
                f"on {describe_shape(self.image_shape)}"
            )
        return images.reshape(len(images), -1).to(self.device)

    def flat_holes(self, holes: torch.Tensor) -> torch.Tensor:
        """Holes `[N, H, W]` bool as `[N, H * W]` on the model's device."""
        return holes.reshape(len(holes), -1).to(self.device)

    def hole_values(self, hole: torch.Tensor) -> torch.Tensor:
        """A hole per pixel `[N, H * W]` as one per value `[N, C * H * W]` (channel-major)."""
        return hole.repeat(1, self.image_shape[0])

    def training_holes(
        self, n: int, generator: torch.Generator | None = None, device="cpu"
    ) -> torch.Tensor | None:
        """The holes `[n, H * W]` bool to train on, one per image, or None for whole images."""
        return None

    def test_holes(
        self, n: int, generator: torch.Generator | None = None, device="cpu"
    ) -> torch.Tensor | None:
        """The holes `[n, H * W]` bool of the images the test loss is scored on, or None for
        whole images: the training holes, by default."""
        return self.training_holes(n, generator, device)

    def fit_label_prior(self, labels: torch.Tensor) -> None:
        """Learn p(y) from the training labels `[N]` where the model keeps one."""

    @property
    def has_auxiliary_loss(self) -> bool:
        """Whether `auxiliary_loss` is more than 0."""
        return False

    def auxiliary_loss(self, images, labels, hole) -> torch.Tensor:
        """A loss of the model's own that training adds to the negative bound, summed over
        the batch (images `[N, D]`, labels `[N]`, hole `[N, H * W]` or None), nats: a
        scalar 0 unless the model has a deterministic part trained apart from the ELBO."""
        return torch.zeros((), device=images.device)

    def prior(self, labels: torch.Tensor | None, n: int) -> dist.Distribution:
        """p(z | y) for labels `[n]` (None: a model without labels), a Gaussian of batch
        shape `[n]` and event shape `[z_dim]` (`.mean`, `.stddev`): N(0, I) unless the
        model learns its own."""
        zeros = torch.zeros(n, self.z_dim, device=self.device)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def fit_prior_to_posterior(self, images, labels, summed=None) -> None:
        """Refit p(z | y) to the training images `[N, D]` (labels `[N]`) where the model
        learns one (after every epoch of training); nothing otherwise. `summed`: when
        several processes each give their share of the images, a function that sums a
        tensor over them (`ProcessGroup.sum`)."""

    def check_labels(self, given: bool) -> None:
        """A `UsageError` when labels are given to a model without them."""
        if given and not self.num_labels:
            raise UsageError("this run was trained with --condition none: leave out the labels")


class LabelCVAE(CVAE):
    """The label-conditioned CVAE (`num_labels=0`: the plain VAE).

    encoder(pixels `[N, D]`, cond `[N, num_labels]`) -> (loc, scale) `[N, z_dim]`;
    decoder(z `[..., N, z_dim]`, cond) -> likelihood parameters `[..., N, P * D]`, P the
    likelihood's parameters per value. `label_prior` `[num_labels]`: p(y), the training
    set's label frequencies, used when a label is not given. `z_prior`: None for N(0, I),
    or one-hot labels `[N, num_labels]` -> (loc, scale) `[N, z_dim]` of p(z | y).
    `train_holes`: the share of training images given a random hole; above 0 the encoder
    reads `[N, D + H * W]`, the pixels (hole set to 0) and then the hole mask.
    `train_masks`: fixed masks the training mixture draws from beside the named ones.
    """

    def __init__(
        self,
        *,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        z_dim: int,
        num_labels: int,
        image_shape: tuple[int, int, int],
        z_prior: nn.Module | None = None,
        train_holes: float = 0.0,
        train_masks: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        if z_prior is not None and not num_labels:
            raise ValueError("a learned p(z | y) needs labels")
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.z_prior, self.train_holes, self.train_masks = z_prior, train_holes, train_masks
        self.z_dim, self.num_labels = z_dim, num_labels
        self.image_shape = tuple(image_shape)
        self.register_buffer(
            "label_prior", torch.full((max(num_labels, 1),), 1.0 / max(num_labels, 1))
        )

    def training_holes(self, n, generator=None, device="cpu"):
        """None, or with `train_holes` > 0 bool `[n, H * W]`: a hole from the training
        mixture (`masks.random_training_holes`) for that share of the images, an empty
        one for the rest."""
        if not self.train_holes:
            return None
        size = self.image_shape[1:]
        holes = random_training_holes(n, generator, device, size=size, extra=self.train_masks)
        kept = torch.rand(n, generator=generator).to(device) < self.train_holes
        return holes & kept[:, None]

    def test_holes(self, n, generator=None, device="cpu"):
        """None: a label or none run is scored on whole images."""
        return None

    def fit_label_prior(self, labels: torch.Tensor) -> None:
        """p(y) := the label frequencies of `labels` `[N]`."""
        if self.num_labels:
            counts = torch.bincount(labels, minlength=self.num_labels).float()
            self.label_prior.copy_(counts / counts.sum())

    def prior(self, labels, n):
        """N(0, I); or the learned one: diagonal in training mode (and before any refit),
        the refit full-covariance one in eval mode."""
        if self.z_prior is None:
            return super().prior(labels, n)
        if self.z_prior.is_fitted and not self.training:
            loc, scale_tril = self.z_prior.fitted(labels)
            return dist.MultivariateNormal(loc, scale_tril=scale_tril)
        return dist.Normal(*self.z_prior(self.one_hot(labels, n))).to_event(1)

    @torch.no_grad()
    def fit_prior_to_posterior(self, images, labels, summed=None):
        """The learned p(z | y) := for each label y, the Gaussian with the mean and
        covariance of its aggregate posterior, the mixture over its images x of
        q(z | x, y) = N(m_x, diag s_x^2): mean E[m_x], covariance Cov[m_x] + E[diag s_x^2]
        (moment matching, the Gaussian that maximises the summed ELBO of the images for
        the encoder and decoder as they are). A label without images keeps N(0, I)."""
        if self.z_prior is None:
            return
        count = torch.zeros(self.num_labels, dtype=torch.float64, device=images.device)
        first = torch.zeros(self.num_labels, self.z_dim, dtype=torch.float64, device=images.device)
        second = torch.zeros(self.num_labels, self.z_dim, self.z_dim, dtype=torch.float64,
                             device=images.device)  # fmt: skip
        for part in chunks(len(images)):
            loc, scale = (value.double() for value in self.encode(images[part], labels[part]))
            for label in labels[part].unique().tolist():
                rows = labels[part] == label
                count[label] += rows.sum()
                first[label] += loc[rows].sum(0)
                second[label] += loc[rows].T @ loc[rows] + torch.diag(scale[rows].pow(2).sum(0))
        if summed is not None:
            count, first, second = summed(count), summed(first), summed(second)
        seen = count > 0
        mean = torch.zeros_like(first)
        covariance = torch.eye(self.z_dim, dtype=torch.float64, device=images.device).repeat(
            self.num_labels, 1, 1
        )
        mean[seen] = first[seen] / count[seen, None]
        covariance[seen] = second[seen] / count[seen, None, None] - (
            mean[seen, :, None] * mean[seen, None, :]
        )
        scale_tril = torch.linalg.cholesky(covariance)
        self.z_prior.fit(mean.float(), scale_tril.float())

    def encode(self, images, labels=None, hole=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale) `[N, z_dim]` of q(z | x, y) for images `[N, D]`, their hole
        pixels (`hole` `[N, H * W]` bool, if any) set to 0, and the hole mask after them
        when the model trains on holes."""
        seen = images if hole is None else images.masked_fill(self.hole_values(hole), 0.0)
        if self.train_holes:
            mask = torch.zeros(len(images), images.shape[1] // self.image_shape[0],
                               dtype=images.dtype, device=images.device)  # fmt: skip
            seen = torch.cat([seen, mask if hole is None else hole.to(images.dtype)], dim=-1)
        return self.encoder(seen, self.one_hot(labels, len(images)))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters `[..., N, P * D]` for z `[..., N, z_dim]` (leading
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
        """p(x, z | y). `images` `[N, D]` observed (None: sampled, with `num_images`);
        `hole` `[N, H * W]` bool: those pixels are left out of the likelihood. A missing label
        is sampled from `label_prior` as the site "label". Returns the parameters."""
        self._register()
        n = len(images) if images is not None else num_images
        with pyro.plate("data", n):
            if labels is None and self.num_labels:
                labels = pyro.sample("label", dist.Categorical(self.label_prior))
            z = pyro.sample("z", self.prior(labels, n))
            params = self.decode(z, labels)
            pixels = self.likelihood.distribution(params)
            if hole is not None:
                pixels = pixels.mask(~self.hole_values(hole))
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
        """q(z | x, y) for images `[N, D]` (the hole's pixels, if any, set to 0); the
        label is required for label models."""
        self._register()
        if self.num_labels and labels is None:
            raise ValueError("the guide of a label model needs the labels")
        with pyro.plate("data", len(images)):
            loc, scale = self.encode(images, labels, hole)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class InpaintingCVAE(CVAE):
    """The structured-output CVAE that fills holes.

    prior_net / recognition_net: (planes `[N, (C + 1) * H * W]`, one-hot label `[N, L]`) ->
    (loc, scale); generation_net: (z, `[N, (C + 1) * H * W + L]`) -> parameters
    `[N, P * D]`; classifier: `[N, (C + 1) * H * W]` -> label logits. The planes are the
    observed image's C channels (hole set to 0, or to the baseline's guess) and the hole
    mask for the prior, generation and classifier nets (`observed_channels`), and the
    whole image and the hole mask for the recognition net. `baseline_net` (optional):
    (`[N, 0]`, planes with the hole at 0 `[N, (C + 1) * H * W]`) -> parameters `[N, P * D]`
    of a copy of `likelihood` of its own. `train_masks`: fixed masks the training
    mixture draws from beside the named ones.
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
        image_shape: tuple[int, int, int],
        train_masks: tuple[str, ...] = (),
        baseline_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.prior_net, self.recognition_net = prior_net, recognition_net
        self.generation_net, self.classifier = generation_net, classifier
        self.baseline_net = baseline_net
        # the baseline's own pixel distribution: a learned one (a Gaussian's scale) is fit
        # to its errors, not to the generation net's
        self.baseline_likelihood = copy.deepcopy(likelihood) if baseline_net is not None else None
        self.likelihood = likelihood
        self.z_dim, self.num_labels = z_dim, num_labels
        self.image_shape, self.train_masks = tuple(image_shape), train_masks

    def training_holes(self, n, generator=None, device="cpu"):
        """A fresh hole per image from the training mixture (`masks.random_training_holes`)."""
        size = self.image_shape[1:]
        return random_training_holes(n, generator, device, size=size, extra=self.train_masks)

    def observed_channels(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """`[N, (C + 1) * H * W]`: the image with its hole zeroed (or, with a baseline
        network, filled with its guess, detached), then the hole mask."""
        planes = self._hole_at_zero(images, hole)
        if self.baseline_net is None:
            return planes
        with torch.no_grad():
            guess = self.baseline_likelihood.mean(self._baseline(planes))
        seen, mask = planes[:, : images.shape[1]], planes[:, images.shape[1] :]
        return torch.cat([torch.where(self.hole_values(hole), guess, seen), mask], dim=-1)

    def _hole_at_zero(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """`[N, (C + 1) * H * W]`: the image with its hole zeroed, then the hole mask."""
        seen = images.masked_fill(self.hole_values(hole), 0.0)
        return torch.cat([seen, hole.to(images.dtype)], dim=-1)

    def _baseline(self, planes: torch.Tensor) -> torch.Tensor:
        """The baseline network's likelihood parameters `[N, P * D]` for `planes`
        (`_hole_at_zero`)."""
        return self.baseline_net(planes.new_zeros(len(planes), 0), planes)

    @property
    def has_auxiliary_loss(self) -> bool:
        return self.baseline_net is not None

    def auxiliary_loss(self, images, labels, hole) -> torch.Tensor:
        """The baseline network's -log p(x[hole] | observed pixels), summed over the batch
        (0 without one)."""
        if self.baseline_net is None:
            return super().auxiliary_loss(images, labels, hole)
        params = self._baseline(self._hole_at_zero(images, hole))
        pixels = self.baseline_likelihood.distribution(params).mask(self.hole_values(hole))
        return -pixels.to_event(1).log_prob(images).sum()

    def latent_prior(
        self, observed: torch.Tensor, labels: torch.Tensor, guidance: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, scale) `[N, z_dim]` of p(z | observed, y) for the planes `observed`
        `[N, (C + 1) * H * W]` (`observed_channels`) and labels `[N]`.

        `guidance` w > 0 moves the mean w times its difference from the mean of
        p(z | observed) = sum over y' of p(y' | observed) p(z | observed, y') (the
        classifier's p(y' | observed)): classifier-free guidance (Ho & Salimans 2022) on
        the latent's mean, so that a fill follows its label more than the model alone
        would. It is for drawing fills only; training uses w = 0."""
        loc, scale = self.prior_net(observed, self.one_hot(labels, len(observed)))
        if guidance:
            weights = self.classifier(observed).softmax(-1)  # [N, L]
            every = torch.eye(self.num_labels, device=observed.device)
            each = [self.prior_net(observed, code.expand(len(observed), -1))[0] for code in every]
            unlabelled = (weights[..., None] * torch.stack(each, 1)).sum(1)
            loc = loc + guidance * (loc - unlabelled)
        return loc, scale

    def model(
        self,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        hole: torch.Tensor | None = None,
        *,
        num_images: int | None = None,
        guidance: float = 0.0,
    ) -> torch.Tensor:
        """p(y, z, x[hole] | x[observed]). `images` `[N, D]`: the pixels outside `hole`
        condition, those inside are the observations scored (to fill the hole instead,
        run the model under `poutine.uncondition`, or read the parameters it returns). A
        missing label is sampled from the classifier. `guidance`: see `latent_prior`.
        Returns the parameters."""
        self._register()
        if images is None or hole is None:
            raise ValueError("the hole-filling model needs the images and their holes")
        observed = self.observed_channels(images, hole)
        with pyro.plate("data", len(images)):
            labels = pyro.sample(
                "label", dist.Categorical(logits=self.classifier(observed)), obs=labels
            )
            cond = self.one_hot(labels, len(images))
            loc, scale = self.latent_prior(observed, labels, guidance)
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            params = self.generation_net(z, torch.cat([observed, cond], dim=-1))
            pixels = self.likelihood.distribution(params).mask(self.hole_values(hole))
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
        self._register()
        if labels is None or hole is None:
            raise ValueError("the guide needs the whole images, the labels and the holes")
        with pyro.plate("data", len(images)):
            pixels = torch.cat([images, hole.to(images.dtype)], dim=-1)
            cond = self.one_hot(labels, len(images))
            loc, scale = self.recognition_net(pixels, cond)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def build_model(config: RunConfig) -> CVAE:
    """The default networks for a run, for its `image_shape`: the classic MNIST CVAE MLPs
    (or conv networks whose depth follows the image size, `arch="conv"`)."""
    channels, height, width = config.image_shape
    fixed_training_masks((height, width), config.train_masks)  # one that does not fit: refused
    likelihood = make_likelihood(config.likelihood, channels * height * width)
    shared = {
        "hidden": config.hidden,
        "arch": config.arch,
        "size": (height, width),
        "width": config.conv_width,
    }
    z_dim, out_channels = config.z_dim, likelihood.params_per_pixel * channels
    if config.condition == "pixels":
        labels = config.num_labels

        def observed_encoder():  # the observed (or whole) image and the hole mask
            return GaussianEncoder(in_channels=channels + 1, cond_dim=labels, z_dim=z_dim, **shared)

        return InpaintingCVAE(
            prior_net=observed_encoder(),
            recognition_net=observed_encoder(),
            generation_net=Decoder(
                z_dim=z_dim,
                cond_dim=(channels + 1) * height * width + labels,
                out_channels=out_channels,
                **shared,
            ),
            classifier=Classifier(
                in_channels=channels + 1, num_labels=labels, dropout=0.3, **shared
            ),
            likelihood=likelihood,
            z_dim=z_dim,
            num_labels=labels,
            image_shape=config.image_shape,
            train_masks=config.train_masks,
            baseline_net=Decoder(
                z_dim=0,
                cond_dim=(channels + 1) * height * width,
                out_channels=out_channels,
                **shared,
            )
            if config.baseline_guess
            else None,
        )
    labels = config.num_labels if config.condition == "label" else 0
    hole_plane = 1 if config.train_holes else 0
    return LabelCVAE(
        encoder=GaussianEncoder(
            in_channels=channels + hole_plane, cond_dim=labels, z_dim=z_dim, **shared
        ),
        decoder=Decoder(
            z_dim=z_dim,
            cond_dim=labels,
            out_channels=out_channels,
            cond_every_level=config.label_every_level,
            **shared,
        ),
        likelihood=likelihood,
        z_dim=z_dim,
        num_labels=labels,
        image_shape=config.image_shape,
        z_prior=LabelPrior(num_labels=labels, z_dim=z_dim) if config.prior == "learned" else None,
        train_holes=config.train_holes,
        train_masks=config.train_masks,
    )
