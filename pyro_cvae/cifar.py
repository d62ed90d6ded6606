"""CIFAR-10 in its official binary format: the batch reader and safe unpacking of the archive.

The archive `cifar-10-binary.tar.gz` holds `cifar-10-batches-bin/` with
`data_batch_1.bin` .. `data_batch_5.bin` (training), `test_batch.bin` and
`batches.meta.txt` (the class names, one per line). Each record is 1 label byte, then
3,072 pixel bytes: the 32x32 red plane, then green, then blue. Never the pickled Python
version: nothing here unpickles.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .errors import DataError

BATCH_DIR = "cifar-10-batches-bin"
SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32
BATCHES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
META = "batches.meta.txt"


def batch_folder(root: Path) -> Path | None:
    """The folder holding the batches: `root` itself or `root/cifar-10-batches-bin`."""
    for folder in (root, root / BATCH_DIR):
        if all((folder / name).is_file() for names in BATCHES.values() for name in names):
            return folder
    return None


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file: images uint8 `[N, 3, 32, 32]` and labels int64 `[N]`."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(
            f"{path}: not a CIFAR-10 batch ({raw.size} bytes is not a whole number of "
            f"{RECORD}-byte records; truncated?)"
        )
    records = raw.reshape(-1, RECORD)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    if labels.max() > 9:
        raise DataError(f"{path}: label {labels.max().item()} is outside 0..9")
    return torch.from_numpy(records[:, 1:].reshape(-1, *SHAPE).copy()), labels


def read_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The "train" or "test" split in `folder` (see `batch_folder`): images float32
    `[N, 3, 32, 32]` in [0, 1], labels int64 `[N]`, and the ten class names."""
    parts = [read_batch(folder / name) for name in BATCHES[split]]
    names = tuple(line.strip() for line in (folder / META).read_text().splitlines() if line.strip())
    if len(names) != 10:
        raise DataError(f"{folder / META}: expected 10 class names, found {len(names)}")
    images = torch.cat([images for images, _ in parts]).float() / 255.0
    return images, torch.cat([labels for _, labels in parts]), names


def unpack(archive: Path, dest: Path) -> Path:
    """Extract the archive's folders and regular files into `dest`, refusing (a `DataError`,
    before anything is written) any member that would land outside `dest` or is a link, a
    device or anything else. Returns the folder holding the batches."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise DataError(f"{archive}: refused: member {member.name!r} leaves the folder")
                if not (member.isfile() or member.isdir()):
                    raise DataError(
                        f"{archive}: refused: member {member.name!r} is not a regular file"
                    )
            # the members are checked above; the "data" filter checks again where it exists
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **safe)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{archive}: not a readable tar.gz archive ({error})") from None
    folder = batch_folder(dest)
    if folder is None:
        raise DataError(f"{archive}: does not hold the CIFAR-10 batches ({BATCH_DIR}/...)")
    return folder
