"""``make grade ... GRADE_ARGS="--only QUESTION... --students NAME..."``: grade some questions, or some
submissions, of an earlier run again, into a new run folder.

A regrade starts from a base run (the lab's ``latest``, or ``--base DIR``) and only reads it. Its new
folder, ``_grades/NN_slug/<date>-<time>/`` as any run's, is complete: ``gradebook.csv`` with every row
of the base, ``feedback/`` for every submission, ``summary.json`` and ``.rows.jsonl``, so ``make
report`` and ``make export`` read it as they read any run, and ``latest`` points at it once it is
finished. What is not regraded (other submissions, other questions, the written questions' sheet
``written.csv`` with the scores a person wrote in it) is copied from the base as it was. Two more
files say what changed and why:

``changes.csv``   one line per gradebook cell that changed: submission, question, old and new score,
                  old and new status, reason (a row whose status changed and no score did has a line
                  with no question);
``regrade.json``  the base run, the arguments, the time, the reason given (``--reason``), and for every
                  regraded question a hash of its tests (test file and ``questions.json`` entry) in
                  the base run and now, so that one can see whether a test changed.

The notebook of every regraded submission runs whole, as in any grading, but with ``--only`` the
judge runs only the named questions' tests: it gets a copy of the assigned lab that holds only those
questions (:func:`assigned_subset`). So a regraded question's score cannot depend on the tests of a
question that is not regraded (which may have changed too, or may hang and use up the submission's
time), and a regrade costs only the tests it needs. The row's status and note are then put together
from both runs (:func:`merge`). Bad input (an unknown question or student, no base run) is a
:class:`~course_tools.grading.runs.BadInput`: one line, exit status 2.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from . import batch
from .assign import find_lab
from .batch import (JOURNAL, Grader, Row, Submission, feedback_path, feedback_text, file_sha256, find_submissions,
                    outcome_note, read_gradebook, read_submission, tests_sha256, write_summary)
from .judge import LabTests, Limits, Outcome
from .leaks import hidden_test_lines, secret_lines
from .runs import BadInput, find_run, load_run

CHANGES = ["submission", "question", "old_score", "new_score", "old_status", "new_status", "reason"]
SCORED = ("graded", "flagged")       # statuses whose tests ran: the others score every question 0
RULE = "broke the by-hand rule of "  # how the judge's flag for broken by-hand rules starts (judge._apply_rules)
WRITTEN = ("written.csv", "written.md")  # the written questions' sheet (:mod:`.written`): a person's, never regraded


def match_students(names: list[str], submissions: list[str], base: Path) -> list[str]:
    """The base run's submissions that ``names`` mean: a name as the gradebook writes it
    (``alice/lab.ipynb``), a file name without ``.ipynb`` (``alice``), or a student's folder (``alice``
    is every notebook in ``alice/``)."""
    chosen: list[str] = []
    for name in names:
        key = name.strip().rstrip("/")
        hits = [s for s in submissions if key and key in (s.rstrip("/"), re.sub(r"\.ipynb$", "", s), s.split("/")[0])]
        if not hits:
            some = ", ".join(submissions[:4]) + (", ..." if len(submissions) > 4 else "")
            raise BadInput(f"unknown student {name!r}: expected a submission of the base run {base} as its gradebook "
                           f"names it, or its file or folder name ({some})")
        chosen += hits
    return sorted(set(chosen))


def assigned_subset(assigned: Path, questions: list[str], into: Path) -> Path:
    """A copy of the assigned lab ``assigned`` that holds only ``questions`` (their tests and their
    ``questions.json`` entries), for the judge; the hand-out and data files are the lab's own."""
    meta = json.loads((assigned / "questions.json").read_text())
    meta["questions"] = [q for q in meta["questions"] if q["name"] in questions]
    lab_dir = into / assigned.name
    (lab_dir / "tests").mkdir(parents=True)
    for q in questions:
        if (assigned / "tests" / f"{q}.py").is_file():
            shutil.copy2(assigned / "tests" / f"{q}.py", lab_dir / "tests" / f"{q}.py")
    (lab_dir / "questions.json").write_text(json.dumps(meta, indent=2))
    (lab_dir / "student").symlink_to((assigned / "student").resolve(), target_is_directory=True)
    return lab_dir


def read_journal(folder: Path) -> dict[str, dict]:
    """A run's ``.rows.jsonl``: per submission its last entry (times, test results, file hash)."""
    entries: dict[str, dict] = {}
    path = folder / JOURNAL
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                entries[str(entry["submission"])] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return entries


def _parts(note: str) -> list[str]:
    return [p for p in note.split("; ") if p]


