"""Training throughput of the seed configuration three ways, and the CLI's start-up times.

The seed configuration is the label CVAE with z 2, hidden 512/256, Bernoulli pixels,
Adam lr 1e-3, trained on the bundled MNIST. Three ways train it, interleaved in one
process (the order rotates every round; one untimed warm-up epoch each):

    project   `pyro_cvae.train.Trainer`, exactly as `pyro-cvae train` runs it
    plain     a plain PyTorch loop, no Pyro: the classic MNIST CVAE notebook's network
              (same layer sizes), sigmoid decoder, F.binary_cross_entropy(reduction="sum")
              plus the analytic KL from the encoder's log-variance, torch.optim.Adam
    textbook  SVI(model, guide, pyro.optim.Adam, Trace_ELBO()) on the project's model

All three draw batches from the same in-memory tensor by an index permutation, and time
the same thing: the training steps of one epoch (not the permutation, not evaluation).
images/s is the median over the timed epochs, also given for the first and the last three:
at batch 100 the loops without the project's moment flush slow down from about epoch 5
(denormal Adam moments, see `Trainer._flush_tiny_moments`). Then `pyro-cvae --help` and
`pyro-cvae sample` are timed as subprocesses (wall time, interpreter start-up included).

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/throughput.py
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_cvae.config import RunConfig
from pyro_cvae.data import load_split
from pyro_cvae.model import build_model
from pyro_cvae.train import Hooks, Trainer

SEED_CONFIG = RunConfig(condition="label", z_dim=2, hidden=(512, 256), batch_size=100)


class NotebookCVAE(nn.Module):
    """The classic MNIST CVAE notebook's network: `forward(x [B, 784], c [B, 10])` returns
    (reconstruction in (0, 1) `[B, 784]`, mu `[B, z]`, log_var `[B, z]`)."""

    def __init__(self, *, pixels: int, hidden: tuple[int, int], z_dim: int, labels: int) -> None:
        super().__init__()
        h1, h2 = hidden
        self.fc1 = nn.Linear(pixels + labels, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc31 = nn.Linear(h2, z_dim)
        self.fc32 = nn.Linear(h2, z_dim)
        self.fc4 = nn.Linear(z_dim + labels, h2)
        self.fc5 = nn.Linear(h2, h1)
        self.fc6 = nn.Linear(h1, pixels)

    def encoder(self, x, c):
        h = F.relu(self.fc1(torch.cat([x, c], 1)))
        h = F.relu(self.fc2(h))
        return self.fc31(h), self.fc32(h)

    def sampling(self, mu, log_var):
        std = torch.exp(0.5 * log_var)
        return torch.randn_like(std).mul(std).add(mu)

    def decoder(self, z, c):
        h = F.relu(self.fc4(torch.cat([z, c], 1)))
        h = F.relu(self.fc5(h))
        return torch.sigmoid(self.fc6(h))

    def forward(self, x, c):
        mu, log_var = self.encoder(x, c)
        return self.decoder(self.sampling(mu, log_var), c), mu, log_var


def notebook_loss(recon, x, mu, log_var):
    """Binary cross-entropy summed over pixels and images plus the analytic KL (nats)."""
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
    return bce + kld


class Way:
    """One way of training; `epoch()` trains one epoch and returns its seconds."""

    name = ""

    def __init__(self, config: RunConfig, data: dict[str, torch.Tensor]) -> None:
        self.config, self.batch = config, config.batch_size
        self.x = data["train_x"].reshape(len(data["train_x"]), -1)
        self.y = data["train_y"]

    def _batches(self):
        permutation = torch.randperm(len(self.x))
        return [permutation[i : i + self.batch] for i in range(0, len(self.x), self.batch)]


class Project(Way):
    name = "project (pyro-cvae train)"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.trainer = Trainer(
            config, data["train_x"], data["train_y"], data["test_x"], data["test_y"]
        )
        # What `pyro-cvae train` passes when stderr is not a terminal.
        self.hooks = Hooks(on_step=lambda done, total: None, should_stop=lambda: False)

    def epoch(self) -> float:
        trainer = self.trainer
        trainer.config = trainer.config.replace(epochs=trainer.state.epoch + 1)
        return trainer.run(self.hooks)[-1].seconds


class Plain(Way):
    name = "plain PyTorch (BCE + KL)"

    def __init__(self, config, data):
        super().__init__(config, data)
        h1, h2 = config.hidden
        self.net = NotebookCVAE(
            pixels=math.prod(config.image_shape),
            hidden=(h1, h2),
            z_dim=config.z_dim,
            labels=config.num_labels,
        )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def epoch(self) -> float:
        batches = self._batches()
        started = time.perf_counter()
        train_loss = 0.0
        for index in batches:
            x, c = self.x[index], F.one_hot(self.y[index], self.config.num_labels).float()
            self.optimizer.zero_grad()
            recon, mu, log_var = self.net(x, c)
            loss = notebook_loss(recon, x, mu, log_var)
            loss.backward()
            train_loss += loss.item()
            self.optimizer.step()
        return time.perf_counter() - started


class Textbook(Way):
    name = "textbook Pyro SVI"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.model = build_model(config)
        optimizer = pyro.optim.Adam({"lr": config.lr})
        self.svi = SVI(self.model.model, self.model.guide, optimizer, loss=Trace_ELBO())

    def epoch(self) -> float:
        batches = self._batches()
        started = time.perf_counter()
        train_loss = 0.0
        for index in batches:
            train_loss += self.svi.step(self.x[index], self.y[index])
        return time.perf_counter() - started


WAYS = (Project, Plain, Textbook)


def throughput(config: RunConfig, data: dict, rounds: int) -> dict[str, list[float]]:
    """images/s of every epoch of every way: `rounds` timed epochs each, after one warm-up.

    Each way keeps its own Pyro parameter store, as it would alone in a process."""
    store = pyro.get_param_store()
    pyro.set_rng_seed(config.seed)
    ways, scopes = [], []
    for way in WAYS:
        with store.scope() as scope:
            ways.append(way(config, data))
        scopes.append(scope)
    rates: dict[str, list[float]] = {way.name: [] for way in ways}
    for round_ in range(rounds + 1):
        shift = round_ % len(ways)
        for way, scope in list(zip(ways, scopes))[shift:] + list(zip(ways, scopes))[:shift]:
            with store.scope(scope):
                seconds = way.epoch()
            if round_:
                rates[way.name].append(len(way.x) / seconds)
    return rates


def time_command(args: list[str], repeats: int) -> list[float]:
    """Wall seconds of each of `repeats` runs of a command (which must succeed)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def machine() -> list[str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"CPU: {model}, {os.cpu_count()} logical cores ({platform.machine()})",
        f"Python {platform.python_version()}, torch {torch.__version__}, pyro {pyro.__version__}",
        f"torch threads: {torch.get_num_threads()} intra-op, "
        f"{torch.get_num_interop_threads()} inter-op",
    ]


