"""The figures a training run leaves in RUN_DIR besides the loss curve."""

from __future__ import annotations

from pathlib import Path

import torch

from . import plots
from .inpaint import fill_holes
from .masks import named_mask
from .model import CVAE
from .sampling import has_latent_map, latent_map, sample_images

FIGURE_SEED = 0


def write_model_figures(
    model: CVAE,
    run_dir: Path,
    test_images: torch.Tensor,
    names_of: tuple[str, ...],
    temperature: float = 1.0,
) -> None:
    """samples.png, and latent.png for a z_dim 2 label/none model; z drawn from its prior
    at `temperature` (the run's `sample_temperature`).

    Generative (label/none) models: 10 samples per label, one row per label. Hole-filling
    models: the first 8 test images (`test_images` `[N, D]`) with the top half removed,
    8 completions each. `names_of`: the name of each label.
    """
    if model.generative:
        labels = list(range(model.num_labels)) if model.num_labels else None
        images = sample_images(model, labels, 10, seed=FIGURE_SEED, temperature=temperature)
        names = [names_of[label] for label in labels] if labels else None
        plots.image_grid(images, model.num_labels or 1, run_dir / "samples.png", names)
        if has_latent_map(model):
            plots.latent_map(latent_map(model), names or ["VAE"], run_dir / "latent.png")
        return
    originals = test_images[:8].reshape(-1, *model.image_shape).cpu()
    holes = named_mask("top-half", model.image_shape[1:]).expand(len(originals), -1, -1)
    completions = fill_holes(
        model, originals, holes, samples=8, seed=FIGURE_SEED, temperature=temperature
    )
    plots.inpainting_panels(originals, holes, completions, run_dir / "samples.png", originals)
