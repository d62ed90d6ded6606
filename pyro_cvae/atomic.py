"""Atomic file writes: a temporary file in the same folder, flushed, fsynced, renamed.

A crash or `kill -9` at any moment leaves either the old file or the new one, never a
half-written one. Failures (full disk, read-only folder, no permission) become
`OutputError` and leave the old file untouched.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import OutputError

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a parent is not a folder",
    errno.EISDIR: "it is a folder",
}


def describe_os_error(path: Path | str, error: OSError) -> OutputError:
    """An `OutputError` naming `path` and the reason in words ("the disk is full", ...)."""
    reason = _REASONS.get(error.errno, error.strerror or str(error))
    return OutputError(f"cannot write {path}: {reason}")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_temporary(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """A temporary file beside `path` (descriptor, name) with the permissions a plain
    `open(path, "w")` would give (mkstemp alone makes it readable by its owner only)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(fd, 0o666 & ~_current_umask())
    return fd, tmp


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(binary_file)` on a temporary file, then move it onto `path`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = new_temporary(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(path.parent)
    except OSError as error:
        raise describe_os_error(path, error) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def leftover_temporaries(path: str | Path) -> list[Path]:
    """Temporary files `atomic_write` left beside `path` when killed mid-write (`kill -9`,
    power loss); safe to delete, since `path` itself is always whole."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | Path, value) -> None:
    """Write `value` as indented JSON, atomically."""
    data = (json.dumps(value, indent=2) + "\n").encode()
    atomic_write(path, lambda handle: handle.write(data))
