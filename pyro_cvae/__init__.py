"""pyro-cvae: conditional variational auto-encoders as Pyro model/guide pairs.

The public names, importable from `pyro_cvae` (loaded on first use, so importing the
package is cheap):

- models: `RunConfig`, `build_model`, `CVAE` (the interface), `LabelCVAE`, `InpaintingCVAE`
- networks and likelihoods: `GaussianEncoder`, `Decoder`, `Classifier`, `make_likelihood`
- data: `load_split`, `load_splits`, `read_images`, `parse_mask`
- training: `Trainer`, `TrainingRun`, `load_run`
- inference: `sample_images`, `fill_holes` (either method), `inpaint_amortized`,
  `inpaint_posterior`, `label_posterior`, `keep_freed_memory` (what every command does first)
- errors: `CvaeError`, `UsageError`

Everything else is private and may change.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "RunConfig": "config",
    "build_model": "model",
    "CVAE": "model",
    "LabelCVAE": "model",
    "InpaintingCVAE": "model",
    "GaussianEncoder": "nets",
    "Decoder": "nets",
    "Classifier": "nets",
    "make_likelihood": "likelihoods",
    "load_split": "data",
    "load_splits": "data",
    "read_images": "images",
    "parse_mask": "masks",
    "Trainer": "train",
    "TrainingRun": "run",
    "load_run": "checkpoint",
    "sample_images": "sampling",
    "fill_holes": "inpaint",
    "inpaint_amortized": "inpaint",
    "inpaint_posterior": "posterior",
    "label_posterior": "posterior",
    "keep_freed_memory": "allocator",
    "CvaeError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pyro_cvae' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)


def __dir__():
    return __all__
