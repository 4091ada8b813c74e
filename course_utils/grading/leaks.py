"""What must never reach a student: solution lines and hidden-test text.

Used by the grader (feedback is redacted with :func:`hidden_test_lines`) and by the leak scan of the
test suite, which checks every student notebook, every feedback file and the built website.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

MIN_CHARS = 16  # shorter lines ("return out", "import torch") are too generic to identify a leak


def _significant(line: str) -> str | None:
    s = line.strip()
    if len(s) < MIN_CHARS or s.startswith(("#", "import ", "from ")) or s in {'"""', "'''"}:
        return None
    return s


def solution_lines(master: Path) -> set[str]:
    """Lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (or ending in ``# SOLUTION``) in
    the code cells of a master notebook."""
    nb = nbformat.read(master, as_version=4)
    found, public = set(), set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker == "# BEGIN SOLUTION":
                inside = True
            elif marker == "# END SOLUTION":
                inside = False
            elif (inside or re.search(r"#\s*SOLUTION\s*$", line)) and _significant(line):
                found.add(_significant(re.sub(r"#\s*SOLUTION\s*$", "", line)) or line.strip())
            elif _significant(line):
                public.add(line.strip())
    return {line for line in found if line and line not in public}


def hidden_test_lines(tests: dict[str, str]) -> set[str]:
    """Lines of the hidden test functions that do not also occur in a public test."""
    hidden, public = set(), set()
    for source in tests.values():
        blocks = re.split(r"\n(?=@test_case\()", source)
        for block in blocks[1:]:
            header = block.splitlines()[0]
            target = hidden if "hidden=True" in header else public
            for line in block.splitlines()[2:]:  # skip the decorator and the def line
                s = _significant(line)
                if s:
                    target.add(s)
    return hidden - public


def find_leaks(text: str, secret: set[str]) -> list[str]:
    """The secret lines that occur in ``text``."""
    return sorted(line for line in secret if line in text)


def redact(text: str, secret: set[str]) -> str:
    for line in secret:
        if line in text:
            text = text.replace(line, "[hidden test text removed]")
    return text
