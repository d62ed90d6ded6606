"""`pyro-cvae serve` over HTTP, without a browser: the real command in a child process."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pyro_cvae.data import load_split
from pyro_cvae.images import encode_png
from pyro_cvae.webapp import MAX_REQUEST_BYTES
from tests.conftest import run_cli
from tests.serving import serving


def post(address: str, path: str, document, raw: bytes | None = None) -> tuple[int, dict]:
    """POST `document` as JSON (or the bytes `raw`); the status and the JSON answer."""
    body = raw if raw is not None else json.dumps(document).encode()
    request = urllib.request.Request(address + path, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def png_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode()


def pixels(url: str) -> np.ndarray:
    """A PNG data URL's pixels, 0..255."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))))


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
        status, filled = post(address, "/api/fill", {"image": png_url(digit), "hole": hole,
                                                     "label": "7", "samples": 3})  # fmt: skip
        assert status == 200 and len(filled["completions"]) == 3
        for url in filled["completions"]:
            assert np.array_equal(pixels(url)[14:], pixels(png_url(digit))[14:])
        status, grid = post(address, "/api/sample", {"label": "5", "count": 64})
        assert status == 200 and pixels(grid["grid"]).shape == (8 * 29 - 1, 8 * 29 - 1)
        status, named = post(address, "/api/name", {"image": png_url(digit), "hole": hole})
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
        ]
        for path, document, raw, message in bad:
            status, answer = post(address, path, document, raw)
            assert status == 400 and message in answer["error"], (path, answer)
            assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
        status, _ = post(address, "/api/sample", {"label": "3", "count": 4})
        assert status == 200


def test_concurrent_fills_get_the_answers_they_would_get_alone(label_run):
    digit = png_url(load_split("mnist", "test").images[-3])
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


def test_serve_reads_no_path_a_request_names(small_run):
    with serving(small_run) as address:
        for path in ("/api/../../etc/passwd", "/static/../model.pt", "/model.pt", "/metrics.json"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(address + path, timeout=30)
            assert caught.value.code == 404
