"""``make grade``: grade a folder of submissions into a gradebook and one feedback file per student.

Submissions are the ``.ipynb`` files in the folder at any depth (``alice/lab.ipynb``, as a learning
management system exports them; hidden folders and ``.ipynb_checkpoints`` are skipped). A student
folder without a notebook gets an ``invalid`` row; a folder without any notebook is an error.

Each run writes a new folder, ``_grades/NN_slug/<date>-<time>/``, holding ``gradebook.csv`` (one row
per submission: status, score per question in lab order, total, seconds, note), ``feedback/`` (one
Markdown file per submission, public tests only) and ``summary.json`` (timings); ``latest`` points
at the newest run. ``--out DIR`` writes there instead, and refuses a folder that is not empty
unless ``--force``. Every submission gets a status and the batch never aborts:

``graded``   the notebook ran top to bottom (its own errors included) and every test ran;
``timeout``  the notebook ran past the time limit (the feedback names the cell it was running);
``crashed``  its process died or ran out of memory before the tests could start: never a silent 0;
``invalid``  not a notebook (malformed JSON, an empty file), or another lab's notebook;
``flagged``  graded, but it broke a by-hand rule (that question scores 0) or its code looks like
             tampering: a person should look. The note says which.

Each submission runs in a student process of its own (:mod:`.student`, isolated by :mod:`.sandbox`)
forked from a warm server (:mod:`.forkserver`); the tests run in a judge process (:mod:`.judge`)
that stays warm for the whole batch. ``--jobs`` judges work in parallel (one per core by default).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .assign import REPO, find_lab
from .judge import LabTests, Limits, Outcome, describe_cell
from .leaks import hidden_test_lines, redact, secret_lines

STATUSES = ("graded", "timeout", "crashed", "invalid", "flagged")
SKIP_DIRS = (".ipynb_checkpoints", "__pycache__", "__MACOSX")


@dataclass
class Row:
    submission: str
    status: str
    scores: dict = field(default_factory=dict)
    total: float = 0.0
    possible: float = 0.0
    seconds: float = 0.0
    note: str = ""
    feedback: str = ""
    times: dict = field(default_factory=dict)
    audit: list = field(default_factory=list)   # what was sent to the student process (Limits(audit=True))


# --- finding and checking submissions, before any of their code runs -----------------------------------------


@dataclass
class Submission:
    name: str              # as it appears in the gradebook: the path inside the submissions folder
    path: Path | None      # None: a student folder without a notebook
    problem: str = ""


def find_submissions(folder: Path) -> list[Submission]:
    """Every notebook under ``folder``; every other top-level file (a wrong upload) and every
    top-level folder without a notebook gets an entry too, so it gets a row."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder of submissions")
    found: list[Submission] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in SKIP_DIRS:
            continue
        if entry.is_file():
            found.append(Submission(entry.name, entry))
            continue
        notebooks = sorted(p for p in entry.rglob("*.ipynb") if p.is_file() and not any(
            part.startswith(".") or part in SKIP_DIRS for part in p.relative_to(folder).parts[:-1]))
        if notebooks:
            found += [Submission(str(p.relative_to(folder)), p) for p in notebooks]
        else:
            found.append(Submission(entry.name + "/", None, "this folder holds no notebook (.ipynb)"))
    if not any(s.path is not None and s.path.suffix == ".ipynb" for s in found):
        raise SystemExit(f"no notebook (.ipynb) found in {folder}: is it the folder of submissions?")
    return found


def validate(path: Path, lab: LabTests) -> tuple[dict | None, str]:
    """Parse a submission without running it; return (notebook, "") or (None, why it is invalid).
    The lab is recognised by otter's ``assignment_name`` metadata, else by the title or the
    questions its ``grader.check`` cells name."""
    if path.suffix != ".ipynb":
        return None, f"not a notebook: expected a .ipynb file, got {path.name!r}"
    raw = path.read_bytes()
    if not raw.strip():
        return None, "empty file"
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return None, f"not valid notebook JSON ({exc.__class__.__name__}: {str(exc)[:120]})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "not a Jupyter notebook: no list of cells"
    if any(not isinstance(c, dict) or "cell_type" not in c for c in nb["cells"]):
        return None, "not a Jupyter notebook: a cell has no cell_type"
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    otter = meta.get("otter") if isinstance(meta.get("otter"), dict) else {}
    name = otter.get("assignment_name")
    if name is not None and name != lab.name:
        return None, f"this is the notebook of {name!r}, not {lab.name!r}"
    if name is None:
        text = json.dumps(nb["cells"])
        checks = set(re.findall(r'grader\.check\(\\"(\w+)\\"\)', text))
        questions = {q.name for q in lab.questions}
        if checks and not checks & questions:
            return None, f"its questions {sorted(checks)} belong to another lab, not {lab.name!r}"
        if not checks and not (lab.title and lab.title in text):
            return None, f"not recognisably a submission for {lab.name!r} (no lab metadata, title or questions)"
    return nb, ""


