"""What must never reach a student: solution lines and hidden-test text (lines, ``def`` lines and names).

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


def _raw_marker(cell) -> str:
    return cell.source.strip().splitlines()[0].strip() if cell.cell_type == "raw" and cell.source.strip() else ""


def solution_lines(master: Path) -> set[str]:
    """Lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (or ending in ``# SOLUTION``) in
    the code cells of a master notebook, and the lines of the markdown cells between raw
    ``# BEGIN SOLUTION`` and ``# END SOLUTION`` cells (a written question's rubric)."""
    nb = nbformat.read(master, as_version=4)
    found, public = set(), set()
    in_solution = False
    for cell in nb.cells:
        in_solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(_raw_marker(cell), in_solution)
        if cell.cell_type == "markdown" and in_solution:
            found |= {s for s in map(_significant, cell.source.splitlines()) if s}
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


def public_test_lines(tests: dict[str, str]) -> set[str]:
    """Lines of the public test functions (students see them), their ``def`` lines and names included."""
    return _test_lines(tests)[1]


def hidden_test_lines(tests: dict[str, str]) -> set[str]:
    """Lines of the hidden test functions that do not also occur in a public test, with their ``def``
    lines and the functions' names (a name alone tells what a hidden test checks)."""
    hidden, public = _test_lines(tests)
    return hidden - public


def _test_lines(tests: dict[str, str]) -> tuple[set[str], set[str]]:
    hidden, public = set(), set()
    for source in tests.values():
        blocks = re.split(r"\n(?=@test_case\()", source)
        for block in blocks[1:]:
            header = block.splitlines()[0]
            target = hidden if "hidden=True" in header else public
            for line in block.splitlines()[1:]:  # skip the decorator
                s = _significant(line)
                if s:
                    target.add(s)
                name = re.match(r"def (test\w+)\(", line)  # the test function itself, not helpers inside it
                if name:
                    target.add(name.group(1))
    return hidden, public


def find_leaks(text: str, secret: set[str]) -> list[str]:
    """The secret lines that occur as whole lines of ``text`` (ignoring indentation), and the secret
    names (identifiers such as a hidden test's function name) that occur anywhere in it as words."""
    lines = {line.strip() for line in text.splitlines()}
    names = {s for s in secret if re.fullmatch(r"\w+", s) and re.search(rf"\b{s}\b", text)}
    return sorted((secret & lines) | names)


def readable_text(path: Path) -> str:
    """What a reader of this file can see, one source line per line: a notebook's cell sources,
    outputs and embedded tests; a web page's text and code; any other text file as it is."""
    import html
    import json

    raw = path.read_text(errors="ignore")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except ValueError:
            return raw
        parts = []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            parts.append("".join(src) if isinstance(src, list) else str(src))
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain", "")
                parts.append("".join(text) if isinstance(text, list) else str(text))
        tests = nb.get("metadata", {}).get("otter", {}).get("tests", {})
        parts.extend(str(t) for t in tests.values())
        return "\n".join(parts)
    if path.suffix in (".html", ".htm"):
        return html.unescape(re.sub(r"<[^>]+>", "", raw))
    return raw


def redact(text: str, secret: set[str]) -> str:
    for line in sorted(secret, key=len, reverse=True):  # whole lines before the names inside them
        if line in text:
            text = text.replace(line, "[hidden test text removed]")
    return text


def visible_lines(master: Path) -> set[str]:
    """Lines students legitimately see: the master's markdown and code outside solutions and tests."""
    nb = nbformat.read(master, as_version=4)
    seen, in_tests, in_solution = set(), False, False
    for cell in nb.cells:
        if cell.cell_type == "raw":
            marker = _raw_marker(cell)
            in_tests = {"# BEGIN TESTS": True, "# END TESTS": False}.get(marker, in_tests)
            in_solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(marker, in_solution)
            continue
        if in_tests or (in_solution and cell.cell_type == "markdown"):
            continue
        inside = False
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker in ("# BEGIN SOLUTION", "# END SOLUTION"):
                inside = marker == "# BEGIN SOLUTION"
            elif not inside and not re.search(r"#\s*SOLUTION\s*$", line):
                seen.add(line.strip())
    return seen


def secret_lines(master: Path, tests: dict[str, str]) -> set[str]:
    """What must never reach a student of this lab: solution lines and hidden-test lines, less the
    generic lines (``start = time.perf_counter()``) that the lab also shows students openly."""
    return (solution_lines(master) | hidden_test_lines(tests)) - visible_lines(master)
