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
    "lr",
    "seed",
)


class _StopFlag:
    """SIGINT asks training to stop after the current step; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


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
@click.option("--data-dir", type=click.Path(), help="Folder holding the IDX files.")
@click.option("--epochs", type=click.IntRange(min=1), help="[default: 50; pixels: 40]")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: 100]")
@click.option("--z-dim", type=click.IntRange(min=1), help="[default: 2; pixels: 32]")
@click.option(
    "--hidden", type=WIDTHS, help="Hidden widths H1,H2,... [default: 512,256; pixels: 1024,512]"
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [default: 0.001]"
)
@click.option("--seed", type=int, help="[default: 0]")
@click.option("--arch", type=click.Choice(["mlp", "conv"]), help="Network family [default: mlp]")
@click.option(
    "--likelihood",
    type=click.Choice(["bernoulli", "continuous-bernoulli", "beta", "gaussian"]),
    help="Pixel distribution [default: bernoulli]",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--out", "run_dir", required=True, type=click.Path(), help="The run folder RUN_DIR.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR to --epochs.")
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

    model.pt and metrics.json are rewritten atomically after every epoch. Ctrl-C stops
    after the current step, saves, and exits 130; --resume continues exactly.
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
        run = TrainingRun.resume(run_dir, epochs=epochs, data_dir=data_dir, device=torch_device)
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
    config = run.trainer.config
    click.echo(
        f"training {config.condition} CVAE on {config.dataset} ({torch_device}) "
        f"from epoch {run.trainer.state.epoch + 1} to {config.epochs} into {run_dir}",
        err=True,
    )
    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, stop)
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
        run.train(Hooks(on_step=on_step, on_epoch=on_epoch, should_stop=lambda: stop.requested))
    finally:
        signal.signal(signal.SIGINT, previous)
    if stop.requested and not run.finished:
        state = run.trainer.state
        click.echo(
            f"\ninterrupted at epoch {state.epoch + 1}, step {state.step}; saved. Resume with: "
            f"pyro-cvae train --out {run_dir} --resume",
            err=True,
        )
        sys.exit(130)
    click.echo(f"done: {run_dir}/model.pt, metrics.json, loss.png, samples.png")
