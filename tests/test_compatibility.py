"""Checkpoints written by earlier versions load and give the outputs they gave then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "v1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The fixture checkpoints laid out as run folders."""
    root = tmp_path_factory.mktemp("v1")
    for name in ("label", "pixels"):
        (root / name).mkdir()
        shutil.copy(FIXTURES / f"{name}.pt", root / name / "model.pt")
    return root


def same(path: Path, expected: str) -> None:
    np.testing.assert_allclose(np.load(path), np.load(FIXTURES / expected), atol=1e-5)


def test_a_version_1_label_run_samples_classifies_and_inpaints_as_before(runs, tmp_path):
    digits = FIXTURES / "digits.npy"
    run_cli("sample", runs / "label", "--label", "0,1,2,3,4,5,6,7,8,9", "--n", 1,
            "--out", tmp_path / "s")  # fmt: skip
    same(tmp_path / "s.npy", "label_samples.npy")
    posterior = ("--mask", "top-half", "--particles", 20, "--rounds", 2)
    run_cli("classify", runs / "label", "--input", digits, *posterior, "--out", tmp_path / "c")
    found = json.loads((tmp_path / "c.json").read_text())
    expected = json.loads((FIXTURES / "label_classify.json").read_text())
    assert found["labels"] == expected["labels"]
    np.testing.assert_allclose(found["probabilities"], expected["probabilities"], atol=1e-4)
    run_cli("inpaint", runs / "label", "--input", digits, *posterior, "--samples", 2,
            "--out", tmp_path / "i")  # fmt: skip
    same(tmp_path / "i.npy", "label_inpaint.npy")


def test_a_version_1_pixels_run_fills_holes_as_before(runs, tmp_path):
    run_cli("inpaint", runs / "pixels", "--input", FIXTURES / "digits.npy", "--mask", "center",
            "--samples", 2, "--out", tmp_path / "i")  # fmt: skip
    same(tmp_path / "i.npy", "pixels_inpaint.npy")
