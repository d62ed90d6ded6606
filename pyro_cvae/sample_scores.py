"""Scores of a run's samples against its dataset, by a classifier of that dataset.

Two scores, both from a judge (`judge.py`) trained on the run's training split only:

- **named as asked**: of `per_class` images drawn for each class (label runs), the
  fraction the judge names as the class asked for, overall and per class;
- **Frechet distance** between the samples and the test images in the judge's
  penultimate features: the FID of Heusel et al. (2017) with a classifier of the dataset
  in place of Inception, which cannot be downloaded here, so its values are comparable
  only between runs scored by the same judge. The distance grows as the sets shrink
  (covariances estimated from fewer rows), so the n samples are compared with the test
  images less a random n of them, and those n real images with the same rest give the
  reference of the same size; the distance between two random halves of the test split
  is reported too. Given the training split, up to as many of its images, drawn as the
  samples are (`per_class` of each class for a label run) in one fixed draw whatever the
  sampling seed, are scored against the same test images: the distance of a model that
  drew its training images exactly (on MNIST above the real test images' own: its
  training and test digits are by different writers).

A model without labels (`--condition none`) draws as many images, unconditioned; only
its distance is scored, with the share of its samples the judge gives each class.
Images are float32 `[N, C, H, W]` in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import DataError
from .judge import features, predict
from .model import CVAE
from .sampling import sample_images

HALVES_SEED = 0


def draw_per_class(
    model: CVAE, num_classes: int, per_class: int, *, seed: int, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` samples for each of `num_classes` classes, grouped by class:
    (images `[num_classes * per_class, C, H, W]`, the class asked for each `[N]`). A
    model without labels draws as many images, "asked" for each class in turn."""
    classes = list(range(num_classes))
    if model.num_labels:
        images = sample_images(model, classes, per_class, seed=seed, temperature=temperature)
    else:
        images = sample_images(
            model, None, num_classes * per_class, seed=seed, temperature=temperature
        )
    return images, torch.tensor(classes).repeat_interleave(per_class)


def named_as_asked(judge: nn.Module, images, asked, class_names) -> dict:
    """`{"overall": fraction, "per_class": {name: fraction}}`: how often the judge names
    images `[N, C, H, W]` as the class asked `[N]` (grouped by class, as
    `draw_per_class` returns them)."""
    correct = predict(judge, images) == asked
    per_class = correct.view(len(class_names), -1).double().mean(1)
    return {
        "overall": correct.double().mean().item(),
        "per_class": {name: per_class[i].item() for i, name in enumerate(class_names)},
    }


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to feature rows `a` `[N, F]` and `b`
    `[M, F]`: |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64. The trace
    of the root is that of the symmetric (S_a^(1/2) S_b S_a^(1/2))^(1/2)."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    product = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * product
    return distance.clamp(min=0).item()


def training_stand_ins(
    train_labels: torch.Tensor, num_classes: int, per_class: int, *, labelled: bool
) -> torch.Tensor:
    """Indices `[K]` of the training images (labels `[N]`) that stand in for the
    samples: `per_class` of each class at random (all of a class that has fewer) for a
    model with labels, `num_classes * per_class` of all of them (at most N) for one
    without; drawn with a generator seeded `HALVES_SEED`, whatever the sampling seed."""
    generator = torch.Generator().manual_seed(HALVES_SEED)
    if not labelled:
        return torch.randperm(len(train_labels), generator=generator)[: num_classes * per_class]
    picked = []
    for label in range(num_classes):
        rows = torch.nonzero(train_labels == label)[:, 0]
        picked.append(rows[torch.randperm(len(rows), generator=generator)[:per_class]])
    return torch.cat(picked)


def split_test(test_features: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (seeded) `n` of the test features `[N, F]` (at most half of them) and
    the rest."""
    order = torch.randperm(len(test_features), generator=torch.Generator().manual_seed(HALVES_SEED))
    n = min(n, len(order) // 2)
    return test_features[order[:n]], test_features[order[n:]]


def score_samples(
    model: CVAE,
    judge: nn.Module,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    class_names,
    *,
    per_class: int,
    seed: int,
    temperature: float = 1.0,
    train_images: torch.Tensor | None = None,
    train_labels: torch.Tensor | None = None,
) -> dict:
    """The sample scores of a label/none `model` (see the module's docstring) with the
    judge's accuracy on the test images `[N, C, H, W]` (labels `[N]`) beside them, and,
    given the training images `[M, C, H, W]` with their labels `[M]`, the distance of up
    to as many of them as there are samples (`training_stand_ins`; none when fewer than
    two are drawn)."""
    if (train_images is None) != (train_labels is None):
        raise ValueError("give both train_images and train_labels, or neither")
    if len(test_images) < 4:
        raise DataError(
            f"the sample scores need at least 4 test images, the test split has {len(test_images)}"
        )
    images, asked = draw_per_class(
        model, len(class_names), per_class, seed=seed, temperature=temperature
    )
    test_features = features(judge, test_images)
    real, rest = split_test(test_features, len(images))
    report = {
        "per_class": per_class,
        "images": len(images),
        "seed": seed,
        "temperature": temperature,
        "classifier_test_accuracy": (predict(judge, test_images) == test_labels)
        .double()
        .mean()
        .item(),
        "frechet_distance": frechet_distance(features(judge, images), rest),
        "frechet_distance_real_same_size": frechet_distance(real, rest),
        "real_images_same_size": len(real),
        "frechet_distance_test_halves": frechet_distance(*split_test(test_features, len(rest))),
    }
    if train_images is not None:
        rows = training_stand_ins(
            train_labels, len(class_names), per_class, labelled=bool(model.num_labels)
        )
        if len(rows) >= 2:  # a covariance needs two rows
            report["frechet_distance_training_same_size"] = frechet_distance(
                features(judge, train_images[rows]), rest
            )
            report["training_images_same_size"] = len(rows)
    if model.num_labels:
        report["named_as_asked"] = named_as_asked(judge, images, asked, class_names)
    else:
        shares = torch.bincount(predict(judge, images), minlength=len(class_names)) / len(images)
        report["class_shares"] = {name: shares[i].item() for i, name in enumerate(class_names)}
    return report