def _seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def throughput_table(data: dict, batch_sizes: list[int], rounds: int) -> None:
    """Print one row per way and batch size: median images/s over all timed epochs, over
    the first three and over the last three, and the median against the plain loop's."""
    print("| batch | way | images/s | first 3 epochs | last 3 epochs | vs plain |")
    print("|---:|---|---:|---:|---:|---:|")
    for batch in batch_sizes:
        rates = throughput(SEED_CONFIG.replace(batch_size=batch), data, rounds)
        plain = statistics.median(rates[Plain.name])
        for name, values in rates.items():
            median = statistics.median(values)
            print(
                f"| {batch} | {name} | {median:,.0f} | {statistics.median(values[:3]):,.0f} | "
                f"{statistics.median(values[-3:]):,.0f} | {median / plain:.2f}x |"
            )
        sys.stdout.flush()


def startup_table(run_dir: str | None) -> None:
    """Print the wall time of `pyro-cvae --help` and of sampling 64 images, 5 runs each."""
    command = [str(Path(sys.executable).with_name("pyro-cvae"))]
    with tempfile.TemporaryDirectory() as tmp:
        if run_dir is None:
            run_dir = str(Path(tmp) / "run")
            subprocess.run(
                [*command, "train", "--epochs", "1", "--device", "cpu", "--out", run_dir],
                check=True,
                capture_output=True,
            )
        sample = ["sample", run_dir, "--label", "6", "--n", "64", "--out", f"{tmp}/x.png"]
        times = {
            "pyro-cvae --help": time_command([*command, "--help"], 5),
            "pyro-cvae sample RUN_DIR --label 6 --n 64 --out x.png": time_command(
                [*command, *sample], 5
            ),
        }
    print("\n| command | wall seconds, median (min-max) of 5 |")
    print("|---|---:|")
    for name, values in times.items():
        print(f"| `{name}` | {_seconds(values)} |")


@click.command()
@click.option(
    "--rounds",
    type=click.IntRange(min=3),
    default=12,
    show_default=True,
    help="Timed epochs per way and batch size.",
)
@click.option("--batch-sizes", default="100,1000", show_default=True, help="Comma-separated.")
@click.option(
    "--run-dir",
    type=click.Path(exists=True, file_okay=False),
    help="A label run for timing `sample` [default: train a 1-epoch run in a temp folder].",
)
@click.option("--skip-startup", is_flag=True, help="Only the training throughput.")
def main(rounds: int, batch_sizes: str, run_dir: str | None, skip_startup: bool) -> None:
    """Print the training throughput table and the CLI start-up times."""
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    data = {
        "train_x": train.images,
        "train_y": train.labels,
        "test_x": test.images,
        "test_y": test.labels,
    }
    for line in machine():
        print(line)
    print(
        f"\nseed configuration, {len(train.images):,} training images; {rounds} timed epochs "
        "per way after one untimed, interleaved\n"
    )
    throughput_table(data, [int(b) for b in batch_sizes.split(",")], rounds)
    if not skip_startup:
        startup_table(run_dir)


if __name__ == "__main__":
    main()
