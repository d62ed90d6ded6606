"""The benchmark scripts still run (on tiny data): a benchmark that rots is found here,
not on the day its figures are wanted. Their speed figures are in docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .test_folders import make_folder

ROOT = Path(__file__).resolve().parents[1]


def test_colour_benchmark_prints_both_ways(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=40, size=(16, 16), test=True)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "colour_throughput.py"), "--data-dir", root,
         "--images", "100", "--rounds", "1"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert any("project" in row for row in rows) and any("plain PyTorch" in row for row in rows)


def test_start_up_benchmark_prints_train_beside_plain_pytorch(tmp_path):
    root = make_folder(tmp_path / "pics", per_class=5, size=(8, 8), test=True)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_startup.py"), "--data-dir", root,
         "--runs", "1"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert any("pyro-cvae train" in row for row in rows)
    assert any("plain PyTorch" in row for row in rows)


def test_classify_allocator_benchmark_prints_the_project_beside_plain_pytorch(label_run, tiny_data):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "classify_allocator.py"), str(label_run),
         "--data-dir", str(tiny_data), "--images", "2", "--particles", "5", "--rounds", "2",
         "--runs", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 5  # the header and 2 ways x 2 allocators
    assert any("plain PyTorch | freed memory kept" in row for row in rows)
