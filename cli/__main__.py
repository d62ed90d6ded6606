"""`python -m cli` runs the `pyro-cvae` command."""

from .main import cli

cli()
