"""`pyro-cvae download`: fetch a dataset into the user cache, checksums verified."""

from __future__ import annotations

import sys

import click

from pyro_cvae.config import DOWNLOADS

from .app import cli


@cli.command("download")
@click.argument("dataset", type=click.Choice(DOWNLOADS))
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    help="Folder to put the files in (default: the user cache, where train looks for them).",
)
def download(dataset: str, dest: str | None) -> None:
    """Download DATASET from its public mirrors, checksums verified (MNIST, Fashion-MNIST:
    four IDX files; CIFAR-10: the binary archive, unpacked)."""
    from pyro_cvae.data import download as fetch

    bars: dict = {}

    def progress(name: str, done: int, total: int | None) -> None:
        if name not in bars:
            for bar in bars.values():
                bar.render_finish()
            bars[name] = click.progressbar(length=total or 0, label=name, file=sys.stderr)
        bars[name].update(done)

    folder = fetch(dataset, dest, progress=progress)
    for bar in bars.values():
        bar.render_finish()
    click.echo(f"{dataset} is in {folder}")
