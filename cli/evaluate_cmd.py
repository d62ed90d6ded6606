"""`pyro-cvae evaluate`: held-out negative ELBO and importance-sampled likelihoods."""

from __future__ import annotations

import json

import click

from .app import cli, load_run
from .params import device_option, dist_timeout_option, particles_option, seed_option


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
    return "\n".join(lines)


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--mask",
    "masks",
    multiple=True,
    help="A hole to score (repeatable); pixels runs also score the Pyro example's three protocols.",
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
@seed_option
@device_option("auto")
@dist_timeout_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate(run_dir, masks, particles, images, data_dir, seed, device, dist_timeout, as_json):
    """Score the model in RUN_DIR on its dataset's test split (nats per image).

    Under torchrun (`torchrun --nproc-per-node N -m pyro_cvae evaluate ...`) each process
    scores its share of the test images and rank 0 prints the one report.
    """
    from pyro_cvae.distributed import process_group
    from pyro_cvae.evaluate import evaluate_run
    from pyro_cvae.masks import parse_mask

    specs = [parse_mask(text) for text in masks]
    with process_group(device, dist_timeout) as group:
        if group is None:
            run = load_run(run_dir, device)
        else:  # rank 0 alone tells what is wrong with RUN_DIR
            run = group.rank_0_first(lambda: load_run(run_dir, str(group.device)))
        report = evaluate_run(
            run,
            specs,
            particles=particles,
            limit=images,
            data_dir=data_dir,
            seed=seed,
            group=group,
        )
        if group is None or group.writer:
            click.echo(json.dumps(report, indent=2) if as_json else _table(report))
