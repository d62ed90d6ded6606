"""Datasets: the registry, IDX reading, where data is found, and download with checksums.

Three kinds: "idx" (MNIST, Fashion-MNIST: four IDX files), "cifar" (the CIFAR-10 binary
batches, `cifar.py`) and "folder" (the user's own pictures, `image_folders.py`).

Images cross module boundaries as float32 tensors `[N, C, H, W]` in `[0, 1]`, labels as
int64 tensors `[N]`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import cifar
from .atomic import new_temporary
from .errors import DataError

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_IDX_BYTES = 1 << 31


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array of its shape and type."""
    if not raw:
        raise DataError(f"{name}: the file is empty")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (bad magic number)")
    ndim = raw[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{name}: not an IDX file ({ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    if expected > _MAX_IDX_BYTES:
        raise DataError(f"{name}: IDX header claims {expected} bytes, too large to be real")
    if math.prod(max(size, 1) for size in shape) * dtype.itemsize > _MAX_IDX_BYTES:
        raise DataError(f"{name}: IDX header claims an empty array of shape {shape}, too large")
    body = len(raw) - header
    if body < expected:
        raise DataError(f"{name}: truncated IDX file ({body} of {expected} data bytes)")
    if body > expected:
        raise DataError(f"{name}: {body - expected} unexpected bytes after the IDX data")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed (by content, whatever its name) or raw."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an IDX file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    return parse_idx(raw, str(path))


def _gunzip(raw: bytes, path: Path) -> bytes:
    """Decompress, refusing corrupt data and anything larger than an IDX file may be."""
    limit = _MAX_IDX_BYTES + 4 + 4 * 4
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            data = handle.read(limit + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt gzip data ({error}); download it again") from None
    if len(data) > limit:
        raise DataError(f"{path}: decompresses to more than {limit} bytes, too large to be real")
    return data


def idx_images(array: np.ndarray, name: str) -> torch.Tensor:
    """Check an IDX array of grey images `[N, H, W]` and scale it to float32 `[N, 1, H, W]`
    in [0, 1]."""
    if array.ndim != 3 or 0 in array.shape[1:]:
        raise DataError(f"{name}: expected grey images of shape [N, H, W], got {list(array.shape)}")
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32))[:, None] / 255.0
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise DataError(f"{name}: image values must be uint8 or floats in [0, 1]")
    return torch.from_numpy(array.astype(np.float32))[:, None]


def idx_labels(array: np.ndarray, name: str, num_labels: int = 10) -> torch.Tensor:
    """Check an IDX label array `[N]` of integers in 0..num_labels-1; int64 tensor."""
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataError(
            f"{name}: expected a 1-D array of integer labels, got {array.dtype} {list(array.shape)}"
        )
    return check_labels(torch.from_numpy(array.astype(np.int64)), name, num_labels)


def check_labels(labels: torch.Tensor, name: str, num_labels: int = 10) -> torch.Tensor:
    """Refuse labels outside 0..num_labels-1."""
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
        bad = labels[(labels < 0) | (labels >= num_labels)][0].item()
        raise DataError(f"{name}: label {bad} is outside 0..{num_labels - 1}")
    return labels


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its kind ("idx", "cifar" or "folder"), its files with MD5s
    (for "cifar", the one archive), and the mirrors serving them."""

    name: str
    files: dict[str, tuple[str, str]]  # role -> (file name, md5 of the .gz)
    mirrors: tuple[str, ...]
    bundled: bool = False
    class_names: tuple[str, ...] = tuple(str(digit) for digit in range(10))
    kind: str = "idx"

    def file_name(self, role: str) -> str:
        return self.files[role][0]


_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
_FASHION_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
}

# What each name in `config.DATASETS` stands for.
DATASET_SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        _MNIST_FILES,
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        bundled=True,
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        _FASHION_FILES,
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        class_names=(
            "t-shirt",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "ankle-boot",
        ),
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        {"archive": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")},
        ("https://www.cs.toronto.edu/~kriz/",),
        class_names=(),  # read from batches.meta.txt
        kind="cifar",
    ),
    "folder": DatasetSpec("folder", {}, (), class_names=(), kind="folder"),
}

BUNDLED_DIR = Path(__file__).parent / "_data"


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASET_SPECS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; choose from {', '.join(DATASET_SPECS)}"
        ) from None


def cache_dir() -> Path:
    """The user cache where `pyro-cvae download` puts datasets."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "pyro-cvae"


def _find_file(folder: Path, file_name: str) -> Path | None:
    """The file in `folder` under its `.gz` name or its raw (decompressed) name."""
    for candidate in (folder / file_name, folder / file_name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _holds_dataset(folder: Path, spec: DatasetSpec) -> bool:
    if spec.kind == "cifar":
        return cifar.batch_folder(folder) is not None
    return all(_find_file(folder, spec.file_name(role)) for role in spec.files)


def _explicit_folder(root: Path, spec: DatasetSpec, origin: str) -> Path:
    """`root` itself or `root/<dataset>` when it holds the files; otherwise a clear error."""
    if not root.is_dir():
        raise DataError(f"{origin} {root}: no such folder")
    for folder in (root, root / spec.name):
        if _holds_dataset(folder, spec):
            return folder
    if spec.kind == "cifar":
        raise DataError(
            f"{origin} {root}: no CIFAR-10 batches ({cifar.BATCH_DIR}/data_batch_1.bin ...); "
            f"run `pyro-cvae download cifar10 --dest {root}`"
        )
    missing = [spec.file_name(r) for r in spec.files if not _find_file(root, spec.file_name(r))]
    raise DataError(
        f"{origin} {root}: missing {', '.join(missing)}; run `pyro-cvae download {spec.name} "
        f"--dest {root}` or point to the folder that holds the IDX files"
    )


def locate_dataset(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder holding the dataset's four IDX files.

    Looked for, in order: `data_dir`; `$PYRO_CVAE_DATA`; the user cache filled by
    `pyro-cvae download`; the MNIST subset bundled in the package. A folder given
    explicitly must hold the files (directly or in a `<dataset>` subfolder).
    """
    spec = dataset_spec(name)
    if spec.kind == "folder":
        if data_dir is None:
            raise DataError("--dataset folder needs --data-dir ROOT (ROOT/train/<class>/...)")
        return Path(data_dir)
    if data_dir is not None:
        return _explicit_folder(Path(data_dir), spec, "--data-dir")
    env = os.environ.get("PYRO_CVAE_DATA")
    if env:
        return _explicit_folder(Path(env), spec, "$PYRO_CVAE_DATA")
    cached = cache_dir() / spec.name
    if _holds_dataset(cached, spec):
        return cached
    if spec.bundled and _holds_dataset(BUNDLED_DIR / spec.name, spec):
        return BUNDLED_DIR / spec.name
    raise DataError(f"dataset {name!r} not found; run `pyro-cvae download {name}` first")


@dataclass(frozen=True)
class Split:
    """One split of a dataset: images float32 `[N, C, H, W]` in [0, 1], labels int64 `[N]`,
    and the name of each label."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...] = tuple(str(digit) for digit in range(10))
    held_out: bool = False  # the test split was held out of a folder without test/


def load_split(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> Split:
    """Load the "train" or "test" split of a registered dataset. `size` (H, W) and
    `channels` (1 or 3) resize and convert the pictures of a "folder" dataset; for the
    others they must be their own (a `DataError` otherwise)."""
    return _load(name, (split,), data_dir, size, channels)[0]


def load_splits(
    name: str,
    data_dir: str | Path | None = None,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> tuple[Split, Split]:
    """The (train, test) splits of a registered dataset (`load_split`'s options); a
    folder dataset is listed and read once for both."""
    train, test = _load(name, ("train", "test"), data_dir, size, channels)
    return train, test


def _load(name, splits, data_dir, size, channels) -> list[Split]:
    for split in splits:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = dataset_spec(name)
    folder = locate_dataset(name, data_dir)
    if spec.kind == "folder":
        from .image_folders import load_folder

        loaded = load_folder(folder, cache_dir() / "folders", size=size, channels=channels)
        return [Split(*loaded[s], loaded["class_names"], loaded["held_out"]) for s in splits]
    results = []
    for split in splits:
        if spec.kind == "cifar":
            images, labels, names = cifar.read_split(cifar.batch_folder(folder), split)
            result = Split(images, labels, names)
        else:
            result = _idx_split(spec, folder, split)
        own = result.images.shape[1:]
        if (size is not None and tuple(size) != tuple(own[1:])) or channels not in (None, own[0]):
            raise DataError(
                f"{name} images are {own[2]}x{own[1]} with {own[0]} channel(s); --image-size "
                "and --grayscale resize and convert --dataset folder only"
            )
        results.append(result)
    return results


def load_run_split(config, split: str, data_dir: str | Path | None = None) -> Split:
    """The "train" or "test" split of the dataset a run (`config`, a `RunConfig`) was
    trained on; a folder dataset's pictures read at the run's image shape."""
    return load_split(config.dataset, split, data_dir, **_run_shape(config))


def load_run_splits(config, data_dir: str | Path | None = None) -> tuple[Split, Split]:
    """`load_run_split`'s (train, test), a folder dataset listed and read once."""
    return load_splits(config.dataset, data_dir, **_run_shape(config))


def _run_shape(config) -> dict:
    """The `size` and `channels` a folder dataset is read at for a run; none otherwise."""
    if dataset_spec(config.dataset).kind == "folder":
        return {"size": config.image_shape[1:], "channels": config.image_shape[0]}
    return {}


def _idx_split(spec: DatasetSpec, folder: Path, split: str) -> Split:
    image_path = _find_file(folder, spec.file_name(f"{split}_images"))
    label_path = _find_file(folder, spec.file_name(f"{split}_labels"))
    images = idx_images(read_idx(image_path), str(image_path))
    labels = idx_labels(read_idx(label_path), str(label_path))
    if len(images) != len(labels):
        raise DataError(
            f"{image_path}: {len(images)} images but {label_path.name} has {len(labels)} labels"
        )
    if len(images) == 0:
        raise DataError(f"{image_path}: holds no images")
    return Split(images, labels, spec.class_names)


ProgressCallback = Callable[[str, int, int | None], None]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, progress: ProgressCallback | None, timeout: float) -> None:
    """Stream `url` into a temporary file beside `dest`, then rename it into place."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        fd, tmp = new_temporary(dest, ".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    if progress:
                        progress(dest.name, len(chunk), total)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def download(
    name: str,
    dest: str | Path | None = None,
    *,
    mirrors: tuple[str, ...] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download a dataset's files (the four IDX files; CIFAR-10's archive, then unpacked)
    into `dest` (default: the user cache).

    Each file is tried on every mirror in turn and kept only when its MD5 matches;
    files already present with the right checksum are not fetched again. `progress` is
    called as `progress(file_name, bytes_just_read, total_bytes_or_None)`.
    Returns the folder holding the files.
    """
    spec = dataset_spec(name)
    folder = Path(dest) if dest is not None else cache_dir() / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {folder}: {error.strerror}") from None
    for file_name, md5 in spec.files.values():
        target = folder / file_name
        if target.is_file() and _md5(target) == md5:
            continue
        failures = []
        for mirror in mirrors or spec.mirrors:
            url = mirror.rstrip("/") + "/" + file_name
            try:
                _fetch(url, target, progress, timeout)
            except (urllib.error.URLError, OSError, ValueError) as error:
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
                continue
            if _md5(target) == md5:
                break
            target.unlink()
            failures.append(f"{url}: checksum mismatch")
        else:
            raise DataError(f"could not download {file_name}: " + "; ".join(failures))
    if spec.kind == "cifar":
        return cifar.unpack(folder / spec.file_name("archive"), folder)
    return folder
