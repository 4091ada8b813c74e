"""A targeted regrade (course_tools/grading/regrade.py, ``make grade GRADE_ARGS="--only ... --students
..."``): after a hidden test changes, the named questions (or submissions) get new scores and every
other cell is carried over; ``changes.csv`` lists exactly the cells that changed, ``regrade.json``
shows that the tests changed; the base run is left byte for byte as it was; bad input stops with
one line and status 2. Lab 0, with submissions that define only their answers (quick to run)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from course_tools.grading import batch, runs
from course_tools.grading.judge import Limits
from course_tools.grading.regrade import regrade
from helpers import PYTHON, REPO

LAB = "00_getting_started"
Q = ["pixel_cross_entropy", "pixel_accuracy"]
CROSS_ENTROPY = """
def pixel_cross_entropy(scores, labels):
    log_z = torch.logsumexp(scores, dim=1)
    return (log_z - scores.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()
"""
ACCURACY = """
def pixel_accuracy(scores, labels, ignore_index=255):
    labeled = labels != ignore_index
    if not labeled.any():
        return float("nan")
    return float((scores.argmax(dim=1)[labeled] == labels[labeled]).double().mean())
"""
BANNED = """
def pixel_cross_entropy(scores, labels):
    return F.cross_entropy(scores, labels)
"""
# one hidden test of each question made stricter, so that no answer passes it any more
STRICTER = {"pixel_accuracy": "    acc = pixel_accuracy(torch.randn(1, 3, 4, 4), torch.full((1, 4, 4), 255))\n",
            "pixel_cross_entropy": "def test_cross_entropy_is_stable_and_float64(pixel_cross_entropy):\n"}


def _notebook(*sources: str) -> dict:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s} for s in sources]
    return {"cells": cells, "metadata": {"otter": {"assignment_name": LAB}}, "nbformat": 4, "nbformat_minor": 5}


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder``: its bytes and its modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rows(run: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in _csv(run / "gradebook.csv")}


@pytest.fixture(scope="module")
def base_run(assigned, grader, tmp_path_factory):
    """A Lab 0 run of four submissions (both answers, the accuracy only, nothing, the accuracy and a
    cross-entropy that breaks its by-hand rule) graded with a copy of the assigned lab; then a hidden
    test of each question in that copy is made stricter."""
    tmp = tmp_path_factory.mktemp("regrade")
    lab_copy = tmp / "assign" / LAB
    shutil.copytree(assigned / LAB, lab_copy, ignore=shutil.ignore_patterns("*.zip", "autograder"))
    subs = tmp / "submissions"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "lab.ipynb").write_text(json.dumps(_notebook("import torch", CROSS_ENTROPY, ACCURACY)))
    (subs / "bob.ipynb").write_text(json.dumps(_notebook("import torch", ACCURACY)))
    (subs / "carol.ipynb").write_text(json.dumps(_notebook("x = 1")))
    (subs / "dan.ipynb").write_text(json.dumps(_notebook("import torch\nimport torch.nn.functional as F", BANNED, ACCURACY)))
    base = tmp / "grades" / LAB / "20260101-000000"
    grader.grade(LAB, subs, base, Limits(timeout=60, test_seconds=10), tmp / "assign", progress=False)
    assert {name: (r["pixel_cross_entropy"], r["pixel_accuracy"]) for name, r in _rows(base).items()} == {
        "alice/lab.ipynb": ("4", "4"), "bob.ipynb": ("0", "4"), "carol.ipynb": ("0", "0"), "dan.ipynb": ("0", "4")}
    (base.parent / "latest").symlink_to(base.name)
    for q, line in STRICTER.items():
        test = lab_copy / "tests" / f"{q}.py"
        assert line in test.read_text()
        test.write_text(test.read_text().replace(line, line + "    assert False, 'a stricter test'\n"))
    return {"tmp": tmp, "assign": tmp / "assign", "submissions": subs, "base": base}


@pytest.mark.grading
def test_only_one_question_changes_its_scores_and_carries_the_rest(base_run, grader, tmp_path):
    base, before = base_run["base"], _snapshot(base_run["base"])
    out = tmp_path / "regrade"
    rows = regrade(LAB, base_run["submissions"], only=["pixel_accuracy"], base=base, reason="fixed the nan test",
                   out=out, assigned_root=base_run["assign"], grader=grader, progress=False,
                   limits=Limits(timeout=60, test_seconds=10))
    assert _snapshot(base) == before, "the regrade changed the base run"
    assert [r.submission for r in rows] == ["alice/lab.ipynb", "bob.ipynb", "carol.ipynb", "dan.ipynb"]
    new = _rows(out)
    # the stricter accuracy test costs its points; cross-entropy is carried (its stricter test did not run)
    assert {name: (r["pixel_cross_entropy"], r["pixel_accuracy"], r["total"], r["status"]) for name, r in new.items()} == {
        "alice/lab.ipynb": ("4", "2.6667", "6.6667", "graded"), "bob.ipynb": ("0", "2.6667", "2.6667", "graded"),
        "carol.ipynb": ("0", "0", "0", "graded"), "dan.ipynb": ("0", "2.6667", "2.6667", "flagged")}
    # the broken rule of a question that was not regraded still stands
    assert new["dan.ipynb"]["note"] == _rows(base)["dan.ipynb"]["note"] == "broke the by-hand rule of pixel_cross_entropy"
    changes = _csv(out / "changes.csv")
    assert [(c["submission"], c["question"], c["old_score"], c["new_score"], c["old_status"], c["new_status"])
            for c in changes] == [("alice/lab.ipynb", "pixel_accuracy", "4", "2.6667", "graded", "graded"),
                                  ("bob.ipynb", "pixel_accuracy", "4", "2.6667", "graded", "graded"),
                                  ("dan.ipynb", "pixel_accuracy", "4", "2.6667", "flagged", "flagged")]
    assert all(c["reason"].startswith("fixed the nan test; the tests of pixel_accuracy changed since the base run")
               for c in changes)
    record = json.loads((out / "regrade.json").read_text())
    assert record["base"] == str(base.resolve()) and record["reason"] == "fixed the nan test"
    assert record["only"] == ["pixel_accuracy"] and record["changed"] == ["alice/lab.ipynb", "bob.ipynb", "dan.ipynb"]
    tests = record["tests"]["pixel_accuracy"]
    assert tests["changed"] is True and tests["base"] != tests["now"]
    assert tests["base"] == json.loads((base / "summary.json").read_text())["tests_sha256"]["pixel_accuracy"]
    # a complete run: feedback for every student, test results for make report
    assert sorted(p.relative_to(out / "feedback").as_posix() for p in (out / "feedback").rglob("*.md")) == [
        "alice/lab.md", "bob.md", "carol.md", "dan.md"]
    assert "## pixel_accuracy: 2.6667 / 4" in (out / "feedback" / "bob.md").read_text()
    assert "## pixel_cross_entropy: 4 / 4" in (out / "feedback" / "alice" / "lab.md").read_text()
    run = runs.load_run(out, LAB)
    assert set(run.tests) == set(new) and not any(c["passed"] for c in run.tests["bob.ipynb"]["pixel_accuracy"]["cases"]
                                                 if c["name"] == "test_accuracy_of_an_unlabeled_image_is_nan")


@pytest.mark.grading
def test_students_regrades_only_the_named_rows_from_the_latest_run(base_run, grader, tmp_path, monkeypatch):
    grades = tmp_path / "_grades" / LAB
    base = grades / "20260101-000000"
    shutil.copytree(base_run["base"], base)
    (grades / "latest").symlink_to(base.name)
    before = _snapshot(base)
    monkeypatch.setattr(batch, "REPO", tmp_path)  # the lab's latest run is this one
    regrade(LAB, base_run["submissions"], students=["alice"], assigned_root=base_run["assign"], grader=grader,
            progress=False, limits=Limits(timeout=60, test_seconds=10))
    assert _snapshot(base) == before, "the regrade changed the base run"
    out = (grades / "latest").resolve()
    assert out.parent == grades and out != base
    old, new = _rows(base), _rows(out)
    assert new["alice/lab.ipynb"]["pixel_cross_entropy"] == new["alice/lab.ipynb"]["pixel_accuracy"] == "2.6667"
    for name in ("bob.ipynb", "carol.ipynb", "dan.ipynb"):  # carried as they were, feedback included
        assert new[name] == old[name]
        feedback = batch.feedback_path(out, name)
        assert feedback.read_bytes() == batch.feedback_path(base, name).read_bytes()
    changes = _csv(out / "changes.csv")
    assert [(c["submission"], c["question"], c["old_score"], c["new_score"]) for c in changes] == [
        ("alice/lab.ipynb", q, "4", "2.6667") for q in Q]
    assert json.loads((out / "regrade.json").read_text())["regraded"] == ["alice/lab.ipynb"]


def _fake_base(folder: Path) -> Path:
    """A finished run of Lab 0 as `make grade` writes it (no grading needed to read it)."""
    folder.mkdir(parents=True)
    with open(folder / "gradebook.csv", "w", newline="") as f:
        csv.writer(f).writerows([batch.gradebook_header(Q), ["alice/lab.ipynb", "graded", "4", "4", "8", "8", "1.00", ""]])
    (folder / "summary.json").write_text(json.dumps({"lab": LAB}))
    return folder


@pytest.mark.parametrize("args, expected", [
    (["--only", "pixel_loss"], "unknown question 'pixel_loss': expected one of pixel_cross_entropy, pixel_accuracy"),
    (["--students", "dave", "--base", "{base}"], "unknown student 'dave': expected a submission of the base run"),
    (["--only", "pixel_accuracy"], "expected an earlier run of 00_getting_started to regrade in"),
    (["--only", "pixel_accuracy", "--base", "{tmp}"], "expected a grading run folder"),
    (["--base", "{base}"], "expected --only QUESTION... or --students NAME... with --base and --reason"),
])
def test_bad_input_stops_with_one_line_and_status_2(assigned, tmp_path, monkeypatch, capsys, args, expected):
    (tmp_path / "_assign").mkdir()
    shutil.copytree(assigned / LAB, tmp_path / "_assign" / LAB, ignore=shutil.ignore_patterns("*.zip", "autograder"))
    base = _fake_base(tmp_path / "runs" / "base")
    (tmp_path / "submissions").mkdir()
    (tmp_path / "submissions" / "alice.ipynb").write_text(json.dumps(_notebook("x = 1")))
    monkeypatch.setattr(batch, "REPO", tmp_path)  # no run of the lab in its _grades/
    argv = [LAB, str(tmp_path / "submissions"), *(a.format(base=base, tmp=tmp_path) for a in args)]
    assert batch.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(expected), err
    assert not (tmp_path / "_grades").exists(), "bad input wrote a run folder"


def test_make_grade_with_an_unknown_question_prints_one_line_and_no_traceback(assigned, tmp_path):
    env = {**os.environ, "COURSE_PROFILE": "ci"}
    proc = subprocess.run([PYTHON, "-m", "course_tools.grading.batch", LAB, str(tmp_path), "--only", "nope"],
                          cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["unknown question 'nope': expected one of pixel_cross_entropy, pixel_accuracy "
                                        "(the questions of 00_getting_started)"], proc.stderr
