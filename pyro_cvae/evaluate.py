"""Held-out scores: test negative ELBO and importance-sampled negative log-likelihoods,
built on `scoring`.

All figures are in nats per image, averaged over the images given (the dataset's test
split in `pyro-cvae evaluate`). Images flat `[N, D]` float in [0, 1]; holes `[N, H * W]`
bool. Runs with a discrete likelihood (8-bit levels) also get the NLL in bits per
dimension: nats / (D ln 2).

Under torchrun (a `distributed.ProcessGroup`), each process scores its share of the test
images and every process gets the whole report.
"""

from __future__ import annotations

import math

import torch

from .distributed import ProcessGroup, Share
from .errors import UsageError
from .model import CVAE
from .scoring import log_likelihood, negative_elbo, weigh

# Pixels observed/predicted in the Pyro CVAE example's table: the hole is what it predicts.
PYRO_EXAMPLE_PROTOCOL = {
    "1 quadrant given (bottom-left)": "not:quadrant-bl",
    "2 quadrants given (left half)": "right-half",
    "3 quadrants given (bottom-right predicted)": "quadrant-br",
}
# Its published numbers on the full 60k MNIST (negative ELBO for the CVAE, BCE for the NN).
PYRO_EXAMPLE_RESULTS = {
    "1 quadrant given (bottom-left)": {"baseline_nn": 100.4, "cvae_neg_elbo": 71.8},
    "2 quadrants given (left half)": {"baseline_nn": 61.9, "cvae_neg_elbo": 51.0},
    "3 quadrants given (bottom-right predicted)": {"baseline_nn": 25.4, "cvae_neg_elbo": 24.2},
}


@torch.no_grad()
def image_nll(model: CVAE, images, labels, particles: int) -> torch.Tensor:
    """-log p(x | y) (or -log p(x) for a model without labels) per image `[N]`, K =
    `particles`, for a generative model (`model.generative`)."""

    def weights(k, rows):
        y = labels[rows] if model.num_labels else None
        return weigh(model.model, model.guide, (images[rows], y), k).log_weights

    return -log_likelihood(weights, len(images), particles)


@torch.no_grad()
def hole_nll(model: CVAE, images, holes, labels, particles: int) -> torch.Tensor:
    """-log p(x[hole] | x[observed], y) per image `[N]` for a hole-filling model; with
    `labels=None`, the label is summed out: -log sum_y p(y | observed) p(x[hole] | observed, y)."""

    def given(y_all, exclude):
        def weights(k, rows):
            args = (images[rows], y_all[rows], holes[rows])
            return weigh(model.model, model.guide, args, k, exclude).log_weights

        return log_likelihood(weights, len(images), particles)

    if labels is not None:
        return -given(labels, exclude=("label",))
    per_label = [
        given(torch.full((len(images),), y, dtype=torch.long, device=images.device), exclude=())
        for y in range(model.num_labels)
    ]
    return -torch.logsumexp(torch.stack(per_label), dim=0)


