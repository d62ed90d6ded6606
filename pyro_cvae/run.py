"""A training run on disk: RUN_DIR with `model.pt`, `metrics.json`, `loss.png`, `samples.png`.

Joins the `Trainer` to the checkpoint files: starts a fresh run (refusing to overwrite
one silently), resumes an interrupted one exactly (weights, optimizer, random state and
the position inside the epoch; to the bit on one process), and saves at the start, after
every epoch and on interruption, so that a run killed at any moment can be resumed.

Under torchrun (a `distributed.ProcessGroup`), rank 0 alone opens the folder (its checks,
its lock, its files) and sends its state to the other processes, which build the same
trainer from it without touching the folder; only rank 0 saves. The saved state is the
whole group's (one batch order, one position in it), so a run saved under any number of
processes resumes under any other.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from . import plots
from .atomic import describe_os_error, leftover_temporaries, write_json
from .checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_config,
    checkpoint_path,
    load_state,
    read_checkpoint,
    save_checkpoint,
)
from .config import RunConfig, default_config
from .data import load_run_splits, load_splits
from .distributed import ProcessGroup
from .errors import CheckpointError, OutputError, RankZeroStopped, TrainingError, UsageError
from .figures import write_model_figures
from .run_lock import LOCK_NAME, RunLock
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
            "class_loss_sum": state.class_loss_sum,
            "seconds": state.seconds,
            "history": [m.to_dict() for m in state.history],
            "num_train": len(trainer.train_x),
        },
        "rng": rng,
        "data_dir": data_dir,
    }


def _train_state(saved: dict, trainer: Trainer) -> TrainState:
    """The saved `train_state`, checked against the data now loaded (`KeyError`,
    `TypeError`, `ValueError` when it is incomplete or inconsistent)."""
    num_train = len(trainer.train_x)
    permutation = saved["permutation"]
    step = int(saved["step"])
    if permutation is not None and not torch.equal(
        permutation.sort().values, torch.arange(num_train)
    ):
        raise ValueError(f"the saved batch order does not cover the {num_train} images")
    if not 0 <= step < trainer.steps_per_epoch or (step and permutation is None):
        raise ValueError(f"step {step} is not a place inside an epoch")
    return TrainState(
        epoch=int(saved["epoch"]),
        step=step,
        permutation=None if permutation is None else permutation.to(trainer.device),
        loss_sum=float(saved["loss_sum"]),
        class_loss_sum=float(saved.get("class_loss_sum", 0.0)),
        seconds=float(saved["seconds"]),
        history=[EpochMetrics(**m) for m in saved["history"]],
    )


def _restore(trainer: Trainer, document: dict, where: Path) -> None:
    """Put the saved weights, optimizer, training position and random state into `trainer`;
    the learning rate is the trainer's config's (the same, unless changed on resume; see
    `Trainer.set_learning_rate`)."""
    load_state(trainer.model, document.get("model"), where)
    load_state(trainer.optimizer, document.get("optimizer"), where)
    saved = document.get("train_state")
    num_train = saved.get("num_train") if isinstance(saved, dict) else None
    if num_train is not None and num_train != len(trainer.train_x):
        raise CheckpointError(
            f"{where}: the run was trained on {num_train} images but the data found now has "
            f"{len(trainer.train_x)}; resume with the run's own --data-dir"
        )
    try:
        trainer.state = _train_state(saved, trainer)
        torch.set_rng_state(document["rng"]["torch"].cpu())
        if "cuda" in document["rng"] and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(document["rng"]["cuda"].cpu(), trainer.device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(
            f"{where}: cannot resume, the checkpoint's training state is incomplete ({error})"
        ) from None
    trainer.set_learning_rate()


def _setting_text(name: str, value) -> str:
    """A setting's value as it is written on the command line (masks, which hold commas,
    apart); a flag's as the flag, `--x` or `--no-x`."""
    if isinstance(value, bool):
        return ("--" if value else "--no-") + name.replace("_", "-")
    if name == "train_masks":
        return " ".join(value) or "(none)"
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _check_settings(config: RunConfig, settings: dict, run_dir: Path) -> None:
    """A `UsageError` naming the first of `settings` (RunConfig field -> value, or
    `image_size` (H, W) and `grayscale`) whose value differs from the resumed run's
    `config`; equal values are accepted."""
    for name, value in settings.items():
        if name == "image_size":
            saved, differs = config.image_shape[1:], tuple(value) != config.image_shape[1:]
        elif name == "grayscale":
            saved, differs = config.image_shape[0] == 1, value and config.image_shape[0] != 1
        else:
            try:
                saved, differs = getattr(config, name), config.replace(**{name: value}) != config
            except ValueError as error:  # a value that cannot be this run's
                raise UsageError(str(error)) from None
        if differs:
            flag = "--train-mask" if name == "train_masks" else "--" + name.replace("_", "-")
            given = _setting_text(name, value)
            raise UsageError(
                f"{given if isinstance(value, bool) else f'{flag} {given}'} differs from the "
                f"run's {_setting_text(name, saved)} "
                f"in {run_dir}; leave it out to resume the run as it is, or start a new run"
            )