# --- scores and feedback ---------------------------------------------------------------------------------------


def feedback_text(row: Row, lab: LabTests, nb: dict | None, outcome: Outcome | None, secret: set[str]) -> str:
    lines = [f"# Feedback: {lab.title or lab.name}, {row.submission}", "", f"Status: **{row.status}**"]
    if row.note:
        lines.append(f"Note: {row.note}")
    lines.append("")
    if outcome is None or not outcome.questions:
        lines.append("Your notebook could not be graded, so no question was scored.")
        return redact("\n".join(lines) + "\n", secret)
    if outcome.errors:
        lines.append("These cells raised an error when your notebook ran from top to bottom:")
        for e in outcome.errors[:10]:
            message = f": {e.get('message')}" if e.get("message") else ""
            lines.append(f"- {describe_cell(nb or {}, e.get('cell'))}: {e.get('error')}{message}")
        lines.append("")
    for q in lab.questions:
        info = outcome.questions.get(q.name, {"cases": [], "violations": []})
        lines.append(f"## {q.name}: {row.scores.get(q.name, 0):g} / {q.points:g}")
        if info.get("violations"):
            rule = (q.rule or {}).get("rule", "")
            lines.append(f"- **0 points: the by-hand rule was broken.** The rule: {rule}.")
            lines += [f"  - {v}" for v in info["violations"][:5]]
        hidden = [c for c in info["cases"] if c["hidden"]]
        for c in info["cases"]:
            if c["hidden"]:
                continue
            lines.append(f"- public test `{c['name']}`: " + ("passed" if c["passed"] else "failed"))
            if not c["passed"] and c["message"]:
                lines.append("  ```\n  " + c["message"][:800].replace("\n", "\n  ") + "\n  ```")
        if hidden:
            lines.append(f"- hidden tests: {len(hidden)}, run by the grader (their results are not shown)")
        lines.append("")
    lines.append(f"Total: {row.total:g} / {row.possible:g}")
    return redact("\n".join(lines) + "\n", secret)


def write_gradebook(rows: list[Row], questions: list[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "status", *questions, "total", "possible", "seconds", "note"])
        for r in rows:
            w.writerow([r.submission, r.status, *(f"{r.scores.get(q, 0):g}" for q in questions),
                        f"{r.total:g}", f"{r.possible:g}", f"{r.seconds:.2f}", r.note])


def _row(sub: Submission, lab: LabTests, outcome: Outcome | None, status: str, note: str, seconds: float) -> Row:
    row = Row(sub.name, status, {q.name: 0.0 for q in lab.questions}, possible=lab.possible, note=note, seconds=seconds)
    if outcome is not None:
        row.times = {k: round(v, 3) for k, v in outcome.times.items()}
        if status in ("graded", "flagged"):
            row.scores = {q.name: outcome.scores.get(q.name, 0.0) for q in lab.questions}
        row.total = round(sum(row.scores.values()), 4)
    return row


# --- the batch ------------------------------------------------------------------------------------------------


class _JudgeProcess:
    """One judge process (``python -m course_tools.grading.judge``), fed one task at a time."""

    def __init__(self, slot: int):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "course_tools.grading.judge", "--slot", str(slot)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)

    def run(self, task: dict) -> Outcome:
        try:
            self.proc.stdin.write((json.dumps(task) + "\n").encode())
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 2000))
            tail = self.log.read().decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError("the grader's judge process died" + (f": {tail[-1][:200]}" if tail else ""))
        return Outcome(**json.loads(line))

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self.log.close()


