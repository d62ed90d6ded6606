"""`pyro-cvae serve` over HTTP, without a browser: the real command in a child process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pyro_cvae.data import load_split
from pyro_cvae.webapp import MAX_REQUEST_BYTES, data_url
from tests.conftest import run_cli
from tests.serving import serving, url_pixels


def post(
    address: str, path: str, document, raw: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict | str]:
    """POST `document` as JSON (or the bytes `raw`); the status and the answer (JSON, or
    the text of an answer that is not)."""
    body = raw if raw is not None else json.dumps(document).encode()
    request = urllib.request.Request(address + path, data=body, method="POST")
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode()


def test_serve_listens_on_loopback_and_answers_every_request(label_run):
    digit = load_split("mnist", "test").images[-2]
    with serving(label_run) as address:
        assert address.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(address + "/", timeout=30) as response:
            assert b'id="editor"' in response.read()
        with urllib.request.urlopen(address + "/api/run-info", timeout=30) as response:
            info = json.loads(response.read())
        assert info["classes"] == [str(i) for i in range(10)] and info["examples"] == 100
        hole = [1] * 392 + [0] * 392  # the top half, painted
        status, filled = post(address, "/api/fill", {"image": data_url(digit), "hole": hole,
                                                     "label": "7", "samples": 3})  # fmt: skip
        assert status == 200 and len(filled["completions"]) == 3
        for url in filled["completions"]:
            assert np.array_equal(url_pixels(url)[14:], url_pixels(data_url(digit))[14:])
        status, grid = post(address, "/api/sample", {"label": "5", "count": 64})
        assert status == 200 and url_pixels(grid["grid"]).shape == (8 * 29 - 1, 8 * 29 - 1)
        status, named = post(address, "/api/name", {"image": data_url(digit), "hole": hole})
        assert status == 200 and len(named["observed"]) == 10


def test_bad_requests_get_one_line_json_errors_and_the_server_goes_on(label_run):
    with serving(label_run) as address:
        too_large = b"x" * (MAX_REQUEST_BYTES + 1)
        assert post(address, "/api/picture", None, raw=too_large) == (
            413,
            {"error": "the upload is too large (a picture of 6 MB at most)"},
        )
        bad = [
            ("/api/picture", None, b"{not json", "the request is not JSON"),
            ("/api/picture", {"image": "file:///etc/passwd"}, None, "a PNG or JPEG picture"),
            ("/api/picture", {"image": "data:image/png;base64,@@@"}, None, "not valid base64"),
            ("/api/picture", {"image": "data:image/png;base64,aGVsbG8="}, None, "not a readable"),
            ("/api/sample", {"label": "cat"}, None, "its classes are 0, 1"),
            ("/api/sample", {"label": "3", "count": "all"}, None, "count must be a whole number"),
            ("/api/latent-point", {"label": "3", "point": "middle"}, None, "two numbers"),
            ("/api/latent-point", {"point": [0, 0]}, None, "give the labels to draw"),
            ("/api/latent-map", {}, None, "give the labels to draw"),
            ("/api/sample", {"label": "3", "seed": -3}, None, "the seed must be a whole number"),
            ("/api/sample", {"label": "3", "seed": 2**64}, None, "the seed must be"),
            ("/api/sample", None, b'{"count": 1' + b"0" * 5000 + b"}", "the request is not JSON"),
            ("/api/sample", None, b"[" * 100_000, "the request is not JSON"),
        ]
        for path, document, raw, message in bad:
            status, answer = post(address, path, document, raw)
            assert status == 400 and message in answer["error"], (path, answer)
            assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
        status, _ = post(address, "/api/sample", {"label": "3", "count": 4})
        assert status == 200


def test_pages_of_other_origins_cannot_make_it_work(small_run):
    """A form or script on another site can send text/plain to any host (no preflight),
    and DNS rebinding sends another Host: both are refused before any work."""
    with serving(small_run) as address:
        plain = {"Content-Type": "text/plain"}
        status, answer = post(address, "/api/sample", {"label": "3"}, headers=plain)
        assert status == 415 and answer == {"error": "send JSON (Content-Type: application/json)"}
        foreign = {"Host": "attacker.example"}
        assert post(address, "/api/sample", {"label": "3"}, headers=foreign)[0] == 400
        localhost = {"Host": "localhost:7860"}
        assert post(address, "/api/sample", {"label": "3"}, headers=localhost)[0] == 200


def test_a_run_without_labels_is_served_without_label_controls(vae_run):
    digit = data_url(load_split("mnist", "test").images[-2])
    with serving(vae_run) as address:
        with urllib.request.urlopen(address + "/api/run-info", timeout=30) as response:
            info = json.loads(response.read())
        assert info["classes"] == [] and info["can_generate"] and not info["can_name"]
        status, filled = post(address, "/api/fill", {"image": digit, "mask": "top-half",
                                                     "samples": 2})  # fmt: skip
        assert status == 200 and len(filled["completions"]) == 2
        assert post(address, "/api/sample", {"count": 4})[0] == 200
        status, answer = post(address, "/api/sample", {"label": "3"})
        assert status == 400 and "no classes" in answer["error"]
        assert post(address, "/api/name", {"image": digit})[0] == 400


def test_concurrent_fills_get_the_answers_they_would_get_alone(label_run):
    digit = data_url(load_split("mnist", "test").images[-3])
    hole = [0] * 392 + [1] * 392
    requests = [{"image": digit, "hole": hole, "samples": 2, "seed": seed} for seed in range(6)]
    with serving(label_run) as address:
        alone = [post(address, "/api/fill", r)[1]["completions"] for r in requests]
        with ThreadPoolExecutor(6) as pool:
            together = list(pool.map(lambda r: post(address, "/api/fill", r)[1], requests))
    assert [answer["completions"] for answer in together] == alone
    assert alone[0] != alone[1]  # the seeds differ, so a mix-up would show


def test_serve_says_in_one_line_how_to_install_the_app_extra(small_run):
    hide = "import sys; sys.modules['uvicorn'] = None; from pyro_cvae.cli.main import cli; cli()"
    done = subprocess.run(
        [sys.executable, "-c", hide, "serve", str(small_run)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'pyro-cvae[app]'" in done.stderr and "uvicorn" in done.stderr


def test_serve_refuses_a_port_in_use_in_one_line(small_run):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", small_run, "--port", port, expect=2)
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert result.output.strip().count("\n") == 0


def test_serve_refuses_examples_of_another_size(small_run, tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((3, 32, 32), np.float32))
    result = run_cli("serve", small_run, "--examples", tmp_path / "big.npy", expect=1)
    assert "the examples are 32x32 pictures; this run's are 28x28" in result.output


def test_serve_reads_no_path_a_request_names_and_writes_nothing(small_run, tmp_path):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in small_run.iterdir())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    (tmp_path / "work").mkdir()
    with serving(small_run, cwd=tmp_path / "work", env=env) as address:
        for path in ("/api/../../etc/passwd", "/static/../model.pt", "/model.pt", "/metrics.json"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(address + path, timeout=30)
            assert caught.value.code == 404
        digit = data_url(load_split("mnist", "test").images[-2])
        status, filled = post(address, "/api/fill", {"image": digit, "mask": "center"})
        assert status == 200
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # no cache, no file
    assert sorted((p.name, p.stat().st_mtime_ns) for p in small_run.iterdir()) == before
