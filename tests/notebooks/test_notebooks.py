"""The labs as notebooks: nbval runs every lab master under the ``ci`` profile (the book build is the
chapters' execution check), every lab starts with the same cells, the runs the chapters quote match
their labs' code, and the table of contents lists every chapter page and every lab."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from helpers import PYTHON, REPO, run, toc_files
from course_tools.grading.assign import discover_labs
from course_tools.notebooks import is_myst_notebook
from course_utils import results

LABS = discover_labs()
SETUP_CELL = "from course_utils import setup, sizes_for\n\nrun = setup(seed=0)\ndevice, profile = run.device, run.profile"


def nbval(path: Path):
    env = dict(os.environ, COURSE_PROFILE="ci", MPLBACKEND="Agg", TQDM_DISABLE="1")
    return run([PYTHON, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                "-q", "--no-header", "-o", "addopts=", str(path)], env=env, cwd=path.parent)


@pytest.mark.notebook
@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_lab_master_runs_under_nbval(lab):
    proc = nbval(lab.master)
    assert proc.returncode == 0, f"nbval failed for {lab.master.relative_to(REPO)}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_every_lab_starts_with_its_title_one_line_and_the_same_setup_cell(lab, assigned):
    for path in (lab.master, assigned / lab.name / "student" / f"{lab.name}.ipynb"):
        cells = nbformat.read(path, as_version=4).cells
        title = cells[0].source
        number = int(lab.name[:2])
        assert cells[0].cell_type == "markdown" and re.fullmatch(rf"# Lab {number}: [^\n]+\n\n[^\n]+", title), (
            f"{path.name}: the first cell is the title and one line on what the lab teaches, got {title[:120]!r}")
        assert cells[1].cell_type == "code" and cells[1].source == SETUP_CELL, (
            f"{path.name}: the second cell is the setup cell, the same in every lab, got {cells[1].source[:120]!r}")


def run_all(folder: Path, notebook: str, tmp_path: Path):
    """Run All on a copy of ``folder``, as a student's Jupyter does (the kernel in the notebook's
    folder, the ci profile); the executed notebook, or nbclient's CellExecutionError at the first
    exception."""
    from nbclient import NotebookClient

    work = tmp_path / folder.name
    shutil.copytree(folder, work)
    nb = nbformat.read(work / notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_run_all_on_the_untouched_hand_out_reaches_the_end(lab, assigned, tmp_path, monkeypatch):
    """A student who runs every cell before answering anything meets no exception: each cell that
    needs an unwritten answer says which question to finish, and the next cell runs."""
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws as a student's does
    nb = run_all(assigned / lab.name / "student", f"{lab.name}.ipynb", tmp_path)
    text = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells if c.cell_type == "code"]
    skipped = [t for t in text if t.startswith("skipped: ")]
    assert skipped, "an untouched hand-out should skip the cells that need answers, and say so"
    line = r"skipped: this cell needs .+ from Questions? [0-9a-z, ]+, which (is|are) not written yet; finish (it|them) first"
    assert all(re.match(line, t) for t in skipped), skipped


RECORDED = sorted((REPO / "labs").glob("*/results_*.json"))


@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.name}/{p.name}" for p in RECORDED])
def test_recorded_runs_match_their_labs_code(path):
    """The chapters quote these files; a run recorded before the lab's code changed is stale."""
    assert results.staleness(path) is None, results.staleness(path)


def test_every_chapter_page_is_in_the_toc():
    listed = toc_files()
    pages = [p for p in (REPO / "chapters").glob("*.md")]
    missing = [str(p.relative_to(REPO)) for p in pages if str(p.relative_to(REPO).with_suffix("")) not in listed]
    assert not missing, f"chapter pages missing from _toc.yml: {missing}"


def test_every_lab_is_in_the_toc_through_its_student_version():
    listed = toc_files()
    missing = [lab.name for lab in LABS if f"labs/{lab.name}/student/{lab.name}" not in listed]
    assert not missing, f"labs whose student notebook is missing from _toc.yml: {missing}"


def test_lab_masters_have_no_stray_outputs_and_chapters_are_text_notebooks():
    for lab in LABS:
        for cell in nbformat.read(lab.master, as_version=4).cells:
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" not in cell.source:
                assert not cell.get("outputs"), f"{lab.master.name}: commit masters without outputs (cell {cell.source[:60]!r})"
    assert not list((REPO / "chapters").glob("*.ipynb")), "chapter pages are MyST Markdown notebooks (.md), not .ipynb"
    assert all(is_myst_notebook(p) for p in (REPO / "chapters").glob("0*.md"))
