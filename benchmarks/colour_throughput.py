"""Training throughput of the default colour label CVAE: the project against plain PyTorch.

The configuration is what `pyro-cvae train --dataset folder --data-dir DIR` picks for
32x32 colour pictures (`config.default_config`). Two ways train it, interleaved in one
process (the order alternates every round; one untimed warm-up epoch each):

    project   `pyro_cvae.train.Trainer`, exactly as `pyro-cvae train` runs it (Pyro
              traces of the model and guide, analytic KL)
    plain     a plain PyTorch loop over the same networks (the model's encoder, decoder,
              learned p(z | y) and likelihood modules, used as plain `nn.Module`s) and the
              same loss: -log p(x | z, y) of one reparameterised z plus the analytic
              KL(q(z | x, y) || p(z | y)), with a fused torch.optim.Adam

Both draw batches from the same in-memory tensor by an index permutation and time the
training steps of one epoch. Images/s is the median over the timed epochs.

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/colour_throughput.py \
        --data-dir ../shared/data/cifar10 --images 10000
"""

from __future__ import annotations

import statistics
import sys
import time

import click
import pyro
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from pyro_cvae.config import default_config
from pyro_cvae.data import load_split
from pyro_cvae.model import build_model
from pyro_cvae.train import Hooks, Trainer

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from throughput import machine  # noqa: E402


class Project:
    name = "project (pyro-cvae train)"

    def __init__(self, config, data, device, group=None):
        self.trainer = Trainer(config, *data, device=device, group=group)
        self.hooks = Hooks(on_step=lambda done, total: None, should_stop=lambda: False)

    def epoch(self) -> float:
        trainer = self.trainer
        trainer.config = trainer.config.replace(epochs=trainer.state.epoch + 1)
        return trainer.run(self.hooks)[-1].seconds


class Plain:
    name = "plain PyTorch, same networks and loss"

    def __init__(self, config, data, device):
        self.config = config
        self.device = torch.device(device)
        self.x = data[0].reshape(len(data[0]), -1).to(self.device)
        self.y = data[1].to(self.device)
        self.model = build_model(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=True)

    def loss(self, x, y):
        model = self.model
        cond = F.one_hot(y, model.num_labels).float()
        loc, scale = model.encoder(x, cond)
        z = loc + scale * torch.randn_like(loc)
        params = model.decoder(z, cond)
        reconstruction = -model.likelihood.distribution(params).log_prob(x).sum()
        prior = Normal(*model.z_prior(cond))
        return reconstruction + kl_divergence(Normal(loc, scale), prior).sum()

    def epoch(self) -> float:
        permutation = torch.randperm(len(self.x), device=self.device)
        _synchronize(self.device)
        started = time.perf_counter()
        for index in permutation.split(self.config.batch_size):
            loss = self.loss(self.x[index], self.y[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        _synchronize(self.device)
        return time.perf_counter() - started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@click.command()
@click.option("--data-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--images", default=10000, show_default=True, type=click.IntRange(min=100))
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
def main(data_dir: str, images: int, rounds: int, device: str) -> None:
    """Print images/s of the project and of the plain loop, and their ratio."""
    train = load_split("folder", "train", data_dir)
    test = load_split("folder", "test", data_dir)
    shape = tuple(train.images.shape[1:])
    config = default_config(
        "label",
        shape,
        dataset="folder",
        num_labels=len(train.class_names),
        class_names=train.class_names,
    )
    data = (train.images[:images], train.labels[:images], test.images[:200], test.labels[:200])
    for line in machine():
        print(line)
    print(f"\n{config}\n{images:,} training images; {rounds} timed epochs per way, interleaved\n")
    pyro.set_rng_seed(0)
    if device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}")
    ways = [Project(config, data, device), Plain(config, data, device)]
    rates = {way.name: [] for way in ways}
    for round_ in range(rounds + 1):
        for way in ways if round_ % 2 else ways[::-1]:
            seconds = way.epoch()
            if round_:
                rates[way.name].append(images / seconds)
    plain = statistics.median(rates[Plain.name])
    print("| way | images/s, median | min-max | vs plain |")
    print("|---|---:|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:,.0f} | {min(values):,.0f}-{max(values):,.0f} | "
            f"{median / plain:.2f}x |"
        )


if __name__ == "__main__":
    main()
