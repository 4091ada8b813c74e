"""Every lab survives broken and dishonest submissions (course_tools/grading/hostile.py): each case
gets its expected status and score, feedback never shows hidden-test text, no byte of a hidden test
ever reaches a student process, nothing a submission sends runs code in the judge, and no process is
left behind. Lab 0 runs every case; the other labs run their lab-specific ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from course_tools.grading.assign import discover_labs
from course_tools.grading.hostile import MARKER, check, lab_cases, run_suite
from course_tools.grading.leaks import find_leaks, hidden_test_lines, public_test_lines, secret_lines
from helpers import sandboxed_processes

LABS = discover_labs()


@pytest.mark.grading
@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_hostile_submissions_get_their_expected_status_and_score(assigned, grader, lab, tmp_path):
    full = lab.name == LABS[0].name
    Path(MARKER).unlink(missing_ok=True)
    cases, rows, questions, _ = run_suite(lab.name, tmp_path, grader, full)
    problems = check(cases, rows, questions)
    assert not problems, "\n".join(problems)

    tests = {p.stem: p.read_text() for p in (assigned / lab.name / "tests").glob("*.py")}
    secret = secret_lines(lab.master, tests)
    for feedback in [*(tmp_path / "grades" / "feedback").rglob("*.md"), *(tmp_path / "grades_solution" / "feedback").rglob("*.md")]:
        assert not find_leaks(feedback.read_text(), secret), f"{feedback.name} shows hidden-test or solution text"
    hidden = hidden_test_lines(tests) - public_test_lines(tests)
    audited = [r for r in rows.values() if r.status in ("graded", "flagged")]
    assert audited and all(r.audit for r in audited), "every submission whose tests ran had its messages recorded"
    asked = "\n".join(audited[0].audit)
    assert all(name in asked for q in questions.values() for name in q["names"]), "the record holds the requests"
    for row in audited:
        leaked = find_leaks("\n".join(row.audit).replace("\\n", "\n"), hidden)
        assert not leaked, f"{row.submission}: hidden-test text was sent to the student process: {leaked[:2]}"
    if full:
        assert not Path(MARKER).exists(), "a pickle payload ran a command in the grader"
    deadline = time.monotonic() + 10
    while sandboxed_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sandboxed_processes(), "student processes were left behind"


@pytest.mark.grading
def test_the_hidden_test_hunt_finds_them_without_the_sandbox(assigned, tmp_path):
    """A control for the case above: the same hunting notebook, graded with isolation switched off,
    does find the hidden tests on disk. The sandbox is what hides them."""
    from course_tools.grading.judge import ForkServer, Judge, LabTests, Limits

    lab = LABS[0]
    _, files = lab_cases(lab.name, full=True)
    server = ForkServer(env={"COURSE_SANDBOX": "none"})
    judge = Judge(0, server)
    try:
        assert server.mode == "none"
        outcome = judge.grade(files["reads_hidden_tests.ipynb"], LabTests.load(assigned / lab.name), Limits(test_seconds=20))
    finally:
        judge.close()
    messages = [c["message"] for q in outcome.questions.values() for c in q["cases"]]
    assert messages and not any("nothing found" in m for m in messages), "without the sandbox the hunt reads the tests"
    assert any("hidden=True" in m for m in messages)


@pytest.mark.grading
def test_hidden_inputs_never_reach_a_public_tests_feedback(assigned):
    """Every public test runs before any hidden one: a notebook that remembers every input it is
    given and raises them in a later question's public test has seen only public inputs by then."""
    import json

    from course_tools.grading.judge import Judge, LabTests, Limits

    lab = LABS[0]
    nb = json.loads((assigned / lab.name / "autograder" / f"{lab.name}.ipynb").read_text())
    spy = ("seen = []\n_honest = pixel_cross_entropy\n"
           "def pixel_cross_entropy(scores, labels):\n    seen.append(tuple(scores.shape))\n    return _honest(scores, labels)\n"
           "def pixel_accuracy(scores, labels, ignore_index=255):\n    raise ValueError(f'inputs so far: {seen}')\n")
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": spy})
    judge = Judge(0)
    try:
        outcome = judge.grade(nb, LabTests.load(assigned / lab.name), Limits(test_seconds=20))
    finally:
        judge.close()
    public = [c["message"] for c in outcome.questions["pixel_accuracy"]["cases"] if not c["hidden"]]
    hidden = [c["message"] for c in outcome.questions["pixel_accuracy"]["cases"] if c["hidden"]]
    assert public and all("inputs so far: [(2, 3, 4, 5)]" in m for m in public), public
    assert any("(3, 11, 7, 6)" in m for m in hidden), "the hidden tests ran later, on the hidden inputs"
