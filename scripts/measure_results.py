"""Measure trained runs with an independent judge; print the numbers and optionally save JSON.

    .venv/bin/python scripts/measure_results.py --cvae-run runs/cvae50 --vae-run runs/vae50 \
        --judge runs/judge.pt --json runs/results.json

The judge (`pyro_cvae.judge`) is loaded from `--judge`, or trained on the
training split and cached there; `--device cuda` trains it on a GPU (the CIFAR-10
judge's 30 epochs: 83 s on an H200). Measurements are functions: `JUDGE_MEASUREMENTS` take
the `Context`; `RUN_MEASUREMENTS` take the `Context` and one `Run`, and return None
where they do not apply to that run. Add a function to a table to add a measurement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from pyro_cvae.atomic import write_json
from pyro_cvae.checkpoint import LoadedRun, load_run
from pyro_cvae.cli.params import device_option, judge_recipe_options, temperature_option
from pyro_cvae.data import Split, load_run_splits
from pyro_cvae.errors import CheckpointError, CvaeError
from pyro_cvae.judge import accuracy, blur, features, judge_for_run
from pyro_cvae.run import METRICS_NAME
from pyro_cvae.sample_scores import (
    draw_per_class,
    frechet_distance,
    named_as_asked,
    score_samples,
    split_test,
    training_stand_ins,
)
from pyro_cvae.train import resolve_device

JUDGE_BLUR = 1.0  # pixels: the blurred test images the judge is also scored on


@dataclass
class Context:
    """What every measurement may use: the judge, the test split `[N, C, H, W]` / `[N]`
    of the runs' dataset, its class names, the sampling settings (images per label,
    random seed, temperature: None for each run's own) and the training split."""

    judge: torch.nn.Module
    test: Split
    label_names: tuple[str, ...]
    per_label: int
    seed: int
    temperature: float | None = None
    train: Split | None = None


@dataclass
class Run:
    """One trained run: its folder and its loaded model."""

    name: str
    folder: Path
    loaded: LoadedRun


def judge_test_accuracy(context: Context) -> dict:
    """The judge's accuracy on the whole test split, sharp and blurred by a Gaussian of
    `JUDGE_BLUR` pixels."""
    test = context.test
    return {
        "accuracy": accuracy(context.judge, test.images, test.labels),
        "blurred_accuracy": accuracy(context.judge, blur(test.images, JUDGE_BLUR), test.labels),
        "blur_pixels": JUDGE_BLUR,
        "images": len(test.labels),
    }


