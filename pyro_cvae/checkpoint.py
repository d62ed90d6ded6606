"""Save (atomically) and load (without running code) a run: weights, config, training state.

`model.pt` is a `torch.save` of plain containers and tensors only, read back with
`torch.load(..., weights_only=True)`: a crafted pickle that would run code is refused.
A file that is damaged, foreign, from another architecture or from a newer format is a
`CheckpointError` with the reason, never a traceback.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_write
from .config import RunConfig
from .errors import CheckpointError, first_line
from .model import CVAE, build_model

FORMAT = "pyro-cvae"
FORMAT_VERSION = 2  # 2: RunConfig.image_shape and class_names (1: image_size, always 28)
CHECKPOINT_NAME = "model.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(run_dir: str | Path, payload: dict) -> None:
    """Write `payload` (plain containers and tensors) as the run's `model.pt`, atomically."""
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    atomic_write(checkpoint_path(run_dir), lambda handle: torch.save(document, handle))


def _refusal(path: Path, error: pickle.UnpicklingError) -> CheckpointError:
    culprit = re.search(r"GLOBAL (\S+)", str(error))
    named = f" ({culprit.group(1)})" if culprit else ""
    return CheckpointError(
        f"{path}: refused to load: it holds Python objects{named} besides tensors and plain "
        "data, which could run code; load only files written by pyro-cvae"
    )


def read_document(
    path: Path, *, kind: str, format_name: str, version: int, device: torch.device | str = "cpu"
) -> dict:
    """The contents of a file that `torch.save` wrote from plain containers and tensors,
    tensors on `device`; never executes code from the file.

    The file must say it is `format_name` (a `kind` such as "checkpoint", named in the
    errors) in a format version from 1 to `version`; anything else, a damaged file, or
    one holding other Python objects is a `CheckpointError` saying which.
    """
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a pyro-cvae {kind} (not the zip archive torch.save writes: "
            "truncated, or another kind of file)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            document = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(path, error) from None
    except Exception as error:  # a damaged or hostile archive makes torch.load raise anything
        raise CheckpointError(f"{path}: damaged {kind} ({first_line(error)})") from None
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise CheckpointError(f"{path}: not a pyro-cvae {kind}")
    found = document.get("format_version")
    if not isinstance(found, int) or found < 1:
        raise CheckpointError(f"{path}: not a pyro-cvae {kind} (no format version)")
    if found > version:
        raise CheckpointError(
            f"{path}: {kind} format version {found} is newer than this pyro-cvae reads "
            f"({version}); upgrade pyro-cvae"
        )
    return document


def read_checkpoint(run_dir: str | Path, device: torch.device | str = "cpu") -> dict:
    """The checkpoint's contents, tensors on `device`; never executes code from the file.

    `run_dir` is a run folder or a `model.pt` itself.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir}: no such run folder")
    path = run_dir if run_dir.is_file() else checkpoint_path(run_dir)
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no {CHECKPOINT_NAME} here; is it a run folder?")
    return read_document(
        path, kind="checkpoint", format_name=FORMAT, version=FORMAT_VERSION, device=device
    )


def checkpoint_config(document: dict, where: str | Path) -> RunConfig:
    """The `RunConfig` saved in a checkpoint read by `read_checkpoint`."""
    try:
        return RunConfig.from_dict(document["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{where}: the checkpoint's settings are not ones this pyro-cvae knows "
            f"({first_line(error)}); was it written by another version?"
        ) from None


def load_state(target, state, where: str | Path) -> None:
    """`target.load_state_dict(state)` (a model or an optimizer), a mismatch as a clear error."""
    try:
        target.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(
            f"{where}: the checkpoint does not match this version's architecture "
            f"({first_line(error)})"
        ) from None


@dataclass
class LoadedRun:
    """A trained run: its config and its model (in eval mode, on the requested device)."""

    config: RunConfig
    model: CVAE
    data_dir: str | None = None  # where it was trained from, when given


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild a run's model from `model.pt` and load its weights."""
    document = read_checkpoint(run_dir, device)
    config = checkpoint_config(document, run_dir)
    model = build_model(config).to(device)
    load_state(model, document.get("model"), run_dir)
    model.eval()
    data_dir = document.get("data_dir")
    return LoadedRun(config, model, data_dir if isinstance(data_dir, str) else None)