def _entries(run_dir: Path) -> list[Path]:
    """What RUN_DIR holds, leaving out the temporaries of an interrupted atomic write."""
    if not run_dir.exists():
        return []
    if not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder")
    leftovers = set(leftover_temporaries(run_dir / CHECKPOINT_NAME))
    leftovers |= set(leftover_temporaries(run_dir / METRICS_NAME))
    return sorted(set(run_dir.iterdir()) - leftovers - {run_dir / LOCK_NAME})


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise describe_os_error(path, error) from None


def _refuse_a_folder_of_other_files(run_dir: Path) -> None:
    """An `OutputError` when `run_dir` holds files but no run (never touched then)."""
    old = _entries(run_dir)
    if old and checkpoint_path(run_dir) not in old:
        raise OutputError(
            f"{run_dir} is not empty and holds no run ({old[0].name}, ...); "
            "choose a new or empty folder for --out"
        )


def _lock_new_or_old(run_dir: Path) -> RunLock:
    """The lock on `run_dir`, the folder made first if it does not exist."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise describe_os_error(run_dir, error) from None
    return RunLock.acquire(run_dir)


def _give_up(lock: RunLock) -> None:
    """Release `lock` after a failed start, and remove its file from a folder that holds
    nothing else (a start that failed leaves the folder as it found it, or empty)."""
    if not _entries(lock.run_dir):
        (lock.run_dir / LOCK_NAME).unlink(missing_ok=True)  # while still held
    lock.release()


class TrainingRun:
    """A run folder being trained. Build it with `start` or `resume`, then call `train`.

    One trainer per folder: a run holds the folder's `RunLock` from `start` or `resume`
    until `train` returns (and again during a later `train`), so a second process asking
    for the same folder is refused in one line naming the first. Under torchrun, rank 0
    holds it for the group (`lock` is None on the other ranks, which never write).
    """

    def __init__(
        self, run_dir: Path, trainer: Trainer, data_dir: str | None, lock: RunLock | None
    ) -> None:
        self.run_dir, self.trainer, self.data_dir = run_dir, trainer, data_dir
        self.lock = lock
        self.notes: list[str] = []  # what a user should be told about the data

    @property
    def writer(self) -> bool:
        """Whether this process writes the run's files: always, except on the ranks
        other than 0 under torchrun."""
        return self.trainer.group is None or self.trainer.group.writer

    @staticmethod
    def _trainer(config: RunConfig, data_dir, device, splits=None, group=None) -> Trainer:
        """A `Trainer` on the dataset's splits (`splits`: the (train, test) already loaded;
        else a folder dataset is read at the config's image shape); the image shape and the
        classes of `config` are taken from the training split."""
        train, test = splits or load_run_splits(config, data_dir)
        config = config.replace(
            image_shape=tuple(train.images.shape[1:]),
            num_labels=len(train.class_names),
            class_names=train.class_names,
        )
        return Trainer(
            config,
            train.images,
            train.labels,
            test.images,
            test.labels,
            device=device,
            group=group,
        )

    @classmethod
    def _opened_by_rank_0(
        cls, run_dir, group: ProcessGroup, open_run: Callable[[], TrainingRun]
    ) -> TrainingRun:
        """The run that rank 0 opens with `open_run()` (the one-process path, with its
        checks, lock and first save), on every process of `group`: the others build
        the same trainer from rank 0's state, sent to them, and never touch the folder."""
        run = None
        try:
            if group.writer:
                run = open_run()
        finally:  # the others hear of a failure at once, and stop too
            document = group.share(
                None if run is None else _trainer_payload(run.trainer, run.data_dir)
            )
        if run is not None:
            return run
        if document is None:
            raise RankZeroStopped(f"rank {group.rank}: rank 0 could not open {run_dir}")
        data_dir = document.get("data_dir")
        trainer = cls._trainer(
            checkpoint_config(document, run_dir), data_dir, group.device, group=group
        )
        _restore(trainer, document, Path(run_dir))
        return cls(Path(run_dir), trainer, data_dir, None)

    @classmethod
    def create(
        cls,
        run_dir,
        condition: str,
        *,
        data_dir=None,
        device="cpu",
        overwrite=False,
        image_size: tuple[int, int] | None = None,
        grayscale: bool = False,
        group: ProcessGroup | None = None,
        **options,
    ) -> TrainingRun:
        """A fresh run of `condition` with the defaults for its dataset's images (grey or
        colour, `config.default_config`) and every option that is not None on top: what
        `pyro-cvae train` starts. `image_size` (H, W) and `grayscale` resize and convert a
        folder dataset's pictures. See `start`."""

        def open_run() -> TrainingRun:
            dataset = options.get("dataset") or RunConfig.dataset
            shaped = {"size": image_size, "channels": 1 if grayscale else None}
            splits = load_splits(dataset, data_dir, **shaped)
            try:
                config = default_config(condition, tuple(splits[0].images.shape[1:]), **options)
            except ValueError as error:  # options that do not fit together, or these images
                raise UsageError(str(error)) from None
            run = cls._start(run_dir, config, data_dir, device, overwrite, splits, group)
            if config.class_weight and config.class_after >= config.epochs:
                run.notes.append(
                    f"the label cross-entropy (--class-weight) begins after epoch "
                    f"{config.class_after}: none of these {config.epochs} epochs adds it "
                    "(resume to more epochs for it)"
                )
            if splits[0].held_out:
                run.notes.append(
                    f"{data_dir} has no test/ folder: a fixed 10% of each class of train/ "
                    f"({len(splits[1].labels)} images) is held out as the test split"
                )
            return run

        return open_run() if group is None else cls._opened_by_rank_0(run_dir, group, open_run)

    @classmethod
    def start(
        cls,
        run_dir,
        config: RunConfig,
        *,
        data_dir=None,
        device="cpu",
        overwrite: bool = False,
        splits=None,
        group: ProcessGroup | None = None,
    ) -> TrainingRun:
        """A fresh run, saved at once (epoch 0) so that it is resumable from any moment on;
        the image shape and classes come from the data (`splits`: the (train, test)
        `data.Split`s, when already loaded).

        RUN_DIR must be new or empty. With `overwrite`, a folder holding a run (a model.pt)
        is replaced, its old files removed only once the new run's first save succeeded; a
        folder holding other files and no model.pt is never touched.
        """

        def open_run() -> TrainingRun:
            return cls._start(run_dir, config, data_dir, device, overwrite, splits, group)

        return open_run() if group is None else cls._opened_by_rank_0(run_dir, group, open_run)

    @classmethod
    def _start(cls, run_dir, config, data_dir, device, overwrite, splits, group) -> TrainingRun:
        """`start` on one process, or on rank 0 of `group`."""
        run_dir = Path(run_dir)
        _refuse_a_folder_of_other_files(run_dir)  # before the lock file is written there
        lock = _lock_new_or_old(run_dir)
        try:
            old = _entries(run_dir)
            if old and not overwrite:
                raise OutputError(
                    f"{run_dir} already holds a run; use --resume to continue it or "
                    "--overwrite to start again"
                )
            trainer = cls._trainer(config, data_dir, device, splits, group)
            run = cls(run_dir, trainer, None if data_dir is None else str(data_dir), lock)
            run.save()
        except BaseException:
            _give_up(lock)
            raise
        _remove([p for p in old if p.name not in (CHECKPOINT_NAME, METRICS_NAME)])
        _remove(run.leftovers())
        return run

    @classmethod
    def resume(
        cls,
        run_dir,
        *,
        epochs: int | None = None,
        lr: float | None = None,
        data_dir=None,
        device="cpu",
        settings: dict | None = None,
        group: ProcessGroup | None = None,
    ) -> TrainingRun:
        """Continue the run saved in RUN_DIR, to `epochs` (default: its own target).

        `lr` changes the learning rate from here on (e.g. after the loss became NaN);
        without it, the resumed run ends with the same weights as an uninterrupted one
        (on one process; under torchrun the other processes reseed their noise).
        `settings` (RunConfig field -> value, such as the options of the command that
        started the run) must each equal the run's own: a differing one is a `UsageError`
        naming it and both values. Under a `group`, a run saved under any number of
        processes (one included) continues under this one's.
        """

        def open_run() -> TrainingRun:
            return cls._resume(Path(run_dir), epochs, lr, data_dir, device, settings, group)

        return open_run() if group is None else cls._opened_by_rank_0(run_dir, group, open_run)

    @classmethod
    def _resume(cls, run_dir, epochs, lr, data_dir, device, settings, group) -> TrainingRun:
        """`resume` on one process, or on rank 0 of `group`."""
        if not run_dir.is_dir():
            raise CheckpointError(f"{run_dir}: no such run folder")
        if not checkpoint_path(run_dir).is_file():
            raise CheckpointError(
                f"{run_dir}: nothing to resume (no {CHECKPOINT_NAME}); start without --resume"
            )
        lock = RunLock.acquire(run_dir)
        try:
            document = read_checkpoint(run_dir, "cpu")
            config = checkpoint_config(document, run_dir)
            _check_settings(config, settings or {}, run_dir)
            changes = {"epochs": epochs, "lr": lr}
            config = config.replace(**{k: v for k, v in changes.items() if v is not None})
            if data_dir is None and isinstance(document.get("data_dir"), str):
                data_dir = document["data_dir"]
            trainer = cls._trainer(config, data_dir, device, group=group)
            _restore(trainer, document, run_dir)
        except BaseException:
            lock.release()
            raise
        run = cls(run_dir, trainer, None if data_dir is None else str(data_dir), lock)
        _remove(run.leftovers())
        return run

    @property
    def finished(self) -> bool:
        return self.trainer.state.epoch >= self.trainer.config.epochs

    @property
    def resume_command(self) -> str:
        return f"pyro-cvae train --out {shlex.quote(str(self.run_dir))} --resume"

    def leftovers(self) -> list[Path]:
        """Temporaries of saves interrupted by `kill -9` or a power cut (safe to delete)."""
        return leftover_temporaries(checkpoint_path(self.run_dir)) + leftover_temporaries(
            self.run_dir / METRICS_NAME
        )

    def save(self) -> None:
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
        model, config = self.trainer.model, self.trainer.config
        if history:
            # bits per dimension where every value of an image is scored in 8-bit levels
            whole = model.generative and model.likelihood.discrete
            values = math.prod(config.image_shape) if whole else None
            plots.loss_curves(history, self.run_dir / "loss.png", values)
        write_model_figures(
            model,
            self.run_dir,
            self.trainer.test_x,
            config.label_names,
            config.sample_temperature,
        )

    def train(self, hooks: Hooks | None = None) -> list[EpochMetrics]:
        """Train to the configured epoch count; saves after each epoch and on stop (before
        the caller's own `hooks.save`, if any). Holds the folder's lock until it returns.

        The figures are drawn once the run is finished. A failed save (full disk, ...) or a
        non-finite loss leaves the last good save in place and says how to continue.
        Under torchrun every process calls it; rank 0 alone saves and draws.
        """
        if not self.writer:
            return self._train(hooks or Hooks())
        if self.lock is None or not self.lock.held:
            self.lock = RunLock.acquire(self.run_dir)
        try:
            return self._train(hooks or Hooks())
        finally:
            self.lock.release()

    def _train(self, hooks: Hooks) -> list[EpochMetrics]:
        then = hooks.save

        def save(state: TrainState) -> None:
            if self.writer:
                self.save()
            if then is not None:
                then(state)

        self.trainer.model.train()
        try:
            history = self.trainer.run(dataclasses.replace(hooks, save=save))
        except OutputError as error:
            raise OutputError(
                f"{error}; {checkpoint_path(self.run_dir)} still holds the last save: free "
                f"space or fix permissions, then continue with `{self.resume_command}`"
            ) from None
        except TrainingError as error:
            lower = f"{self.trainer.config.lr / 10:g}"
            raise type(error)(
                f"{error}; the last good checkpoint is kept: continue from it with "
                f"`{self.resume_command} --lr {lower}`"
            ) from None
        self.trainer.model.eval()
        if self.finished and self.writer:
            self.write_figures()
        return history
