"""`keep_freed_memory`: large tensors come from glibc's reusable heap, not fresh mmaps."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

# Prints the bytes glibc holds in mmapped blocks while a 64 MB tensor is alive, before and
# after keep_freed_memory (a fresh process: the test session's allocator is already set).
PROBE = """
import ctypes, torch
from pyro_cvae.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mmapped_while_alive():
    big = torch.ones(16 * 2**20)  # 64 MB of float32
    held = libc.mallinfo2().hblkhd
    del big
    return held

before = mmapped_while_alive()
accepted = keep_freed_memory()
print(before, accepted, mmapped_while_alive())
"""

# The same measure after the CLI ran a command (its --help: the group's callback runs first).
CLI_PROBE = (
    PROBE.split("before = ")[0]
    + """
from pyro_cvae.cli.main import cli
before = mmapped_while_alive()
try:
    cli(["classify", "--help"], standalone_mode=False)
except SystemExit:
    pass
print(before, mmapped_while_alive())
"""
)


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


GLIBC = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc"
)


def _probe(code: str) -> list[str]:
    """The words of the last line `code` prints, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.splitlines()[-1].split()


@GLIBC
def test_keep_freed_memory_serves_large_tensors_from_the_heap_not_mmap():
    before, accepted, after = _probe(PROBE)
    assert int(before) >= 64 * 2**20  # glibc's default: a block this large is mmapped
    assert accepted == "True"
    assert int(after) < 64 * 2**20


@GLIBC
def test_every_command_runs_with_freed_memory_kept():
    before, after = _probe(CLI_PROBE)
    assert int(before) >= 64 * 2**20
    assert int(after) < 64 * 2**20
