"""A training run on disk: RUN_DIR with `model.pt`, `metrics.json`, `loss.png`, `samples.png`.

Joins the `Trainer` to the checkpoint files: starts a fresh run (refusing to overwrite
one silently), resumes an interrupted one exactly (weights, optimizer, random state and
the position inside the epoch), and saves after every epoch and on interruption.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from . import plots
from .atomic import describe_os_error, write_json
from .checkpoint import checkpoint_path, read_checkpoint, save_checkpoint
from .config import RunConfig
from .data import load_split
from .errors import CheckpointError, OutputError
from .figures import write_model_figures
from .train import EpochMetrics, Hooks, Trainer, TrainState

METRICS_NAME = "metrics.json"


def _trainer_payload(trainer: Trainer, data_dir: str | None) -> dict:
    state = trainer.state
    rng = {"torch": torch.get_rng_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    return {
        "config": trainer.config.to_dict(),
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "train_state": {
            "epoch": state.epoch,
            "step": state.step,
            "permutation": None if state.permutation is None else state.permutation.cpu(),
            "loss_sum": state.loss_sum,
            "seconds": state.seconds,
            "history": [m.to_dict() for m in state.history],
        },
        "rng": rng,
        "data_dir": data_dir,
    }


def _restore(trainer: Trainer, document: dict) -> None:
    try:
        trainer.model.load_state_dict(document["model"])
        trainer.optimizer.load_state_dict(document["optimizer"])
        saved = document["train_state"]
        permutation = saved["permutation"]
        trainer.state = TrainState(
            epoch=saved["epoch"],
            step=saved["step"],
            permutation=None if permutation is None else permutation.to(trainer.device),
            loss_sum=saved["loss_sum"],
            seconds=saved["seconds"],
            history=[EpochMetrics(**m) for m in saved["history"]],
        )
        torch.set_rng_state(document["rng"]["torch"].cpu())
        if "cuda" in document["rng"] and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(document["rng"]["cuda"].cpu(), trainer.device)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot resume: the checkpoint is incomplete ({error})") from None


class TrainingRun:
    """A run folder being trained. Build it with `start` or `resume`, then call `train`."""

    def __init__(self, run_dir: Path, trainer: Trainer, data_dir: str | None) -> None:
        self.run_dir, self.trainer, self.data_dir = run_dir, trainer, data_dir

    @staticmethod
    def _trainer(config: RunConfig, data_dir, device) -> Trainer:
        train = load_split(config.dataset, "train", data_dir)
        test = load_split(config.dataset, "test", data_dir)
        return Trainer(config, train.images, train.labels, test.images, test.labels, device=device)

    @classmethod
    def start(
        cls, run_dir, config: RunConfig, *, data_dir=None, device="cpu", overwrite: bool = False
    ) -> TrainingRun:
        """A fresh run. An existing non-empty RUN_DIR is refused unless `overwrite`."""
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise OutputError(f"{run_dir}: exists and is not a folder")
        if run_dir.is_dir() and any(run_dir.iterdir()):
            if not overwrite:
                raise OutputError(
                    f"{run_dir} already holds a run; use --resume to continue it or "
                    "--overwrite to start again"
                )
        trainer = cls._trainer(config, data_dir, device)
        try:
            if overwrite and run_dir.is_dir():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise describe_os_error(run_dir, error) from None
        return cls(run_dir, trainer, None if data_dir is None else str(data_dir))

    @classmethod
    def resume(
        cls, run_dir, *, epochs: int | None = None, data_dir=None, device="cpu"
    ) -> TrainingRun:
        """Continue the run saved in RUN_DIR, to `epochs` (default: its own target)."""
        run_dir = Path(run_dir)
        if not checkpoint_path(run_dir).is_file():
            raise CheckpointError(
                f"{run_dir}: nothing to resume (no model.pt); start without --resume"
            )
        document = read_checkpoint(run_dir, "cpu")
        try:
            config = RunConfig.from_dict(document["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"{run_dir}: the checkpoint's config is unreadable ({error})"
            ) from None
        if epochs is not None:
            config = config.replace(epochs=epochs)
        data_dir = data_dir if data_dir is not None else document.get("data_dir")
        trainer = cls._trainer(config, data_dir, device)
        _restore(trainer, document)
        return cls(run_dir, trainer, None if data_dir is None else str(data_dir))

    @property
    def finished(self) -> bool:
        return self.trainer.state.epoch >= self.trainer.config.epochs

    def save(self, state: TrainState | None = None) -> None:
        """Write model.pt then metrics.json, each atomically."""
        save_checkpoint(self.run_dir, _trainer_payload(self.trainer, self.data_dir))
        history = [m.to_dict() for m in self.trainer.state.history]
        write_json(
            self.run_dir / METRICS_NAME,
            {"config": self.trainer.config.to_dict(), "epochs": history},
        )

    def write_figures(self) -> None:
        """loss.png, samples.png and, for a z_dim 2 label/none model, latent.png."""
        history = [m.to_dict() for m in self.trainer.state.history]
        if history:
            plots.loss_curves(history, self.run_dir / "loss.png")
        write_model_figures(self.trainer.model, self.run_dir, self.trainer.test_x)

    def train(self, hooks: Hooks | None = None) -> list[EpochMetrics]:
        """Train to the configured epoch count; saves after each epoch and on stop."""
        hooks = hooks or Hooks()
        hooks.save = lambda state: self.save(state)
        self.trainer.model.train()
        history = self.trainer.run(hooks)
        self.trainer.model.eval()
        self.write_figures()
        return history
