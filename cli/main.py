"""Entry point of the `pyro-cvae` console script (installed as `pyro_cvae.cli.main`): the
group and all its commands."""

from . import classify_cmd, data_cmd, evaluate_cmd, inpaint_cmd, sample_cmd, train_cmd  # noqa: F401  (each registers its commands)
from .app import cli

__all__ = ["cli"]
