"""`pyro-cvae serve` started for a test (the real command in a child process), and the
pixels of the PNG data URLs it answers with."""

from __future__ import annotations

import base64
import contextlib
import io
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

START_TIMEOUT_S = 60


def url_pixels(url: str) -> np.ndarray:
    """The pixels of a PNG data URL, 0..255 (`[H, W]` grey, `[H, W, 3]` colour)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))))


@contextlib.contextmanager
def serving(run_dir: Path, *args: str, cwd=None, env=None) -> Iterator[str]:
    """Start `pyro-cvae serve RUN_DIR --port 0 ARGS` (in `cwd`, with environment `env`)
    and yield the address it prints (`http://HOST:PORT`); stop it on leaving. A server
    that prints no address within `START_TIMEOUT_S` fails the test with its stderr."""
    command = [sys.executable, "-m", "pyro_cvae", "serve", str(run_dir), "--port", "0", *args]
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=cwd, env=env
        )
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in process.stdout:
                lines.put(line)
            lines.put("")  # the end of its output

        reader = threading.Thread(target=read)
        reader.start()
        try:
            address, line = None, None
            with contextlib.suppress(queue.Empty):
                while address is None and line != "":
                    line = lines.get(timeout=START_TIMEOUT_S)
                    found = re.search(r"at (http://\S+?)/ \(Ctrl-C stops\)", line)
                    address = found.group(1) if found else None
            if address is None:
                process.kill()
                process.wait()
                stderr.seek(0)
                raise AssertionError(
                    f"serve printed no address (exit {process.returncode}): {stderr.read()}"
                )
            yield address
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join()
            process.stdout.close()
