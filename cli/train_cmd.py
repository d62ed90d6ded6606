"""`pyro-cvae train`: train a CVAE into RUN_DIR, resumable, saving after every epoch."""

from __future__ import annotations

import signal
import sys

import click

from pyro_cvae.config import (
    ARCHITECTURES,
    CONDITIONS,
    DATASETS,
    LIKELIHOODS,
    LR_SCHEDULES,
    MAX_TRAIN_PARTICLES,
    PRESET_DEFAULTS,
    PRESETS,
    PRIORS,
)

from .app import cli
from .params import WIDTHS, ImageSize, device_option, dist_timeout_option, shown_default

# Options that set the run; on --resume each must equal the run's own.
RUN_SETTINGS = (
    "condition",
    "dataset",
    "arch",
    "likelihood",
    "z_dim",
    "prior",
    "hidden",
    "conv_width",
    "batch_size",
    "seed",
    "image_size",
    "grayscale",
    "train_holes",
    "train_masks",
    "shift",
    "rotation",
    "scaling",
    "train_particles",
    "class_weight",
    "class_after",
    "class_lr_scale",
    "lr_schedule",
    "kl_warmup",
    "label_every_level",
    "baseline_guess",
    "sample_temperature",
    "preset",
)


def _as_options(values: dict) -> str:
    """A preset's values as the options that set them (`--train-mask` once per mask)."""
    return " ".join(
        " ".join(f"--train-mask {mask}" for mask in value)
        if key == "train_masks"
        else f"--{key.replace('_', '-')} {value}"
        for key, value in values.items()
    )


def _train_masks(ctx, param, values: tuple[str, ...]) -> tuple[str, ...] | None:
    """The `--train-mask` values, each a fixed mask a run can keep (`masks.training_mask`);
    None when none is given, so that the defaults (or a preset's) apply."""
    from pyro_cvae.errors import DataError
    from pyro_cvae.masks import training_mask

    try:
        texts = tuple(training_mask(text).text for text in values)
    except DataError as error:
        raise click.BadParameter(str(error)) from None
    return texts or None


