"""docs/extending.md's examples run, top to bottom, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parent.parent / "docs" / "extending.md"


def test_every_example_in_extending_md_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "extending_examples"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{DOC.name}, example {number}", "exec"), namespace)
