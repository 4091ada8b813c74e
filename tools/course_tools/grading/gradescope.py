"""The Gradescope autograder's entry point: ``run_autograder`` runs ``python -m course_tools.grading.gradescope /autograder``.

The zip that ``make assign`` builds carries the lab's tests (hidden ones included), its
``questions.json``, the student notebook as handed out with the lab's data files, and the two
packages; ``setup.sh`` installs them with Python 3.11 in ``/opt``. For each submission Gradescope
runs this module as root in a fresh container. It

1. makes ``/autograder/source`` (the tests) and ``/autograder/results`` unreadable to anyone but
   root, since the notebook will run as an unprivileged user;
2. finds the submitted notebook in ``/autograder/submission`` (at any depth, preferring the one
   whose otter metadata names this lab);
3. grades it exactly as ``make grade`` does: the notebook in a sandboxed student process (the
   strongest isolation the container allows; Gradescope's containers usually refuse namespaces, so
   an unprivileged user with resource limits), the tests in this trusted process, the ``ci``
   profile;
4. writes ``/autograder/results/results.json``: one entry per autograded question with its score and
   the public feedback, and the status and note as the overall output. It is written whatever happens:
   a grader error is a ``crashed`` result with a note, never a missing file. The written questions
   (:mod:`.written`) are not scored here, as otter's own Gradescope runner leaves manually graded
   questions to a person: the output lists each with its points and the submission's answer, and
   ``extra_data["manual"]`` holds them, for the instructor who grades them as manually graded
   questions of the assignment.

Submitted files are read as root, so a symbolic link among them (to a test, or to a root-only file
of the image) is never followed.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

from .batch import Row, _row, Submission, find_submissions, outcome_note, question_feedback, raised_feedback, validate
from .judge import Judge, LabTests, Limits
from .leaks import hidden_test_lines, redact
from . import written


def protect(path: Path) -> None:
    """Only root may read or enter ``path`` (the notebook runs as another user)."""
    if path.exists() and os.geteuid() == 0:
        os.chmod(path, stat.S_IRWXU)


def _linked(path: Path, root: Path) -> bool:
    """Is ``path``, or a folder between ``root`` and it, a symbolic link?"""
    while path != root and root in path.parents:
        if path.is_symlink():
            return True
        path = path.parent
    return False


def choose(submission_dir: Path, lab: LabTests) -> tuple[Submission | None, str]:
    try:
        found = [s for s in find_submissions(submission_dir) if s.path is not None and s.path.suffix == ".ipynb"]
    except SystemExit as exc:
        return None, str(exc)
    found = [s for s in found if not _linked(s.path, submission_dir)]
    for sub in found:
        try:
            meta = json.loads(sub.path.read_text()).get("metadata", {})
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        if isinstance(meta, dict) and meta.get("otter", {}).get("assignment_name") == lab.name:
            return sub, ""
    return (found[0], "") if found else (None, "no notebook (.ipynb) was submitted")


def results_json(row: Row, lab: LabTests, outcome, secret: set[str], nb: dict | None = None) -> dict:
    """Gradescope's results: one entry per question with the same feedback ``make grade`` writes
    (:func:`.batch.question_feedback`), and the status, note and cells that raised as the overall output."""
    tests = []
    for q in lab.questions:
        info = (outcome.questions.get(q.name) if outcome else None) or {"cases": [], "violations": []}
        lines = question_feedback(q, info, row.scores.get(q.name, 0.0))[1:]
        tests.append({"name": q.name, "score": row.scores.get(q.name, 0.0), "max_score": q.points,
                      "output": redact("\n".join(lines), secret), "output_format": "md", "visibility": "visible"})
    overall = [f"Status: {row.status}"] + ([row.note] if row.note else []) + [""] + raised_feedback(nb, outcome)
    manual = written.manual_questions(lab.data_dir.parent)  # graded by a person, not in the score
    answered = written.answers(nb, manual)
    overall += written.feedback_lines(manual, answered)
    extra = {"manual": [{"name": q["name"], "points": q.get("points"), "answer": answered.get(q["name"], "")} for q in manual]}
    return {"score": row.total, "execution_time": round(row.seconds, 2), "tests": tests,
            "output": redact("\n".join(overall).strip(), secret), "output_format": "md", "stdout_visibility": "hidden",
            **({"extra_data": extra} if manual else {})}


def main(argv: list[str] | None = None) -> int:
    root = Path((argv or sys.argv[1:] or ["/autograder"])[0])
    source, results = root / "source", root / "results"
    results.mkdir(parents=True, exist_ok=True)
    lab = LabTests.load(source)
    secret = hidden_test_lines(lab.tests)
    protect(source)
    protect(results)
    started = time.perf_counter()
    sub, why = choose(root / "submission", lab)
    outcome, nb = None, None
    if sub is None:
        row = _row(Submission("(none)", None), lab, None, "invalid", why, 0.0)
    else:
        nb, why = validate(sub.path, lab)
        if nb is None:
            row = _row(sub, lab, None, "invalid", why, 0.0)
        else:
            try:
                judge = Judge(0)
                try:
                    outcome = judge.grade(nb, lab, Limits())
                finally:
                    judge.close()
                row = _row(sub, lab, outcome, outcome.status, outcome_note(outcome, nb), time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - a grader error is this submission's status, not a missing result
                outcome = None
                row = _row(sub, lab, None, "crashed", f"grader error: {type(exc).__name__}", time.perf_counter() - started)
    try:
        payload = results_json(row, lab, outcome, secret, nb)
    except Exception as exc:  # noqa: BLE001 - malformed grading data: still a result
        row = _row(sub or Submission("(none)", None), lab, None, "crashed", f"grader error: {type(exc).__name__}", row.seconds)
        outcome = None
        payload = results_json(row, lab, None, secret)
    (results / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
