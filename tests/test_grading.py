"""The assign-and-grade round trip for every lab, and the grader's handling of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading.assign import discover_labs
from course_utils.grading.batch import Limits, grade_folder
from course_utils.grading.leaks import find_leaks, readable_text, hidden_test_lines, secret_lines, solution_lines, visible_lines

LABS = discover_labs()
IDS = [lab.name for lab in LABS]


def lab_test_files(assigned: Path, lab) -> dict:
    return {p.stem: p.read_text() for p in sorted((assigned / lab.name / "tests").glob("*.py"))}


@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_assign_writes_student_notebook_autograder_zip_and_tests(assigned, lab):
    out = assigned / lab.name
    assert (out / "student" / f"{lab.name}.ipynb").is_file()
    assert (out / "autograder" / f"{lab.name}.ipynb").is_file()
    assert (out / f"{lab.name}-autograder.zip").is_file()
    questions = json.loads((out / "questions.json").read_text())
    assert questions, "a lab needs graded questions"
    for name, q in questions.items():
        assert q["public"] > 0, f"question {name} has no public test"
        assert q["hidden"] > 0, f"question {name} has no hidden test"


def test_question_names_are_unique_across_labs(assigned):
    seen = {}
    for lab in LABS:
        for name in json.loads((assigned / lab.name / "questions.json").read_text()):
            assert name not in seen, f"question {name!r} appears in {seen.get(name)} and {lab.name}"
            seen[name] = lab.name


@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_student_notebook_holds_no_solution_and_no_hidden_test(assigned, lab):
    text = readable_text(assigned / lab.name / "student" / f"{lab.name}.ipynb")
    visible = visible_lines(lab.master)
    solutions = solution_lines(lab.master) - visible
    assert solutions, "the leak scan found no solution lines in the master: is it marked with # BEGIN SOLUTION?"
    assert not find_leaks(text, solutions), "solution lines leaked into the student notebook"
    hidden = hidden_test_lines(lab_test_files(assigned, lab)) - visible
    assert hidden, "the leak scan found no hidden-test lines"
    assert not find_leaks(text, hidden), "hidden-test lines leaked into the student notebook"
    assert "hidden=True" not in text and "BEGIN SOLUTION" not in text


@pytest.mark.grading
@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_solution_scores_full_marks_and_untouched_student_notebook_scores_zero(assigned, lab, tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    shutil.copy(assigned / lab.name / "autograder" / f"{lab.name}.ipynb", subs / "solution.ipynb")
    shutil.copy(assigned / lab.name / "student" / f"{lab.name}.ipynb", subs / "untouched.ipynb")
    rows = {r.submission: r for r in grade_folder(lab.name, subs, tmp_path / "grades", Limits(jobs=2), progress=False)}
    solution, untouched = rows["solution.ipynb"], rows["untouched.ipynb"]
    assert solution.status == "graded", solution.note
    assert solution.total == pytest.approx(solution.possible) and solution.possible > 0
    assert untouched.status == "graded", untouched.note
    assert untouched.total == 0
    for feedback in (tmp_path / "grades" / "feedback").glob("*.md"):
        assert not find_leaks(feedback.read_text(), secret_lines(lab.master, lab_test_files(assigned, lab)))


@pytest.mark.grading
def test_grader_gives_bad_files_a_status_and_still_grades_the_others(assigned, tmp_path):
    lab = LABS[0]
    subs = tmp_path / "submissions"
    subs.mkdir()
    solution = assigned / lab.name / "autograder" / f"{lab.name}.ipynb"
    (subs / "malformed.ipynb").write_text('{"cells": [')
    (subs / "empty.ipynb").write_text("")
    nb = nbformat.read(solution, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("raise RuntimeError('a student error in the first cell')"))
    nbformat.write(nb, subs / "raises_first.ipynb")
    shutil.copy(solution, subs / "solution.ipynb")
    rows = {r.submission: r for r in grade_folder(lab.name, subs, tmp_path / "grades", Limits(jobs=2), progress=False)}
    assert rows["malformed.ipynb"].status == "invalid" and "JSON" in rows["malformed.ipynb"].note
    assert rows["empty.ipynb"].status == "invalid" and "empty" in rows["empty.ipynb"].note
    # the error in the first cell costs nothing: every later question is still graded
    assert rows["raises_first.ipynb"].status == "graded"
    assert rows["raises_first.ipynb"].total == pytest.approx(rows["solution.ipynb"].possible)
    assert rows["solution.ipynb"].total == pytest.approx(rows["solution.ipynb"].possible)
    gradebook = (tmp_path / "grades" / "gradebook.csv").read_text().splitlines()
    assert len(gradebook) == 1 + 4 and gradebook[0].startswith("submission,status,")
