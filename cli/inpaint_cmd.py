"""`pyro-cvae inpaint`: fill the hole a mask names, K completions per image."""

from __future__ import annotations

import click

from .app import cli, resolve_device, split_output
from .params import (
    LABELS,
    device_option,
    input_option,
    out_option,
    particles_option,
    rounds_option,
    seed_option,
)

PNG_MAX_IMAGES = 100


@cli.command("inpaint")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--mask",
    "mask_text",
    required=True,
    help="The hole: top-half, bottom-half, "
    "left-half, right-half, quadrant-tl|tr|bl|br, center, random-pixels:P, "
    "box:ROW,COL,H,W, a 28x28 PNG (white = hole), or not:MASK.",
)
@input_option
@click.option("--label", "label", type=LABELS, help="The digit every image should become.")
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False),
    help="One label per image: an IDX labels file or an .npy of N integers.",
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
@seed_option
@device_option("cpu")
@out_option("Writes OUT.npy ([N, 28, 28] for K = 1, else [N, K, 28, 28]) and OUT.png.")
def inpaint(
    run_dir,
    mask_text,
    input_path,
    label,
    labels_path,
    samples,
    method,
    particles,
    rounds,
    seed,
    device,
    out,
):
    """Fill the --mask hole of each --input image with the model in RUN_DIR.

    Observed pixels are copied from the input exactly; only the hole is filled.
    """
    import numpy as np
    import torch

    from pyro_cvae import plots
    from pyro_cvae.atomic import atomic_write
    from pyro_cvae.checkpoint import load_run
    from pyro_cvae.images import read_images, read_labels
    from pyro_cvae.inpaint import inpaint_amortized
    from pyro_cvae.masks import parse_mask
    from pyro_cvae.model import InpaintingCVAE

    if label is not None and labels_path is not None:
        raise click.UsageError("give --label or --labels, not both")
    if label is not None and len(label) != 1:
        raise click.UsageError("--label takes one label here; use --labels for one per image")
    mask = parse_mask(mask_text)
    images = read_images(input_path)
    labels = None
    if labels_path is not None:
        labels = read_labels(labels_path)
        if len(labels) != len(images):
            raise click.UsageError(
                f"--labels has {len(labels)} labels but --input has {len(images)} images"
            )
    elif label is not None:
        labels = torch.full((len(images),), label[0], dtype=torch.long)
    run = load_run(run_dir, resolve_device(device))
    pixels_run = isinstance(run.model, InpaintingCVAE)
    method = method or ("amortized" if pixels_run else "posterior")
    if labels is not None and not getattr(run.model, "num_labels", 0):
        raise click.UsageError("this run was trained with --condition none: leave out the labels")
    holes = mask.holes(len(images), torch.Generator().manual_seed(seed))
    if method == "amortized":
        if not pixels_run:
            raise click.UsageError(
                "--method amortized needs a run trained with --condition "
                "pixels; use --method posterior"
            )
        completions = inpaint_amortized(
            run.model, images, holes, labels, samples=samples, seed=seed
        )
    else:
        from pyro_cvae.posterior import inpaint_posterior

        completions = inpaint_posterior(
            run.model,
            images,
            holes,
            labels,
            samples=samples,
            particles=particles,
            rounds=rounds,
            seed=seed,
        )
    png, npy = split_output(out)
    array = completions.numpy().astype(np.float32)
    if samples == 1:
        array = array[:, 0]
    atomic_write(npy, lambda handle: np.save(handle, array))
    shown = slice(0, PNG_MAX_IMAGES)
    whole = images[shown] if bool((images[shown] * holes[shown]).sum() > 0) else None
    plots.inpainting_panels(images[shown], holes[shown], completions[shown], png, whole)
    note = f" (the PNG shows the first {PNG_MAX_IMAGES})" if len(images) > PNG_MAX_IMAGES else ""
    click.echo(f"wrote {npy} {list(array.shape)} and {png}{note}")
