"""User images in and out: PNG, `.npy` and IDX files read into float32 `[N, 28, 28]` in
[0, 1]; arrays of images and completions written as `.npy`.

Every reader takes untrusted files: whatever the bytes, the result is the documented
tensor or a `DataError` saying what is wrong; nothing is decoded that could not be an
image of sensible size, and `.npy` files are never unpickled.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .data import check_labels, idx_images, idx_labels, read_idx
from .errors import DataError, first_line

SIZE = 28
MAX_PIXELS = 1 << 24  # a PNG claiming more is refused before it is decoded
_NPY_MAGIC = b"\x93NUMPY"
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L")


def _existing_file(path: Path) -> Path:
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as error:  # a name too long, a loop of links, ...
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    if is_dir:
        raise DataError(f"{path}: is a folder, not a file")
    if not is_file:
        raise DataError(f"{path}: file not found")
    return path


def _decode_png(path: Path) -> np.ndarray | None:
    """The grey levels `[H, W]` in [0, 1], or None when the image is too large to decode."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path, formats=["PNG"])
        except Image.DecompressionBombError:
            return None
    with image:
        if image.width * image.height > MAX_PIXELS:
            return None
        if image.mode in _SIXTEEN_BIT:
            return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0, 1)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def read_png(path: str | Path) -> torch.Tensor:
    """A PNG as float32 `[H, W]` grey levels in [0, 1] (colour is converted to grey,
    16-bit grey scaled to [0, 1])."""
    path = _existing_file(Path(path))
    try:
        grey = _decode_png(path)
    except Exception as error:  # Pillow raises many kinds on damaged or hostile files
        raise DataError(f"{path}: not a readable PNG image ({first_line(error)})") from None
    if grey is None:
        raise DataError(f"{path}: the image is far too large (expected 28x28)")
    if grey.size == 0:
        raise DataError(f"{path}: the image is empty")
    return torch.from_numpy(grey)


def _load_npy(path: Path) -> np.ndarray:
    """An `.npy` array, its size checked against the file before anything is allocated."""
    try:
        with _existing_file(path).open("rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    if magic != _NPY_MAGIC:
        raise DataError(f"{path}: not an .npy file (it lacks the NumPy header)")
    try:
        return np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    except Exception as error:  # numpy's header parser raises many kinds on damaged files
        raise DataError(f"{path}: not a readable .npy file ({first_line(error)})") from None


def _npy_images(array: np.ndarray, path: Path) -> torch.Tensor:
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (SIZE, SIZE) or array.shape[0] == 0:
        raise DataError(
            f"{path}: expected an array [28, 28] or [N, 28, 28], got {list(array.shape)}"
        )
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: expected numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataError(f"{path}: the array holds NaN or infinite values")
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"{path}: pixel values must be in [0, 1] or 0..255")
    images = torch.from_numpy(array.astype(np.float32))
    return images / 255.0 if images.max() > 1 else images


def read_images(path: str | Path) -> torch.Tensor:
    """Images from a PNG (28x28), an `.npy` (`[28, 28]` or `[N, 28, 28]`, values in [0, 1]
    or 0..255) or an IDX images file (`.gz` or raw): float32 `[N, 28, 28]` in [0, 1]."""
    path = _existing_file(Path(path))
    suffix = path.suffix.lower()
    if suffix == ".png":
        image = read_png(path)
        if image.shape != (SIZE, SIZE):
            raise DataError(
                f"{path}: expected a 28x28 image, got {image.shape[1]}x{image.shape[0]}"
            )
        return image[None]
    if suffix == ".npy":
        return _npy_images(_load_npy(path), path)
    return idx_images(read_idx(path), str(path))


def read_labels(path: str | Path, num_labels: int = 10) -> torch.Tensor:
    """Labels from an IDX labels file or an `.npy` of N integers: int64 `[N]`."""
    path = _existing_file(Path(path))
    if path.suffix.lower() == ".npy":
        array = _load_npy(path)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataError(
                f"{path}: expected a 1-D array of integer labels, got "
                f"{array.dtype} {list(array.shape)}"
            )
        return check_labels(torch.from_numpy(array.astype(np.int64)), str(path), num_labels)
    return idx_labels(read_idx(path), str(path), num_labels)


def write_npy(path: str | Path, images: torch.Tensor | np.ndarray) -> None:
    """Write images (any shape) as a float32 `.npy`, atomically."""
    array = np.asarray(images, dtype=np.float32)
    atomic_write(path, lambda handle: np.save(handle, array))


def write_completions(path: str | Path, completions: torch.Tensor) -> list[int]:
    """Write completions `[N, K, 28, 28]` as the `.npy` `pyro-cvae inpaint` promises:
    `[N, 28, 28]` for one completion per image (K = 1), else `[N, K, 28, 28]`. Returns
    the shape written."""
    array = completions[:, 0] if completions.shape[1] == 1 else completions
    write_npy(path, array)
    return list(array.shape)
