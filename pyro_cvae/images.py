"""User images in and out: PNG, JPEG, `.npy` and IDX files, or a folder of pictures, read
into float32 `[N, C, H, W]` in [0, 1]; images and completions written as `.npy`.

This is the one place where the file layout meets the library's: an `.npy` holds grey
images as `[N, H, W]` and colour ones as `[N, H, W, 3]` (the layout of numpy, PIL and
matplotlib), the library `[N, C, H, W]`.

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
from .config import label_indices
from .data import check_labels, idx_images, idx_labels, read_idx
from .errors import DataError, first_line

MAX_PIXELS = 1 << 24  # a picture claiming more is refused before it is decoded
PICTURES = (".png", ".jpg", ".jpeg")
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


def _decode(source, channels: int | None, size: tuple[int, int] | None) -> np.ndarray | None:
    """The picture in `source` (a path or a binary file object) as `[C, H, W]` float32 in
    [0, 1] (C: `channels`, or 1 for grey pictures and 3 for colour ones), resized (bicubic)
    to `size` (H, W) when given, or None when it is too large to decode."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(source, formats=["PNG", "JPEG"])
        except Image.DecompressionBombError:
            return None
    with image:
        if image.width * image.height > MAX_PIXELS:
            return None
        channels = channels or (3 if image.mode not in ("1", "L", "LA", *_SIXTEEN_BIT) else 1)
        if image.mode in _SIXTEEN_BIT:  # grey of 16 bits: kept whole, repeated for colour
            image, top = image.convert("F"), 65535.0
        else:
            image, top = image.convert("L" if channels == 1 else "RGB"), 255.0
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BICUBIC)
        array = np.clip(np.asarray(image, dtype=np.float32) / top, 0, 1)
    if array.ndim == 2:
        return np.repeat(array[None], channels, axis=0)
    return array.transpose(2, 0, 1).copy()


def _picture(source, where: str, channels: int | None, size: tuple[int, int] | None):
    """`_decode`'s picture as a tensor, or a `DataError` that starts with `where` (and gives
    Pillow's reason for a file; for bytes in memory it would name an object's address)."""
    try:
        array = _decode(source, channels, size)
    except Exception as error:  # Pillow raises many kinds on damaged or hostile files
        reason = f" ({first_line(error)})" if isinstance(source, Path) else ""
        raise DataError(f"{where}not a readable PNG or JPEG image{reason}") from None
    if array is None:
        raise DataError(f"{where}the image is far too large ({MAX_PIXELS} pixels at most)")
    if array.size == 0:
        raise DataError(f"{where}the image is empty")
    return torch.from_numpy(array)


def read_picture(
    path: str | Path, channels: int | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """A PNG or JPEG as float32 `[C, H, W]` in [0, 1]: C = `channels` (colour converted to
    grey for 1, grey repeated for 3), or the picture's own (1 for grey, 3 for colour);
    16-bit grey is scaled to [0, 1]; resized (bicubic) to `size` (H, W) when given."""
    path = _existing_file(Path(path))
    return _picture(path, f"{path}: ", channels, size)


def decode_picture(
    data: bytes, channels: int | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """A PNG or JPEG file's bytes (an upload) as float32 `[C, H, W]` in [0, 1], as
    `read_picture` reads a file."""
    import io

    return _picture(io.BytesIO(data), "", channels, size)


def encode_png(image: torch.Tensor) -> bytes:
    """One image `[C, H, W]` in [0, 1] (C 1 or 3) as the bytes of an 8-bit PNG. Values are
    rounded to the nearest level, so a picture read from 8-bit pixels comes back exact."""
    import io

    from PIL import Image

    levels = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = levels[0].numpy() if levels.shape[0] == 1 else levels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")  # uint8: L or RGB
    return buffer.getvalue()


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
    """An `.npy` array of grey `[H, W]`, `[N, H, W]` or colour `[H, W, 3]`, `[N, H, W, 3]`
    images, values in [0, 1] or 0..255, as `[N, C, H, W]` float32 in [0, 1]. A 3-d array
    whose last axis is 3 is read as one colour image."""
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3):
        array = array[None]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3) or not array.size:
        raise DataError(
            f"{path}: expected grey images [H, W] or [N, H, W] or colour ones [H, W, 3] or "
            f"[N, H, W, 3], got {list(array.shape)}"
        )
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: expected numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataError(f"{path}: the array holds NaN or infinite values")
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"{path}: pixel values must be in [0, 1] or 0..255")
    images = torch.from_numpy(array.astype(np.float32))
    images = images[:, None] if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()
    return images / 255.0 if images.max() > 1 else images


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Images `[N, C, H, W]` with `channels` channels: grey repeated into red, green and blue,
    or colour made grey (ITU-R 601 luma, as Pillow does)."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = images.new_tensor([0.299, 0.587, 0.114])[None, :, None, None]
    return (images * weights).sum(1, keepdim=True)


