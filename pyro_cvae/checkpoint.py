"""Save (atomically) and load (without running code) a run: weights, config, training state.

`model.pt` is a `torch.save` of plain containers and tensors only, read back with
`torch.load(..., weights_only=True)`: a crafted pickle that would run code is refused.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_write
from .config import RunConfig
from .errors import CheckpointError
from .model import build_model

FORMAT = "pyro-cvae"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(run_dir: str | Path, payload: dict) -> None:
    """Write `payload` (plain containers and tensors) as the run's `model.pt`, atomically."""
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    atomic_write(checkpoint_path(run_dir), lambda handle: torch.save(document, handle))


def read_checkpoint(run_dir: str | Path, device: torch.device | str = "cpu") -> dict:
    """The checkpoint's contents, tensors on `device`; never executes code from the file."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if run_dir.is_file():
        path = run_dir
    else:
        path = checkpoint_path(run_dir)
        if not path.is_file():
            raise CheckpointError(f"{run_dir}: no {CHECKPOINT_NAME} here; is it a run folder?")
    try:
        document = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused to load, it holds objects other than tensors and plain data "
            f"({first[:120]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(error)[:120]})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pyro-cvae checkpoint")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this pyro-cvae reads "
            f"({FORMAT_VERSION}); upgrade pyro-cvae"
        )
    return document


@dataclass
class LoadedRun:
    """A trained run: its config and its model (in eval mode, on the requested device)."""

    config: RunConfig
    model: torch.nn.Module
    document: dict


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild a run's model from `model.pt` and load its weights."""
    document = read_checkpoint(run_dir, device)
    try:
        config = RunConfig.from_dict(document["config"])
        model = build_model(config).to(device)
        model.load_state_dict(document["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{run_dir}: the checkpoint does not match this version's architecture "
            f"({str(error).splitlines()[0][:160]})"
        ) from None
    model.eval()
    return LoadedRun(config, model, document)
