"""IDX reading against hand-made files, dataset location order, bundled data."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from pyro_cvae import data
from pyro_cvae.errors import DataError

from .conftest import idx_bytes, write_dataset, write_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trips_hand_made_files(tmp_path, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"images{suffix}", array)
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_read_idx_reads_int32_and_float32(tmp_path):
    ints = np.array([-5, 0, 70000], dtype=np.int32)
    floats = np.array([[0.5, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "i", ints)), ints)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "f", floats)), floats)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x08\x03\x00\x00", "bad magic"),
        (idx_bytes(np.zeros((2, 2), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((2, 2), np.uint8)) + b"x", "unexpected bytes"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
    ],
)
def test_malformed_idx_is_refused_with_the_reason(tmp_path, raw, message):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message):
        data.read_idx(path)


def test_garbage_after_gzip_header_is_a_data_error(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100)[:20] + b"garbage")
    with pytest.raises(DataError, match="corrupt gzip"):
        data.read_idx(path)


def test_bundled_mnist_is_a_15000_image_subset_with_the_full_test_set():
    train = data.load_split("mnist", "train")
    test = data.load_split("mnist", "test")
    assert train.images.shape == (15000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert (
        train.images.dtype.is_floating_point and 0 <= train.images.min() and train.images.max() <= 1
    )
    assert set(train.labels.tolist()) == set(range(10))


def test_data_dir_comes_before_environment_and_bundle(tmp_path, monkeypatch):
    mine = write_dataset(tmp_path / "mine", 30, 20)
    env = write_dataset(tmp_path / "env", 40, 20)
    monkeypatch.setenv("PYRO_CVAE_DATA", str(env))
    assert len(data.load_split("mnist", "train", mine).images) == 30
    assert len(data.load_split("mnist", "train").images) == 40
    monkeypatch.delenv("PYRO_CVAE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert len(data.load_split("mnist", "train").images) == 15000


def test_cache_is_used_before_the_bundle(tmp_path, monkeypatch):
    monkeypatch.delenv("PYRO_CVAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_dataset(tmp_path / "pyro-cvae" / "mnist", 50, 20)
    assert len(data.load_split("mnist", "train").images) == 50


def test_dataset_subfolder_and_raw_files_are_found(tmp_path):
    folder = write_dataset(tmp_path / "root" / "mnist", 30, 20)
    for gz in folder.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(data.load_split("mnist", "test", tmp_path / "root").images) == 20


def test_missing_files_name_the_file_and_the_fix(tmp_path):
    folder = write_dataset(tmp_path / "d", 30, 20)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*pyro-cvae download"):
        data.load_split("mnist", "train", folder)


def test_image_and_label_counts_must_agree(tmp_path):
    folder = write_dataset(tmp_path / "d", 30, 20)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    with pytest.raises(DataError, match="30 images but .* 29 labels"):
        data.load_split("mnist", "train", folder)


def test_labels_outside_0_to_9_are_refused(tmp_path):
    folder = write_dataset(tmp_path / "d", 30, 20)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(30, 12, np.uint8))
    with pytest.raises(DataError, match="label 12 is outside 0..9"):
        data.load_split("mnist", "train", folder)
