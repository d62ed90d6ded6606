"""The `pyro-cvae` Click group: every failure becomes one line on stderr, never a traceback.

Errors the library raises (`CvaeError`) exit 1; usage errors exit 2, as Click does, the
library's `UsageError` (a request that does not fit the run) included; Ctrl-C exits 130.
Under torchrun, the ranks other than 0 keep quiet about the errors every rank raises
alike (a usage error, a NaN loss in the summed losses) and about rank 0's failures,
which rank 0 reports, and name themselves in the others.
torch and the library are imported inside the commands, so `--help` answers at once.
Every command runs with glibc's allocator keeping freed memory (`pyro_cvae.allocator`).
"""

from __future__ import annotations

import os
import sys

import click


def _one_line(message: str) -> str:
    """`message` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(message).split())


def _report(message: str, *, shared: bool) -> None:
    """`Error: message` on stderr. Under torchrun, an error that every rank meets alike
    (`shared`) is told by rank 0 alone, and another rank names itself."""
    from pyro_cvae.config import TORCHRUN_VARIABLES

    torchrun = all(name in os.environ for name in TORCHRUN_VARIABLES)
    rank = os.environ["RANK"] if torchrun else None
    if rank in (None, "0"):
        click.echo(f"Error: {message}", err=True)
    elif not shared:  # a ProcessGroupError names its rank already
        named = message if message.startswith("rank ") else f"rank {rank}: {message}"
        click.echo(f"Error: {named}", err=True)


class OneLineErrors(click.Group):
    """A group whose every failure is one line on stderr."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.ClickException as error:
            _report(_one_line(error.format_message()), shared=True)
            sys.exit(error.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as error:
            from pyro_cvae.errors import (
                CvaeError,
                LossNotFinite,
                ProcessGroupError,
                RankZeroStopped,
                UsageError,
            )

            shared = isinstance(error, (LossNotFinite, UsageError, RankZeroStopped))
            if isinstance(error, CvaeError):
                _report(_one_line(error), shared=shared)
            else:
                _report(f"unexpected {type(error).__name__}: {_one_line(error)}", shared=False)
            if isinstance(error, ProcessGroupError):
                # the threads of a broken Gloo group can abort a normal interpreter exit
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
            sys.exit(2 if isinstance(error, UsageError) else 1)
        sys.exit(code or 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyro-cvae")
def cli() -> None:
    """Conditional variational auto-encoders in Pyro: generate a chosen digit, fill holes."""
    from pyro_cvae.allocator import keep_freed_memory

    keep_freed_memory()


def load_run(run_dir: str, device: str):
    """The run in RUN_DIR, its model on the torch device for `--device auto|cpu|cuda`."""
    from pyro_cvae.checkpoint import load_run as load
    from pyro_cvae.train import resolve_device

    return load(run_dir, resolve_device(device))


def split_output(out: str) -> tuple[str, str]:
    """`--out FILE` names FILE.png and FILE.npy; a given .png/.npy suffix is dropped."""
    from pathlib import Path

    path = Path(out)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".npy") else path
    return f"{stem}.png", f"{stem}.npy"
