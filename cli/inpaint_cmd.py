"""`pyro-cvae inpaint`: fill the hole a mask names, K completions per image."""

from __future__ import annotations

import click

from .app import cli, load_run, split_output
from .params import (
    LABELS,
    device_option,
    guidance_option,
    input_option,
    label_temperature_option,
    out_option,
    particles_option,
    rounds_option,
    seed_option,
    temperature_option,
)

PNG_MAX_IMAGES = 100


def _read_labels(config, label, labels_path, count: int):
    """The labels that --label (`[count]`, one for every image) or --labels (one per
    image) ask for, by name or number among the run's classes (`config`), or None."""
    import torch

    from pyro_cvae.images import read_labels

    if label is not None:
        (index,) = config.label_indices(label)
        return torch.full((count,), index, dtype=torch.long)
    if labels_path is None:
        return None
    return read_labels(labels_path, config.num_labels, config.label_names)


def _write(completions, images, holes, out: str) -> None:
    """OUT.npy (the completions) and OUT.png (the first `PNG_MAX_IMAGES` rows)."""
    from pyro_cvae import plots
    from pyro_cvae.images import write_completions

    png, npy = split_output(out)
    shape = write_completions(npy, completions)
    shown = slice(0, PNG_MAX_IMAGES)
    whole = images[shown] if bool((images[shown] * holes[shown, None]).sum() > 0) else None
    plots.inpainting_panels(images[shown], holes[shown], completions[shown], png, whole)
    note = f" (the PNG shows the first {PNG_MAX_IMAGES})" if len(images) > PNG_MAX_IMAGES else ""
    click.echo(f"wrote {npy} {shape} and {png}{note}")


@cli.command("inpaint")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--mask",
    "mask_text",
    required=True,
    help="The hole: top-half, bottom-half, "
    "left-half, right-half, quadrant-tl|tr|bl|br, center (the middle half), "
    "random-pixels:P, box:ROW,COL,H,W (pixels), a PNG of the images' size (white = hole), "
    "or not:MASK.",
)
@input_option
@click.option(
    "--label", "label", type=LABELS, help="The class every image should become (name or number)."
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False),
    help="One label per image: an IDX labels file, an .npy of N integers, or a .txt of one "
    "class name or number per line.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Completions per image (K).",
)
@click.option(
    "--method",
    type=click.Choice(["amortized", "posterior"]),
    default=None,
    help="amortized: the prior network of a --condition pixels run; posterior: "
    "condition a label/none run's generative model on the observed pixels. "
    "[default: amortized for pixels runs, posterior otherwise]",
)
@particles_option(200, "Importance samples per image, label and round for --method posterior.")
@rounds_option(5, scope=" For --method posterior.")
@temperature_option(
    "Scale of p(z | observed, y) to draw z from, --method amortized: below 1, "
    "completions nearer the typical one (0: its mean).",
    default="1 unless it was trained with --sample-temperature",
)
@guidance_option
@label_temperature_option
@seed_option
@device_option("cpu")
@out_option(
    "Writes OUT.npy ([N, H, W] for K = 1, else [N, K, H, W]; colour: [..., 3]) and OUT.png."
)
def inpaint(
    run_dir, mask_text, input_path, label, labels_path, samples, method, particles, rounds,
    temperature, guidance, label_temperature, seed, device, out,
):  # fmt: skip
    """Fill the --mask hole of each --input image with the model in RUN_DIR.

    Observed pixels are copied from the input exactly; only the hole is filled.
    """
    import torch

    from pyro_cvae.images import read_images
    from pyro_cvae.inpaint import fill_holes, fill_temperature
    from pyro_cvae.masks import parse_mask

    if label is not None and labels_path is not None:
        raise click.UsageError("give --label or --labels, not both")
    if label is not None and len(label) != 1:
        raise click.UsageError("--label takes one label here; use --labels for one per image")
    mask = parse_mask(mask_text)
    run = load_run(run_dir, device)
    images = read_images(input_path, run.config.image_shape[0])
    labels = _read_labels(run.config, label, labels_path, len(images))
    holes = mask.holes(len(images), torch.Generator().manual_seed(seed), size=images.shape[-2:])
    completions = fill_holes(
        run.model,
        images,
        holes,
        labels,
        method=method,
        samples=samples,
        particles=particles,
        rounds=rounds,
        seed=seed,
        temperature=fill_temperature(run.model, run.config, method, temperature),
        guidance=guidance,
        label_temperature=label_temperature,
    )
    _write(completions, images, holes, out)
