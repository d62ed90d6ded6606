"""`RunConfig`: everything needed to rebuild a run's model, saved beside its weights.

Also the registry of the names a run can choose from (conditions, datasets, network
families, likelihoods): torch-free, so that the CLI builds its choices from it at once;
`data.DATASET_SPECS` and `likelihoods.IMPLEMENTATIONS` hold what each name stands for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UsageError

CONDITIONS = ("label", "none", "pixels")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder")
DOWNLOADS = DATASETS[:3]  # "folder" is the user's own
ARCHITECTURES = ("mlp", "conv", "resnet")
LIKELIHOODS = (
    "bernoulli",
    "continuous-bernoulli",
    "beta",
    "gaussian",
    "discretized-logistic",
    "discretized-logistic-rgb",
)
COLOUR_ONLY_LIKELIHOODS = ("discretized-logistic-rgb",)
PRIORS = ("standard", "learned")
LR_SCHEDULES = ("constant", "cosine")
# --train-particles: each step decodes K times the batch at once.
MAX_TRAIN_PARTICLES = 64
# Under torchrun: seconds a process waits in a collective before it gives up on the others.
DIST_TIMEOUT_S = 300
# The environment torchrun gives each process (and a launcher that stands in for it).
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def label_indices(names: Sequence[str], label_names: Sequence[str]) -> list[int]:
    """The label of each of `names`: one of `label_names`, or its index (a whole number); a
    `UsageError` listing the classes for anything else."""
    indices = []
    for name in names:
        name = str(name).strip()
        if name in label_names:
            indices.append(list(label_names).index(name))
        elif name.isdigit() and int(name) < len(label_names):
            indices.append(int(name))
        else:
            raise UsageError(
                f"label {name!r} is not a class of this run; its classes are "
                + ", ".join(label_names)
            )
    return indices


@dataclass(frozen=True)
class RunConfig:
    """One training run.

    condition: "label" (CVAE on the digit label), "none" (plain VAE) or "pixels"
        (structured-output CVAE conditioned on observed pixels, a hole mask and an
        optional label).
    hidden: widths of the hidden layers, encoder order (the decoder mirrors them).
    conv_width: channels of the first level of the conv networks (doubling at each
        deeper level).
    z_dim: latent dimensions.
    likelihood: the pixel distribution p(x | z, ...).
    prior: p(z | y) of a label run: "standard" N(0, I) for every label, or "learned", a
        Gaussian of its own per label (its mean and scales are trained with the rest).
    image_shape: (channels, height, width) of the images, taken from the dataset.
    num_labels, class_names: the classes (names empty: "0", "1", ...).
    lr: Adam learning rate; batch_size in images; epochs: full passes over the data.
    lr_schedule: Adam's rate through the epochs: "constant" (`lr` in every one) or
        "cosine" (`lr` x (1 + cos(pi e / epochs)) / 2 in epoch e, counted from 0: `lr`
        in the first, falling to near 0 in the last; Loshchilov & Hutter 2017, without
        restarts).
    train_holes: the share (0..1) of a label or none run's training images given a
        random hole from the hole-filling run's training mixture, their likelihood taken
        over the pixels left; above 0 the encoder also reads the hole mask, so that
        q(z | observed pixels, y) is a good proposal for partly observed images
        (`classify --mask`, posterior inpainting).
    train_masks: fixed holes (mask texts: a named region, a box, or `not:` one of them, as
        `not:quadrant-bl`, only the bottom-left quadrant seen) that the training mixture
        of holes draws from beside the named regions, for a pixels run or a run with
        train_holes: the holes a run will be asked to fill.
    shift: each training image moved by a fresh random whole number of pixels in
        [-shift, shift] along each axis at every step (its edge pixels fill the border).
    rotation: each training image then turned about its centre by a fresh random angle in
        [-rotation, rotation] degrees at every step (0: not turned).
    scaling: and scaled by a fresh random factor in [1 - scaling, 1 + scaling] (0: not
        scaled); turns and scalings are bilinear, the area they uncover zero
        (`augment.random_turns`).
    train_particles: K of the objective: 1 is the ELBO, K > 1 the importance-weighted
        bound of K particles (IWAE, Burda et al. 2016), tighter at K times the decoding.
    class_weight: for label runs, above 0 the objective adds class_weight x the
        cross-entropy of the label posterior p(y | x) by Bayes' rule, p(y) exp(bound(x, y))
        normalised over the labels (the bound above, per label): the objective that
        `classify` is judged by, at the cost of scoring every image under every label.
    class_after: the term above is added in the epochs after the first class_after (0:
        in every epoch; a run of class_after epochs or fewer has none until resumed to
        more).
    class_lr_scale: Adam's learning rate in the epochs with that term, as a multiple of
        `lr`.
    kl_warmup: above 0, KL warm-up: the KL part of the ELBO is weighed by a factor that
        rises linearly by step from near 0 to 1 over the first kl_warmup epochs (then
        1), so that the decoder learns to use the latent before the KL term pulls the
        guide to the prior (Bowman et al. 2016, Sønderby et al. 2016). For the ELBO
        (train_particles 1); the reported and held-out losses are the full -ELBO.
    label_every_level: for label runs with conv or resnet networks, the decoder reads the
        label at every level of its transposed convolutions (as constant planes), not
        only at its input.
    baseline_guess: for pixels runs, Sohn et al.'s initial guess: a deterministic baseline
        network, trained on its own loss beside the ELBO, predicts the hole, and the
        classifier, prior and generation nets see its prediction in the hole instead of
        zeros (`model.InpaintingCVAE`).
    sample_temperature: the temperature in [0, 1] at which the run's commands draw z from
        its prior (`sample`, `evaluate --samples`, `inpaint --method amortized`, `serve`,
        samples.png) when not given `--temperature`: the scales of p(z | ...) multiplied by
        it (0: its mean; `model.TemperedLatent`). It changes no training.
    preset: the name of the preset whose defaults the run started from ("": none;
        `PRESET_DEFAULTS`); the values in force are the fields themselves.
    """

    condition: str = "label"
    dataset: str = "mnist"
    arch: str = "mlp"
    likelihood: str = "bernoulli"
    z_dim: int = 2
    hidden: tuple[int, ...] = (512, 256)
    conv_width: int = 32
    prior: str = "standard"
    num_labels: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)
    class_names: tuple[str, ...] = ()
    batch_size: int = 100
    lr: float = 1e-3
    lr_schedule: str = "constant"
    epochs: int = 50
    seed: int = 0
    train_holes: float = 0.0
    train_masks: tuple[str, ...] = ()
    shift: int = 0
    rotation: float = 0.0
    scaling: float = 0.0
    train_particles: int = 1
    class_weight: float = 0.0
    class_after: int = 0
    class_lr_scale: float = 1.0
    kl_warmup: int = 0
    label_every_level: bool = False
    baseline_guess: bool = False
    sample_temperature: float = 1.0
    preset: str = ""

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or not all(1 <= h <= 65536 for h in self.hidden):
            raise ValueError(f"hidden widths must be 1..65536, at least one, got {self.hidden}")
        for name in ("z_dim", "batch_size", "epochs", "conv_width"):
            if not 1 <= getattr(self, name) <= 1 << 20:
                raise ValueError(f"{name} must be a positive whole number")
        if not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        channels, height, width = self.image_shape
        if channels not in (1, 3) or not (1 <= height <= 4096 and 1 <= width <= 4096):
            raise ValueError(
                f"image_shape must be (1 or 3, height, width) with sides 1..4096, got "
                f"{self.image_shape}"
            )
        if self.likelihood in COLOUR_ONLY_LIKELIHOODS and channels != 3:
            raise ValueError(f"the {self.likelihood} likelihood is for colour images only")
        if self.arch == "mlp" and self.conv_width != RunConfig.conv_width:
            raise ValueError("conv_width (--conv-width) is for --arch conv or resnet")
        if not 1 <= self.train_particles <= MAX_TRAIN_PARTICLES:
            raise ValueError(
                f"train_particles must be 1..{MAX_TRAIN_PARTICLES}, got {self.train_particles}"
            )
        if not 0.0 <= self.train_holes <= 1.0:
            raise ValueError(f"train_holes must be a share in [0, 1], got {self.train_holes}")
        if self.train_holes and self.condition == "pixels":
            raise ValueError(
                "train_holes (--train-holes) is for label and none runs: a pixels run always "
                "trains on holes"
            )
        if isinstance(self.train_masks, str):
            raise ValueError("train_masks must be a sequence of mask texts, not one string")
        object.__setattr__(self, "train_masks", tuple(str(m) for m in self.train_masks))
        if self.train_masks and self.condition != "pixels" and not self.train_holes:
            raise ValueError(
                "train_masks (--train-mask) shape the holes of a pixels run, or of a label or "
                "none run with --train-holes"
            )
        if self.shift < 0 or (self.shift and 2 * self.shift >= min(height, width)):
            raise ValueError(
                f"shift must be 0 to less than half the image's side, got {self.shift}"
            )
        if not 0.0 <= self.rotation <= 180.0:
            raise ValueError(f"rotation must be 0 to 180 degrees, got {self.rotation}")
        if not 0.0 <= self.scaling < 1.0:
            raise ValueError(f"scaling must be a share in [0, 1), got {self.scaling}")
        self._check_class_term()
        self._check_kl_warmup()
        if not 0.0 <= self.sample_temperature <= 1.0:
            raise ValueError(f"sample_temperature must be in [0, 1], got {self.sample_temperature}")
        if self.preset and self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.label_every_level and (
            self.condition != "label" or self.arch not in ("conv", "resnet")
        ):
            raise ValueError(
                "label_every_level (--label-every-level) is for label runs with --arch conv "
                "or resnet"
            )
        if self.baseline_guess and self.condition != "pixels":
            raise ValueError("baseline_guess (--baseline-guess) is for pixels runs")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.prior == "learned" and self.condition != "label":
            raise ValueError("a learned prior p(z | y) is for label runs (--condition label)")
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if self.num_labels < 0 or (self.class_names and len(self.class_names) != self.num_labels):
            raise ValueError("num_labels must be >= 0 and match the class names, if any")

    def _check_class_term(self) -> None:
        if not 0.0 <= self.class_weight < float("inf"):
            raise ValueError(f"class_weight must be 0 or more, got {self.class_weight}")
        if self.class_weight and (self.condition != "label" or self.num_labels < 2):
            raise ValueError(
                "class_weight (--class-weight) is for label runs with two classes or more"
            )
        if not 0 <= self.class_after <= 1 << 20:
            raise ValueError(f"class_after must be a whole number >= 0, got {self.class_after}")
        if self.class_after and not self.class_weight:
            raise ValueError("class_after (--class-after) needs a class_weight above 0")
        if not 0.0 < self.class_lr_scale < float("inf"):
            raise ValueError(f"class_lr_scale must be above 0, got {self.class_lr_scale}")
        if self.class_lr_scale != 1.0 and not self.class_weight:
            raise ValueError("class_lr_scale (--class-lr-scale) needs a class_weight above 0")

    def _check_kl_warmup(self) -> None:
        if not 0 <= self.kl_warmup <= 1 << 20:
            raise ValueError(f"kl_warmup must be a whole number >= 0, got {self.kl_warmup}")
        # a preset's warm-up is a default the user may not know of
        hint = f" (--preset {self.preset} sets it; --kl-warmup 0: none)" if self.preset else ""
        if self.kl_warmup and self.train_particles > 1:
            raise ValueError(
                "kl_warmup (--kl-warmup) weighs the KL part of the ELBO; the importance-"
                f"weighted bound (--train-particles above 1) has no such part{hint}"
            )
        if self.kl_warmup and self.class_weight and self.kl_warmup > self.class_after:
            raise ValueError(
                "kl_warmup (--kl-warmup) must end before the label cross-entropy begins "
                f"(--class-after {self.class_after}): those epochs score full bounds{hint}"
            )

    def class_term_from(self) -> int | None:
        """The first epoch (0-based) whose steps add the label cross-entropy, None when
        none does."""
        return self.class_after if self.class_weight else None

    @property
    def label_names(self) -> tuple[str, ...]:
        """The name of each label: `class_names`, or "0", "1", ... when there are none."""
        return self.class_names or tuple(str(i) for i in range(self.num_labels))

    def drawing_temperature(self, given: float | None) -> float:
        """The temperature to draw z at: `given` (a `--temperature`), or the run's own
        `sample_temperature` when None."""
        return self.sample_temperature if given is None else given

    def label_indices(self, names: Sequence[str]) -> list[int]:
        """The label of each of `names` (see `label_indices`)."""
        return label_indices(names, self.label_names)

    def to_dict(self) -> dict:
        """Plain types only (str, int, float, list, dict), safe for `weights_only` loading."""
        out = dataclasses.asdict(self)
        for name in ("hidden", "image_shape", "class_names", "train_masks"):
            out[name] = list(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Inverse of `to_dict`; unknown keys are refused so a mismatch is never silent.
        A checkpoint of format 1 says `image_size` (always 28, grey) instead of
        `image_shape`."""
        values = dict(values)
        if "image_size" in values:
            size = values.pop("image_size")
            values.setdefault("image_shape", (1, size, size))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**values)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


