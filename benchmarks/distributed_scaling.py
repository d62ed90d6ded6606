"""Data-parallel training throughput: 1 process without torchrun, then torchrun with N
processes, the project's trainer beside a plain PyTorch DDP loop in the same launch.

The model is the seed configuration (label CVAE, z 2, hidden 512/256, Bernoulli pixels,
Adam lr 1e-3) on the bundled MNIST, at a global batch of `--batch-size` images. In each
launch two ways train, their epochs interleaved (the order alternates; one untimed
warm-up epoch each):

    project   `pyro_cvae.train.Trainer` in the launch's process group, exactly as
              `torchrun ... -m pyro_cvae train` runs it
    plain     the classic MNIST CVAE notebook's network (`throughput.NotebookCVAE`, same
              layer sizes, BCE + analytic KL) in `DistributedDataParallel`, each process
              taking its share of every batch of one broadcast permutation, torch Adam

images/s is the whole group's: training images of an epoch over the slowest process's
seconds of training steps, the median over the timed epochs. torchrun gives each of
several processes one thread (OMP_NUM_THREADS=1); a single process keeps torch's default.

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/distributed_scaling.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import torch
import torch.nn.functional as F

from pyro_cvae.data import load_split
from pyro_cvae.distributed import process_group

sys.path.insert(0, str(Path(__file__).parent))
from colour_throughput import Project  # noqa: E402
from throughput import SEED_CONFIG, NotebookCVAE, machine, notebook_loss  # noqa: E402


class Plain:
    name = "plain PyTorch DDP"

    def __init__(self, config, data, group, device) -> None:
        self.group, self.batch = group, config.batch_size
        images, labels = data[0].to(device), data[1].to(device)
        self.x = images.reshape(len(images), -1)
        self.c = F.one_hot(labels, config.num_labels).float()
        h1, h2 = config.hidden
        net = NotebookCVAE(
            pixels=self.x.shape[1], hidden=(h1, h2), z_dim=config.z_dim, labels=config.num_labels
        ).to(device)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        self.net = net if group is None else group.wrap(net)

    def epoch(self) -> float:
        group, processes = self.group, 1 if self.group is None else self.group.world_size
        order = torch.randperm(len(self.x), device=self.x.device)
        order = order if group is None else group.broadcast(order)
        _synchronize(self.x.device)
        started = time.perf_counter()
        for start in range(0, len(self.x), self.batch):
            index = order[start : start + self.batch]
            mine = index if group is None else group.shard(index)
            x = self.x[mine]
            recon, mu, log_var = self.net(x, self.c[mine])
            self.optimizer.zero_grad()
            (notebook_loss(recon, x, mu, log_var) * (processes / len(index))).backward()
            self.optimizer.step()
        _synchronize(self.x.device)
        seconds = time.perf_counter() - started
        return seconds if group is None else group.largest(seconds)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(epochs: int, batch_size: int, device: str) -> None:
    """Train both ways in this process (or its torchrun group) on `device` (under
    torchrun, "cuda" is each process's own GPU); rank 0 prints one JSON line of
    images/s per way and epoch."""
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    data = (train.images, train.labels, test.images, test.labels)
    config = SEED_CONFIG.replace(batch_size=batch_size)
    with process_group(device) as group:
        rates = _rates(config, data, epochs, device, group)
        if group is None or group.writer:
            print(json.dumps(rates))


def _rates(config, data, epochs: int, device: str, group) -> dict[str, list[float]]:
    """Images/s of each way and epoch; a function of its own so that the ways, whose
    DistributedDataParallel wrappers hold the group, are gone before the group is left."""
    place = torch.device(device) if group is None else group.device
    ways = [Project(config, data, place, group), Plain(config, data, group, place)]
    rates: dict[str, list[float]] = {way.name: [] for way in ways}
    for epoch in range(epochs + 1):
        for way in ways if epoch % 2 else ways[::-1]:
            seconds = way.epoch()
            if epoch:
                rates[way.name].append(len(data[0]) / seconds)
    return rates


def launch(processes: int | None, epochs: int, batch_size: int, device: str) -> dict:
    """The worker's rates, run alone (`processes` None) or under torchrun."""
    own = [__file__, "--worker", "--epochs", str(epochs), "--batch-size", str(batch_size)]
    own += ["--device", device]
    runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [sys.executable, *(runner if processes else []), *own]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--processes", default="1,2", show_default=True, help="torchrun launches.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--worker", "as_worker", is_flag=True, hidden=True)
def main(processes: str, epochs: int, batch_size: int, device: str, as_worker: bool) -> None:
    """Print images/s of the project and of a plain DDP loop per number of processes."""
    if as_worker:
        worker(epochs, batch_size, device)
        return
    for line in machine():
        print(line)
    print(
        f"\nseed configuration on {device}, global batch {batch_size}, "
        f"median of {epochs} timed epochs\n"
    )
    print("| launch | project images/s | plain DDP images/s | project vs plain |")
    print("|---|---:|---:|---:|")
    for count in [None, *map(int, processes.split(","))]:
        rates = launch(count, epochs, batch_size, device)
        project, plain = (statistics.median(rates[way.name]) for way in (Project, Plain))
        where = "1 process, no torchrun" if count is None else f"torchrun --nproc-per-node {count}"
        print(f"| {where} | {project:,.0f} | {plain:,.0f} | {project / plain:.2f}x |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