def merge(base: Row, base_tests: dict, outcome: Outcome | None, status: str, regraded: list[str],
          lab: LabTests) -> Outcome:
    """The outcome of a row whose ``regraded`` questions were graded again (``outcome``, from a judge
    that ran only their tests, or None for a notebook that is invalid now) and whose other questions
    are carried from the base row: their test results, scores, by-hand rules broken and the flags a
    test raised about them. Its status: the new one if the notebook did not run to its tests
    (``timeout``, ``crashed``, ``invalid``); else the base's if the base's tests never ran (its
    carried questions were never graded: regrade the row without ``--only``); else ``flagged`` if a
    flag stands, whichever run raised it."""
    carried = [q.name for q in lab.questions if q.name not in regraded]
    new = outcome or Outcome(status=status)
    questions = {q: base_tests.get(q) or {"cases": [], "violations": []} for q in carried}
    questions.update({q: (new.questions or {}).get(q) or {"cases": [], "violations": []} for q in regraded})
    scores = {q: 0.0 for q in regraded}
    if status in SCORED:
        scores.update({q: float((new.scores or {}).get(q, 0.0)) for q in regraded})
    base_parts = _parts(base.note)
    broken_before = {name for p in base_parts if p.startswith(RULE) for name in p[len(RULE):].split(", ")}
    broken = [q.name for q in lab.questions
              if questions[q.name].get("violations") or (q.name in carried and q.name in broken_before)]
    flags = ([RULE + ", ".join(broken)] if broken else []) + [
        f for f in (new.flags if isinstance(new.flags, list) else []) if not str(f).startswith(RULE)]
    flags += [p for p in base_parts if any(p.startswith(f"{q}: ") for q in carried)]
    merged = Outcome(status=status, note=new.note, scores=scores, questions=questions, errors=new.errors,
                     flags=list(dict.fromkeys(str(f) for f in flags)), times=new.times)
    if status not in SCORED:  # the notebook never reached the tests: its flags are what the new run saw
        merged.flags = list(new.flags) if isinstance(new.flags, list) else []
        if base.status not in SCORED:  # nor did it in the base run: no question was graded
            merged.questions = {}
    elif base.status not in SCORED:
        merged.status = base.status
    else:
        merged.status = "flagged" if merged.flags else "graded"
    return merged


def _score(x: float) -> str:
    return f"{x:g}"