class _StopFlag:
    """Ctrl-C (or SIGTERM) asks training to stop after the current step; a second Ctrl-C
    stops at once, keeping the last save."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum


class _Progress:
    """A progress bar per epoch on an interactive stderr, and one line per finished epoch."""

    def __init__(self, run) -> None:
        self.run, self.bar = run, None
        self.interactive = sys.stderr.isatty()

    def on_step(self, done: int, total: int) -> None:
        if not self.interactive:
            return
        if self.bar is None:
            epoch = self.run.trainer.state.epoch + 1
            self.bar = click.progressbar(length=total, label=f"epoch {epoch}", file=sys.stderr)
            self.bar.update(done)
        else:
            self.bar.update(1)

    def on_epoch(self, m) -> None:
        self.end_line()
        click.echo(
            f"epoch {m.epoch}: train {m.train_loss:.2f}  test {m.test_loss:.2f} nats/image  "
            f"{m.seconds:.1f}s  {m.images_per_s:,.0f} images/s"
            + ("" if m.class_loss is None else f"  label cross-entropy {m.class_loss:.3f}")
            + ("" if m.auxiliary_loss is None else f"  baseline {m.auxiliary_loss:.2f}"),
            err=True,
        )

    def end_line(self) -> None:
        """End a bar left mid-line."""
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


def _speaker(run):
    """`click.echo`, or under torchrun on the ranks other than 0 a function that says
    nothing: rank 0 speaks for the group."""
    return click.echo if run.writer else lambda *args, **kwargs: None


def _open_run(ctx: click.Context, options: dict, resume: bool, overwrite: bool, group):
    """The `TrainingRun` the options ask for: resumed, or started from the defaults of the
    condition with every option given on top; on every process of `group` under torchrun."""
    from pyro_cvae.run import TrainingRun
    from pyro_cvae.train import resolve_device

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    device = group.device if group is not None else resolve_device(options["device"])
    del options["device"]
    run_dir, data_dir = options.pop("run_dir"), options.pop("data_dir")
    if resume:
        given = {
            name: options[name]
            for name in RUN_SETTINGS
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        }
        return TrainingRun.resume(
            run_dir,
            epochs=options["epochs"],
            lr=options["lr"],
            data_dir=data_dir,
            device=device,
            settings=given,
            group=group,
        )
    return TrainingRun.create(
        run_dir,
        options.pop("condition"),
        data_dir=data_dir,
        device=device,
        overwrite=overwrite,
        group=group,
        **options,
    )


def _train(run, run_dir: str) -> None:
    """Train until done or stopped by a signal; exit 128 + the signal after saving.
    Under torchrun, rank 0 alone tells the user, and a signal to any process (torchrun
    passes one to each) stops them all at the same step."""
    from pyro_cvae.train import Hooks

    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    config, group = run.trainer.config, run.trainer.group
    where = run.trainer.device if group is None else f"{group.world_size} processes, {group.device}"
    say = _speaker(run)
    say(
        f"training {config.condition} CVAE on {config.dataset} ({where}) "
        f"from epoch {run.trainer.state.epoch + 1} to {config.epochs} into {run_dir}",
        err=True,
    )
    progress = _Progress(run)
    try:
        run.train(
            Hooks(
                on_step=progress.on_step if run.writer else None,
                on_epoch=progress.on_epoch if run.writer else None,
                should_stop=lambda: stop.signal is not None,
            )
        )
    except KeyboardInterrupt:
        progress.end_line()
        say(
            f"stopped at once; the last save is kept. Resume with: {run.resume_command}",
            err=True,
        )
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not run.finished:  # stopped by a signal, here or on another process of the group
        progress.end_line()
        state = run.trainer.state
        place = (
            f"in epoch {state.epoch + 1} after step {state.step}"
            if state.step
            else f"after epoch {state.epoch}"
        )
        say(f"interrupted {place}; saved. Resume with: {run.resume_command}", err=True)
        sys.exit(128 + (stop.signal or signal.SIGTERM))


@cli.command("train")
@click.option(
    "--condition",
    type=click.Choice(CONDITIONS),
    default="label",
    show_default=True,
    help="label: CVAE on the class; none: plain VAE; pixels: hole filling.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    help="Start from a preset's defaults (grey images): "
    + "; ".join(
        f"{name}, {condition} runs: " + (_as_options(values) or "their defaults")
        for name, conditions in PRESET_DEFAULTS.items()
        for condition, values in conditions.items()
    )
    + ". Options given explicitly still win.",
)
@click.option("--dataset", type=click.Choice(DATASETS), help=shown_default("dataset"))
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder holding the dataset: the IDX files, the CIFAR-10 batches, or for "
    "--dataset folder ROOT with ROOT/train/<class>/*.png|jpg (and ROOT/test/<class>/*).",
)
@click.option(
    "--image-size",
    type=ImageSize(),
    help="--dataset folder: resize the pictures to S x S or H x W [default: their own size, "
    "when all agree].",
)
@click.option(
    "--grayscale", is_flag=True, help="--dataset folder: one grey channel, whatever the pictures."
)
@click.option("--epochs", type=click.IntRange(min=1), help=shown_default("epochs"))
@click.option("--batch-size", type=click.IntRange(min=1), help=shown_default("batch_size"))
@click.option("--z-dim", type=click.IntRange(min=1), help=shown_default("z_dim"))
@click.option(
    "--prior",
    type=click.Choice(PRIORS),
    help="p(z | y) of a label run: N(0, I), or learned per label " + shown_default("prior"),
)
@click.option(
    "--conv-width",
    type=click.IntRange(min=1),
    help="--arch conv/resnet: channels of the first level, doubling below "
    + shown_default("conv_width"),
)
@click.option("--hidden", type=WIDTHS, help="Hidden widths H1,H2,... " + shown_default("hidden"))
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="Adam learning rate " + shown_default("lr"),
)
@click.option(
    "--lr-schedule",
    type=click.Choice(LR_SCHEDULES),
    help="Adam's rate through the epochs: constant, or cosine (from --lr in the first "
    "epoch down to near 0 in the last; a resume to more --epochs goes on along the curve "
    "of the new total) " + shown_default("lr_schedule"),
)
@click.option("--seed", type=int, help=shown_default("seed"))
@click.option(
    "--arch", type=click.Choice(ARCHITECTURES), help="Network family " + shown_default("arch")
)
@click.option(
    "--likelihood",
    type=click.Choice(LIKELIHOODS),
    help="Pixel distribution " + shown_default("likelihood"),
)
@click.option(
    "--train-holes",
    type=click.FloatRange(0, 1),
    help="Label/none runs: the share of training images given a random hole; above 0 the "
    "encoder also reads the hole mask, a better guide for classify --mask and posterior "
    "inpainting " + shown_default("train_holes"),
)
@click.option(
    "--train-mask",
    "train_masks",
    multiple=True,
    callback=_train_masks,
    help="Pixels runs (and runs with --train-holes): also train on this fixed hole, e.g. "
    "not:quadrant-bl (only the bottom-left quadrant seen) or box:ROW,COL,H,W; repeatable. "
    "The training mixture's half of fixed holes is then uniform over the named regions and "
    "these [default: the named regions only].",
)
@click.option(
    "--shift",
    type=click.IntRange(min=0),
    help="Move each training image by up to S random pixels along each axis, every step "
    + shown_default("shift"),
)
@click.option(
    "--rotation",
    type=click.FloatRange(0, 180),
    metavar="DEGREES",
    help="Then turn each training image about its centre by a random angle of up to "
    "DEGREES either way, every step " + shown_default("rotation"),
)
@click.option(
    "--scaling",
    type=click.FloatRange(0, 1, max_open=True),
    metavar="SHARE",
    help="And scale it by a random factor in [1 - SHARE, 1 + SHARE], every step "
    + shown_default("scaling"),
)
@click.option(
    "--train-particles",
    type=click.IntRange(1, MAX_TRAIN_PARTICLES),
    help="K > 1: train on the importance-weighted bound of K particles (IWAE) instead of "
    "the ELBO " + shown_default("train_particles"),
)
@click.option(
    "--class-weight",
    type=click.FloatRange(min=0),
    help="Label runs: add W x the cross-entropy of p(y | x) by Bayes' rule (classify's "
    "estimate, from the bound of every label) to the objective; each image is then scored "
    "under every label " + shown_default("class_weight"),
)
@click.option(
    "--class-after",
    type=click.IntRange(min=0),
    help="With --class-weight: add it after the first N epochs only (0: in every epoch) "
    + shown_default("class_after"),
)
@click.option(
    "--class-lr-scale",
    type=click.FloatRange(min=0, min_open=True),
    help="With --class-weight: Adam's learning rate in those epochs, as a multiple of --lr "
    + shown_default("class_lr_scale"),
)
@click.option(
    "--kl-warmup",
    type=click.IntRange(min=0),
    metavar="EPOCHS",
    help="KL warm-up: weigh the KL part of the ELBO from near 0 up to 1, linearly by step, "
    "over the first EPOCHS epochs (0: off); the losses shown are the full -ELBO "
    + shown_default("kl_warmup"),
)
@click.option(
    "--label-every-level/--no-label-every-level",
    default=None,
    help="Label runs with --arch conv/resnet: the decoder reads the label at every level of "
    "its transposed convolutions, not only at its input " + shown_default("label_every_level"),
)
@click.option(
    "--baseline-guess/--no-baseline-guess",
    default=None,
    help="Pixels runs: Sohn et al.'s initial guess, a deterministic baseline network (trained on "
    "its own loss beside the ELBO) whose prediction of the hole the other networks see "
    "there instead of zeros " + shown_default("baseline_guess"),
)
@click.option(
    "--sample-temperature",
    type=click.FloatRange(0.0, 1.0),
    metavar="T",
    help="The temperature the run's samples are drawn at (sample, evaluate --samples, inpaint "
    "of a pixels run, serve, samples.png) when --temperature is not given: p(z | ...) with its "
    "scales times T (0: its mean); it changes no training " + shown_default("sample_temperature"),
)
@device_option("auto")
@dist_timeout_option
@click.option(
    "--out",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The run folder RUN_DIR.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in RUN_DIR to --epochs (and at --lr); the other options may be "
    "given again with the run's own values.",
)
@click.option("--overwrite", is_flag=True, help="Replace the run in RUN_DIR.")
@click.pass_context
def train(ctx, resume, overwrite, dist_timeout, **options):
    """Train a CVAE and write RUN_DIR/{model.pt, metrics.json, loss.png, samples.png}.

    model.pt and metrics.json are written at the start and rewritten atomically after
    every epoch. Ctrl-C (or SIGTERM) stops after the current step, saves, and exits 130
    (143); the same command with --resume continues exactly, to --epochs and, if given,
    at a new --lr.

    Under torchrun (`torchrun --nproc-per-node N -m pyro_cvae train ...`) the processes
    train one run together, data-parallel; --batch-size is the batch of all of them.
    """
    from pyro_cvae.distributed import process_group

    with process_group(options["device"], dist_timeout) as group:
        _open_and_train(ctx, options, resume, overwrite, group)


def _open_and_train(ctx, options, resume, overwrite, group) -> None:
    """The train command inside its process group. A function of its own so that the run,
    and the DistributedDataParallel wrapper that holds the group, are gone before the group
    is left: a group freed after `destroy_process_group` (at interpreter exit, say) can
    abort the process in Gloo's teardown."""
    run_dir = options["run_dir"]
    run = _open_run(ctx, options, resume, overwrite, group)
    say = _speaker(run)
    for note in run.notes:
        say(note, err=True)
    if run.finished:
        say(f"{run_dir} already has {run.trainer.state.epoch} epochs; ask for more with --epochs")
        return
    _train(run, run_dir)
    say(f"done: {run_dir}/model.pt, metrics.json, loss.png, samples.png")
