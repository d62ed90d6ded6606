"""Click parameter types and shared options for the CLI: integer lists, label lists and
output files, refused before work starts; defaults shown from the library's own."""

from __future__ import annotations

import functools

import click


class IntList(click.ParamType):
    """Comma-separated whole numbers, each within [low, high]: "512,256" -> (512, 256)."""

    name = "N[,N...]"

    def __init__(self, low: int, high: int | None = None, what: str = "value") -> None:
        self.low, self.high, self.what = low, high, what

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)
        for number in numbers:
            if number < self.low or (self.high is not None and number > self.high):
                bound = f"{self.low}..{self.high}" if self.high is not None else f">= {self.low}"
                self.fail(f"{self.what} {number} is outside {bound}", param, ctx)
        return numbers


class NameList(click.ParamType):
    """Comma-separated names (or numbers): "cat,dog" -> ("cat", "dog"); checked against the
    run's classes once it is loaded."""

    name = "NAME[,NAME...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(part.strip() for part in str(value).split(","))
        if not all(names):
            self.fail(f"{value!r} has an empty label", param, ctx)
        return names


LABELS = NameList()


class ImageSize(click.ParamType):
    """ "S" (square) or "HxW", sides 1..4096: "32" -> (32, 32), "24x32" -> (24, 32)."""

    name = "S|HxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            self.fail(f"{value!r} is not S or HxW (whole numbers)", param, ctx)
        sides = tuple(int(p) for p in parts) * (3 - len(parts))
        if not all(1 <= side <= 4096 for side in sides):
            self.fail(f"{value!r}: sides must be 1..4096", param, ctx)
        return sides


WIDTHS = IntList(1, 1 << 16, "layer width")