class Grader:
    """Warm judges (one per job), reused for every batch graded through this object."""

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self._judges: list[_JudgeProcess] = []
        self._slots = iter(range(10_000))
        self.isolation = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for judge in self._judges:
            judge.close()
        self._judges = []

    def _run_all(self, tasks: dict[str, dict], progress) -> dict[str, Outcome]:
        """Run the tasks on the judges in parallel; a judge that dies is replaced."""
        while len(self._judges) < self.jobs:
            self._judges.append(_JudgeProcess(next(self._slots)))
        work: queue.Queue = queue.Queue()
        for name in tasks:
            work.put(name)
        results: dict[str, Outcome] = {}

        def drive(k: int) -> None:
            while True:
                try:
                    name = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome = self._judges[k].run(tasks[name])
                except RuntimeError as exc:
                    self._judges[k].close()
                    self._judges[k] = _JudgeProcess(next(self._slots))
                    outcome = Outcome(status="crashed", note=str(exc))
                results[name] = outcome
                progress(name, outcome)

        threads = [threading.Thread(target=drive, args=(k,)) for k in range(self.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def grade(self, lab_name: str, submissions: Path, out: Path | None = None, limits: Limits | None = None,
              assigned_root: Path | None = None, progress: bool = True, force: bool = False) -> list[Row]:
        """Grade every submission in ``submissions`` against ``lab_name``; write the run folder."""
        limits = limits or Limits()
        lab_def = find_lab(lab_name)
        assigned = (assigned_root or REPO / "_assign") / lab_def.name
        if not (assigned / "questions.json").is_file():
            raise SystemExit(f"{assigned} is not assigned yet: run `make assign` first")
        lab = LabTests.load(assigned)
        secret = (secret_lines(lab_def.master, lab.tests) if lab_def.master.is_file() else hidden_test_lines(lab.tests))
        subs = find_submissions(Path(submissions))
        out = run_folder(lab.name, out, force)
        results: dict[str, tuple[Row, dict | None, Outcome | None]] = {}
        pending = {}
        for sub in subs:
            if sub.path is None:
                results[sub.name] = (_row(sub, lab, None, "invalid", sub.problem, 0.0), None, None)
                continue
            nb, why = validate(sub.path, lab)
            if nb is None:
                results[sub.name] = (_row(sub, lab, None, "invalid", why, 0.0), None, None)
            else:
                pending[sub.name] = (sub, nb)
        lock = threading.Lock()

        def report(name: str, outcome: Outcome) -> None:
            sub, nb = pending[name]
            note = "; ".join(dict.fromkeys(([outcome.note] if outcome.note else []) + list(outcome.flags)))
            row = _row(sub, lab, outcome, outcome.status, note, sum(outcome.times.values()))
            row.audit = outcome.audit
            with lock:
                results[name] = (row, nb, outcome)
                self.isolation = outcome.isolation or self.isolation
                if progress:
                    print(f"  {row.submission:40s} {row.status:8s} {row.total:6g} / {row.possible:g}  ({row.seconds:.1f} s)", flush=True)

        tasks = {name: {"assigned": str(assigned), "notebook": nb, "limits": dataclasses.asdict(limits)}
                 for name, (sub, nb) in pending.items()}
        self._run_all(tasks, report)
        rows = []
        for name in sorted(results):
            row, nb, outcome = results[name]
            row.feedback = feedback_text(row, lab, nb, outcome, secret)
            rows.append(row)
        write_gradebook(rows, [q.name for q in lab.questions], out / "gradebook.csv")
        for row in rows:
            target = out / "feedback" / (re.sub(r"\.ipynb$", "", row.submission.rstrip("/")) + ".md")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(row.feedback)
        summary = {"lab": lab.name, "submissions": len(rows), "jobs": self.jobs, "isolation": self.isolation,
                   "counts": {s: sum(r.status == s for r in rows) for s in STATUSES},
                   "rows": [{"submission": r.submission, "status": r.status, "total": r.total, "seconds": r.seconds,
                             "times": r.times} for r in rows]}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.last_out = out
        return rows


def run_folder(lab_name: str, out: Path | None, force: bool) -> Path:
    """A fresh folder for this run's gradebook and feedback (see the module docstring)."""
    if out is not None:
        out = Path(out)
        if out.exists() and any(out.iterdir()):
            if not force:
                raise SystemExit(f"{out} is not empty: choose another --out, or pass --force to replace it")
            import shutil

            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        return out
    base = REPO / "_grades" / lab_name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = base / stamp
    k = 1
    while out.exists():
        k += 1
        out = base / f"{stamp}-{k}"
    out.mkdir(parents=True)
    latest = base / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name)
    except OSError:
        pass
    return out


def grade_folder(lab_name: str, submissions: Path, out: Path | None = None, limits: Limits | None = None,
                 assigned_root: Path | None = None, progress: bool = True, jobs: int | None = None,
                 force: bool = False) -> list[Row]:
    with Grader(jobs) as grader:
        return grader.grade(lab_name, submissions, out, limits, assigned_root, progress, force)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade a folder of lab submissions into a gradebook and feedback.")
    parser.add_argument("lab", help="the lab, e.g. 00_getting_started")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (sub-folders are searched)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new _grades/<lab>/<date-time>/)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--timeout", type=float, default=Limits.timeout, help="seconds per submission (notebook and tests)")
    parser.add_argument("--test-seconds", type=float, default=Limits.test_seconds, help="seconds per test case")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory cap per submission")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    args = parser.parse_args(argv)
    limits = Limits(timeout=args.timeout, test_seconds=args.test_seconds, memory_mb=args.memory_mb)
    start = time.perf_counter()
    grader = Grader(args.jobs)
    try:
        rows = grader.grade(args.lab, args.submissions, args.out, limits, force=args.force)
        out = grader.last_out
    finally:
        grader.close()
    elapsed = time.perf_counter() - start
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    graded = [r for r in rows if r.times]
    split = {k: sum(r.times.get(k, 0.0) for r in graded) / max(len(graded), 1) for k in ("start", "notebook", "tests")}
    print(f"graded {len(rows)} submissions in {elapsed:.1f} s ({60 * len(rows) / max(elapsed, 1e-9):.1f} per minute, "
          f"{args.jobs} at a time): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    print("seconds per submission: " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    if grader.isolation:
        from .sandbox import describe

        print(f"isolation: {describe(grader.isolation)}")
    print(f"gradebook: {out / 'gradebook.csv'}\nfeedback:  {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