class _Regrade:
    """One regrade: the base run read and checked, then the new run written."""

    def __init__(self, lab_name: str, submissions: Path, only, students, base, reason: str, assigned_root):
        try:
            lab_def = find_lab(lab_name)
        except SystemExit as exc:
            raise BadInput(str(exc)) from None
        self.assigned = (assigned_root or batch.REPO / "_assign") / lab_def.name
        if not (self.assigned / "questions.json").is_file():
            raise BadInput(f"expected {lab_def.name} assigned in {self.assigned} (`make assign` writes it): it is not")
        self.lab = LabTests.load(self.assigned)
        self.secret = (secret_lines(lab_def.master, self.lab.tests) if lab_def.master.is_file()
                       else hidden_test_lines(self.lab.tests))
        names = [q.name for q in self.lab.questions]
        for q in only or []:
            if q not in names:
                raise BadInput(f"unknown question {q!r}: expected one of {', '.join(names)} "
                               f"(the questions of {lab_def.name})")
        self.questions = names
        self.only = [q for q in names if q in (only or names)]

        grades = batch.REPO / "_grades"
        if base is None and not (grades / lab_def.name / "latest").exists() and not any(
                (p / "gradebook.csv").is_file() for p in (grades / lab_def.name).glob("*/")):
            raise BadInput(f"expected an earlier run of {lab_def.name} to regrade in {grades / lab_def.name} "
                           f"(`make grade` writes one; --base DIR names another): found none")
        self.base = find_run(lab_def.name, base, root=grades).resolve()
        run = load_run(self.base, lab_def.name)
        if run.questions != names:
            raise BadInput(f"expected a base run with the questions of {lab_def.name} now ({', '.join(names)}): "
                           f"{self.base} has {', '.join(run.questions)}; grade the lab again in full")
        if not (self.base / "summary.json").is_file():
            raise BadInput(f"expected a finished base run: {self.base} has no summary.json (it was interrupted; "
                           "finish it with GRADE_ARGS=--resume, or name another with --base)")
        self.base_summary = json.loads((self.base / "summary.json").read_text())
        self.base_rows = {r.submission: r for r in read_gradebook(self.base / "gradebook.csv", names)}
        self.journal = read_journal(self.base)
        self.targets = (match_students(students, sorted(self.base_rows), self.base) if students
                        else sorted(self.base_rows))

        try:
            found = {s.name: s for s in find_submissions(Path(submissions))}
        except SystemExit as exc:
            raise BadInput(str(exc)) from None
        missing = [t for t in self.targets if t not in found]
        if missing:
            raise BadInput(f"expected every submission to regrade in {submissions}: missing "
                           f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''} "
                           "(is it the folder of the base run?)")
        self.subs: dict[str, Submission] = {t: found[t] for t in self.targets}
        self.unknown = sorted(set(found) - set(self.base_rows))
        self.reason = reason.strip()
        self.now = tests_sha256(self.lab)
        recorded = self.base_summary.get("tests_sha256")
        self.before: dict = recorded if isinstance(recorded, dict) else {}

    # --- what changed, and why -------------------------------------------------------------------------

    def test_change(self, q: str) -> str:
        before, now = self.before.get(q), self.now[q]
        if not before:
            return f"the tests of {q}: the base run recorded no hash of them"
        if before == "mixed":
            return f"the tests of {q}: the base run's rows were scored by different versions"
        if before != now:
            return f"the tests of {q} changed since the base run ({before[:10]} -> {now[:10]})"
        return f"the tests of {q} are as in the base run"

    def why(self, name: str, questions: list[str], new: Row) -> str:
        parts = [self.reason] if self.reason else []
        parts += [self.test_change(q) for q in questions]
        before = str(self.journal.get(name, {}).get("sha256") or "")
        if before and new.sha256 and before != new.sha256:
            parts.append("the submission changed since the base run")
        if new.status != self.base_rows[name].status and new.note:
            parts.append(f"note: {new.note[:200]}")
        return "; ".join(parts)

    def changes(self, rows: dict[str, Row]) -> list[list[str]]:
        out = []
        for name in self.targets:
            old, new = self.base_rows[name], rows[name]
            cells = [q for q in self.questions if _score(old.scores.get(q, 0)) != _score(new.scores.get(q, 0))]
            moved = old.status != new.status
            for q in cells or ([""] if moved else []):
                out.append([name, q, _score(old.scores[q]) if q else "", _score(new.scores[q]) if q else "",
                            old.status, new.status, self.why(name, [q] if q else self.only, new)])
        return out

    def hashes(self) -> dict:
        """Per question, the hash of the tests that scored it in the new run ("mixed": its rows were
        scored by different versions)."""
        everyone = set(self.targets) == set(self.base_rows)
        out = {}
        for q in self.questions:
            before = self.before.get(q)
            if q not in self.only:
                out[q] = before
            elif everyone or before == self.now[q]:
                out[q] = self.now[q]
            else:  # (unknown where the base recorded none)
                out[q] = "mixed" if before else None
        return out

    # --- the rows -----------------------------------------------------------------------------------------

    def carried(self, name: str) -> Row:
        row = dataclasses.replace(self.base_rows[name])
        entry = self.journal.get(name, {})
        row.times = entry.get("times") if isinstance(entry.get("times"), dict) else {}
        row.tests = entry.get("tests") if isinstance(entry.get("tests"), dict) else {}
        row.sha256 = str(entry.get("sha256") or "")
        target = feedback_path(self.base, name)
        row.feedback = target.read_text(errors="replace") if target.is_file() else ""
        return row

    def regraded(self, name: str, nb: dict | None, outcome: Outcome | None, status: str, why: str = "") -> Row:
        base = self.base_rows[name]
        full = self.only == self.questions
        if full:  # every question again: the row is what a fresh grading makes of it
            merged = outcome or Outcome(status=status)
        else:
            base_tests = self.journal.get(name, {}).get("tests")
            base_tests = base_tests if isinstance(base_tests, dict) else {}
            merged = merge(base, base_tests, outcome, status, self.only, self.lab)
        scores = {q: base.scores.get(q, 0.0) for q in self.questions}
        if full:
            scores = {q: float((merged.scores or {}).get(q, 0.0)) if status in SCORED else 0.0 for q in self.questions}
        else:
            scores.update(merged.scores)
        note = why if outcome is None else outcome_note(merged, nb)
        if not full and base.status not in SCORED and status in SCORED:
            again = f"regraded {', '.join(self.only)}: {note or 'graded'}"
            note = "; ".join(dict.fromkeys(p for p in (base.note, again) if p))
        row = Row(name, merged.status, scores, round(sum(scores.values()), 4), self.lab.possible, note=note)
        if outcome is not None:
            row.times = {k: round(v, 3) for k, v in outcome.times.items()}
            row.seconds = sum(outcome.times.values())
            row.tests = merged.questions if isinstance(merged.questions, dict) else {}
        row.sha256 = file_sha256(self.subs[name].path)
        row.feedback = feedback_text(row, self.lab, nb, merged if outcome is not None else None, self.secret)
        return row