def final_test_loss(context: Context, run: Run) -> dict:
    """The last epoch's test negative ELBO (nats per image) from the run's metrics.json."""
    path = run.folder / METRICS_NAME
    try:
        last = json.loads(path.read_text())["epochs"][-1]
        return {"epoch": last["epoch"], "test_nelbo": last["test_loss"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise CheckpointError(f"{path}: no final test loss ({error})") from None


def sample_accuracy(context: Context, run: Run) -> dict | None:
    """Draw `per_label` images for each class and classify them with the judge: the
    fraction classified as the class asked for, overall and per class (by name). For a
    model that ignores the label (the VAE) this is the chance baseline."""
    model = run.loaded.model
    if not model.generative:
        return None
    temperature = run.loaded.config.drawing_temperature(context.temperature)
    images, asked = draw_per_class(
        model,
        len(context.label_names),
        context.per_label,
        seed=context.seed,
        temperature=temperature,
    )
    named = named_as_asked(context.judge, images, asked, context.label_names)
    return {
        "overall": named["overall"],
        "per_label": named["per_class"],
        "images_per_label": context.per_label,
        "seed": context.seed,
        "temperature": temperature,
    }


@torch.no_grad()
def frechet_distances(context: Context, run: Run) -> dict | None:
    """Frechet distances to the test images in the judge's features, as `evaluate
    --samples` reports them (`sample_scores.score_samples`): of the run's samples and of
    the training images that stand in for them, and beside those the run's
    reconstructions of the same training images (the decoder's mean at the mean of
    q(z | x, y)). Keys `samples`, `reconstructions`, `training_images` (distances),
    `sample_count` and `training_image_count`. Reconstructions as far as the samples put
    most of the distance on the decoder, not on the prior over z. None for a pixels run
    or without the training split."""
    model = run.loaded.model
    if not model.generative or context.train is None:
        return None
    test, train, count = context.test, context.train, len(context.label_names)
    scores = score_samples(model, context.judge, test.images, test.labels, context.label_names,
                           per_class=context.per_label, seed=context.seed,
                           temperature=run.loaded.config.drawing_temperature(context.temperature),
                           train_images=train.images,
                           train_labels=train.labels)  # fmt: skip
    rows = training_stand_ins(train.labels, count, context.per_label,
                              labelled=bool(model.num_labels))  # fmt: skip
    labels = train.labels[rows].to(model.device) if model.num_labels else None
    loc, _ = model.encode(model.flat_images(train.images[rows]), labels)
    reconstructions = model.likelihood.mean(model.decode(loc, labels))
    _, rest = split_test(features(context.judge, test.images), scores["images"])
    return {
        "samples": scores["frechet_distance"],
        "reconstructions": frechet_distance(
            features(context.judge, reconstructions.view(-1, *model.image_shape).cpu()), rest
        ),
        "training_images": scores["frechet_distance_training_same_size"],
        "sample_count": scores["images"],
        "training_image_count": scores["training_images_same_size"],
    }


JUDGE_MEASUREMENTS: dict[str, Callable[[Context], dict]] = {
    "judge_test_accuracy": judge_test_accuracy,
}
RUN_MEASUREMENTS: dict[str, Callable[[Context, Run], dict | None]] = {
    "final_test_loss": final_test_loss,
    "sample_accuracy": sample_accuracy,
    "frechet_distances": frechet_distances,
}


def measure(context: Context, runs: list[Run]) -> dict:
    """Every measurement: `{judge measurement: value, "runs": {run: {measurement: value}}}`."""
    results = {name: measurement(context) for name, measurement in JUDGE_MEASUREMENTS.items()}
    results["runs"] = {}
    for run in runs:
        values = {"folder": str(run.folder), "condition": run.loaded.config.condition}
        for name, measurement in RUN_MEASUREMENTS.items():
            value = measurement(context, run)
            if value is not None:
                values[name] = value
        results["runs"][run.name] = values
    return results


def report(results: dict) -> str:
    """The results as a few lines of text."""
    judge = results["judge_test_accuracy"]
    lines = [
        f"judge test accuracy: {judge['accuracy']:.2%} sharp, {judge['blurred_accuracy']:.2%} "
        f"blurred by {judge['blur_pixels']} pixels ({judge['images']} test images)"
    ]
    for name, run in results["runs"].items():
        loss = run["final_test_loss"]
        lines.append(
            f"{name} ({run['folder']}, condition {run['condition']}): "
            f"final test -ELBO {loss['test_nelbo']:.2f} nats/image (epoch {loss['epoch']})"
        )
        samples = run.get("sample_accuracy")
        if samples:
            per_label = "  ".join(f"{d}:{a:.0%}" for d, a in samples["per_label"].items())
            lines.append(
                f"  sample accuracy {samples['overall']:.1%} "
                f"({samples['images_per_label']} per label, seed {samples['seed']}, "
                f"temperature {samples['temperature']})"
            )
            lines.append(f"  per label  {per_label}")
        distances = run.get("frechet_distances")
        if distances:
            lines.append(
                f"  Frechet distance to the test images: samples {distances['samples']:.2f}, "
                f"reconstructions {distances['reconstructions']:.2f}, training images "
                f"{distances['training_images']:.2f} ({distances['sample_count']} samples, "
                f"{distances['training_image_count']} of each other set)"
            )
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cvae-run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--vae-run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--judge",
    "judge_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The judge's file; trained on the training split and saved here when missing.",
)
@judge_recipe_options
@click.option("--per-label", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int, help="Sampling seed.")
@temperature_option("Sampling temperature (`sample --temperature`).")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@device_option()
@click.option(
    "--diagonal-prior",
    is_flag=True,
    help="Sample a learned p(z | y) as the diagonal Gaussian it trains as (the model in "
    "train mode), not its refit: the comparison in docs/results.md.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def main(
    cvae_run,
    vae_run,
    judge_path,
    judge_recipe,
    per_label,
    seed,
    temperature,
    data_dir,
    device,
    diagonal_prior,
    json_path,
) -> None:
    """Measure the CVAE and VAE runs (of one dataset) with an independent classifier of
    their dataset, trained on its training split."""
    try:
        runs = [
            Run(name, folder, load_run(folder))
            for name, folder in (("cvae", cvae_run), ("vae", vae_run))
            if folder is not None
        ]
        if not runs:
            raise click.UsageError("give --cvae-run, --vae-run or both")
        for run in runs if diagonal_prior else []:
            run.loaded.model.train()  # decoders have no dropout: only the prior changes
        first = runs[0].loaded
        config, data_dir = first.config, data_dir or first.data_dir
        judge = judge_for_run(
            judge_path, config, data_dir, device=resolve_device(device), **judge_recipe
        )
        train, test = load_run_splits(config, data_dir)
        context = Context(
            judge, test, config.label_names, per_label, seed, temperature, train=train
        )
        results = measure(context, runs)
        click.echo(report(results))
        if json_path is not None:
            write_json(json_path, results)
    except CvaeError as error:
        raise click.ClickException(str(error)) from None


if __name__ == "__main__":
    main()
