"""Untrusted, damaged, foreign and incompatible checkpoints are refused with one line and
exit code 1; a crafted pickle never runs code."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from pyro_cvae.checkpoint import FORMAT_VERSION

from .conftest import run_cli
from .test_reliability_input import fails


class MakesAFile:
    """Unpickling this calls `open(target, "w")`: what a hostile checkpoint would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_the_hostile_payload_is_live(tmp_path):
    """The payload used below does create its file when unpickled without protection."""
    pickle.loads(pickle.dumps(MakesAFile(tmp_path / "pwned"))).close()
    assert (tmp_path / "pwned").exists()


@pytest.fixture
def run_dir(small_run, tmp_path):
    """A copy of a trained run, for one test to tamper with."""
    return shutil.copytree(small_run, tmp_path / "run")


def rewrite(run_dir: Path, change) -> None:
    document = torch.load(run_dir / "model.pt", weights_only=True)
    change(document)
    torch.save(document, run_dir / "model.pt")


def sample(run_dir, tmp_path):
    return ("sample", run_dir, "--label", "1", "--out", tmp_path / "s")


def resume(run_dir):
    return ("train", "--out", run_dir, "--resume", "--epochs", 2, "--device", "cpu")


def test_missing_run_folder(tmp_path):
    fails(*sample(tmp_path / "nowhere", tmp_path), code=2, match="does not exist")
    fails(*resume(tmp_path / "nowhere"), match="no such run folder")


def test_folder_without_a_checkpoint(tmp_path):
    (tmp_path / "photos").mkdir()
    fails(*sample(tmp_path / "photos", tmp_path), match="no model.pt here; is it a run folder")
    fails(*resume(tmp_path / "photos"), match="nothing to resume")


@pytest.mark.parametrize("how", ["torch-zip", "raw-pickle"])
def test_a_crafted_pickle_is_refused_and_runs_nothing(run_dir, tmp_path, how):
    target = tmp_path / "pwned"
    payload = {"format": "pyro-cvae", "format_version": 1, "config": MakesAFile(target)}
    if how == "torch-zip":
        torch.save(payload, run_dir / "model.pt")
    else:
        (run_dir / "model.pt").write_bytes(pickle.dumps(payload))
    for args in (sample(run_dir, tmp_path), resume(run_dir)):
        fails(*args, match="refused to load|not a pyro-cvae checkpoint")
        assert not target.exists()
    assert not (tmp_path / "s.npy").exists()


def test_the_refusal_names_the_unsafe_object(run_dir, tmp_path):
    torch.save({"format": "pyro-cvae", "x": MakesAFile(tmp_path / "pwned")}, run_dir / "model.pt")
    fails(*sample(run_dir, tmp_path), match="refused to load.*io.open.*could run code")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda path: path.write_bytes(path.read_bytes()[:5000]), "not a pyro-cvae checkpoint"),
        (lambda path: path.write_bytes(b""), "not a pyro-cvae checkpoint"),
        (lambda path: path.write_text("hello"), "not a pyro-cvae checkpoint"),
        (lambda path: torch.save({"weight": torch.zeros(3)}, path), "not a pyro-cvae checkpoint"),
        (lambda path: torch.save([1, 2, 3], path), "not a pyro-cvae checkpoint"),
    ],
    ids=["truncated", "empty", "text", "foreign-state-dict", "foreign-list"],
)
def test_damaged_or_foreign_checkpoints_are_refused(run_dir, tmp_path, damage, match):
    damage(run_dir / "model.pt")
    fails(*sample(run_dir, tmp_path), match=match)
    fails(*resume(run_dir), match=match)


def test_a_newer_format_version_asks_for_an_upgrade(run_dir, tmp_path):
    newer = FORMAT_VERSION + 1
    rewrite(run_dir, lambda d: d.update(format_version=newer))
    fails(*sample(run_dir, tmp_path), match=f"format version {newer} is newer.*upgrade pyro-cvae")
    fails(*resume(run_dir), match=f"format version {newer} is newer")


def test_weights_of_another_architecture_are_refused(run_dir, tmp_path):
    rewrite(run_dir, lambda d: d["config"].update(hidden=[64, 32]))
    fails(*sample(run_dir, tmp_path), match="does not match this version's architecture")
    fails(*resume(run_dir), match="does not match this version's architecture")


@pytest.mark.parametrize(
    "change",
    [
        lambda config: config.update(attention_heads=4),
        lambda config: config.update(arch="transformer"),
        lambda config: config.pop("hidden") and config.update(hidden="wide"),
    ],
    ids=["unknown-setting", "unknown-arch", "bad-value"],
)
def test_settings_this_version_does_not_know_are_refused(run_dir, tmp_path, change):
    rewrite(run_dir, lambda d: change(d["config"]))
    fails(*sample(run_dir, tmp_path), match="settings are not ones this pyro-cvae knows")
    fails(*resume(run_dir), match="settings are not ones this pyro-cvae knows")


def test_an_incomplete_training_state_cannot_be_resumed_but_still_samples(run_dir, tmp_path):
    rewrite(run_dir, lambda d: d.pop("train_state"))
    fails(*resume(run_dir), match="training state is incomplete")
    run_cli(*sample(run_dir, tmp_path))


def test_resuming_on_different_data_is_refused(run_dir, tmp_path):
    from .conftest import write_dataset

    other = write_dataset(tmp_path / "other", 1000, 100)
    fails(*resume(run_dir), "--data-dir", other, match="trained on 3000 images .* now has 1000")


def test_atomic_writes_keep_the_usual_file_permissions(tmp_path):
    """A temporary file is private to its owner; the file it becomes must not be."""
    import os

    from pyro_cvae.atomic import write_json

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
