"""Independent judges of generated images: classifiers that are not part of any CVAE.

A judge is trained on a dataset's training split only, so that "a sample drawn for label y
is classified as y" measures the generator, not the judge. Two recipes, chosen by the
images' shape:

- grey 28x28 (MNIST, Fashion-MNIST): `DigitClassifier`, a small CNN, with random
  rotations of up to +-`ROTATION` degrees, scalings of up to +-`SCALING` and shifts of up
  to +-`SHIFT` pixels (`random_affine`; judges before 2026-11-27 had the shifts alone
  and 12 epochs: `augmentation="shifts"`, which reproduces their figures);
- colour (CIFAR-10, a folder of pictures of any size of at least 8x8):
  `PictureClassifier`, a CNN with batch normalisation, with random horizontal flips,
  shifts of up to +-`SHIFT` pixels (edges repeated) and, for half of the images, a
  Gaussian blur of a random width up to `MAX_BLUR` pixels, so that it names the class of
  a blurry generated picture instead of rejecting it for its blur.

Images are float32 `[N, C, H, W]` in [0, 1] (grey 28x28 may also be `[N, 28, 28]`),
labels int64 `[N]`. The file written by `save_classifier` holds plain containers and
tensors only and is read back with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_write
from .augment import affine_warp
from .checkpoint import read_document
from .data import cache_dir, load_split, locate_dataset
from .errors import CheckpointError, first_line
from .nets import Classifier

SIZE = 28
NUM_LABELS = 10
FORMAT = "pyro-cvae-digit-classifier"  # the name from when only digits had a judge
FORMAT_VERSION = 2  # 2: the layers of `nets.Classifier`; version 1 files are retrained
SHIFT = 2
ROTATION = 12.0  # degrees, the largest turn of the digit judge's training images
SCALING = 0.1  # the largest relative change of size of the digit judge's training images
MAX_BLUR = 2.5  # the largest standard deviation, in pixels, of the training blur
BLURS = (0.5, 1.0, 1.5, 2.0, MAX_BLUR)
BATCH = 128
EVAL_BATCH = 1000
EPOCHS = {"digits": 30, "pictures": 30}
DIGIT_AUGMENTATIONS = ("affine", "shifts")  # the first is the default
PICTURE_WIDTH = 64  # channels of the picture judge's first conv block
FIRST_PICTURE_WIDTH = 32  # what files from before the width was recorded hold


class DigitClassifier(Classifier):
    """The conv `nets.Classifier` on whole digits: images `[N, 28, 28]` -> logits `[N, 10]`.

    conv(1 -> 32, 3x3) -> ReLU -> maxpool 2 -> conv(32 -> 64, 3x3) -> ReLU -> maxpool 2
    -> dropout -> linear(64 * 7 * 7 -> hidden) -> ReLU -> dropout -> linear(hidden -> 10).
    """

    def __init__(self, *, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__(
            in_channels=1,
            num_labels=NUM_LABELS,
            hidden=(hidden,),
            arch="conv",
            dropout=dropout,
            size=(SIZE, SIZE),
        )
        self.config = {"hidden": hidden, "dropout": dropout}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images `[N, 1, 28, 28]` or `[N, 28, 28]` -> logits `[N, 10]`."""
        return super().forward(images.reshape(len(images), -1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate features `[N, hidden]` of images `[N, 1, 28, 28]`."""
        return self.features(images.reshape(len(images), -1))


def _conv_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU()]


class PictureClassifier(nn.Module):
    """A CNN for colour (or grey) pictures of any size of at least 8x8: images
    `[N, channels, H, W]` -> logits `[N, num_labels]`.

    Three 3x3 conv blocks (conv, batch norm, ReLU) of `width`, 2 `width` and 4 `width`
    channels (64, 128, 256 by default), each followed by 2x2 max pooling, a fourth of
    8 `width`, global average pooling, dropout and a linear layer.
    """

    def __init__(
        self,
        *,
        channels: int = 3,
        num_labels: int = NUM_LABELS,
        dropout: float = 0.3,
        width: int = PICTURE_WIDTH,
    ):
        super().__init__()
        w = width
        self.layers = nn.Sequential(
            *_conv_block(channels, w),
            nn.MaxPool2d(2),
            *_conv_block(w, 2 * w),
            nn.MaxPool2d(2),
            *_conv_block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            *_conv_block(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(8 * w, num_labels),
        )
        self.config = {
            "kind": "pictures",
            "channels": channels,
            "num_labels": num_labels,
            "dropout": dropout,
            "width": width,
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled features `[N, 8 * width]` of images `[N, channels, H, W]`, before
        the dropout and the linear layer."""
        return self.layers[:-2](images)


def recipe_kind(image_shape) -> str:
    """ "digits" for grey 28x28 images (C, H, W), "pictures" for any other shape."""
    return "digits" if tuple(image_shape) == (1, SIZE, SIZE) else "pictures"


def _as_batch(images: torch.Tensor) -> torch.Tensor:
    """Images `[N, C, H, W]` (or grey `[N, H, W]`) as `[N, C, H, W]`."""
    if images.dim() == 3:
        images = images[:, None]
    if images.dim() != 4:
        raise ValueError(f"images must have shape [N, C, H, W], got {list(images.shape)}")
    return images


def random_shifts(images: torch.Tensor, generator: torch.Generator, edge="constant"):
    """Each image `[N, H, W]` or `[N, C, H, W]` moved by its own random offset in
    -SHIFT..SHIFT pixels along each axis; the uncovered edge is zero-filled ("constant")
    or repeats the border ("replicate"). Same shape as `images`."""
    planes = images if images.dim() == 4 else images[:, None]
    n, _, height, width = planes.shape
    padded = F.pad(planes, (SHIFT, SHIFT, SHIFT, SHIFT), mode=edge)
    dy, dx = torch.randint(0, 2 * SHIFT + 1, (2, n, 1), generator=generator).to(images.device)
    rows = (dy + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (dx + torch.arange(width, device=images.device))[:, None, None, :]
    index = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(planes.shape[1], device=images.device)[None, :, None, None]
    shifted = padded[index, channel, rows, cols]
    return shifted if images.dim() == 4 else shifted[:, 0]


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image `[N, H, W]` or `[N, C, H, W]` turned about its centre by its own
    random angle in -ROTATION..ROTATION degrees and scaled by a factor in
    1 - SCALING..1 + SCALING, after a shift of a whole number of pixels in -SHIFT..SHIFT
    along each axis (bilinear, the uncovered area zero). Same shape as `images`."""
    planes = images if images.dim() == 4 else images[:, None]
    n = len(planes)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(ROTATION)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * SCALING
    pixels = torch.randint(-SHIFT, SHIFT + 1, (n, 2), generator=generator).float()
    moved = affine_warp(planes, angle, scale, pixels)
    return moved if images.dim() == 4 else moved[:, 0]


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images `[N, C, H, W]` convolved with a Gaussian of standard deviation `sigma`
    pixels (edges repeated); `sigma` 0 returns them unchanged."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def _augment_pictures(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips, shifts and, for half of the images, a blur from `BLURS`: `[N, C, H, W]`."""
    n = len(images)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    images = random_shifts(images, generator, edge="replicate")
    which = torch.randint(-len(BLURS), len(BLURS), (n,), generator=generator).to(images.device)
    out = images.clone()
    for i, sigma in enumerate(BLURS):  # negative `which`: left sharp
        chosen = which == i
        if chosen.any():
            out[chosen] = blur(images[chosen], sigma)
    return out


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    lr: float = 2e-3,
    width: int = PICTURE_WIDTH,
    augmentation: str = DIGIT_AUGMENTATIONS[0],
) -> nn.Module:
    """Train a judge on images `[N, C, H, W]` in [0, 1] (grey 28x28 also `[N, 28, 28]`)
    and labels `[N]` int64: the recipe of `recipe_kind` (epochs: `EPOCHS` of it unless
    given; `width`: the picture judge's first conv channels; `augmentation`, one of
    `DIGIT_AUGMENTATIONS`: `random_affine` or `random_shifts` for digits). Adam with
    a cosine-decayed learning rate, batches of 128. Deterministic for a given `seed`,
    device and number of threads; the global random state is left as it was. Returns the
    model in eval mode on `device`."""
    images = _as_batch(images)
    if augmentation not in DIGIT_AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {DIGIT_AUGMENTATIONS}: {augmentation!r}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    kind = recipe_kind(images.shape[1:])
    epochs = EPOCHS[kind] if epochs is None else epochs
    device = torch.device(device)
    images, labels = images.to(device, torch.float32), labels.to(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if kind == "digits":
            model = DigitClassifier()
            augment = random_affine if augmentation == "affine" else random_shifts
        else:
            num_labels = int(labels.max()) + 1 if len(labels) else NUM_LABELS
            model = PictureClassifier(channels=images.shape[1], num_labels=num_labels, width=width)
            augment = _augment_pictures
        model = model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(images) / BATCH)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(device)
            for batch in order.split(BATCH):
                x = augment(images[batch], generator)
                loss = F.cross_entropy(model(x), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted labels int64 `[N]` (on the CPU) for images `[N, C, H, W]` in [0, 1]
    (grey 28x28 also `[N, 28, 28]`). Batched, without gradients; puts the model in eval
    mode."""
    images = _as_batch(images)
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(batch.to(device, torch.float32)).argmax(-1).cpu()
        for batch in images.split(EVAL_BATCH)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A judge's penultimate features `[N, F]` (on the CPU) of images `[N, C, H, W]` in
    [0, 1]: what a Frechet distance compares. Batched; puts the model in eval mode."""
    images = _as_batch(images)
    model.eval()
    device = next(model.parameters()).device
    out = [model.embed(batch.to(device, torch.float32)).cpu() for batch in images.split(EVAL_BATCH)]
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images `[N, C, H, W]` whose predicted label equals `labels` `[N]`."""
    return (predict(model, images) == labels.cpu()).double().mean().item()


def save_classifier(model: nn.Module, path: str | Path, *, recipe: dict | None = None) -> None:
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


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The classifier saved at `path`, in eval mode on `device`."""
    path = Path(path)
    document = _read_document(path)
    try:
        config = dict(document["config"])
        if config.pop("kind", "digits") == "pictures":
            config.setdefault("width", FIRST_PICTURE_WIDTH)
            model = PictureClassifier(**config)
        else:
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
    epochs: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dataset: str = "mnist",
    data_dir: str | Path | None = None,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    width: int = PICTURE_WIDTH,
    augmentation: str = DIGIT_AUGMENTATIONS[0],
) -> nn.Module:
    """The judge cached at `path`, or a fresh one trained on `dataset`'s training split
    (a folder dataset's pictures read at `size` (H, W) and `channels`; `width` of a
    picture judge, `augmentation` of a digit judge), then saved to `path`. A cached file
    of an older format, or trained with another recipe (epochs, seed, width or
    augmentation, dataset, number and shape of images), is replaced."""
    path = Path(path)
    train = load_split(dataset, "train", data_dir, size=size, channels=channels)
    shape = list(train.images.shape[1:])
    epochs = EPOCHS[recipe_kind(shape)] if epochs is None else epochs
    recipe = {"dataset": dataset, "epochs": epochs, "seed": seed, "num_train": len(train.labels)}
    if shape == [1, SIZE, SIZE]:
        recipe["augmentation"] = augmentation
    else:
        recipe["image_shape"] = shape
        recipe["width"] = width
    if path.is_file():
        cached = _read_document(path)
        saved = dict(cached.get("recipe") or {})
        if "image_shape" in saved:
            saved.setdefault("width", FIRST_PICTURE_WIDTH)
        else:  # digit judges saved before the recipe named it had the shifts alone
            saved.setdefault("augmentation", "shifts")
        if cached.get("format_version") == FORMAT_VERSION and saved == recipe:
            return load_classifier(path, device)
    model = train_classifier(
        train.images,
        train.labels,
        epochs=epochs,
        seed=seed,
        device=device,
        width=width,
        augmentation=augmentation,
    )
    save_classifier(model, path, recipe=recipe)
    return model


def cached_judge_path(config, data_dir: str | Path | None) -> Path:
    """Where `evaluate --samples` keeps the judge of a run's dataset: in the user cache,
    one file per dataset, data folder and image shape (`config`, a `RunConfig`)."""
    folder = locate_dataset(config.dataset, data_dir).resolve()
    key = hashlib.sha256(repr((str(folder), tuple(config.image_shape))).encode()).hexdigest()
    return cache_dir() / "judges" / f"{config.dataset}-{key[:16]}.pt"


def judge_for_run(
    path: str | Path,
    config,
    data_dir: str | Path | None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    width: int = PICTURE_WIDTH,
    augmentation: str = DIGIT_AUGMENTATIONS[0],
) -> nn.Module:
    """`load_or_train_judge` for the dataset, image shape and data folder of a run
    (`config`, a `RunConfig`)."""
    return load_or_train_judge(
        path,
        epochs=epochs,
        seed=seed,
        device=device,
        width=width,
        augmentation=augmentation,
        dataset=config.dataset,
        data_dir=data_dir,
        size=config.image_shape[1:],
        channels=config.image_shape[0],
    )
