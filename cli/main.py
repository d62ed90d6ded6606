"""Entry point of the `pyro-cvae` console script (installed as `pyro_cvae.cli.main`): the
group and all its commands."""

from . import (  # noqa: F401  (each registers its commands)
    classify_cmd,
    data_cmd,
    evaluate_cmd,
    inpaint_cmd,
    sample_cmd,
    serve_cmd,
    train_cmd,
)
from .app import cli

__all__ = ["cli"]
