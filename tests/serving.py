"""`pyro-cvae serve` started for a test: the real command in a child process."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 60


@contextlib.contextmanager
def serving(run_dir: Path, *args: str) -> Iterator[str]:
    """Start `pyro-cvae serve RUN_DIR --port 0 ARGS` and yield the address it prints
    (`http://HOST:PORT`); stop it on leaving."""
    command = [sys.executable, "-m", "pyro_cvae", "serve", str(run_dir), "--port", "0", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        address = None
        while address is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited {process.wait()}: {process.stderr.read()}")
            found = re.search(r"at (http://\S+?)/? \(Ctrl-C stops\)", line)
            address = found.group(1) if found else None
        assert address, "serve printed no address in time"
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
