"""The student process: run the submitted notebook, then answer the judge's requests about it.

It is started by :mod:`course_tools.grading.forkserver` inside the sandbox (:mod:`.sandbox`), in a
fresh working directory holding ``submission.ipynb`` and the lab's data files, with one socket to the
judge and nothing else it could write to. It never holds a test, a reference answer or a score: it
only learns the names the tests ask for and the inputs they pass.

1. Every code cell runs in order in an in-process IPython shell (magics and ``display`` work; an
   exception in a cell is recorded and the next cell still runs, so independent questions are still
   graded). Before each cell it tells the judge which one is starting, so a timeout can say where it
   was. Printing is capped and discarded. otter's own cells (``grader = otter.Notebook(...)``,
   ``grader.check(...)``) are skipped: the judge runs the tests.
2. It sends ``ready`` with the cells that raised, then serves requests until the judge says ``bye``
   or closes the socket (:class:`course_tools.grading.link.Link`).

Whatever the notebook does to this process (replace a builtin, patch torch, forge messages) can
only change the answers it gives: the judge checks every answer itself.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import sys

OUTPUT_CAP = 20_000  # characters of notebook output kept in memory (the rest is counted and dropped)
SKIP_LINE = re.compile(
    r"^\s*(#.*|import otter|grader\s*=\s*otter\.Notebook\(.*\)|grader\.(check|check_all|export)\(.*\)|)\s*$"
)


class CappedWriter(io.TextIOBase):
    """A text stream that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.cap, self.kept, self.total = cap, 0, 0

    def writable(self) -> bool:
        return True

    def write(self, s) -> int:
        n = len(str(s))
        self.total += n
        return n

    def flush(self) -> None:
        pass


def is_grader_cell(source: str) -> bool:
    """otter's own cells (initialisation, ``grader.check``): the judge runs the tests itself."""
    lines = source.splitlines()
    return not source.strip() or (bool(lines) and "grader" in source and all(SKIP_LINE.match(line) for line in lines))


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def code_cells(nb: dict) -> list[tuple[int, str]]:
    """``(index in the notebook, source)`` of every code cell the student process runs."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell_source(cell)
            if not is_grader_cell(src):
                out.append((i, src))
    return out


def _memory_error(exc) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _name(exc: BaseException) -> str:
    """The exception's class name as the judge accepts it (an identifier of at most 60 characters)."""
    name = type(exc).__name__
    return name if re.fullmatch(r"[A-Za-z_]\w{0,59}", name, re.ASCII) else "Exception"


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.msg:  # not str(exc): that adds IPython's name for the cell
        return str(exc.msg).strip().splitlines()[0][:200]
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:200]


def _cell_line(exc: BaseException) -> int | None:
    """The line of the cell where ``exc`` was raised (its last frame in the cell's own code)."""
    if isinstance(exc, SyntaxError):
        return exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<ipython-input-"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def run_notebook(link, nb: dict) -> dict:
    """Run the notebook's code cells; return what ``ready`` reports. Builtins the notebook replaced
    (``builtins.isinstance = ...``) are put back afterwards, so this process can still answer; the
    judge's review of the source reports the tampering."""
    import builtins

    from IPython.core.interactiveshell import InteractiveShell

    from course_utils.runtime import seed_everything

    seed_everything(0)
    shell = InteractiveShell.instance()
    link.namespace = shell.user_ns
    captured = CappedWriter()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = captured
    report = {"cells": 0, "errors": [], "memory_error": False}
    saved_builtins = dict(vars(builtins))
    try:
        import matplotlib.pyplot as plt
    except Exception:  # pragma: no cover - matplotlib is a dependency
        plt = None
    try:
        for index, source in code_cells(nb):
            link.notify("cell", index=index)
            try:
                outcome = shell.run_cell(source, store_history=False)
                error = outcome.error_before_exec or outcome.error_in_exec
            except BaseException as exc:  # noqa: BLE001 - a SystemExit or worse from the notebook
                error = exc
            report["cells"] += 1
            if plt is not None:
                try:
                    plt.close("all")
                except Exception:  # noqa: BLE001
                    pass
            if error is not None:
                report["errors"].append({"cell": index, "error": _name(error), "message": _first_line(error),
                                         "line": _cell_line(error)})
                if _memory_error(error):
                    report["memory_error"] = True
                    break
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr
        for key, value in saved_builtins.items():
            if vars(builtins).get(key) is not value:
                setattr(builtins, key, value)
    report["output_chars"] = captured.total
    return report


def main(sock: socket.socket, work: str) -> int:
    """Run ``submission.ipynb`` in ``work`` and serve the judge on ``sock`` (the sandbox is in place)."""
    from .link import Link, LinkBroken

    link = Link(sock, "student")
    with open(os.path.join(work, "submission.ipynb"), encoding="utf-8") as f:
        nb = json.load(f)
    report = run_notebook(link, nb)
    try:
        link.notify("ready", **report)
        link.serve_forever()
    except LinkBroken:
        return 0
    return 0
