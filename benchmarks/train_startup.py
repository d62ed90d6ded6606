"""How soon `pyro-cvae train` starts on a folder of pictures whose decoded cache is warm,
beside what any plain PyTorch training program pays before its first step.

Times, as subprocesses (wall seconds, interpreter start-up included, `--runs` each):

    train         `pyro-cvae train --dataset folder --data-dir DIR` to its "training ..."
                  line (imports, both splits from the cache, the model and Adam), then
                  stopped; one untimed run first fills the cache
    plain         `python -c` importing torch and creating a `torch.optim.Adam`: the floor
                  of a plain PyTorch training loop before it reads any data
    imports       `python -c "import torch, pyro"`

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/train_startup.py \
        --data-dir ../shared/data/cifar10
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
from throughput import _seconds, machine, time_command  # noqa: E402

PLAIN = "import torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)"


def time_to_training_line(data_dir: str, out: Path) -> float:
    """Wall seconds from starting `pyro-cvae train` on `data_dir` into the new folder
    `out` to its "training ..." line on stderr; the process is then killed."""
    command = [str(Path(sys.executable).with_name("pyro-cvae")), "train", "--dataset",
               "folder", "--data-dir", data_dir, "--epochs", "1", "--out", str(out)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for line in process.stderr:
            if line.startswith(b"training "):
                return time.perf_counter() - started
        raise click.ClickException(f"train ended without starting (exit {process.wait()})")
    finally:
        process.kill()
        process.wait()


@click.command()
@click.option("--data-dir", required=True, help="A train/<class>/, test/<class>/ folder.")
@click.option("--runs", default=5, show_default=True, help="Timed runs of each command.")
def main(data_dir: str, runs: int) -> None:
    """Print the start-up table: train, the plain PyTorch floor, the imports."""
    with tempfile.TemporaryDirectory() as tmp:
        time_to_training_line(data_dir, Path(tmp) / "warm-up")
        train = [time_to_training_line(data_dir, Path(tmp) / f"run{i}") for i in range(runs)]
    python = [sys.executable, "-c"]
    times = {
        f"`pyro-cvae train --dataset folder --data-dir {data_dir}`, to its first line": train,
        "plain PyTorch: import torch, create torch.optim.Adam": time_command(
            [*python, PLAIN], runs
        ),
        "import torch, pyro": time_command([*python, "import torch, pyro"], runs),
    }
    print("\n".join(machine()))
    print(f"\n| what | wall seconds, median (min-max) of {runs} |")
    print("|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {_seconds(values)} |")


if __name__ == "__main__":
    main()
