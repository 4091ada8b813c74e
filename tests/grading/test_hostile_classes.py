"""The hostile-submission suite by attack class (course_tools/grading/hostile.py, ``ATTACK_CLASSES``):
for Labs 0 to 3, each attack (in-place input poisoning, ``.grad`` writes, a forged VJP, a lying
module, half-precision results, a stored forbidden function, a neutered ban, forbidden work in a
thread / while the reply is encoded / inside a VJP, a module attribute PyTorch calls, a pure-Python
pixel loop) gets the honest status and score of the question it attacks, and every question it does
not attack scores what a blank answer scores. ``python -m course_tools.grading.hostile LAB --classes``
prints the same cases as one table per class."""

from __future__ import annotations

import time

import pytest

from course_tools.grading.hostile import CLASS_LABS, check, run_classes
from helpers import sandboxed_processes


@pytest.mark.grading
@pytest.mark.parametrize("lab", CLASS_LABS)
def test_attack_classes_get_their_honest_status_and_score(assigned, grader, lab, tmp_path):
    cases, rows, questions, _ = run_classes(lab, tmp_path, grader)
    assert cases and rows, f"{lab} has attack-class cases"
    problems = check(cases, rows, questions)
    assert not problems, "\n".join(problems)
    deadline = time.monotonic() + 10
    while sandboxed_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sandboxed_processes(), "student processes were left behind"
