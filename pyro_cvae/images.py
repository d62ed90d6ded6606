"""Reading user images: PNG, `.npy` and IDX files into float32 `[N, 28, 28]` in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import check_labels, idx_images, idx_labels, read_idx
from .errors import DataError

SIZE = 28


def read_png(path: str | Path) -> torch.Tensor:
    """A PNG as float32 `[H, W]` grey levels in [0, 1] (colour is converted to grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    if grey.size == 0:
        raise DataError(f"{path}: the image is empty")
    return torch.from_numpy(grey)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy file ({error})") from None


def _npy_images(array: np.ndarray, path: Path) -> torch.Tensor:
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (SIZE, SIZE) or array.shape[0] == 0:
        raise DataError(
            f"{path}: expected an array [28, 28] or [N, 28, 28], got {list(array.shape)}"
        )
    if array.dtype.kind not in "uif" or array.dtype.kind == "c":
        raise DataError(f"{path}: expected numbers, got dtype {array.dtype}")
    images = torch.from_numpy(array.astype(np.float32))
    if not torch.isfinite(images).all():
        raise DataError(f"{path}: the array holds NaN or infinite values")
    if images.min() < 0:
        raise DataError(f"{path}: pixel values must be in [0, 1] or 0..255")
    if images.max() > 1:
        if images.max() > 255:
            raise DataError(f"{path}: pixel values must be in [0, 1] or 0..255")
        images = images / 255.0
    return images


def read_images(path: str | Path) -> torch.Tensor:
    """Images from a PNG (28x28), an `.npy` (`[28, 28]` or `[N, 28, 28]`, values in [0, 1]
    or 0..255) or an IDX images file (`.gz` or raw): float32 `[N, 28, 28]` in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
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
    path = Path(path)
    if path.suffix.lower() == ".npy":
        array = _load_npy(path)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataError(
                f"{path}: expected a 1-D array of integer labels, got "
                f"{array.dtype} {list(array.shape)}"
            )
        return check_labels(torch.from_numpy(array.astype(np.int64)), str(path), num_labels)
    return idx_labels(read_idx(path), str(path), num_labels)