def _folder_pictures(folder: Path, channels: int | None) -> torch.Tensor:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURES and p.is_file())
    if not files:
        raise DataError(f"{folder}: holds no PNG or JPEG pictures")
    pictures = [read_picture(p, channels) for p in files]
    shapes = {tuple(p.shape) for p in pictures}
    if len(shapes) > 1:
        raise DataError(f"{folder}: the pictures differ in size or colour ({sorted(shapes)[:2]})")
    return torch.stack(pictures)


def read_images(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """Images from a PNG or JPEG, a folder of them (sorted by name), an `.npy` (see
    `_npy_images`) or an IDX images file (`.gz` or raw): float32 `[N, C, H, W]` in [0, 1],
    C = `channels` when given (grey and colour converted), else the files' own."""
    path = Path(path)
    if path.is_dir():
        return _folder_pictures(path, channels)
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix in PICTURES:
        images = read_picture(path, channels)[None]
    elif suffix == ".npy":
        images = _npy_images(_load_npy(path), path)
    else:
        images = idx_images(read_idx(path), str(path))
    return images if channels is None else to_channels(images, channels)


MAX_TEXT_BYTES = 1 << 26


def read_label_names(path: Path) -> list[str]:
    """The labels in a text file, one name or number per line (blank lines skipped)."""
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise DataError(f"{path}: too large for a file of labels")
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file of labels (one per line)") from None


def read_labels(path: str | Path, num_labels: int = 10, class_names=None) -> torch.Tensor:
    """Labels from an IDX labels file, an `.npy` of N integers, or a text file (`.txt`) of
    one class name or number per line (`class_names`: the names, "0".. by default):
    int64 `[N]`."""
    path = _existing_file(Path(path))
    if path.suffix.lower() == ".txt":
        names = class_names or [str(i) for i in range(num_labels)]
        return torch.tensor(label_indices(read_label_names(path), names), dtype=torch.long)
    if path.suffix.lower() == ".npy":
        array = _load_npy(path)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataError(
                f"{path}: expected a 1-D array of integer labels, got "
                f"{array.dtype} {list(array.shape)}"
            )
        return check_labels(torch.from_numpy(array.astype(np.int64)), str(path), num_labels)
    return idx_labels(read_idx(path), str(path), num_labels)


def file_layout(images: torch.Tensor) -> np.ndarray:
    """Images `[..., C, H, W]` in the `.npy` layout: grey `[..., H, W]`, colour
    `[..., H, W, 3]`, float32."""
    array = images.detach().cpu().float()
    array = array[..., 0, :, :] if array.shape[-3] == 1 else array.movedim(-3, -1)
    return array.contiguous().numpy()


def write_npy(path: str | Path, images: torch.Tensor) -> list[int]:
    """Write images `[..., C, H, W]` as a float32 `.npy` in the file layout (`file_layout`),
    atomically. Returns the shape written."""
    array = file_layout(images)
    atomic_write(path, lambda handle: np.save(handle, array))
    return list(array.shape)


def write_completions(path: str | Path, completions: torch.Tensor) -> list[int]:
    """Write completions `[N, K, C, H, W]` as the `.npy` `pyro-cvae inpaint` promises: one
    completion per image (K = 1) as `[N, H, W]` (colour `[N, H, W, 3]`), else
    `[N, K, H, W]` (`[N, K, H, W, 3]`). Returns the shape written."""
    return write_npy(path, completions[:, 0] if completions.shape[1] == 1 else completions)
