"""An independent MNIST digit classifier: the judge of generated images, not part of the CVAE.

A small CNN in plain PyTorch, trained on the training split only (random shifts of up to
+-2 pixels as augmentation), so that "a sample drawn for label y is classified as y"
measures the generator, not the judge. Images are float32 `[N, 1, 28, 28]` (or
`[N, 28, 28]`) in [0, 1],
labels int64 `[N]` in 0..9.

The file written by `save_classifier` holds plain containers and tensors only and is
read back with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_write
from .checkpoint import read_document
from .data import load_split
from .errors import CheckpointError, first_line
from .nets import Classifier

SIZE = 28
NUM_LABELS = 10
FORMAT = "pyro-cvae-digit-classifier"
FORMAT_VERSION = 2  # 2: the layers of `nets.Classifier`; version 1 files are retrained
SHIFT = 2
BATCH = 128
EVAL_BATCH = 1000


class DigitClassifier(Classifier):
    """The conv `nets.Classifier` on whole digits: images `[N, 28, 28]` -> logits `[N, 10]`.

    conv(1 -> 32, 3x3) -> ReLU -> maxpool 2 -> conv(32 -> 64, 3x3) -> ReLU -> maxpool 2
    -> dropout -> linear(64 * 7 * 7 -> hidden) -> ReLU -> dropout -> linear(hidden -> 10).
    """

    def __init__(self, *, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__(
            in_channels=1, num_labels=NUM_LABELS, hidden=(hidden,), arch="conv", dropout=dropout
        )
        self.config = {"hidden": hidden, "dropout": dropout}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images `[N, 28, 28]` -> logits `[N, 10]`."""
        return super().forward(images.reshape(len(images), -1))


def _grey(images: torch.Tensor) -> torch.Tensor:
    """Digits `[N, 1, 28, 28]` (the library's layout) or `[N, 28, 28]` as `[N, 28, 28]`."""
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"images must have shape [N, 1, {SIZE}, {SIZE}], got {list(images.shape)}")
    return images


def random_shifts(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image `[N, 28, 28]` moved by its own random offset in -2..2 pixels along each
    axis, zero-filled at the edges: `[N, 28, 28]`."""
    n = len(images)
    padded = F.pad(images, (SHIFT, SHIFT, SHIFT, SHIFT))
    dy, dx = torch.randint(0, 2 * SHIFT + 1, (2, n, 1), generator=generator).to(images.device)
    grid = torch.arange(SIZE, device=images.device)
    rows, cols = (dy + grid)[:, :, None], (dx + grid)[:, None, :]
    return padded[torch.arange(n, device=images.device)[:, None, None], rows, cols]


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 12,
    seed: int = 0,
    device: torch.device | str = "cpu",
    lr: float = 2e-3,
) -> DigitClassifier:
    """Train a `DigitClassifier` on images `[N, 1, 28, 28]` in [0, 1] and labels `[N]` int64.

    Adam with a cosine-decayed learning rate, batches of 128, random +-2 pixel shifts.
    Deterministic for a given `seed` and device; the global random state is left as it
    was. Returns the model in eval mode on `device`.
    """
    images = _grey(images)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    device = torch.device(device)
    images, labels = images.to(device, torch.float32), labels.to(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = DigitClassifier().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(images) / BATCH)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(device)
            for batch in order.split(BATCH):
                x = random_shifts(images[batch], generator)
                loss = F.cross_entropy(model(x), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted digits int64 `[N]` (on the CPU) for images `[N, 1, 28, 28]` in [0, 1].

    Batched, without gradients; puts the model in eval mode.
    """
    images = _grey(images)
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(batch.to(device, torch.float32)).argmax(-1).cpu()
        for batch in images.split(EVAL_BATCH)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images `[N, 1, 28, 28]` whose predicted digit equals `labels` `[N]`."""
    return (predict(model, images) == labels.cpu()).double().mean().item()


def save_classifier(
    model: DigitClassifier, path: str | Path, *, recipe: dict | None = None
) -> None:
    """Write the weights and architecture (and the training `recipe`, plain types) to
    `path` atomically."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config,
        "recipe": recipe or {},
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda handle: torch.save(document, handle))


def _read_document(path: Path) -> dict:
    """The file's contents, checked; never executes code from the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such classifier file")
    return read_document(path, kind="digit classifier", format_name=FORMAT, version=FORMAT_VERSION)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> DigitClassifier:
    """The classifier saved at `path`, in eval mode on `device`."""
    path = Path(path)
    document = _read_document(path)
    try:
        config = document["config"]
        model = DigitClassifier(hidden=config["hidden"], dropout=config["dropout"])
        model.load_state_dict(document["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: the classifier does not match this version's architecture "
            f"({first_line(error)}); train the judge again"
        ) from None
    return model.to(device).eval()


def load_or_train_judge(
    path: str | Path,
    *,
    epochs: int = 12,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
) -> DigitClassifier:
    """The judge cached at `path`, or a fresh one trained on `dataset`'s training split
    (then saved to `path`). A cached file of an older format, or trained with another
    recipe (epochs, seed, dataset, number of images), is replaced."""
    path = Path(path)
    train = load_split(dataset, "train", data_dir)
    recipe = {"dataset": dataset, "epochs": epochs, "seed": seed, "num_train": len(train.labels)}
    if path.is_file():
        cached = _read_document(path)
        if cached.get("format_version") == FORMAT_VERSION and cached.get("recipe") == recipe:
            return load_classifier(path, device)
    model = train_classifier(train.images, train.labels, epochs=epochs, seed=seed, device=device)
    save_classifier(model, path, recipe=recipe)
    return model
