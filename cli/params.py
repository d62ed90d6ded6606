"""Click parameter types for the CLI: integer lists, label lists and output files, refused
before work starts."""

from __future__ import annotations

import click


class IntList(click.ParamType):
    """Comma-separated whole numbers, each within [low, high]: "512,256" -> (512, 256)."""

    name = "N[,N...]"

    def __init__(self, low: int, high: int | None = None, what: str = "value") -> None:
        self.low, self.high, self.what = low, high, what

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of whole numbers", param, ctx)
        for number in numbers:
            if number < self.low or (self.high is not None and number > self.high):
                bound = f"{self.low}..{self.high}" if self.high is not None else f">= {self.low}"
                self.fail(f"{self.what} {number} is outside {bound}", param, ctx)
        return numbers


LABELS = IntList(0, 9, "label")
WIDTHS = IntList(1, 1 << 16, "layer width")


class OutputFile(click.Path):
    """A file to write: not a folder, and in a folder that exists (checked before any work)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value, param, ctx):
        from pathlib import Path

        path = Path(super().convert(value, param, ctx))
        folder = path.parent
        if not folder.is_dir():
            self.fail(f"folder {str(folder)!r} does not exist", param, ctx)
        return str(path)


OUTPUT = OutputFile()
