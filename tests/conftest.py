"""Shared fixtures: tiny real MNIST folders cut from the bundled data, and trained runs."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pyro_cvae.cli.main import cli
from pyro_cvae.data import load_split

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX by hand (big-endian header and data)."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_dataset(folder: Path, n_train: int, n_test: int) -> Path:
    """A folder with the four MNIST IDX files holding the first images of the bundled set."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        source = load_split("mnist", "train" if split == "train" else "test")
        images = (source.images[:n, 0].numpy() * 255).round().astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(
            folder / f"{split}-labels-idx1-ubyte.gz", source.labels[:n].numpy().astype(np.uint8)
        )
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3000 training and 500 test images."""
    return write_dataset(tmp_path_factory.mktemp("data") / "mnist", 3000, 500)


def run_cli(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="session")
def label_run(tiny_data, tmp_path_factory) -> Path:
    """A label CVAE trained 3 epochs on the tiny data through the real CLI."""
    run_dir = tmp_path_factory.mktemp("runs") / "label"
    run_cli("train", "--data-dir", tiny_data, "--epochs", 3, "--out", run_dir, "--device", "cpu")
    return run_dir


@pytest.fixture(scope="session")
def vae_run(tiny_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "vae"
    run_cli(
        "train",
        "--condition",
        "none",
        "--data-dir",
        tiny_data,
        "--epochs",
        1,
        "--out",
        run_dir,
        "--device",
        "cpu",
    )
    return run_dir


@pytest.fixture(scope="session")
def pixels_run(tiny_data, tmp_path_factory) -> Path:
    """A hole-filling CVAE trained 10 epochs on the tiny data through the real CLI."""
    run_dir = tmp_path_factory.mktemp("runs") / "pixels"
    run_cli(
        "train",
        "--condition",
        "pixels",
        "--data-dir",
        tiny_data,
        "--epochs",
        10,
        "--hidden",
        "256,128",
        "--z-dim",
        8,
        "--arch",
        "mlp",
        "--out",
        run_dir,
        "--device",
        "cpu",
    )
    return run_dir


@pytest.fixture(scope="session")
def test_digits(tmp_path_factory) -> tuple[Path, Path]:
    """The last 40 bundled test images (never in `tiny_data`) as .npy, and their labels."""
    folder = tmp_path_factory.mktemp("digits")
    test = load_split("mnist", "test")
    np.save(folder / "images.npy", test.images[-40:, 0].numpy())
    np.save(folder / "labels.npy", test.labels[-40:].numpy())
    return folder / "images.npy", folder / "labels.npy"


@pytest.fixture(scope="session")
def small_run(tiny_data, tmp_path_factory) -> Path:
    """A small label CVAE (hidden 32,16) trained 1 epoch: for tests that need any run.
    Read-only: copy it before changing it."""
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    run_cli(
        "train",
        "--data-dir",
        tiny_data,
        "--epochs",
        1,
        "--hidden",
        "32,16",
        "--out",
        run_dir,
        "--device",
        "cpu",
    )
    return run_dir
