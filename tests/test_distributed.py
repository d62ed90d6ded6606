"""Data-parallel training and evaluation through the real `torchrun --nproc-per-node 2`,
on the CPU with Gloo, on tiny real MNIST (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyro_cvae.checkpoint import load_run
from pyro_cvae.data import load_split
from pyro_cvae.train import TrainingLoss

from .conftest import run_cli, write_dataset
from .ddp_one_step import BATCH, CLASS_WEIGHT, trainer_for

HERE = Path(__file__).parent
TIMEOUT_S = 180  # a launch that takes longer has hung


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """600 training and 200 test images: six steps of 100 an epoch."""
    return write_dataset(tmp_path_factory.mktemp("data") / "mnist", 600, 200)


def torchrun_command(*args, processes: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(processes),
        *map(str, args),
    ]


def torchrun(*args, env=None, expect: int | None = 0) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 ARGS`, waited for; its exit code checked."""
    done = subprocess.run(
        torchrun_command(*args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )
    if expect is not None:
        assert done.returncode == expect, (done.returncode, done.stdout, done.stderr[-3000:])
    return done


def train_args(data: Path, run_dir: Path, *more) -> list:
    return ["-m", "pyro_cvae", "train", "--data-dir", data, "--out", run_dir, "--device", "cpu",
            *more]  # fmt: skip


def epochs_saved(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "metrics.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_epochs(run_dir: Path, epochs: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while epochs_saved(run_dir) < epochs:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training did not get going"
        time.sleep(0.2)


def worker_pids(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the training processes torchrun started."""
    found = {}
    for child in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(child)
    return found


@pytest.mark.parametrize("case", ["label", "pixels", "label-classes"])
def test_one_step_on_two_processes_equals_one_process_on_the_same_batch_and_noise(tmp_path, case):
    torchrun(HERE / "ddp_one_step.py", tmp_path, case)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    # one process, the same global batch: each half with the noise its rank drew
    trainer = trainer_for(case)
    with_classes = case == "label-classes"
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    loss = TrainingLoss(trainer.model)
    trainer.optimizer.zero_grad()
    for saved, half in zip(ranks, torch.tensor_split(torch.arange(BATCH), 2), strict=True):
        torch.set_rng_state(saved["noise"])
        share = loss(*trainer.batch(half), with_classes)
        assert (share[1] > 0) == with_classes  # the label cross-entropy, when asked
        ((share[0] + CLASS_WEIGHT * share[1]) / BATCH).backward()
        torch.testing.assert_close(saved["loss"], share.detach())
    gradients = {name: p.grad.clone() for name, p in trainer.model.named_parameters()}
    trainer.optimizer.step()
    for rank in ranks:  # Adam's first step hides a gradient's scale: check the gradients too
        for name, gradient in gradients.items():
            torch.testing.assert_close(rank["gradients"][name], gradient, rtol=1e-4, atol=1e-7)
    after = trainer.model.state_dict()
    for name, value in after.items():
        torch.testing.assert_close(ranks[0]["weights"][name], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name])
    assert any(not torch.equal(before[name], after[name]) for name in after)


AUDIT = """
import os, sys
if "RANK" in os.environ:
    log = open(os.environ["WRITES_LOG"] + os.environ["RANK"], "w")
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    def record(event, args):
        writes = event == "open" and (
            any(c in (args[1] or "") for c in "wax+") or (args[1] is None and args[2] & WRITE)
        )
        if writes or event in ("os.rename", "os.remove", "os.mkdir", "shutil.rmtree"):
            log.write(f"{event} {args[0]}\\n")
            log.flush()
    sys.addaudithook(record)
"""


def test_two_processes_train_one_run_that_rank_0_alone_writes_and_any_world_size_resumes(
    small_data, tmp_path
):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "sitecustomize.py").write_text(AUDIT)
    writes = str(tmp_path / "writes-of-rank-")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "audit"), "WRITES_LOG": writes}
    run_dir = tmp_path / "run"
    done = torchrun(*train_args(small_data, run_dir, "--epochs", 2, "--prior", "learned"), env=env)
    assert done.stdout.count("done:") == 1 and done.stderr.count("training label CVAE") == 1
    assert "2 processes" in done.stderr
    files = {path.name for path in run_dir.iterdir()}
    assert files == {".lock", "model.pt", "metrics.json", "loss.png", "samples.png", "latent.png"}
    # an audit hook in each process logged every file it wrote: rank 1 wrote none of the run
    assert f"os.rename {run_dir}" in Path(writes + "0").read_text()
    assert str(run_dir) not in Path(writes + "1").read_text()
    # the learned prior, refit from both processes' halves, is the one-process refit
    model = load_run(run_dir).model
    saved = {name: value.clone() for name, value in model.z_prior.state_dict().items()}
    train = load_split("mnist", "train", small_data)
    model.fit_prior_to_posterior(train.images.reshape(len(train.images), -1), train.labels)
    for name, value in model.z_prior.state_dict().items():
        torch.testing.assert_close(saved[name], value, rtol=1e-4, atol=1e-5)
    # 2 -> 1 -> 2 processes, the batch order and position being the whole group's
    run_cli("train", "--out", run_dir, "--resume", "--epochs", 3)
    torchrun(*train_args(small_data, run_dir, "--resume", "--epochs", 4))
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert [m["processes"] for m in epochs] == [2, 2, 1, 2]
    assert epochs[-1]["test_loss"] < epochs[0]["test_loss"] - 20
    run_cli("sample", run_dir, "--label", "3,7", "--n", 2, "--out", tmp_path / "s")
    run_cli("inpaint", run_dir, "--input", tmp_path / "s.npy", "--mask", "top-half",
            "--particles", 10, "--rounds", 1, "--samples", 2, "--out", tmp_path / "i")  # fmt: skip


def test_a_batch_that_does_not_divide_among_the_processes_is_refused_in_one_line(
    small_data, tmp_path
):
    done = torchrun(*train_args(small_data, tmp_path / "run", "--batch-size", 99), expect=None)
    assert done.returncode != 0
    assert done.stderr.count("--batch-size 99 does not divide among 2 processes") == 1
    assert "Traceback" not in done.stderr.split("torch/distributed/elastic")[0]
    assert not (tmp_path / "run" / "model.pt").exists()


def test_sigterm_to_torchrun_stops_every_rank_with_one_save_and_resume_completes(
    small_data, tmp_path
):
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen(
        torchrun_command(*train_args(small_data, run_dir, "--epochs", 1000)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_epochs(run_dir, 2, launcher)
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=TIMEOUT_S)
    assert launcher.returncode != 0
    assert (out + err).count("Resume with:") == 1, err
    saved = epochs_saved(run_dir)
    run_cli("train", "--out", run_dir, "--resume", "--epochs", saved + 1)
    assert epochs_saved(run_dir) == saved + 1


def test_a_killed_rank_ends_the_other_with_one_line_and_never_blocks_the_resume(
    small_data, tmp_path
):
    run_dir = tmp_path / "run"
    args = train_args(small_data, run_dir, "--epochs", 1000, "--dist-timeout", 20)
    launcher = subprocess.Popen(
        torchrun_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_epochs(run_dir, 2, launcher)
    os.kill(worker_pids(launcher)[1], signal.SIGKILL)
    started = time.monotonic()
    _, err = launcher.communicate(timeout=TIMEOUT_S)
    assert launcher.returncode != 0
    assert time.monotonic() - started < 20
    assert "Error: rank 0 lost the other processes" in err
    saved = epochs_saved(run_dir)
    run_cli("train", "--out", run_dir, "--resume", "--epochs", saved + 1)
    assert epochs_saved(run_dir) == saved + 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_hung_rank_ends_the_other_within_the_timeout(small_data, tmp_path):
    """Two processes started with torchrun's variables by hand, so that one can be
    stopped (SIGSTOP: alive, silent) without the launcher noticing."""
    run_dir, port = tmp_path / "run", free_port()
    ranks = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
        ranks.append(
            subprocess.Popen(
                [
                    sys.executable,
                    *map(
                        str, train_args(small_data, run_dir, "--epochs", 1000, "--dist-timeout", 4)
                    ),
                ],  # fmt: skip
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        wait_for_epochs(run_dir, 2, ranks[0])
        ranks[1].send_signal(signal.SIGSTOP)
        started = time.monotonic()
        _, err = ranks[0].communicate(timeout=60)
        waited = time.monotonic() - started
    finally:
        ranks[1].kill()
        ranks[1].communicate()
    assert ranks[0].returncode == 1, err
    assert 3 < waited < 4 + 10, waited
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "did not answer within 4 s" in lines[0], err
    assert "Traceback" not in err
    assert epochs_saved(run_dir) >= 2


def test_evaluate_under_torchrun_scores_each_test_image_once(small_data, tmp_path):
    run_dir = tmp_path / "run"
    run_cli("train", "--data-dir", small_data, "--epochs", 2, "--out", run_dir, "--device", "cpu")
    scoring = ("--particles", 20, "--json", "--device", "cpu")
    one = json.loads(run_cli("evaluate", run_dir, *scoring).output)
    two = json.loads(torchrun("-m", "pyro_cvae", "evaluate", run_dir, *scoring).stdout)
    assert one["images"] == two["images"] == 200
    assert two["test_nll"]["mean"] == pytest.approx(one["test_nll"]["mean"], abs=1.0)
    assert two["test_neg_elbo"] == pytest.approx(one["test_neg_elbo"], abs=3.0)
    # one image for two processes: rank 1 scores nothing and still takes part
    single = torchrun("-m", "pyro_cvae", "evaluate", run_dir, *scoring, "--images", 1).stdout
    assert json.loads(single)["images"] == 1
    (tmp_path / "empty").mkdir()
    missing = torchrun("-m", "pyro_cvae", "evaluate", tmp_path / "empty", expect=None)
    errors = [line for line in missing.stderr.splitlines() if line.startswith("Error:")]
    assert missing.returncode != 0 and len(errors) == 1, missing.stderr  # rank 0's alone
    assert "model.pt" in errors[0]


def test_two_resumes_started_together_one_under_torchrun_one_trains_and_one_refuses(
    small_data, tmp_path
):
    run_dir = tmp_path / "run"
    run_cli("train", "--data-dir", small_data, "--epochs", 1, "--out", run_dir, "--device", "cpu")
    resume = ["-m", "pyro_cvae", "train", "--out", run_dir, "--resume", "--epochs", 1000,
              "--device", "cpu"]  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    both = [
        subprocess.Popen(torchrun_command(*resume), **pipes),
        subprocess.Popen([sys.executable, *map(str, resume)], **pipes),
    ]
    deadline = time.monotonic() + TIMEOUT_S
    while all(process.poll() is None for process in both):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    refused = next(process for process in both if process.poll() is not None)
    trains = next(process for process in both if process is not refused)
    _, err = refused.communicate()
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert refused.returncode != 0 and len(errors) == 1, err
    assert f"{run_dir} is being trained by process " in errors[0]
    time.sleep(1)
    assert trains.poll() is None  # still training
    trains.send_signal(signal.SIGTERM)
    _, err = trains.communicate(timeout=TIMEOUT_S)
    assert err.count("Resume with:") == 1, err
    saved = epochs_saved(run_dir)
    run_cli("train", "--out", run_dir, "--resume", "--epochs", saved + 1)
    assert epochs_saved(run_dir) == saved + 1
