"""`pyro-cvae evaluate`: held-out negative ELBO and importance-sampled likelihoods."""

from __future__ import annotations

import json

import click

from .app import cli, load_run
from .params import (
    device_option,
    dist_timeout_option,
    particles_option,
    seed_option,
    temperature_option,
)


def _table(report: dict) -> str:
    lines = [
        f"test negative ELBO: {report['test_neg_elbo']:.2f} nats/image "
        f"({report['images']} test images)"
    ]
    if "test_nll" in report:
        lines.append(
            f"test NLL (IS, {report['particles']} particles): "
            f"{report['test_nll']['mean']:.2f} ± {report['test_nll']['stderr']:.2f}"
        )
    if "test_nll_bits_per_dim" in report:
        bits = report["test_nll_bits_per_dim"]
        lines.append(f"test NLL in bits per dimension: {bits['mean']:.3f} ± {bits['stderr']:.3f}")
    for name, row in report.get("masks", {}).items():
        cells = "  ".join(f"{key} {value:.2f}" for key, value in row.items() if key != "mask")
        lines.append(f"{name}: {cells}")
    if "samples" in report:
        lines += _sample_lines(report["samples"])
    return "\n".join(lines)


def _sample_lines(scores: dict) -> list[str]:
    lines = [
        f"samples: {scores['per_class']} per class, {scores['images']} images, temperature "
        f"{scores['temperature']:g}; the classifier "
        f"of this dataset names {100 * scores['classifier_test_accuracy']:.2f}% of the test images"
    ]
    if "named_as_asked" in scores:
        named = scores["named_as_asked"]
        per_class = "  ".join(f"{name} {100 * v:.1f}" for name, v in named["per_class"].items())
        lines.append(f"named as the class asked: {100 * named['overall']:.2f}% ({per_class})")
    else:
        shares = "  ".join(f"{name} {100 * v:.1f}" for name, v in scores["class_shares"].items())
        lines.append(f"classes the samples are named (%): {shares}")
    training = ""
    if "frechet_distance_training_same_size" in scores:
        training = (
            f"{scores['training_images_same_size']} training images: "
            f"{scores['frechet_distance_training_same_size']:.2f}; "
        )
    lines.append(
        f"Frechet distance to the test images in the classifier's features: "
        f"{scores['frechet_distance']:.2f} ({scores['real_images_same_size']} real test images "
        f"instead: {scores['frechet_distance_real_same_size']:.2f}; {training}two halves of "
        f"the test set: {scores['frechet_distance_test_halves']:.2f})"
    )
    return lines


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--mask",
    "masks",
    multiple=True,
    help="A hole to score (repeatable); pixels runs also score the Pyro example's three protocols.",
)
@click.option(
    "--protocols/--no-protocols",
    default=True,
    show_default=True,
    help="Pixels runs: also score the Pyro example's three protocols (1, 2 or 3 quadrants "
    "given); --no-protocols scores the --mask holes alone.",
)
@particles_option(100, "Importance samples per image (and per label when it is summed out).")
@click.option(
    "--images",
    type=click.IntRange(min=1),
    default=None,
    help="Score only the first N test images [default: all].",
)
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder holding the dataset [default: the one the run was trained from].",
)
@click.option(
    "--samples",
    "per_class",
    type=click.IntRange(min=1),
    default=None,
    help="Also score N samples per class (label and none runs): how often a classifier of "
    "the dataset, trained once on its training split and cached, names the class asked for, "
    "and the Frechet distance to the test images in its features.",
)
@temperature_option("With --samples: scale of p(z | y) to draw them at (0: its mean).")
@seed_option
@device_option("auto")
@dist_timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate(
    run_dir,
    masks,
    protocols,
    particles,
    images,
    data_dir,
    per_class,
    temperature,
    seed,
    device,
    dist_timeout,
    as_json,
):
    """Score the model in RUN_DIR on its dataset's test split (nats per image).

    Under torchrun (`torchrun --nproc-per-node N -m pyro_cvae evaluate ...`) each process
    scores its share of the test images and rank 0 prints the one report; rank 0 alone
    scores the --samples.
    """
    from pyro_cvae.distributed import process_group
    from pyro_cvae.evaluate import check_sample_scores, evaluate_run, sample_report
    from pyro_cvae.masks import parse_mask

    if temperature is not None and per_class is None:
        raise click.UsageError("--temperature goes with --samples")
    specs = [parse_mask(text) for text in masks]
    with process_group(device, dist_timeout) as group:
        if group is None:
            run = load_run(run_dir, device)
        else:  # rank 0 alone tells what is wrong with RUN_DIR
            run = group.rank_0_first(lambda: load_run(run_dir, str(group.device)))
        if per_class is not None:
            check_sample_scores(run.model)
        report = evaluate_run(
            run,
            specs,
            particles=particles,
            limit=images,
            data_dir=data_dir,
            seed=seed,
            group=group,
            protocols=protocols,
        )
        writer = group is None or group.writer
    if not writer:
        return
    if per_class is not None:  # after the group is left: the others need not wait for it
        report["samples"] = sample_report(
            run,
            per_class,
            data_dir=data_dir,
            seed=seed,
            temperature=temperature,
            device=run.model.device,
        )
    click.echo(json.dumps(report, indent=2) if as_json else _table(report))
