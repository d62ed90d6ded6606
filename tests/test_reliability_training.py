"""No lost work: interrupted runs resume exactly, kills never leave a broken checkpoint,
a full disk or read-only folder keeps the last save, a NaN loss stops cleanly."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

import pyro_cvae.train as train_module
from pyro_cvae.checkpoint import load_run, read_checkpoint
from pyro_cvae.config import default_config
from pyro_cvae.errors import OutputError
from pyro_cvae.run import TrainingRun
from pyro_cvae.train import Hooks

from .conftest import run_cli
from .test_reliability_input import fails

EPOCHS = 4  # 30 steps of 100 images per epoch on tiny_data
HIDDEN = "32,16"
ROOT = Path(__file__).resolve().parents[1]


def train_args(data_dir, run_dir, *more):
    return [
        "train",
        "--data-dir",
        data_dir,
        "--hidden",
        HIDDEN,
        "--out",
        run_dir,
        "--device",
        "cpu",
        *more,
    ]


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


def assert_same_training(a: Path, b: Path) -> None:
    """Same weights and the same optimizer state, bit for bit."""
    first, second = checkpoint(a), checkpoint(b)
    assert first["train_state"]["epoch"] == second["train_state"]["epoch"]
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    for key, state in first["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, second["optimizer"]["state"][key][name]), (key, name)


def epochs_in_metrics(run_dir: Path) -> list[int]:
    return [e["epoch"] for e in json.loads((run_dir / "metrics.json").read_text())["epochs"]]


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> Path:
    """An uninterrupted run of EPOCHS epochs."""
    run_dir = tmp_path_factory.mktemp("reference") / "r"
    run_cli(*train_args(tiny_data, run_dir, "--epochs", EPOCHS))
    return run_dir


@pytest.mark.parametrize("stop_at", [1, 30, 47])
def test_stop_and_resume_ends_with_the_same_weights(tiny_data, reference, tmp_path, stop_at):
    """Stopped after step `stop_at` (mid-epoch, at an epoch's end, in a later epoch), then
    `--resume`: the same weights and optimizer state as the uninterrupted run."""
    config = default_config("label", epochs=EPOCHS, hidden=(32, 16))
    run = TrainingRun.start(tmp_path / "r", config, data_dir=str(tiny_data))
    steps = itertools.count(1)
    run.train(Hooks(should_stop=lambda: next(steps) >= stop_at))
    assert not run.finished
    run_cli("train", "--out", tmp_path / "r", "--resume", "--device", "cpu")
    assert_same_training(reference, tmp_path / "r")
    assert epochs_in_metrics(tmp_path / "r") == list(range(1, EPOCHS + 1))


def start_training(data_dir, run_dir, args=None) -> subprocess.Popen:
    """`pyro-cvae train ARGS` (default: the reference run's) in a subprocess, returned once
    its first epoch is saved."""
    args = args or train_args(data_dir, run_dir, "--epochs", EPOCHS)
    process = subprocess.Popen(
        [sys.executable, "-m", "pyro_cvae", *map(str, args)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in process.stderr:
        if line.startswith("epoch 1:"):
            return process
    process.kill()
    pytest.fail(f"training ended before its first epoch: {process.communicate()}")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_mid_training_saves_and_resume_completes(tiny_data, reference, tmp_path, sig, code):
    process = start_training(tiny_data, tmp_path / "r")
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted ") and "saved" in last
    assert last.endswith(f"Resume with: pyro-cvae train --out {tmp_path / 'r'} --resume")
    assert load_run(tmp_path / "r").config.epochs == EPOCHS
    run_cli("train", "--out", tmp_path / "r", "--resume", "--device", "cpu")
    assert epochs_in_metrics(tmp_path / "r") == list(range(1, EPOCHS + 1))
    assert_same_training(reference, tmp_path / "r")


def test_one_trainer_per_run_folder_and_a_killed_one_never_blocks_the_next(tiny_data, tmp_path):
    run_dir = tmp_path / "r"
    process = start_training(tiny_data, run_dir, train_args(tiny_data, run_dir, "--epochs", 500))
    try:
        holder = f"{run_dir} is being trained by process {process.pid} on "
        fails("train", "--out", run_dir, "--resume", "--device", "cpu", match=holder)
        fails(*train_args(tiny_data, run_dir, "--epochs", 1, "--overwrite"), match=holder)
        fails(*train_args(tiny_data, run_dir, "--epochs", 1), match=holder)
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert (run_dir / ".lock").is_file()  # left behind, but the kernel released the lock
    done = json.loads((run_dir / "metrics.json").read_text())["epochs"][-1]["epoch"]
    run_cli("train", "--out", run_dir, "--resume", "--epochs", done + 1, "--device", "cpu")
    assert epochs_in_metrics(run_dir)[-1] == done + 1


def test_a_run_holds_its_folder_from_start_until_train_returns(tiny_data, tmp_path):
    config = default_config("label", epochs=1, hidden=(32, 16))
    run = TrainingRun.start(tmp_path / "r", config, data_dir=str(tiny_data))
    mine = f"being trained by process {os.getpid()} on "
    with pytest.raises(OutputError, match=mine):
        TrainingRun.resume(tmp_path / "r", data_dir=str(tiny_data))
    with pytest.raises(OutputError, match=mine):
        TrainingRun.start(tmp_path / "r", config, data_dir=str(tiny_data), overwrite=True)
    run.train()
    again = TrainingRun.resume(tmp_path / "r", epochs=2, data_dir=str(tiny_data))
    again.train()
    assert epochs_in_metrics(tmp_path / "r") == [1, 2]


def test_kill_9_mid_training_leaves_a_run_that_resume_completes(tiny_data, reference, tmp_path):
    process = start_training(tiny_data, tmp_path / "r")
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert load_run(tmp_path / "r").config.epochs == EPOCHS
    run_cli("train", "--out", tmp_path / "r", "--resume", "--device", "cpu")
    assert epochs_in_metrics(tmp_path / "r") == list(range(1, EPOCHS + 1))
    assert_same_training(reference, tmp_path / "r")
    assert not list((tmp_path / "r").glob(".*.tmp"))


# The full command that starts a run, for each condition: every setting written out.
FULL_COMMANDS = {
    "label": ("--condition", "label", "--z-dim", 2, "--seed", 0, "--batch-size", 100),
    "pixels": ("--condition", "pixels", "--arch", "mlp", "--z-dim", 4, "--seed", 0),
}


def full_command(condition, data_dir, run_dir):
    return train_args(data_dir, run_dir, "--epochs", EPOCHS, *FULL_COMMANDS[condition])


@pytest.fixture(scope="module")
def full_reference(tiny_data, tmp_path_factory):
    """Uninterrupted runs of the full commands, one per condition (made when first asked)."""
    made = {}

    def reference(condition: str) -> Path:
        if condition not in made:
            made[condition] = tmp_path_factory.mktemp(condition) / "r"
            run_cli(*full_command(condition, tiny_data, made[condition]))
        return made[condition]

    return reference


@pytest.mark.parametrize("condition", ["label", "pixels"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_the_starting_command_with_resume_appended_resumes_the_run(
    tiny_data, full_reference, tmp_path, condition, sig
):
    """What a person or a scheduler does after Ctrl-C, a crash or a preemption: the same
    command again, `--resume` appended; it ends as the uninterrupted run does."""
    args = full_command(condition, tiny_data, tmp_path / "r")
    process = start_training(tiny_data, tmp_path / "r", args)
    process.send_signal(sig)
    process.communicate(timeout=120)
    run_cli(*args, "--resume")
    assert epochs_in_metrics(tmp_path / "r") == list(range(1, EPOCHS + 1))
    assert_same_training(full_reference(condition), tmp_path / "r")


@pytest.mark.parametrize(
    "option, value, saved",
    [("--z-dim", "3", "2"), ("--hidden", "64,32", "32,16"), ("--condition", "pixels", "label")],
)
def test_resume_refuses_a_setting_that_differs_from_the_run(
    small_run, tmp_path, option, value, saved
):
    shutil.copytree(small_run, tmp_path / "r")
    before = (tmp_path / "r" / "model.pt").read_bytes()
    fails(
        "train", "--out", tmp_path / "r", "--resume", option, value, "--epochs", 2,
        code=2,
        match=f"^Error: {option} {value} differs from the run's {saved} in .*; leave it out",
    )  # fmt: skip
    assert (tmp_path / "r" / "model.pt").read_bytes() == before


SAVE_FOREVER = textwrap.dedent(
    """
    import sys, torch
    from pyro_cvae.checkpoint import save_checkpoint
    for i in range(10**9):
        save_checkpoint(sys.argv[1], {"i": i, "weights": torch.full((500_000,), float(i))})
        if i == 0:
            print("saved", flush=True)
    """
)


def test_kill_9_during_a_save_leaves_the_previous_or_the_new_checkpoint(tmp_path):
    killed_mid_write = False
    # A kill lands inside a write (a temporary file left behind) in some attempts only,
    # the others hit the rename or the folder's fsync: keep trying until one has (with 4
    # attempts, 1 run in 3 had none on a busy 2-core machine; 20 make that negligible).
    for attempt in range(20):
        process = subprocess.Popen(
            [sys.executable, "-c", SAVE_FOREVER, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline() == "saved\n"
        time.sleep(0.1 + 0.037 * (attempt % 9))
        process.kill()
        process.wait(timeout=60)
        killed_mid_write |= bool(list(tmp_path.glob(".model.pt.*.tmp")))
        document = read_checkpoint(tmp_path)
        assert torch.equal(document["weights"], torch.full((500_000,), float(document["i"])))
        if killed_mid_write and attempt >= 3:
            break
    assert killed_mid_write, "no kill landed inside a save; the test proved nothing"


def test_an_existing_run_is_never_overwritten_silently(tiny_data, tmp_path):
    run_cli(*train_args(tiny_data, tmp_path / "r", "--epochs", 1))
    before = (tmp_path / "r" / "model.pt").read_bytes()
    fails(
        *train_args(tiny_data, tmp_path / "r", "--epochs", 1),
        match="already holds a run; use --resume .* or --overwrite",
    )
    assert (tmp_path / "r" / "model.pt").read_bytes() == before
    fails(
        *train_args(tiny_data, tmp_path / "r", "--resume", "--overwrite"),
        code=2,
        match="exclude each other",
    )
    assert (tmp_path / "r" / "model.pt").read_bytes() == before


def test_overwrite_replaces_the_run_and_its_old_figures(tiny_data, tmp_path):
    run_cli(*train_args(tiny_data, tmp_path / "r", "--epochs", 1))
    assert (tmp_path / "r" / "latent.png").exists()
    run_cli(*train_args(tiny_data, tmp_path / "r", "--epochs", 1, "--z-dim", 3, "--overwrite"))
    assert checkpoint(tmp_path / "r")["config"]["z_dim"] == 3
    assert not (tmp_path / "r" / "latent.png").exists()


def test_overwrite_never_touches_a_folder_that_holds_no_run(tiny_data, tmp_path):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("months of work")
    for more in ((), ("--overwrite",)):
        fails(
            *train_args(tiny_data, tmp_path / "thesis", "--epochs", 1, *more),
            match="is not empty and holds no run",
        )
    assert [p.name for p in (tmp_path / "thesis").iterdir()] == ["chapter1.tex"]


def test_a_folder_left_with_only_a_killed_save_counts_as_empty(tiny_data, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".model.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    run_cli(*train_args(tiny_data, tmp_path / "r", "--epochs", 1))
    assert not list((tmp_path / "r").glob(".*.tmp"))


def disk_full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_reported_and_keeps_the_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    run_dir = tmp_path / "r"
    run_cli(*train_args(tiny_data, run_dir, "--epochs", 1))
    before = (run_dir / "model.pt").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        fails(
            "train",
            "--out",
            run_dir,
            "--resume",
            "--epochs",
            2,
            "--device",
            "cpu",
            alone=False,
            match=f"cannot write {run_dir}/model.pt: the disk is full; .*--resume",
        )
    assert (run_dir / "model.pt").read_bytes() == before
    assert not list(run_dir.glob(".*.tmp"))
    run_cli("train", "--out", run_dir, "--resume", "--epochs", 2, "--device", "cpu")
    assert epochs_in_metrics(run_dir) == [1, 2]


def test_a_full_disk_at_the_start_is_reported_before_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", disk_full)
    fails(*train_args(tiny_data, tmp_path / "r", "--epochs", 1), match="the disk is full")
    assert not list((tmp_path / "r").iterdir())


def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def test_a_read_only_folder_is_reported_and_keeps_the_last_checkpoint(
    tiny_data, tmp_path, monkeypatch
):
    """Simulated: the tests may run as root, whom chmod does not stop."""
    run_dir = tmp_path / "r"
    run_cli(*train_args(tiny_data, run_dir, "--epochs", 1))
    before = (run_dir / "model.pt").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", read_only)
        fails(
            "train",
            "--out",
            run_dir,
            "--resume",
            "--epochs",
            2,
            "--device",
            "cpu",
            alone=False,
            match="the file system is read-only",
        )
        fails(
            "sample",
            run_dir,
            "--label",
            "1",
            "--out",
            tmp_path / "s",
            match=f"cannot write {tmp_path / 's.npy'}: the file system is read-only",
        )
    assert (run_dir / "model.pt").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder anyway")
def test_a_chmod_read_only_folder_is_reported(tiny_data, tmp_path):
    run_dir = tmp_path / "r"
    run_cli(*train_args(tiny_data, run_dir, "--epochs", 1))
    before = (run_dir / "model.pt").read_bytes()
    run_dir.chmod(0o555)
    try:
        fails(
            "train",
            "--out",
            run_dir,
            "--resume",
            "--epochs",
            2,
            "--device",
            "cpu",
            alone=False,
            match="permission denied",
        )
    finally:
        run_dir.chmod(0o755)
    assert (run_dir / "model.pt").read_bytes() == before


@pytest.mark.parametrize(
    "poisoned_step, match",
    [
        (60, "the loss became nan at epoch 2, step 30; "),
        (33, "the model's outputs became NaN or infinite at epoch 2, by step 4; "),
    ],
    ids=["seen-at-a-sync", "seen-by-pyro-first"],
)
def test_a_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_save(
    tiny_data, tmp_path, monkeypatch, poisoned_step, match
):
    run_dir = tmp_path / "r"
    real, calls = train_module.negative_elbo_parts, itertools.count(1)

    def poisoned(*args):
        loss = real(*args)
        if torch.is_grad_enabled() and next(calls) == poisoned_step:
            return loss * float("nan")
        return loss

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "negative_elbo_parts", poisoned)
        fails(
            *train_args(tiny_data, run_dir, "--epochs", 3),
            alone=False,
            match=match + "try a lower learning rate; the last good checkpoint is kept: "
            f"continue from it with `pyro-cvae train --out {run_dir} --resume --lr 0.0001`$",
        )
    assert checkpoint(run_dir)["train_state"]["epoch"] == 1
    assert epochs_in_metrics(run_dir) == [1]
    run_cli("train", "--out", run_dir, "--resume", "--lr", "0.0001", "--device", "cpu")
    assert checkpoint(run_dir)["config"]["lr"] == 0.0001
    assert epochs_in_metrics(run_dir) == [1, 2, 3]