def mean_image_nll(train_mean: torch.Tensor, images, holes) -> float:
    """Baseline: each hole value ~ Bernoulli(training mean of that value); nats per image.
    images `[N, D]`, holes `[N, H * W]` (shared by the D / (H * W) channels)."""
    p = train_mean.clamp(1e-4, 1 - 1e-4).expand_as(images)
    nll = -(images * p.log() + (1 - images) * (1 - p).log())
    return (nll * holes.repeat(1, images.shape[1] // holes.shape[1])).sum(-1).mean().item()


def summarize(values: torch.Tensor) -> dict:
    """Mean and standard error of per-image values."""
    return {
        "mean": values.mean().item(),
        "stderr": (values.std() / math.sqrt(len(values))).item() if len(values) > 1 else 0.0,
    }


def mask_rows(
    model: CVAE,
    masks,
    x,
    y,
    train_mean,
    *,
    particles: int,
    seed: int,
    dataset: str,
    group: ProcessGroup | None = None,
    protocols: bool = True,
) -> dict:
    """For a hole-filling model, one row per mask (the `masks` given, `MaskSpec`s, then,
    with `protocols`, the Pyro example's, with its published numbers for `dataset`
    "mnist"): the hole's negative ELBO, its importance-sampled NLL with the true label
    and with the label summed out (each with its standard error, `_stderr`), and the
    mean-image baseline, in nats per image over images `x` `[N, D]` with labels `y` `[N]`
    (each process of a `group` scoring its share)."""
    from .masks import parse_mask

    named = {spec.text: spec for spec in masks}
    if protocols:
        named.update({label: parse_mask(text) for label, text in PYRO_EXAMPLE_PROTOCOL.items()})
    generator = torch.Generator().manual_seed(seed)
    share = Share(len(x), group)
    rows = {}
    for name, spec in named.items():
        holes = spec.holes(len(x), generator, size=model.image_shape[1:]).reshape(len(x), -1)
        holes = holes.to(x.device)
        with_label = summarize(
            share.join(
                lambda rows, holes=holes: hole_nll(model, x[rows], holes[rows], y[rows], particles)
            )
        )
        without_label = summarize(
            share.join(
                lambda rows, holes=holes: hole_nll(model, x[rows], holes[rows], None, particles)
            )
        )
        row = {
            "mask": spec.text,
            "neg_elbo_with_label": share.mean(
                lambda rows, holes=holes: negative_elbo(model, x[rows], y[rows], holes[rows])
            ),
            "nll_with_label": with_label["mean"],
            "nll_with_label_stderr": with_label["stderr"],
            "nll_without_label": without_label["mean"],
            "nll_without_label_stderr": without_label["stderr"],
            "mean_image_baseline": mean_image_nll(train_mean, x, holes),
        }
        if dataset == "mnist":  # the published numbers are MNIST's
            row.update(PYRO_EXAMPLE_RESULTS.get(name, {}))
        rows[name] = row
    return rows


def evaluate_run(
    run,
    masks,
    *,
    particles: int,
    limit=None,
    data_dir=None,
    seed: int = 0,
    group: ProcessGroup | None = None,
    protocols: bool = True,
) -> dict:
    """The `pyro-cvae evaluate` report for a loaded run (`checkpoint.LoadedRun`), on its
    dataset's test split (from `data_dir`, else the folder it was trained from); under a
    torchrun `group`, each process scores its share of the images.

    Generative (label/none) runs: test negative ELBO and importance-sampled -log p(x | y).
    Hole-filling runs: test negative ELBO on the training hole mixture, then `mask_rows`
    (the Pyro example's protocols among them unless `protocols` is False).
    """
    import pyro

    from .data import load_run_split
    from .train import test_loss

    pyro.set_rng_seed(seed if group is None or group.writer else group.own_seed(seed))
    model, config = run.model, run.config
    data_dir = data_dir or run.data_dir
    test = load_run_split(config, "test", data_dir)
    n = len(test.images) if limit is None else min(limit, len(test.images))
    x = test.images[:n].reshape(n, -1).to(model.device)
    y = test.labels[:n].to(model.device)
    report = {
        "run": str(run.config.condition),
        "images": n,
        "particles": particles,
        "test_neg_elbo": test_loss(model, x, y, seed=seed, group=group),
    }
    if model.generative:
        nll = Share(n, group).join(lambda rows: image_nll(model, x[rows], y[rows], particles))
        report["test_nll"] = summarize(nll)
        if model.likelihood.discrete:
            report["test_nll_bits_per_dim"] = summarize(nll / (x.shape[1] * math.log(2)))
        return report
    train_mean = load_run_split(config, "train", data_dir).images
    train_mean = train_mean.reshape(-1, x.shape[1])
    train_mean = train_mean.mean(0).to(model.device)
    report["masks"] = mask_rows(
        model,
        masks,
        x,
        y,
        train_mean,
        particles=particles,
        seed=seed,
        dataset=config.dataset,
        group=group,
        protocols=protocols,
    )
    return report


def check_sample_scores(model: CVAE) -> None:
    """A `UsageError` unless `model` draws samples (a label or none run)."""
    if not model.generative:
        raise UsageError("--samples scores what label and none runs draw; a pixels run fills holes")


def sample_report(
    run,
    per_class: int,
    *,
    data_dir=None,
    seed: int = 0,
    temperature: float | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """`sample_scores.score_samples` for a loaded label/none run: `per_class` samples per
    class, drawn at `temperature` (None: the run's `sample_temperature`), scored by the
    judge of the run's dataset, trained on its training split on first use and kept in the
    user cache (`judge.cached_judge_path`), with as many training images scored beside
    them. A `UsageError` for a hole-filling run."""
    from .data import load_run_splits
    from .judge import cached_judge_path, judge_for_run
    from .sample_scores import score_samples

    check_sample_scores(run.model)
    data_dir = data_dir or run.data_dir
    path = cached_judge_path(run.config, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    judge = judge_for_run(path, run.config, data_dir, device=device)
    train, test = load_run_splits(run.config, data_dir)
    report = score_samples(
        run.model,
        judge,
        test.images,
        test.labels,
        test.class_names,
        per_class=per_class,
        seed=seed,
        temperature=run.config.drawing_temperature(temperature),
        train_images=train.images,
        train_labels=train.labels,
    )
    return {**report, "classifier_file": str(path)}
