"""The package installs from its wheel under its own names: `pyro_cvae` and the
`pyro-cvae` script, never a top-level `cli` package; the name registries agree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_no_top_level_cli_and_both_entry_points_run(tmp_path):
    source = tmp_path / "source"
    for part in ("pyro_cvae", "cli"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("pyro_cvae-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"pyro_cvae", wheel.name.split("-py3")[0] + ".dist-info"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--no-deps", wheel], check=True)
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    assert not (site / "cli").exists()
    assert (site / "pyro_cvae" / "cli" / "main.py").is_file()
    assert (site / "pyro_cvae" / "page" / "index.html").is_file()  # the page `serve` serves
    # The dependencies (torch, pyro, click, ...) from the test environment, after the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for command in ([venv / "bin" / "pyro-cvae"], [python, "-m", "pyro_cvae"]):
        result = subprocess.run(
            [*command, "sample", "--help"], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Usage: pyro-cvae sample")
    located = subprocess.run(
        [python, "-c", "import pyro_cvae.cli.main as m; print(m.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert located.stdout.startswith(str(site))


def test_every_registered_name_has_an_implementation():
    from pyro_cvae import config, data, likelihoods

    assert set(config.LIKELIHOODS) == set(likelihoods.IMPLEMENTATIONS)
    assert set(config.DATASETS) == set(data.DATASET_SPECS)
