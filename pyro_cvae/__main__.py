"""`python -m pyro_cvae` runs the `pyro-cvae` command."""

from .cli.main import cli

cli(prog_name="pyro-cvae")
