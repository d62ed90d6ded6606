"""The project's exceptions: each carries a one-line message a user can act on.

The library raises these and never prints or exits; the CLI turns them into one line
on stderr and exit code 1.
"""


class CvaeError(Exception):
    """Base class of every error the library raises on purpose."""


class DataError(CvaeError):
    """A data, image, label or mask file is missing, malformed or of the wrong shape."""


class CheckpointError(CvaeError):
    """A run folder or checkpoint is missing, unreadable, untrusted or incompatible."""


class TrainingError(CvaeError):
    """Training cannot go on (for example the loss became NaN)."""


class OutputError(CvaeError):
    """An output file or folder cannot be written (read-only, full disk, ...)."""
