"""`pyro-cvae train`: train a CVAE into RUN_DIR, resumable, saving after every epoch."""

from __future__ import annotations

import signal
import sys

import click

from .app import cli, resolve_device
from .params import WIDTHS

MODEL_OPTIONS = (
    "condition",
    "dataset",
    "arch",
    "likelihood",
    "z_dim",
    "hidden",
    "batch_size",
    "seed",
)


class _StopFlag:
    """Ctrl-C (or SIGTERM) asks training to stop after the current step; a second Ctrl-C
    stops at once, keeping the last save."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum


def _after_bar(bar) -> str:
    """A newline to end a progress bar left mid-line, else nothing."""
    return "\n" if bar is not None else ""


def _epoch_line(m) -> str:
    return (
        f"epoch {m.epoch}: train {m.train_loss:.2f}  test {m.test_loss:.2f} nats/image  "
        f"{m.seconds:.1f}s  {m.images_per_s:,.0f} images/s"
    )


@cli.command("train")
@click.option(
    "--condition",
    type=click.Choice(["label", "none", "pixels"]),
    default="label",
    show_default=True,
    help="label: CVAE on the digit; none: plain VAE; pixels: hole filling.",
)
@click.option(
    "--dataset",
    type=click.Choice(["mnist", "fashion-mnist"]),
    default=None,
    help="[default: mnist]",
)
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder holding the IDX files.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 50; pixels: 30]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 100]")
@click.option("--z-dim", type=click.IntRange(min=1), help="[default: 2; pixels: 32]")
@click.option(
    "--hidden", type=WIDTHS, help="Hidden widths H1,H2,... [default: 512,256; pixels: 1024,512]"
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [default: 0.001]"
)
@click.option("--seed", type=int, help="[default: 0]")
@click.option(
    "--arch", type=click.Choice(["mlp", "conv"]), help="Network family [default: mlp; pixels: conv]"
)
@click.option(
    "--likelihood",
    type=click.Choice(["bernoulli", "continuous-bernoulli", "beta", "gaussian"]),
    help="Pixel distribution [default: bernoulli]",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option(
    "--out",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The run folder RUN_DIR.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in RUN_DIR to --epochs (and at --lr)."
)
@click.option("--overwrite", is_flag=True, help="Replace the run in RUN_DIR.")
@click.pass_context
def train(
    ctx,
    condition,
    dataset,
    data_dir,
    epochs,
    batch_size,
    z_dim,
    hidden,
    lr,
    seed,
    arch,
    likelihood,
    device,
    run_dir,
    resume,
    overwrite,
):
    """Train a CVAE and write RUN_DIR/{model.pt, metrics.json, loss.png, samples.png}.

    model.pt and metrics.json are written at the start and rewritten atomically after
    every epoch. Ctrl-C (or SIGTERM) stops after the current step, saves, and exits 130
    (143); --resume continues exactly, to --epochs and, if given, at a new --lr.
    """
    from pyro_cvae.config import default_config
    from pyro_cvae.run import TrainingRun
    from pyro_cvae.train import Hooks

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    torch_device = resolve_device(device)
    if resume:
        given = [
            name
            for name in MODEL_OPTIONS
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                "--resume continues with the run's own settings; drop "
                + ", ".join("--" + name.replace("_", "-") for name in given)
            )
        run = TrainingRun.resume(
            run_dir, epochs=epochs, lr=lr, data_dir=data_dir, device=torch_device
        )
    else:
        config = default_config(
            condition,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            z_dim=z_dim,
            hidden=hidden,
            lr=lr,
            seed=seed,
            arch=arch,
            likelihood=likelihood,
        )
        run = TrainingRun.start(
            run_dir, config, data_dir=data_dir, device=torch_device, overwrite=overwrite
        )
    if run.finished:
        click.echo(
            f"{run_dir} already has {run.trainer.state.epoch} epochs; ask for more with --epochs"
        )
        return
    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    config = run.trainer.config
    click.echo(
        f"training {config.condition} CVAE on {config.dataset} ({torch_device}) "
        f"from epoch {run.trainer.state.epoch + 1} to {config.epochs} into {run_dir}",
        err=True,
    )
    interactive = sys.stderr.isatty()
    bar = None

    def on_step(done, total):
        nonlocal bar
        if not interactive:
            return
        if bar is None:
            bar = click.progressbar(
                length=total, label=f"epoch {run.trainer.state.epoch + 1}", file=sys.stderr
            )
            bar.update(done)
        else:
            bar.update(1)

    def on_epoch(metrics):
        nonlocal bar
        if bar is not None:
            bar.render_finish()
            bar = None
        click.echo(_epoch_line(metrics), err=True)

    try:
        run.train(
            Hooks(on_step=on_step, on_epoch=on_epoch, should_stop=lambda: stop.signal is not None)
        )
    except KeyboardInterrupt:
        click.echo(
            f"{_after_bar(bar)}stopped at once; the last save is kept. "
            f"Resume with: {run.resume_command}",
            err=True,
        )
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.signal is not None and not run.finished:
        state = run.trainer.state
        where = (
            f"in epoch {state.epoch + 1} after step {state.step}"
            if state.step
            else f"after epoch {state.epoch}"
        )
        click.echo(
            f"{_after_bar(bar)}interrupted {where}; saved. Resume with: {run.resume_command}",
            err=True,
        )
        sys.exit(128 + stop.signal)
    click.echo(f"done: {run_dir}/model.pt, metrics.json, loss.png, samples.png")
