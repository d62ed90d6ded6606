"""`download` against a local HTTP server on 127.0.0.1: good files, wrong checksums."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from pyro_cvae import data
from pyro_cvae.errors import DataError

from .conftest import run_cli, write_dataset


@pytest.fixture()
def server(tmp_path):
    """Serve a folder of IDX files on 127.0.0.1; yields (base URL, folder)."""
    folder = write_dataset(tmp_path / "served", 20, 10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    httpd.shutdown()
    httpd.server_close()


def _spec_for(folder: Path, corrupt: str | None = None) -> data.DatasetSpec:
    files = {}
    for role, (name, _) in data.DATASET_SPECS["mnist"].files.items():
        md5 = hashlib.md5((folder / name).read_bytes()).hexdigest()
        files[role] = (name, "0" * 32 if name == corrupt else md5)
    return data.DatasetSpec("mnist", files, ())


def test_download_fetches_verifies_and_loads(server, tmp_path, monkeypatch):
    url, folder = server
    monkeypatch.setitem(data.DATASET_SPECS, "mnist", _spec_for(folder))
    seen = []
    dest = data.download(
        "mnist", tmp_path / "dest", mirrors=(url,), progress=lambda *a: seen.append(a)
    )
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert {name for name, _, _ in seen} == {p.name for p in folder.iterdir()}
    assert len(data.load_split("mnist", "train", dest).images) == 20


def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path, monkeypatch):
    url, folder = server
    monkeypatch.setitem(
        data.DATASET_SPECS, "mnist", _spec_for(folder, corrupt="t10k-images-idx3-ubyte.gz")
    )
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*checksum mismatch"):
        data.download("mnist", tmp_path / "dest", mirrors=(url,))
    assert not (tmp_path / "dest" / "t10k-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "dest").glob(".*part"))


def test_a_dead_mirror_falls_back_to_the_next(server, tmp_path, monkeypatch):
    url, folder = server
    monkeypatch.setitem(data.DATASET_SPECS, "mnist", _spec_for(folder))
    dest = data.download("mnist", tmp_path / "dest", mirrors=(url + "missing/", url))
    assert len(data.load_split("mnist", "test", dest).images) == 10


def test_download_command_fills_the_user_cache(server, tmp_path, monkeypatch):
    url, folder = server
    spec = _spec_for(folder)
    monkeypatch.setitem(
        data.DATASET_SPECS, "mnist", data.DatasetSpec("mnist", spec.files, (url,), True)
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYRO_CVAE_DATA", raising=False)
    result = run_cli("download", "mnist")
    assert "pyro-cvae" in result.output
    assert len(data.load_split("mnist", "train").images) == 20
