"""Notebook housekeeping: find every notebook of the course, convert chapter pages, strip outputs.

Taught nowhere (maintainer tooling, used by the test suite). Chapter pages are MyST Markdown
notebooks; :func:`chapter_to_ipynb` turns one into an ``.ipynb`` that nbval can run. Lab masters
are committed without outputs, except the output of a cell marked ``# NBVAL_CHECK_OUTPUT``, which
nbval compares: ``python -m course_tools.notebooks refresh labs/NN_slug/NN_slug.ipynb`` runs the
master under the ``ci`` profile and stores exactly those outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

from . import REPO

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
GENERATED = {"_build", "_assign", "_grades", ".venv", "student", ".ipynb_checkpoints", "node_modules", ".git"}


def is_generated(path: Path) -> bool:
    return any(part in GENERATED for part in path.relative_to(REPO).parts)


def all_notebooks() -> list[Path]:
    """Every ``.ipynb`` in the repository and every MyST notebook page in ``chapters/``."""
    found = [p for p in REPO.rglob("*.ipynb") if not is_generated(p)]
    found += [p for p in (REPO / "chapters").glob("*.md") if is_myst_notebook(p)]
    return sorted(found)


def is_myst_notebook(path: Path) -> bool:
    head = path.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "format_name: myst" in head


def chapter_to_ipynb(md: Path, out: Path) -> Path:
    """Convert a MyST Markdown notebook page to ``.ipynb`` (what nbval runs)."""
    import jupytext

    nb = jupytext.read(md)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


def checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def strip_outputs(path: Path) -> None:
    """Remove outputs and execution counts, keeping only those of ``NBVAL_CHECK_OUTPUT`` cells."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)  # saved widget state would make the website load widget code
    for cell in nb.cells:
        if cell.cell_type == "code":
            if checked(cell):  # nbval compares these; it needs an execution count to do so
                cell.execution_count = cell.execution_count or 1
                for out in cell.outputs:
                    if "execution_count" in out:
                        out["execution_count"] = cell.execution_count
            else:
                cell.outputs = []
                cell.execution_count = None
            cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def refresh(path: Path, timeout: int = 600) -> None:
    """Execute a notebook under the ``ci`` profile and store the outputs of its checked cells only."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["COURSE_PROFILE"] = "ci"
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    strip_outputs(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "strip", "refresh"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.action == "list":
        for p in all_notebooks():
            print(p.relative_to(REPO))
        return 0
    for p in args.paths:
        (strip_outputs if args.action == "strip" else refresh)(p)
        print(f"{args.action}: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