# Defaults that differ for a hole-filling run: a richer latent space and longer training
# reach the quality in docs/inpainting.md with no further flags.
PIXELS_DEFAULTS = {"z_dim": 32, "hidden": (1024, 512), "epochs": 30, "arch": "conv"}
# Defaults that differ for colour images: conv networks and a likelihood of 8-bit levels
# with the colour channels of a pixel dependent (docs/model.md), then per condition: a
# label run learns p(z | y) in a latent of 32; a hole-filling run trains fewer epochs
# (CIFAR-10 has three times MNIST's images, and the 45-minute budget of docs/benchmarks.md).
COLOUR_DEFAULTS = {"arch": "conv", "likelihood": "discretized-logistic-rgb"}
COLOUR_CONDITION_DEFAULTS = {
    "label": {"z_dim": 32, "prior": "learned", "epochs": 40},
    "none": {"z_dim": 32, "epochs": 40},
    "pixels": {"epochs": 20},
}


# `--preset best`: the quality configuration, per condition, chosen on a validation split
# of the bundled MNIST (docs/results.md#the-quality-configuration), for grey images. A
# label run: conv networks, a 16-d latent with the learned p(z | y), half the training
# images with a random hole (a guide for partly observed digits), shifts of one pixel; 100
# epochs fit the 30-minute budget on the CPU of 2026-11-26 (12 min 16 s; not shown on the
# slower one of 2026-11-27) and were checked on validation only against 60 and 200;
# KL warm-up over the first 30 epochs (on validation: 8 nats of held-out bound, sharper
# samples, whole digits named as well or better), its samples drawn at temperature 0.8
# (at 1 the warm-up run's were named as asked less often than issue 15 asks; at 0.8 all
# of them).
# It leaves out the label cross-entropy (`class_weight`): on validation it named more
# whole digits but drew worse ones, and random turns and scalings (`rotation`,
# `scaling`): on validation they named no more whole digits and drew worse ones.
# A pixels run: its defaults, the complements of the quadrants and of the centre in the
# training mixture (one quadrant seen, a frame seen: no named mask leaves so little), and
# 60 epochs; each was checked on validation alone and together.
PRESET_DEFAULTS = {
    "best": {
        "label": {
            "arch": "conv",
            "z_dim": 16,
            "prior": "learned",
            "train_holes": 0.5,
            "shift": 1,
            "epochs": 100,
            "kl_warmup": 30,
            "sample_temperature": 0.8,
        },
        "pixels": {
            "train_masks": (
                "not:quadrant-tl",
                "not:quadrant-tr",
                "not:quadrant-bl",
                "not:quadrant-br",
                "not:center",
            ),
            "epochs": 60,
        },
    }
}
PRESETS = tuple(PRESET_DEFAULTS)


def default_config(
    condition: str = "label",
    image_shape: tuple[int, int, int] = (1, 28, 28),
    preset: str | None = None,
    **options,
) -> RunConfig:
    """The defaults for `condition` and images of `image_shape` (C, H, W; C 3: colour),
    then those of `preset` (a name of `PRESETS`, for grey images and the conditions it
    names), with every option that is not None applied on top."""
    values = dict(PIXELS_DEFAULTS) if condition == "pixels" else {}
    if image_shape[0] == 3:
        values.update(COLOUR_DEFAULTS)
        values.update(COLOUR_CONDITION_DEFAULTS[condition])
    if preset:
        if preset not in PRESET_DEFAULTS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        chosen = PRESET_DEFAULTS[preset]
        if condition not in chosen:
            raise ValueError(f"--preset {preset} is for --condition {' or '.join(chosen)} runs")
        if image_shape[0] != 1:
            raise ValueError(
                f"--preset {preset} was chosen for grey images; colour runs have defaults "
                "of their own"
            )
        values.update(chosen[condition], preset=preset)
    values.update({key: value for key, value in options.items() if value is not None})
    return RunConfig(condition=condition, image_shape=image_shape, **values)
