"""The project's exceptions: each carries a one-line message a user can act on.

The library raises these and never prints or exits; the CLI turns them into one line
on stderr and exit code 1 (2 for `UsageError`, as for any misused command).
"""


class CvaeError(Exception):
    """Base class of every error the library raises on purpose."""


class UsageError(CvaeError):
    """The request does not fit the run: a label for a model without labels, sampling from
    a hole-filling model, a setting that differs from a resumed run's, ..."""


class DataError(CvaeError):
    """A data, image, label or mask file is missing, malformed or of the wrong shape."""


class CheckpointError(CvaeError):
    """A run folder or checkpoint is missing, unreadable, untrusted or incompatible."""


class TrainingError(CvaeError):
    """Training cannot go on (for example the loss became NaN)."""


class LossNotFinite(TrainingError):
    """The training loss became NaN or infinite; under torchrun, every process sees it
    at the same step (the losses are summed over them first)."""


class ProcessGroupError(CvaeError):
    """Under torchrun: the training processes cannot join, or lost one another (a process
    died or stopped answering within the group's timeout)."""


class RankZeroStopped(ProcessGroupError):
    """Under torchrun: rank 0 could not go on (and says why itself); the others stop."""


class OutputError(CvaeError):
    """An output file or folder cannot be written (read-only, full disk, ...)."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of `error`'s message (its type's name when it has none), at most
    `limit` characters: for wrapping a foreign exception into one of ours."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]
