"""CIFAR-10's binary format: download from a local server on 127.0.0.1, checksum, safe
unpacking, and the batch reader, on a tiny archive made here."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_cvae import data
from pyro_cvae.cifar import BATCH_DIR, BATCHES, META
from pyro_cvae.errors import DataError

from .conftest import run_cli

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def batch_bytes(count: int, seed: int) -> bytes:
    """`count` records: a label byte, then the red, green and blue 32x32 planes; each image
    is one flat colour per plane, so the planes' order can be checked."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        label = int(rng.integers(10))
        planes = np.repeat(np.array([label * 20, 100, 255 - label * 20], np.uint8), 1024)
        records.append(bytes([label]) + planes.tobytes())
    return b"".join(records)


def make_archive(path: Path, *, extra: tarfile.TarInfo | None = None, truncate: str = "") -> str:
    """A cifar-10-binary.tar.gz with 6 records per training batch and 5 test records (the
    batch named `truncate` cut short); returns its MD5."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, payload: bytes) -> None:
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

        for number, name in enumerate(BATCHES["train"] + BATCHES["test"]):
            payload = batch_bytes(6 if "data" in name else 5, number)
            add(name, payload[:-7] if name == truncate else payload)
        add(META, ("\n".join(NAMES) + "\n\n").encode())
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isfile() else None)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """Serve tmp_path/served on 127.0.0.1; `use(md5)` points the cifar10 entry at it."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"

    def use(md5: str) -> None:
        spec = data.DATASET_SPECS["cifar10"]
        files = {"archive": ("cifar-10-binary.tar.gz", md5)}
        monkeypatch.setitem(
            data.DATASET_SPECS,
            "cifar10",
            data.DatasetSpec("cifar10", files, (url,), class_names=(), kind=spec.kind),
        )

    yield folder, use
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_unpacks_and_reads_the_batches(served, tmp_path):
    folder, use = served
    use(make_archive(folder / "cifar-10-binary.tar.gz"))
    dest = data.download("cifar10", tmp_path / "dest")
    train = data.load_split("cifar10", "train", tmp_path / "dest")
    test = data.load_split("cifar10", "test", dest)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (5, 3, 32, 32)
    assert train.class_names == tuple(NAMES)
    labels = train.labels.float()
    # red plane = label * 20, green 100, blue 255 - label * 20: the planes are in order
    torch.testing.assert_close(train.images[:, 0, 5, 7] * 255, labels * 20)
    torch.testing.assert_close(train.images[:, 1].mean((1, 2)) * 255, torch.full((30,), 100.0))
    torch.testing.assert_close(train.images[:, 2, 0, 0] * 255, 255 - labels * 20)


def test_a_wrong_checksum_is_refused_and_nothing_is_unpacked(served, tmp_path):
    folder, use = served
    make_archive(folder / "cifar-10-binary.tar.gz")
    use("0" * 32)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.download("cifar10", tmp_path / "dest")
    assert not (tmp_path / "dest" / BATCH_DIR).exists()


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_a_member_outside_the_folder_or_not_a_file_is_refused(served, tmp_path, kind):
    folder, use = served
    if kind == "symlink":
        extra = tarfile.TarInfo(f"{BATCH_DIR}/link")
        extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        extra = tarfile.TarInfo("../escaped" if kind == "parent" else "/tmp/escaped-cifar")
        extra.size = 3
    use(make_archive(folder / "cifar-10-binary.tar.gz", extra=extra))
    with pytest.raises(DataError, match="refused: member"):
        data.download("cifar10", tmp_path / "dest")
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped-cifar").exists()
    assert not (tmp_path / "dest" / BATCH_DIR).exists()


def test_a_truncated_batch_is_named(served, tmp_path):
    folder, use = served
    use(make_archive(folder / "cifar-10-binary.tar.gz", truncate="data_batch_3.bin"))
    data.download("cifar10", tmp_path / "dest")
    with pytest.raises(DataError, match="data_batch_3.bin: not a CIFAR-10 batch.*truncated"):
        data.load_split("cifar10", "train", tmp_path / "dest")


def test_the_download_command_fills_the_cache_and_train_finds_it(served, tmp_path, monkeypatch):
    folder, use = served
    use(make_archive(folder / "cifar-10-binary.tar.gz"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYRO_CVAE_DATA", raising=False)
    run_cli("download", "cifar10")
    assert len(data.load_split("cifar10", "test").images) == 5
    run_cli("train", "--dataset", "cifar10", "--epochs", 1, "--batch-size", 10,
            "--hidden", "16", "--out", tmp_path / "run", "--device", "cpu")  # fmt: skip
    result = run_cli("sample", tmp_path / "run", "--label", "cat,truck", "--n", 2,
                     "--out", tmp_path / "s")  # fmt: skip
    assert np.load(tmp_path / "s.npy").shape == (4, 32, 32, 3)
    assert "4 images" in result.output
