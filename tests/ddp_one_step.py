"""Run by torchrun from tests/test_distributed.py: one optimizer step of a `Trainer` in a
process group, on the global batch of the first `BATCH` bundled MNIST images.

Usage: torchrun --nproc-per-node N tests/ddp_one_step.py OUT CASE, CASE a condition or
"label-classes" (a label run whose objective adds the label cross-entropy). Each rank saves
OUT/rank<R>.pt: its random state just before the step (the noise it drew), its
gradients and weights after the step and its share's loss, for the test to replay on
one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from pyro_cvae.config import default_config
from pyro_cvae.data import load_split
from pyro_cvae.distributed import process_group
from pyro_cvae.train import Trainer

BATCH = 16
CLASS_WEIGHT = 5.0  # of the "label-classes" case


def trainer_for(case: str, group=None) -> Trainer:
    """The same trainer on every process, and in the test (without a group)."""
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    condition, _, term = case.partition("-")
    config = default_config(
        condition,
        arch="mlp",
        hidden=(64, 32),
        z_dim=4,
        batch_size=BATCH,
        class_weight=CLASS_WEIGHT if term == "classes" else None,
    )
    return Trainer(
        config,
        train.images[: 2 * BATCH],
        train.labels[: 2 * BATCH],
        test.images[:BATCH],
        test.labels[:BATCH],
        group=group,
    )


def one_step(out: Path, condition: str, group) -> None:
    """The step and its record; a function of its own so that the trainer, whose
    DistributedDataParallel wrapper holds the group, is gone before the group is left."""
    trainer = trainer_for(condition, group)
    noise = torch.get_rng_state()
    loss = trainer.step(torch.arange(BATCH))
    gradients = {name: p.grad for name, p in trainer.model.named_parameters()}
    torch.save(
        {
            "noise": noise,
            "gradients": gradients,
            "weights": trainer.model.state_dict(),
            "loss": loss,
        },
        out / f"rank{group.rank}.pt",
    )


def main(out: Path, condition: str) -> None:
    with process_group("cpu") as group:
        one_step(out, condition, group)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