class OutputFile(click.Path):
    """A file to write: not a folder, and in a folder that exists (checked before any work)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value, param, ctx):
        from pathlib import Path

        path = Path(super().convert(value, param, ctx))
        folder = path.parent
        if not folder.is_dir():
            self.fail(f"folder {str(folder)!r} does not exist", param, ctx)
        return str(path)


OUTPUT = OutputFile()


IMAGES_HELP = (
    "Images of the run's size: a PNG or JPEG, a folder of them, an .npy (grey [N, H, W], "
    "colour [N, H, W, 3]; 0..1 or 0..255) or an IDX images file."
)


def shown_default(name: str) -> str:
    """ "[default: X]" for a `RunConfig` field, with "; pixels: Y", "; colour: Z" and
    "; colour label: W" where a hole-filling run's, a colour dataset's or a colour run of
    one condition's default differs (`config.PIXELS_DEFAULTS`, `config.COLOUR_DEFAULTS`,
    `config.COLOUR_CONDITION_DEFAULTS`)."""
    import dataclasses

    from pyro_cvae.config import (
        COLOUR_CONDITION_DEFAULTS,
        COLOUR_DEFAULTS,
        PIXELS_DEFAULTS,
        RunConfig,
    )

    def text(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    default = {f.name: f.default for f in dataclasses.fields(RunConfig)}[name]
    shown = [text(default)]
    if name in PIXELS_DEFAULTS:
        shown.append(f"pixels: {text(PIXELS_DEFAULTS[name])}")
    if name in COLOUR_DEFAULTS:
        shown.append(f"colour: {text(COLOUR_DEFAULTS[name])}")
    for condition, values in COLOUR_CONDITION_DEFAULTS.items():
        if name in values:
            shown.append(f"colour {condition}: {text(values[name])}")
    return f"[default: {'; '.join(shown)}]"


def seed_option(command):
    """`--seed S`: seeds every random draw of the command."""
    return click.option("--seed", type=int, default=0, show_default=True)(command)


def device_option(default: str = "cpu"):
    """`--device auto|cpu|cuda` (auto: CUDA when present)."""
    return click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default=default, show_default=True
    )


def dist_timeout_option(command):
    """`--dist-timeout SECONDS`: under torchrun, how long a process waits for the others."""
    from pyro_cvae.config import DIST_TIMEOUT_S

    return click.option(
        "--dist-timeout",
        type=click.FloatRange(min=1),
        default=DIST_TIMEOUT_S,
        show_default=True,
        help="Under torchrun: seconds a process waits for the others before it stops with "
        "an error (a process that died or hangs).",
    )(command)


def judge_recipe_options(function):
    """`--judge-epochs`, `--judge-seed`, `--judge-width`, `--judge-augmentation`, handed
    to `function` as one `judge_recipe` dict (`judge.load_or_train_judge`'s epochs, seed,
    width and augmentation): the recipe of the measure scripts' judge; a judge file
    trained with another is replaced."""
    from pyro_cvae.judge import DIGIT_AUGMENTATIONS, EPOCHS, PICTURE_WIDTH

    @functools.wraps(function)
    def with_recipe(*args, judge_epochs, judge_seed, judge_width, judge_augmentation, **kwargs):
        recipe = {
            "epochs": judge_epochs,
            "seed": judge_seed,
            "width": judge_width,
            "augmentation": judge_augmentation,
        }
        return function(*args, judge_recipe=recipe, **kwargs)

    options = [
        click.option(
            "--judge-epochs",
            type=click.IntRange(min=1),
            help=f"[default: {EPOCHS['digits']} for 28x28 grey images, "
            f"{EPOCHS['pictures']} for others]",
        ),
        click.option("--judge-seed", default=0, show_default=True, type=int),
        click.option(
            "--judge-width",
            default=PICTURE_WIDTH,
            show_default=True,
            type=click.IntRange(min=1),
            help="First conv channels of a picture judge.",
        ),
        click.option(
            "--judge-augmentation",
            default=DIGIT_AUGMENTATIONS[0],
            show_default=True,
            type=click.Choice(DIGIT_AUGMENTATIONS),
            help="A digit judge's training images: turned, scaled and shifted (affine), "
            "or shifted alone, the recipe of the figures before 2026-11-27 (with "
            "--judge-epochs 12).",
        ),
    ]
    for option in reversed(options):
        with_recipe = option(with_recipe)
    return with_recipe


# What a `--temperature` left out draws at, as its help says it.
RUN_TEMPERATURE = (
    "1 unless it was trained with --sample-temperature; 0.8 for a --preset best label run"
)


def temperature_option(help: str, default: str = RUN_TEMPERATURE):
    """`--temperature T` in [0, 1]: the scale of the latent's Gaussian to draw z from; None
    when not given, for the run's own (`RunConfig.drawing_temperature`), which `default`
    tells the help about."""
    return click.option(
        "--temperature",
        type=click.FloatRange(0.0, 1.0),
        default=None,
        help=f"{help} [default: the run's sampling temperature, {default}]",
    )


label_temperature_option = click.option(
    "--label-temperature",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="For --method amortized with no label: draw each fill's class from p(y | observed) "
    "with its logits divided by T, so that below 1 the fills keep to the likelier classes "
    "(0: the most probable class; 1: the model's own conditional).",
)


guidance_option = click.option(
    "--guidance",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="For --method amortized: move the mean of p(z | observed, y) W times its distance "
    "from that of p(z | observed), so that the fills follow the label more (classifier-free "
    "guidance on the latent; 0: the model's own conditional).",
)


def out_option(help: str):
    """`--out FILE`, required, in a folder that exists."""
    return click.option("--out", required=True, type=OUTPUT, help=help)


def particles_option(default: int, help: str):
    """`--particles K`: importance samples."""
    return click.option(
        "--particles", type=click.IntRange(min=1), default=default, show_default=True, help=help
    )


def rounds_option(default: int | None, shown: str | None = None, scope: str = ""):
    """`--rounds R`: adaptive importance-sampling rounds; `shown` describes a None default,
    `scope` ends the help (e.g. which method the option is for)."""
    return click.option(
        "--rounds",
        type=click.IntRange(min=1, max=20),
        default=default,
        show_default=shown or True,
        help="Adaptive importance-sampling rounds, --particles each: every round after "
        "the first adds to the proposal a Gaussian fitted to the weighted particles so "
        f"far; it pays when a large hole leaves the guide a poor guess.{scope}",
    )


def input_option(command):
    """`--input FILE`: the images to work on (see `IMAGES_HELP`)."""
    return click.option(
        "--input",
        "input_path",
        required=True,
        type=click.Path(exists=True),
        help=IMAGES_HELP,
    )(command)
