"""nbval validates every notebook of the course under the ``ci`` profile, and the table of contents
lists every chapter page and every lab."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import PYTHON, REPO, run
from course_tools.grading.assign import discover_labs
from course_utils.notebooks import all_notebooks, chapter_to_ipynb, is_myst_notebook

NOTEBOOKS = all_notebooks()


def nbval(path: Path):
    env = dict(os.environ, COURSE_PROFILE="ci", MPLBACKEND="Agg", TQDM_DISABLE="1")
    return run([PYTHON, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                "-q", "--no-header", "-o", "addopts=", str(path)], env=env, cwd=path.parent)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in NOTEBOOKS])
def test_notebook_runs_under_nbval(path):
    if path.suffix == ".md":
        converted = path.with_name(f".nbval_{path.stem}.ipynb")
        try:
            chapter_to_ipynb(path, converted)
            proc = nbval(converted)
        finally:
            converted.unlink(missing_ok=True)
    else:
        proc = nbval(path)
    assert proc.returncode == 0, f"nbval failed for {path.relative_to(REPO)}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


def toc_files() -> set[str]:
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return {toc["root"], *walk(toc)}


def test_every_chapter_page_is_in_the_toc():
    listed = toc_files()
    pages = [p for p in (REPO / "chapters").glob("*.md")]
    missing = [str(p.relative_to(REPO)) for p in pages if str(p.relative_to(REPO).with_suffix("")) not in listed]
    assert not missing, f"chapter pages missing from _toc.yml: {missing}"


def test_every_lab_is_in_the_toc_through_its_student_version():
    listed = toc_files()
    missing = [lab.name for lab in discover_labs() if f"labs/{lab.name}/student/{lab.name}" not in listed]
    assert not missing, f"labs whose student notebook is missing from _toc.yml: {missing}"


def test_every_lab_master_is_a_validated_notebook_and_has_no_stray_outputs():
    for lab in discover_labs():
        assert lab.master in NOTEBOOKS
        import nbformat

        nb = nbformat.read(lab.master, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" not in cell.source:
                assert not cell.get("outputs"), f"{lab.master.name}: commit masters without outputs (cell {cell.source[:60]!r})"


def test_chapter_notebooks_are_myst_text_notebooks():
    for p in (REPO / "chapters").glob("*.ipynb"):
        pytest.fail(f"{p}: chapter pages are MyST Markdown notebooks (.md), not .ipynb")
    assert any(is_myst_notebook(p) for p in (REPO / "chapters").glob("*.md"))
