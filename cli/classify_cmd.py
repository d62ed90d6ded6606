"""`pyro-cvae classify`: p(label | observed pixels) by Bayes' rule from a label run."""

from __future__ import annotations

import click

from .app import cli, load_run
from .params import (
    device_option,
    input_option,
    out_option,
    particles_option,
    rounds_option,
    seed_option,
)


@cli.command("classify")
@click.argument("run_dir", type=click.Path(exists=True))
@input_option
@click.option("--mask", "mask_text", help="A hole: only the pixels outside it count.")
@particles_option(100, "Importance samples per image and label (per round).")
@rounds_option(None, "1 without --mask, 5 with one")
@seed_option
@device_option("cpu")
@out_option(
    "Writes OUT.npy (N predicted labels, int64) and OUT.json (their class names and the "
    "N x L probabilities too)."
)
def classify(run_dir, input_path, mask_text, particles, rounds, seed, device, out):
    """Name the class of each --input image with the generative model in RUN_DIR.

    p(y | x) is proportional to p(y) p(x | y): the label prior is the training set's label
    frequencies, p(x | y) an importance-sampled marginal likelihood.
    """
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from pyro_cvae.atomic import atomic_write, write_json
    from pyro_cvae.images import read_images
    from pyro_cvae.masks import parse_mask
    from pyro_cvae.posterior import default_rounds, label_posterior

    mask = parse_mask(mask_text) if mask_text else None
    run = load_run(run_dir, device)
    images = read_images(input_path, run.config.image_shape[0])
    holes = None
    if mask is not None:
        holes = mask.holes(len(images), torch.Generator().manual_seed(seed), size=images.shape[-2:])
    rounds = rounds or default_rounds(holes)
    probabilities = label_posterior(
        run.model, images, holes, particles=particles, rounds=rounds, seed=seed
    )
    predicted = probabilities.argmax(dim=1).numpy().astype(np.int64)
    stem = Path(out).with_suffix("") if Path(out).suffix.lower() in (".npy", ".json") else Path(out)
    atomic_write(f"{stem}.npy", lambda handle: np.save(handle, predicted))
    write_json(
        f"{stem}.json",
        {
            "labels": predicted.tolist(),
            "names": [run.config.label_names[i] for i in predicted],
            "classes": list(run.config.label_names),
            "probabilities": [[round(p, 6) for p in row] for row in probabilities.tolist()],
            "mask": mask_text,
            "particles": particles,
            "rounds": rounds,
        },
    )
    counts = np.bincount(predicted, minlength=probabilities.shape[1]).tolist()
    click.echo(
        f"wrote {stem}.npy and {stem}.json ({len(predicted)} images; "
        f"predicted counts per label {json.dumps(counts)})"
    )
