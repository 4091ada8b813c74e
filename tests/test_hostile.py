"""Every lab survives a class of broken and dishonest submissions (course_utils/grading/hostile.py):
each case gets its expected status and score, the batch never aborts, no process is left behind,
and no feedback file repeats a hidden test."""

from __future__ import annotations

import pytest

from course_utils.grading.assign import discover_labs
from course_utils.grading.hostile import check, run_suite
from course_utils.grading.leaks import find_leaks, secret_lines

LABS = discover_labs()


def _descendants() -> set[int]:
    import os

    me, kids = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        kids.add(int(pid))
            except OSError:
                pass
    return kids


@pytest.mark.grading
@pytest.mark.parametrize("lab", LABS, ids=[lab.name for lab in LABS])
def test_hostile_submissions_get_their_expected_status_and_score(assigned, lab, tmp_path):
    before = _descendants()
    cases, rows, questions, _ = run_suite(lab.name, tmp_path, jobs=2)
    problems = check(cases, rows, questions)
    assert not problems, "\n".join(problems)
    tests = {p.stem: p.read_text() for p in (assigned / lab.name / "tests").glob("*.py")}
    secret = secret_lines(lab.master, tests)
    for feedback in (tmp_path / "grades" / "feedback").glob("*.md"):
        assert not find_leaks(feedback.read_text(), secret), f"{feedback.name} shows hidden-test text"
    assert "hidden test text removed" in (tmp_path / "grades" / "feedback" / "prints_hidden_tests.md").read_text() \
        or "nothing found" in (tmp_path / "grades" / "feedback" / "prints_hidden_tests.md").read_text()
    assert _descendants() <= before, "grading left processes behind"
