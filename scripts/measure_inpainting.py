"""Judge hole filling and Bayes'-rule classification on test images; print and save JSON.

    .venv/bin/python scripts/measure_inpainting.py --pixels-run runs/pixels \
        --label-run runs/cvae50 --judge runs/judge.pt --json runs/inpainting.json

For a `--condition pixels` run: the fraction of completions (one per test image, seed 0)
that the judge (`pyro_cvae.judge`, trained on the run's dataset's training split) names
as the true class, per mask, with no label (`--label-temperature T` applied) and with the
true label (`--guidance W` applied), beside fills that use no model: the blank hole (0),
the hole left grey (0.5), the training mean image, and the training mean image of the
true class (label given). For a label run: `classify` accuracy from the whole image and
with the top half removed, and `inpaint --method posterior` accuracy with no label.
Every image is from the test split, which no model trained on: the run's own, or that of
`--data-dir` (say, the whole dataset for a run trained on a validation carve of its
training split), whose training split the judge then learns. `--device` is where the
judge trains (when its file is missing) and runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from pyro_cvae.atomic import write_json
from pyro_cvae.checkpoint import load_run
from pyro_cvae.cli.params import (
    device_option,
    guidance_option,
    judge_recipe_options,
    label_temperature_option,
    temperature_option,
)
from pyro_cvae.data import load_run_split
from pyro_cvae.inpaint import fill_temperature, inpaint_amortized, merge
from pyro_cvae.judge import judge_for_run, predict
from pyro_cvae.masks import parse_mask
from pyro_cvae.posterior import inpaint_posterior, label_posterior
from pyro_cvae.train import resolve_device

MASKS = ("top-half", "left-half", "center")


def _accuracy(judge, images, labels) -> float:
    return (predict(judge, images) == labels).double().mean().item()


def pixels_run_accuracy(
    judge, model, images, labels, train, seed, temperature, guidance, label_temperature
) -> dict:
    """Per mask: judge accuracy of completions with no label (`label_temperature`
    applied) / the true label (`guidance` applied), and of the fills without a model;
    `train` is the training split (for the mean images)."""
    train_mean = train.images.mean(0)  # [C, H, W]
    class_means = torch.stack(
        [train.images[train.labels == y].mean(0) for y in range(int(train.labels.max()) + 1)]
    )
    results = {}
    for mask in MASKS:
        holes = parse_mask(mask).holes(len(images), size=tuple(images.shape[-2:]))
        row = {}
        for name, given in (("no_label", None), ("true_label", labels)):
            started = time.perf_counter()
            filled = inpaint_amortized(
                model,
                images,
                holes,
                given,
                samples=1,
                seed=seed,
                temperature=temperature,
                guidance=guidance if given is not None else 0.0,
                label_temperature=label_temperature if given is None else 1.0,
            )[:, 0]
            row[name] = _accuracy(judge, filled, labels)
            row[f"{name}_seconds"] = time.perf_counter() - started
            assert torch.equal(filled * ~holes[:, None], images * ~holes[:, None])
        fills = {
            "blank_hole": images.masked_fill(holes[:, None], 0.0),
            "grey_hole": images.masked_fill(holes[:, None], 0.5),
            "mean_image_fill": merge(images, holes, train_mean.expand(len(images), 1, -1, -1, -1)),
            "class_mean_fill_true_label": merge(images, holes, class_means[labels][:, None]),
        }
        for name, filled in fills.items():
            row[name] = _accuracy(judge, filled.reshape(images.shape), labels)
        results[mask] = row
    return results


def label_run_accuracy(judge, model, images, labels, particles, rounds, seed) -> dict:
    """classify accuracy (whole image, top half removed) and posterior inpainting
    accuracy with no label, top half removed; `particles` per round, `rounds` adaptive
    importance-sampling rounds."""
    n = len(images)
    whole = torch.zeros(n, *images.shape[2:], dtype=torch.bool)
    top = parse_mask("top-half").holes(n, size=tuple(images.shape[-2:]))
    results = {"particles": particles, "rounds": rounds}
    for name, holes in (("classify_whole", whole), ("classify_top_half_removed", top)):
        started = time.perf_counter()
        probabilities = label_posterior(
            model, images, holes, particles=particles, rounds=rounds, seed=seed
        )
        results[name] = (probabilities.argmax(1) == labels).double().mean().item()
        results[f"{name}_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    filled = inpaint_posterior(
        model, images, top, None, particles=particles, rounds=rounds, seed=seed
    )[:, 0]
    results["posterior_inpaint_top_half_no_label"] = _accuracy(judge, filled, labels)
    results["posterior_inpaint_seconds"] = time.perf_counter() - started
    assert torch.equal(filled * ~top[:, None], images * ~top[:, None])
    return results


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--pixels-run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--label-run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--judge", "judge_path", required=True, type=click.Path(dir_okay=False))
@judge_recipe_options
@click.option(
    "--images",
    default=10000,
    show_default=True,
    type=click.IntRange(min=1),
    help="The first N test images.",
)
@click.option(
    "--label-run-images",
    default=10000,
    show_default=True,
    type=click.IntRange(min=1),
    help="The first N test images for the label run.",
)
@click.option("--particles", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The dataset folder whose test split is measured (and whose training split the "
    "judge learns) [default: the run's own].",
)
@click.option("--seed", default=0, show_default=True, type=int)
@temperature_option(
    "The pixels run's sampling temperature (`inpaint --temperature`).",
    default="1 unless it was trained with --sample-temperature",
)
@guidance_option
@label_temperature_option
@device_option()
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def main(
    pixels_run,
    label_run,
    judge_path,
    judge_recipe,
    images,
    label_run_images,
    particles,
    rounds,
    data_dir,
    seed,
    temperature,
    guidance,
    label_temperature,
    device,
    json_path,
):
    """Judge the completions and classifications of trained runs (of one dataset)."""
    loaded = {
        name: load_run(folder)
        for name, folder in (("pixels", pixels_run), ("label", label_run))
        if folder
    }
    if not loaded:
        raise click.UsageError("give --pixels-run, --label-run or both")
    first = next(iter(loaded.values()))
    config, data_dir = first.config, data_dir or first.data_dir
    judge = judge_for_run(
        judge_path, config, data_dir, device=resolve_device(device), **judge_recipe
    )
    test = load_run_split(config, "test", data_dir)
    results = {
        "data_dir": str(data_dir) if data_dir else None,
        "judge_accuracy_on_real_test_images": _accuracy(judge, test.images, test.labels),
    }
    if pixels_run is not None:
        model = loaded["pixels"].model
        temperature = fill_temperature(model, loaded["pixels"].config, "amortized", temperature)
        results["pixels_run"] = {
            "folder": str(pixels_run),
            "temperature": temperature,
            "guidance": guidance,
            "label_temperature": label_temperature,
            "images": min(images, len(test.images)),
            "masks": pixels_run_accuracy(
                judge,
                model,
                test.images[:images],
                test.labels[:images],
                load_run_split(config, "train", data_dir),
                seed,
                temperature,
                guidance,
                label_temperature,
            ),
        }
    if label_run is not None:
        model = loaded["label"].model
        n = min(label_run_images, len(test.images))
        results["label_run"] = {
            "folder": str(label_run),
            "images": n,
            **label_run_accuracy(
                judge, model, test.images[:n], test.labels[:n], particles, rounds, seed
            ),
        }
    click.echo(__import__("json").dumps(results, indent=2))
    if json_path is not None:
        write_json(json_path, results)


if __name__ == "__main__":
    main()
