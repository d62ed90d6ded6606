"""`pyro-cvae sample`: images of chosen labels from a trained run."""

from __future__ import annotations

import click

from .app import cli, load_run, split_output
from .params import LABELS, device_option, out_option, seed_option, temperature_option


@cli.command("sample")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--label", "labels", type=LABELS, help="Label(s) to draw by name or number: 6, 0,1,2, cat,dog."
)
@click.option(
    "--n", "n", type=click.IntRange(min=1), default=8, show_default=True, help="Images per label."
)
@click.option(
    "--style-of",
    "style_path",
    type=click.Path(dir_okay=False),
    help="Images (PNG, .npy or IDX) whose handwriting style to render as each "
    "--label; N is then the number of style images.",
)
@click.option(
    "--style-label",
    help="The class the --style-of images show [default: inferred by Bayes' rule].",
)
@temperature_option(
    "Scale of p(z | y) to draw z from: below 1, images nearer the typical one of "
    "each label (0: its mean)."
)
@seed_option
@device_option("cpu")
@out_option("Writes OUT.png (a grid, one row per label) and OUT.npy.")
def sample(run_dir, labels, n, style_path, style_label, temperature, seed, device, out):
    """Draw N images of each --label from the model in RUN_DIR.

    OUT.npy is float32 [len(labels) * N, H, W] for grey images, [len(labels) * N, H, W, 3]
    for colour ones, in [0, 1]: all images of the first label, then the second, and so on.
    """
    from pyro_cvae import plots
    from pyro_cvae.images import write_npy
    from pyro_cvae.sampling import render_styles, sample_images

    if style_label is not None and style_path is None:
        raise click.UsageError("--style-label goes with --style-of")
    if style_path is not None and temperature is not None:
        raise click.UsageError("--temperature goes without --style-of (z is the style's own)")
    given = click.get_current_context().get_parameter_source("n")
    if style_path is not None and given == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--n goes without --style-of (N is the number of style images)")
    run = load_run(run_dir, device)
    indices = None if labels is None else run.config.label_indices(labels)
    if style_path is not None:
        import torch

        from pyro_cvae.images import read_images

        styles = read_images(style_path, run.config.image_shape[0])
        known = None
        if style_label is not None:
            (style,) = run.config.label_indices([style_label])
            known = torch.full((len(styles),), style)
        images = render_styles(run.model, styles, indices, known, seed=seed)
    else:
        images = sample_images(
            run.model,
            indices,
            n,
            seed=seed,
            temperature=run.config.drawing_temperature(temperature),
        )
    png, npy = split_output(out)
    shape = write_npy(npy, images)
    names = [run.config.label_names[i] for i in indices] if indices else None
    plots.image_grid(images, len(indices) if indices else 1, png, names)
    click.echo(f"wrote {png} and {npy} ({shape[0]} images)")
