"""`RunConfig`: everything needed to rebuild a run's model, saved beside its weights.

Also the registry of the names a run can choose from (conditions, datasets, network
families, likelihoods): torch-free, so that the CLI builds its choices from it at once;
`data.DATASET_SPECS` and `likelihoods.IMPLEMENTATIONS` hold what each name stands for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

CONDITIONS = ("label", "none", "pixels")
DATASETS = ("mnist", "fashion-mnist")
ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "beta", "gaussian")


@dataclass(frozen=True)
class RunConfig:
    """One training run.

    condition: "label" (CVAE on the digit label), "none" (plain VAE) or "pixels"
        (structured-output CVAE conditioned on observed pixels, a hole mask and an
        optional label).
    hidden: widths of the hidden layers, encoder order (the decoder mirrors them).
    z_dim: latent dimensions.
    likelihood: the pixel distribution p(x | z, ...).
    lr: Adam learning rate; batch_size in images; epochs: full passes over the data.
    """

    condition: str = "label"
    dataset: str = "mnist"
    arch: str = "mlp"
    likelihood: str = "bernoulli"
    z_dim: int = 2
    hidden: tuple[int, ...] = (512, 256)
    num_labels: int = 10
    image_size: int = 28
    batch_size: int = 100
    lr: float = 1e-3
    epochs: int = 50
    seed: int = 0

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
        for name in ("z_dim", "batch_size", "epochs"):
            if not 1 <= getattr(self, name) <= 1 << 20:
                raise ValueError(f"{name} must be a positive whole number")
        if not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.num_labels < 0 or self.image_size != 28:
            raise ValueError("num_labels must be >= 0 and image_size 28")

    @property
    def num_pixels(self) -> int:
        return self.image_size * self.image_size

    def to_dict(self) -> dict:
        """Plain types only (str, int, float, list, dict), safe for `weights_only` loading."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Inverse of `to_dict`; unknown keys are refused so a mismatch is never silent."""
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


def default_config(condition: str = "label", **options) -> RunConfig:
    """The defaults for `condition`, with every option that is not None applied on top."""
    values = dict(PIXELS_DEFAULTS) if condition == "pixels" else {}
    values.update({key: value for key, value in options.items() if value is not None})
    return RunConfig(condition=condition, **values)
