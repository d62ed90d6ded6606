"""One trainer per run folder: an advisory file lock that the kernel releases with its process.

`RunLock.acquire(run_dir)` takes an exclusive `flock` on `RUN_DIR/.lock` without waiting,
and writes into it which process holds it, so that a second trainer on the same folder
is refused in one line naming the first. A process killed at any moment (even by
SIGKILL) leaves the file behind but not the lock: the kernel drops a `flock` when the
last descriptor of its open file goes, so a stale file never blocks a resume, unlike a
PID file. Advisory: it stops `pyro-cvae train` and `TrainingRun`, not other programs.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from .atomic import describe_os_error
from .errors import OutputError

LOCK_NAME = ".lock"


class RunLock:
    """The lock on one run folder, held from `acquire` until `release` (or the end of
    the process)."""

    def __init__(self, run_dir: Path, handle) -> None:
        self.run_dir, self._handle = run_dir, handle

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Lock `run_dir` (an existing folder) for this process; an `OutputError` naming
        the holder when another process (or another `RunLock` of this one) has it."""
        path = run_dir / LOCK_NAME
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as error:
            raise describe_os_error(path, error) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputError(
                f"{run_dir} is being trained by {holder}; wait for it to finish or stop it "
                "(a stopped run resumes with --resume)"
            ) from None
        except OSError as error:  # a file system without locks, say
            handle.close()
            raise describe_os_error(path, error) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        return cls(run_dir, handle)

    @property
    def held(self) -> bool:
        return not self._handle.closed

    def release(self) -> None:
        """Give the lock up (closing the file drops the `flock`); the file stays."""
        self._handle.close()
