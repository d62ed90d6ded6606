"""A folder of the user's own pictures as a dataset, decoded once and cached.

Layout (torchvision's `ImageFolder`, one level up): `ROOT/train/<class>/*.png|jpg` and
`ROOT/test/<class>/*`. Class names are the sorted subfolder names of `train/`. Without
`test/`, a fixed, seeded 10% of each class is held out as the test split. Pictures are
resized to a requested (H, W) (bicubic), else must all have one size; grey or colour
follows the pictures unless a channel count is asked for.

The decoded split is cached as uint8 in the user cache, keyed by the list of files with
their sizes and modification times and by the requested shape, so a second `train` on
the same folder does not decode it again.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .errors import DataError, OutputError
from .images import PICTURES, read_picture

HELD_OUT = 0.1
HOLD_OUT_SEED = 0
CACHE_FORMAT = "pyro-cvae-folder-cache"
_LAST: dict[str, dict] = {}  # the splits of the last folder read in this process, by key


def _pictures(folder: Path) -> list[tuple[str, int, int]]:
    """The paths of the pictures in `folder`, sorted by name, with their sizes and
    modification times (ns): one directory scan, plain strings (tens of thousands of
    files)."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in PICTURES and entry.is_file():
                status = entry.stat()
                found.append((entry.path, status.st_size, status.st_mtime_ns))
    return sorted(found)


def _classes(root: Path) -> tuple[str, ...]:
    train = root / "train"
    if not train.is_dir():
        raise DataError(
            f"{root}: no train/ folder; a folder dataset is ROOT/train/<class>/*.png|jpg "
            "(and optionally ROOT/test/<class>/*)"
        )
    names = tuple(sorted(p.name for p in train.iterdir() if p.is_dir()))
    if not names:
        raise DataError(f"{train}: holds no class folders")
    return names


def _decode(path: str, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """One picture as uint8 `[C, H, W]` (`images.read_picture`), resized to `size`."""
    picture = read_picture(path, channels, size)
    return (picture * 255).round().to(torch.uint8).numpy()


def _decode_all(files, size, channels) -> torch.Tensor:
    arrays = [_decode(path, size, channels) for path in files]
    for array, path in zip(arrays, files):
        if array.shape != arrays[0].shape:
            (c1, h1, w1), (c2, h2, w2) = arrays[0].shape, array.shape
            raise DataError(
                f"the pictures differ in size or colour ({files[0]}: {w1}x{h1}, {c1} channels; "
                f"{path}: {w2}x{h2}, {c2}); give --image-size S or HxW (and --grayscale for "
                "one channel)"
            )
    return torch.from_numpy(np.stack(arrays))


def _listing(root: Path, classes) -> dict[str, list[tuple[str, int, int, int]]]:
    """Per split ("train", and "test" when the folder has one): each picture with its label,
    size and modification time."""
    splits = {}
    for split in ("train", "test"):
        if split == "test" and not (root / "test").is_dir():
            continue
        files = []
        for label, name in enumerate(classes):
            folder = root / split / name
            if folder.is_dir():
                files += [(path, label, size, mtime) for path, size, mtime in _pictures(folder)]
        if not files:
            raise DataError(f"{root / split}: holds no PNG or JPEG pictures in its class folders")
        splits[split] = files
    return splits


def _cache_key(listing, size, channels) -> str:
    digest = hashlib.sha256(repr((size, channels)).encode())
    for split, files in listing.items():
        for path, label, size_bytes, mtime in files:
            digest.update(f"{split}\0{path}\0{label}\0{size_bytes}\0{mtime}\n".encode())
    return digest.hexdigest()[:32]


def _read_cache(path: Path) -> dict | None:
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged or foreign cache file is decoded again, never trusted
        return None
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
        return None
    return document


def _held_out(labels: torch.Tensor) -> torch.Tensor:
    """A bool `[N]`: a fixed, seeded 10% of each class (at least one image of a class of
    two or more)."""
    generator = torch.Generator().manual_seed(HOLD_OUT_SEED)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        count = math.ceil(HELD_OUT * len(members)) if len(members) > 1 else 0
        held[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return held


def load_folder(
    root: str | Path,
    cache: Path,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> dict:
    """Both splits of the folder dataset at `root`: `{"train": (images, labels), "test":
    (images, labels), "class_names": (...), "held_out": bool}`, images float32
    `[N, C, H, W]` in [0, 1], labels int64 `[N]`. `held_out`: the test split was held out
    from train/ (there is no test/). Decoded splits are cached in the folder `cache`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: no such folder")
    classes = _classes(root)
    listing = _listing(root, classes)
    # The key names the shape the pictures are read at, so a run that asked for nothing and
    # one that asks for its resolved shape (resume, evaluate) share one decoding.
    first = read_picture(listing["train"][0][0], channels, size).shape  # one picture read
    key = _cache_key(listing, tuple(size or first[1:]), channels or first[0])
    if key not in _LAST:  # the train and the test split are asked for one after the other
        _LAST.clear()
        _LAST[key] = _splits(_decoded(root, listing, cache / f"{key}.pt", size, channels))
    return {"class_names": classes, "held_out": "test" not in listing, **_LAST[key]}


def _decoded(root: Path, listing, path: Path, size, channels) -> dict:
    """The pictures of `listing` as uint8, read from the cache file `path`, else decoded and
    written there."""
    document = _read_cache(path) if path.is_file() else None
    if document is not None:
        return document
    document = {"format": CACHE_FORMAT}
    for split, files in listing.items():
        document[split] = _decode_all([entry[0] for entry in files], size, channels)
        document[f"{split}_labels"] = torch.tensor([entry[1] for entry in files])
    if "test" in listing and document["test"].shape[1:] != document["train"].shape[1:]:
        raise DataError(f"{root}: the test pictures differ in size from the training ones")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: torch.save(document, handle))
    except (OSError, OutputError):
        pass  # a cache that cannot be written only costs the next decoding
    return document


def _splits(document: dict) -> dict:
    """{"train": (images, labels), "test": (...)}, images float32 in [0, 1]; the test split
    held out of the training pictures when there is no test/."""
    images, labels = document["train"], document["train_labels"]
    if "test" in document:
        splits = {"train": (images, labels), "test": (document["test"], document["test_labels"])}
    else:
        held = _held_out(labels)
        splits = {"train": (images[~held], labels[~held]), "test": (images[held], labels[held])}
        if not held.any():
            raise DataError("too few pictures to hold out a test split; add a test/ folder")
    return {split: (pictures.float().div_(255.0), y) for split, (pictures, y) in splits.items()}