def regrade(lab_name: str, submissions: Path, *, only: list[str] | None = None, students: list[str] | None = None,
            base: Path | None = None, reason: str = "", out: Path | None = None, force: bool = False,
            limits: Limits | None = None, assigned_root: Path | None = None, grader: Grader | None = None,
            progress: bool = True, argv: list[str] | None = None) -> list[Row]:
    """Regrade ``only`` these questions (default: all) of ``students`` (default: all) of the base run
    into a new run folder (``out``, else a new ``_grades/NN_slug/<date-time>/``); return its rows.
    ``grader.last_out`` is the new folder."""
    limits = limits or Limits()
    job = _Regrade(lab_name, submissions, only, students, base, reason, assigned_root)
    lab = job.lab
    if out is not None and job.base.is_relative_to(Path(out).resolve()):
        raise BadInput(f"expected a new folder for the regrade: --out {out} holds the base run, "
                       "which a regrade never changes")
    own = grader is None
    grader = grader or Grader()
    scratch = Path(tempfile.mkdtemp(prefix="regrade-"))
    started = time.monotonic()
    try:
        # a fresh copy even of every question: a warm judge keeps a lab it loaded until questions.json changes
        assigned = assigned_subset(job.assigned, job.only, scratch)
        if progress:
            print(f"regrading {', '.join(job.only)} of {len(job.targets)} of the {len(job.base_rows)} submissions "
                  f"of {job.base}", flush=True)
            if job.unknown:
                print(f"  not in the base run, so not graded here ({len(job.unknown)}): {', '.join(job.unknown[:5])}"
                      f"{', ...' if len(job.unknown) > 5 else ''}: grade the folder in full for them", flush=True)
        new_out = batch.run_folder(lab.name, out, force, link_latest=False)
        grader.last_out = new_out
        book = batch._Gradebook(new_out, job.questions, resume=False)
        rows: dict[str, Row] = {}
        try:
            for name in sorted(set(job.base_rows) - set(job.targets)):
                rows[name] = job.carried(name)
                book.add(rows[name])
            pending = {}
            for name in job.targets:
                nb, why = read_submission(job.subs[name], lab)
                if nb is None:
                    rows[name] = job.regraded(name, None, None, "invalid", why)
                    book.add(rows[name])
                else:
                    pending[name] = nb

            def report(name: str, outcome: Outcome) -> None:
                row = job.regraded(name, pending[name], outcome, outcome.status)
                grader.isolation = outcome.isolation or grader.isolation
                rows[name] = row
                book.add(row)
                if progress:
                    print(f"  {row.submission:40s} {row.status:8s} {row.total:6g} / {row.possible:g}  "
                          f"({row.seconds:.1f} s)", flush=True)

            tasks = {name: {"assigned": str(assigned), "notebook": nb, "limits": dataclasses.asdict(limits)}
                     for name, nb in pending.items()}
            grader._run_all(tasks, report, limits.timeout + grader.grace)
            finished = book.finish()
        finally:
            book.close()
        for name in WRITTEN:  # the written questions' sheet, with whatever scores a person wrote in it
            if (job.base / name).is_file():
                shutil.copy2(job.base / name, new_out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if own:
            grader.close()

    changes = job.changes(rows)
    with open(new_out / "changes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CHANGES)
        w.writerows(changes)
    record = {
        "lab": lab.name, "base": str(job.base), "time": datetime.now().isoformat(timespec="seconds"),
        "reason": job.reason or None, "arguments": argv,
        "only": job.only, "students": students or None, "submissions": str(Path(submissions).resolve()),
        "assigned": str(job.assigned), "limits": dataclasses.asdict(limits),
        "tests": {q: {"base": job.before.get(q), "now": job.now[q],
                      "changed": None if job.before.get(q) in (None, "mixed") else job.before[q] != job.now[q]}
                  for q in job.only},
        "regraded": job.targets,
        "changed": sorted({c[0] for c in changes}),
        "submissions_changed": sorted(t for t in job.targets if job.journal.get(t, {}).get("sha256")
                                      and rows[t].sha256 and job.journal[t]["sha256"] != rows[t].sha256),
        "not_in_base": job.unknown,
        "seconds": round(time.monotonic() - started, 2),
    }
    (new_out / "regrade.json").write_text(json.dumps(record, indent=2) + "\n")
    isolation = grader.isolation or str(job.base_summary.get("isolation") or "")
    # the hashes of the tests that scored each question here (carried questions: the base's), not the lab's now
    write_summary(new_out, lab, finished, grader.jobs, isolation, tests_sha256=job.hashes(), regrade="regrade.json")
    if out is None:
        batch.point_latest(new_out)
    grader.last_regrade = {"regraded": len(job.targets), "names": set(job.targets), "questions": job.only,
                           "base": job.base}
    if progress:
        print(f"{len(changes)} cell{'s' if len(changes) != 1 else ''} of the gradebook changed, in "
              f"{len(record['changed'])} of the {len(job.targets)} regraded rows", flush=True)
    return finished
