"""Property-based tests of the readers of untrusted files: on any bytes, shape or text
they return the documented result or raise `DataError`; never another exception or a
warning, never a hang (each example has a deadline)."""

from __future__ import annotations

import functools
import gzip
import io
import struct
import zlib
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from pyro_cvae.data import parse_idx, read_idx
from pyro_cvae.errors import DataError
from pyro_cvae.images import read_images, read_labels, read_picture
from pyro_cvae.masks import MaskSpec, parse_mask, read_mask_image

pytestmark = pytest.mark.filterwarnings("error")  # a warning would be a second line on stderr
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def outcome(read, *args):
    """`read(*args)`, or None when it refused the input with a `DataError`."""
    try:
        return read(*args)
    except DataError:
        return None


def mutated(data: st.DataObject, raw: bytes) -> bytes:
    """`raw` with a few bytes overwritten, perhaps cut short, perhaps with bytes appended."""
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw
    return bytes(raw) + data.draw(st.binary(max_size=8))


idx_headers = st.builds(
    lambda code, dims: bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims),
    st.one_of(st.sampled_from(IDX_CODES), st.integers(0, 255)),
    st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), max_size=6),
)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300), st.tuples(idx_headers, st.binary(max_size=300)).map(b"".join)
    )
)
# an empty array (a dimension of 0) whose other dimensions multiply past any memory
@example(raw=bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 2**31 + 2**29, 2**31 + 2**30))
def test_parse_idx_returns_the_array_the_header_describes_or_refuses(raw):
    array = outcome(parse_idx, raw)
    if array is not None:
        assert raw[2] in IDX_CODES and array.ndim == raw[3]
        assert 4 + 4 * array.ndim + array.nbytes == len(raw)


@FUZZ
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
def test_read_idx_survives_damaged_gzip_and_raw_files(folder, data, shape):
    from .conftest import idx_bytes

    valid = idx_bytes(np.arange(np.prod(shape), dtype=np.uint8).reshape(shape))
    raw = mutated(data, data.draw(st.sampled_from([valid, gzip.compress(valid)])))
    path = folder / "fuzz-idx"
    path.write_bytes(raw)
    array = outcome(read_idx, path)
    assert array is None or isinstance(array, np.ndarray)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def check_images(images):
    if images is not None:
        assert images.dtype == torch.float32 and images.ndim == 4 and len(images) >= 1
        assert images.shape[1] in (1, 3) and min(images.shape[2:]) >= 1
        assert images.isfinite().all()
        assert images.min() >= 0 and images.max() <= 1


def check_labels(labels):
    if labels is not None:
        assert labels.dtype == torch.int64 and labels.ndim == 1
        assert labels.numel() == 0 or (labels.min() >= 0 and labels.max() <= 9)


arrays = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
    shape=st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        st.sampled_from([(28, 28), (2, 28, 28), (0, 28, 28), (1, 28, 27), (3,), (0,)]),
    ),
)


@FUZZ
@given(array=arrays)
def test_npy_readers_take_any_array_or_refuse_it(folder, array):
    path = folder / "fuzz.npy"
    path.write_bytes(npy_bytes(array))
    check_images(outcome(read_images, path))
    check_labels(outcome(read_labels, path))


@FUZZ
@given(data=st.data())
def test_npy_readers_survive_damaged_files(folder, data):
    valid = npy_bytes(data.draw(st.sampled_from([np.zeros((2, 28, 28), np.float32), np.arange(5)])))
    raw = data.draw(
        st.one_of(st.binary(max_size=200), st.just(valid).map(lambda v: mutated(data, v)))
    )
    path = folder / "damaged.npy"
    path.write_bytes(raw)
    check_images(outcome(read_images, path))
    check_labels(outcome(read_labels, path))


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def png_files(draw):
    """Valid PNGs of any small size in the modes Pillow writes: grey, 16-bit grey, colour,
    alpha, palette and 1-bit."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    mode = draw(st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "1", "I;16"]))
    if mode == "I;16":
        array = draw(hnp.arrays(np.uint16, (height, width)))
        return png_bytes(array)
    image = Image.fromarray(draw(hnp.arrays(np.uint8, (height, width))), "L")
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


pngs = st.one_of(png_files(), st.binary(max_size=200))


@FUZZ
@given(data=st.data(), raw=pngs)
def test_png_readers_take_any_image_or_refuse_it(folder, data, raw):
    raw = mutated(data, raw) if raw and data.draw(st.booleans()) else raw
    path = folder / "fuzz.png"
    path.write_bytes(raw)
    picture = outcome(read_picture, path)
    if picture is not None:
        assert picture.dtype == torch.float32 and picture.ndim == 3 and picture.numel() > 0
        assert picture.shape[0] in (1, 3) and picture.min() >= 0 and picture.max() <= 1
    check_images(outcome(read_images, path))
    check_images(outcome(read_images, path, 3))
    hole = outcome(read_mask_image, path)
    if hole is not None:
        assert hole.dtype == torch.bool and hole.ndim == 2 and hole.any()


def test_png_readers_read_what_was_written(folder):
    array = np.zeros((28, 28), np.uint8)
    array[:14] = 255
    (folder / "half.png").write_bytes(png_bytes(array))
    assert torch.equal(read_mask_image(folder / "half.png")[:, 0], torch.arange(28) < 14)
    deep = (np.arange(784, dtype=np.uint16).reshape(28, 28) * 80).astype(np.uint16)
    (folder / "deep.png").write_bytes(png_bytes(deep))
    assert torch.allclose(
        read_images(folder / "deep.png")[0, 0], torch.from_numpy(deep / 65535.0).float()
    )


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("side", [12_000, 60_000])
def test_a_png_claiming_a_huge_size_is_refused_before_decoding(folder, side):
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    pixels = png_chunk(b"IDAT", zlib.compress(bytes(100)))
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + header + pixels + png_chunk(b"IEND", b"")
    )
    with pytest.raises(DataError, match="far too large"):
        read_picture(folder / "bomb.png")


mask_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["top-half", "center", "quadrant-br", "not:top-half", "not:center"]),
    st.builds(lambda *n: "box:" + ",".join(n), *[st.from_regex(r"-?\d{1,3}", fullmatch=True)] * 4),
    st.builds("box:{}".format, st.text(max_size=12)),
    st.builds("random-pixels:{}".format, st.one_of(st.floats(), st.text(max_size=8))),
    st.builds("not:{}".format, st.text(max_size=20)),
    st.builds("{}.png".format, st.text(max_size=300)),
)


@FUZZ
@given(text=mask_texts)
def test_parse_mask_takes_any_text_or_refuses_it(text):
    spec = outcome(parse_mask, text)
    if spec is not None:
        assert isinstance(spec, MaskSpec)
        holes = outcome(
            functools.partial(spec.holes, size=(28, 28)), 3, torch.Generator().manual_seed(0)
        )
        assert holes is None or (holes.dtype == torch.bool and holes.shape == (3, 28, 28))


def test_deeply_nested_not_masks_are_refused_not_a_recursion_error():
    with pytest.raises(DataError, match="cannot be nested"):
        parse_mask("not:" * 5000 + "top-half")
