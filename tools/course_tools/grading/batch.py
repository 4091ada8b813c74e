"""``make grade``: grade a folder of submissions into a gradebook and one feedback file per student.

Submissions are the ``.ipynb`` files in the folder at any depth (``alice/lab.ipynb``, as a learning
management system exports them; hidden folders and ``.ipynb_checkpoints`` are skipped). A student
folder without a notebook gets an ``invalid`` row; a folder without any notebook is an error.

Each run writes a new folder, ``_grades/NN_slug/<date>-<time>/``, holding ``gradebook.csv`` (one row
per submission: status, score per question in lab order, total, seconds, note), ``feedback/`` (one
Markdown file per submission, public tests only) and ``summary.json`` (timings, and a hash of each
question's tests); ``latest`` points at the newest run. ``--out DIR`` writes there instead, and refuses a folder that is not empty
unless ``--force``. Every submission gets a status and the batch never aborts:

``graded``   the notebook ran top to bottom (its own errors included) and every test ran;
``timeout``  the notebook ran past the time limit (the feedback names the cell it was running), or
             the whole submission ran past the time limit plus ``GRACE_SECONDS`` and the batch
             killed its judge (a new judge grades the rest);
``crashed``  its process died, ran out of memory, wrote more than ``--disk-mb`` or sent a malformed
             report before the tests could start: never a silent 0;
``invalid``  not a notebook (malformed JSON, an empty file), or another lab's notebook;
``flagged``  graded, but it broke a by-hand rule (that question scores 0) or its code looks like
             tampering: a person should look. The note says which.

Rows reach ``gradebook.csv`` (and feedback files ``feedback/``) as each submission finishes, so an
interrupted run loses no finished row; at the end the gradebook is written again in submission
order, with ``summary.json``. ``--resume`` continues an interrupted run in the ``latest`` folder (or
``--out DIR``): submissions that have a row keep it, the others are graded (``.rows.jsonl`` keeps
the timings of finished rows for the summary, and every test's result, hidden ones included, for
``make report``: the instructor's, never a student's, and each submission file's hash). On SIGINT or
SIGTERM the batch kills every judge, fork server and student process it started, and exits with 130
or 143. ``--only QUESTION...`` and ``--students NAME...`` regrade part of an earlier run into a new
one (:mod:`.regrade`).

Each submission runs in a student process of its own (:mod:`.student`, isolated by :mod:`.sandbox`)
forked from a warm server (:mod:`.forkserver`); the tests run in a judge process (:mod:`.judge`)
that stays warm for the whole batch. ``--jobs`` judges work in parallel (one per core by default).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .assign import REPO, find_lab
from .judge import LabTests, Limits, Outcome, raised_error
from .leaks import hidden_test_lines, redact, secret_lines
from .runs import BadInput
from .sandbox import FIRST_UID, kill_user
from . import written

STATUSES = ("graded", "timeout", "crashed", "invalid", "flagged")
SKIP_DIRS = (".ipynb_checkpoints", "__pycache__", "__MACOSX")
GRACE_SECONDS = 60.0     # a submission's wall-clock limit in the batch: its --timeout plus this
START_SECONDS = 600.0    # a judge's start (its fork server imports torch and the course)
JOURNAL = ".rows.jsonl"  # the timings and test results of the rows written so far (--resume's summary, make report)


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
    tests: dict = field(default_factory=dict)   # question -> {"cases": [...], "violations": [...]}, hidden tests included
    sha256: str = ""                            # of the submission's file: a regrade tells a changed notebook from a changed test


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
    """The student's feedback file. It never raises: whatever an outcome holds (the cells that raised
    come from the student process), the worst case is a shorter text."""
    try:
        return _feedback_text(row, lab, nb, outcome, secret)
    except Exception:  # noqa: BLE001 - a feedback file must not cost the batch
        lines = [f"# Feedback: {lab.title or lab.name}, {row.submission}", "", f"Status: **{row.status}**"]
        if row.note:
            lines.append(f"Note: {row.note}")
        lines += ["", "The details of this feedback could not be written.", "", f"Total: {row.total:g} / {row.possible:g}"]
        return redact("\n".join(lines) + "\n", secret)


def _text(value, limit: int) -> str:
    return (value if isinstance(value, str) else "")[:limit]


def raised_cells(outcome: Outcome | None) -> list[dict]:
    """The cells that raised when the notebook ran (from the student process's checked report)."""
    errors = getattr(outcome, "errors", None)
    return [e for e in (errors if isinstance(errors, list) else []) if isinstance(e, dict)]


def outcome_note(outcome: Outcome, nb: dict | None) -> str:
    """The gradebook's note: the grader's note, the flags, and whether cells raised (with the first)."""
    flags = outcome.flags if isinstance(outcome.flags, list) else []
    parts = ([outcome.note] if outcome.note else []) + [str(f) for f in flags]
    errors = raised_cells(outcome)
    if errors:
        first = raised_error(nb or {}, errors[0])
        parts.append(f"{len(errors)} cell{'s' if len(errors) > 1 else ''} raised an error (first: {first[:160]})")
    return "; ".join(dict.fromkeys(parts))


def raised_feedback(nb: dict | None, outcome: Outcome | None) -> list[str]:
    """The lines of feedback on the cells that raised (make grade's feedback and Gradescope's output)."""
    errors = raised_cells(outcome)[:10]
    if not errors:
        return []
    lines = ["These cells raised an error when your notebook ran from top to bottom:"]
    lines += [f"- {raised_error(nb or {}, {**e, 'error': _text(e.get('error'), 60), 'message': _text(e.get('message'), 200)})}"
              for e in errors]
    return lines + [""]


def question_feedback(q, info: dict, score: float) -> list[str]:
    """The feedback on one question, the same in make grade's feedback and in Gradescope's results:
    its score, a broken by-hand rule, each public test's result (with its message when it failed),
    and how many hidden tests ran. Markdown (Gradescope's results say ``output_format: md``)."""
    lines = [f"{q.name}: {score:g} / {q.points:g}"]
    if info.get("violations"):
        rule = (q.rule or {}).get("rule", "")
        lines.append(f"- **0 points: the by-hand rule was broken.** The rule: {rule}.")
        lines += [f"  - {v}" for v in info["violations"][:5]]
    for c in info.get("cases", []):
        if c["hidden"]:
            continue
        lines.append(f"- public test `{c['name']}`: " + ("passed" if c["passed"] else "failed"))
        if not c["passed"] and c["message"]:
            lines.append("  ```\n  " + c["message"][:800].replace("\n", "\n  ") + "\n  ```")
    hidden = sum(bool(c["hidden"]) for c in info.get("cases", []))
    if hidden:
        lines.append(f"- hidden tests: {hidden}, run by the grader (their results are not shown)")
    return lines


def _feedback_text(row: Row, lab: LabTests, nb: dict | None, outcome: Outcome | None, secret: set[str]) -> str:
    lines = [f"# Feedback: {lab.title or lab.name}, {row.submission}", "", f"Status: **{row.status}**"]
    if row.note:
        lines.append(f"Note: {row.note}")
    lines.append("")
    manual = written.manual_questions(lab.data_dir.parent)  # the written questions: a person grades them
    if outcome is None or not outcome.questions:
        lines.append("Your notebook could not be graded, so no question was scored.")
        return redact("\n".join(lines + ([""] + written.feedback_lines(manual) if manual else [])) + "\n", secret)
    lines += raised_feedback(nb, outcome)
    for q in lab.questions:
        info = outcome.questions.get(q.name) or {"cases": [], "violations": []}
        heading, *rest = question_feedback(q, info, row.scores.get(q.name, 0))
        lines += [f"## {heading}", *rest, ""]
    lines.append(f"Total: {row.total:g} / {row.possible:g}" + (" autograded points" if manual else ""))
    return redact("\n".join(lines + ([""] + written.feedback_lines(manual) if manual else [])) + "\n", secret)


def read_submission(sub: "Submission", lab: LabTests) -> tuple[dict | None, str]:
    """(the notebook, "") of a submission, or (None, why it cannot be graded): never raises."""
    if sub.path is None:
        return None, sub.problem
    try:
        return validate(sub.path, lab)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is that submission's row
        return None, f"could not be read ({type(exc).__name__}: {str(exc)[:120]})"


def file_sha256(path: Path | None) -> str:
    """The SHA-256 of a submission's file ("" for a folder without a notebook, or a file that cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None and Path(path).is_file() else ""
    except OSError:
        return ""


def tests_sha256(lab: LabTests) -> dict[str, str]:
    """Per question, the SHA-256 of what scores it: its test file (hidden tests included) and its entry in
    ``questions.json`` (points, by-hand rule). Each run's ``summary.json`` records them, so a regrade
    (:mod:`.regrade`) can say whether a question's tests changed since."""
    return {q.name: hashlib.sha256(json.dumps({"question": dataclasses.asdict(q), "tests": lab.tests.get(q.name, "")},
                                              sort_keys=True).encode()).hexdigest() for q in lab.questions}


def write_summary(out: Path, lab: LabTests, rows: list[Row], jobs: int, isolation: str, **extra) -> None:
    """``summary.json``: the lab, the counts, the timings of every row and the hashes of the tests."""
    summary = {"lab": lab.name, "submissions": len(rows), "jobs": jobs, "isolation": isolation,
               "counts": {s: sum(r.status == s for r in rows) for s in STATUSES},
               "tests_sha256": tests_sha256(lab), **extra,
               "rows": [{"submission": r.submission, "status": r.status, "total": r.total, "seconds": r.seconds,
                         "times": r.times} for r in rows]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def gradebook_header(questions: list[str]) -> list[str]:
    return ["submission", "status", *questions, "total", "possible", "seconds", "note"]


def gradebook_row(r: Row, questions: list[str]) -> list[str]:
    return [r.submission, r.status, *(f"{r.scores.get(q, 0):g}" for q in questions),
            f"{r.total:g}", f"{r.possible:g}", f"{r.seconds:.2f}", r.note]


def write_gradebook(rows: list[Row], questions: list[str], path: Path) -> None:
    """The whole gradebook, in one go: written next to ``path`` and moved over it, so an
    interruption leaves the old file or the new one, never half of one."""
    part = path.with_name(path.name + ".part")
    with open(part, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(gradebook_header(questions))
        for r in rows:
            w.writerow(gradebook_row(r, questions))
    os.replace(part, path)


def feedback_path(out: Path, submission: str) -> Path:
    return out / "feedback" / (re.sub(r"\.ipynb$", "", submission.rstrip("/")) + ".md")


def read_gradebook(path: Path, questions: list[str]) -> list[Row]:
    """The complete rows of a gradebook that an interrupted run wrote (a row cut short is dropped:
    that submission is graded again)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        text = f.read()
    text = text[:text.rfind("\n") + 1]
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records:
        return []
    if records[0] != gradebook_header(questions):
        raise SystemExit(f"{path} has other columns than this lab's gradebook ({', '.join(records[0][:8])}...): "
                         "resume only a run of the same lab")
    rows = []
    for rec in records[1:]:
        if len(rec) != len(records[0]) or rec[1] not in STATUSES or not rec[0]:
            continue
        try:
            scores = {q: float(v) for q, v in zip(questions, rec[2:2 + len(questions)])}
            total, possible, seconds = (float(v) for v in rec[2 + len(questions):5 + len(questions)])
        except ValueError:
            continue
        rows.append(Row(rec[0], rec[1], scores, total, possible, seconds, rec[-1]))
    return rows


class _Gradebook:
    """``gradebook.csv`` as the run goes: the header first, then each row as its submission finishes
    (appended and flushed, after its feedback file), so an interrupted run loses no finished row; at
    the end, every row again in submission order. With ``resume``, the rows already there are kept."""

    def __init__(self, out: Path, questions: list[str], resume: bool):
        self.out, self.questions = out, questions
        self.path, self.journal = out / "gradebook.csv", out / JOURNAL
        self.rows: dict[str, Row] = {}
        self._lock = threading.Lock()
        if resume and self.path.exists():
            for row in read_gradebook(self.path, questions):
                self.rows[row.submission] = row
            self._load_journal()
            for row in self.rows.values():
                target = feedback_path(out, row.submission)
                row.feedback = target.read_text(errors="replace") if target.is_file() else ""
        # (on resume: the complete rows again, without a row an interruption cut short)
        write_gradebook(list(self.rows.values()), questions, self.path)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._times = open(self.journal, "a", encoding="utf-8")

    def _load_journal(self) -> None:
        if not self.journal.is_file():
            return
        for line in self.journal.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                row = self.rows.get(entry["submission"])
                if row is not None and isinstance(entry.get("times"), dict):
                    row.times = {str(k): float(v) for k, v in entry["times"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    def add(self, row: Row) -> None:
        with self._lock:
            target = feedback_path(self.out, row.submission)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(row.feedback)
            self._csv.writerow(gradebook_row(row, self.questions))
            self._file.flush()
            entry = {"submission": row.submission, "times": row.times, "tests": row.tests}
            self._times.write(json.dumps({**entry, "sha256": row.sha256} if row.sha256 else entry) + "\n")
            self._times.flush()
            self.rows[row.submission] = row

    def finish(self) -> list[Row]:
        with self._lock:
            rows = [self.rows[name] for name in sorted(self.rows)]
            self._file.close()
            write_gradebook(rows, self.questions, self.path)
            return rows

    def close(self) -> None:
        with self._lock:
            for f in (self._file, self._times):
                try:
                    f.close()
                except OSError:
                    pass


def _row(sub: Submission, lab: LabTests, outcome: Outcome | None, status: str, note: str, seconds: float) -> Row:
    row = Row(sub.name, status, {q.name: 0.0 for q in lab.questions}, possible=lab.possible, note=note, seconds=seconds)
    if outcome is not None:
        row.times = {k: round(v, 3) for k, v in outcome.times.items()}
        if status in ("graded", "flagged"):
            row.scores = {q.name: outcome.scores.get(q.name, 0.0) for q in lab.questions}
        row.total = round(sum(row.scores.values()), 4)
    return row


# --- the batch ------------------------------------------------------------------------------------------------


class JudgeTimeout(Exception):
    """The judge did not answer within the submission's wall-clock limit."""


class JudgeFailed(RuntimeError):
    """The judge process died, or did not start."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the batch (:func:`main`)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _processes() -> dict[int, tuple[int, int, int]]:
    """Every process of this machine: pid -> (parent pid, process group, session)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                out[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL the process ``pid`` (a judge, not yet reaped), every process descended from it, and every
    process in their process groups and sessions (a student process's own children included, even if
    their parent is gone), leaving this process's own group and session alone. Twice, for a process
    forked in between."""
    if not os.path.isdir("/proc"):  # another system: the process group is what there is
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return
    own = {os.getpgrp(), os.getsid(0)}
    for _ in range(2):
        procs = _processes()
        children: dict[int, list[int]] = {}
        for p, (parent, _, _) in procs.items():
            children.setdefault(parent, []).append(p)
        tree, stack = set(), [pid]
        while stack:
            p = stack.pop()
            if p not in tree:
                tree.add(p)
                stack += children.get(p, [])
        groups = {procs[p][1] for p in tree if p in procs} - own
        sessions = {procs[p][2] for p in tree if p in procs} - own
        targets = {p for p, (_, g, sid) in procs.items() if p in tree or g in groups or sid in sessions}
        targets -= {os.getpid(), 1}
        if not targets:
            return
        for p in targets:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class _JudgeProcess:
    """One judge process (``python -m course_tools.grading.judge``), fed one task at a time. Nothing
    here waits without a deadline: the judge's start (``START_SECONDS``), each task (the
    submission's wall-clock limit), and its answers are read with ``select``."""

    def __init__(self, slot: int, command: list[str] | None = None):
        self.slot = slot
        self.mode = ""
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command or [sys.executable, "-m", "course_tools.grading.judge", "--slot", str(slot)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self._buffer = bytearray()
        self._ready = False

    def _died(self, what: str = "died") -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 2000))
            tail = self.log.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            tail = []
        return f"the grader's judge process {what}" + (f": {tail[-1][:200]}" if tail else "")

    def _readline(self, deadline: float) -> bytes | None:
        """One line of the judge's answers, or None at the deadline."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 2**20)
                if not chunk:
                    raise JudgeFailed(self._died())
                self._buffer += chunk
        at = self._buffer.index(b"\n")
        line = bytes(self._buffer[:at])
        del self._buffer[:at + 1]
        return line

    def _write(self, data: bytes, deadline: float) -> bool:
        """Send a task; False if the judge did not take it by the deadline."""
        view, fd = memoryview(data), self.proc.stdin.fileno()
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _, ready, _ = select.select([], [fd], [], min(left, 1.0))
            if ready:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    continue
                except OSError:  # the judge is gone (a broken pipe)
                    raise JudgeFailed(self._died()) from None
        return True

    def start(self) -> str:
        """Wait for the judge to be ready (its fork server warm); return its isolation mode."""
        if not self._ready:
            line = self._readline(time.monotonic() + START_SECONDS)
            if line is None:
                raise JudgeFailed(self._died(f"did not start in {START_SECONDS:.0f} s"))
            try:
                hello = json.loads(line)
            except ValueError:
                raise JudgeFailed("the grader's judge process started badly") from None
            self.mode = str(hello.get("mode", "")) if isinstance(hello, dict) else ""
            self._ready = True
        return self.mode

    def run(self, task: dict, seconds: float) -> Outcome:
        """Grade one task; raise :class:`JudgeTimeout` past ``seconds`` (the judge must then be killed)."""
        self.start()
        deadline = time.monotonic() + seconds
        if not self._write((json.dumps(task) + "\n").encode(), deadline):
            raise JudgeTimeout()
        line = self._readline(deadline)
        if line is None:
            raise JudgeTimeout()
        return Outcome(**json.loads(line))

    def kill(self) -> None:
        """Kill the judge and everything it started: its fork server, the student processes (and,
        isolated as users only, every process of the slot's user). Does not wait for ever."""
        if self.proc.returncode is None:  # (not reaped yet: its pid still names it)
            kill_tree(self.proc.pid)
        if self.mode == "user":
            kill_user(FIRST_UID + self.slot)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._close_files()

    def _close_files(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if self.proc.returncode is None:
            self.kill()
        self._close_files()


class Grader:
    """Warm judges (one per job), reused for every batch graded through this object. A submission
    whose judge does not answer within its ``--timeout`` plus ``grace`` seconds is stopped: its judge,
    fork server and student processes are killed, and a new judge grades the next submission."""

    def __init__(self, jobs: int | None = None, grace: float = GRACE_SECONDS):
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.grace = grace
        self.judge_command: list[str] | None = None   # another judge program (the grader's own tests)
        self._judges: list[_JudgeProcess | None] = [None] * self.jobs
        self._slots = iter(range(10_000))
        self._lock = threading.Lock()
        self._stopping = False
        self.isolation = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        with self._lock:
            judges, self._judges = self._judges, [None] * self.jobs
        for judge in judges:
            if judge is not None:
                judge.close()

    def kill_all(self) -> None:
        """Kill every judge and what it started, at once (an interrupted batch)."""
        with self._lock:
            self._stopping = True
            judges, self._judges = self._judges, [None] * self.jobs
        for judge in judges:
            if judge is not None:
                judge.kill()

    def _judge(self, k: int) -> _JudgeProcess:
        with self._lock:
            if self._stopping:
                raise JudgeFailed("the batch was interrupted")
            if self._judges[k] is None:
                self._judges[k] = _JudgeProcess(next(self._slots), self.judge_command)
            return self._judges[k]

    def _drop(self, k: int, judge: _JudgeProcess) -> None:
        """Kill a judge that died or ran past a submission's limit; the next submission starts a new one."""
        with self._lock:
            if self._judges[k] is judge:
                self._judges[k] = None
        judge.kill()

    def _run_all(self, tasks: dict[str, dict], progress, seconds: float) -> None:
        """Run the tasks on the judges in parallel, ``seconds`` at most each; ``progress(name, outcome)``
        records each as it finishes. Whatever goes wrong with one submission is its row: a judge that
        dies or hangs is killed and replaced, an error while recording the row is a ``crashed`` row."""
        work: queue.Queue = queue.Queue()
        for name in tasks:
            work.put(name)

        def drive(k: int) -> None:
            while not self._stopping:
                try:
                    name = work.get_nowait()
                except queue.Empty:
                    return
                judge, started = None, time.monotonic()
                try:
                    judge = self._judge(k)
                    mode = judge.start()
                    self.isolation = mode or self.isolation
                    outcome = judge.run(tasks[name], seconds)
                except JudgeTimeout:
                    self._drop(k, judge)
                    outcome = Outcome(status="timeout", note=f"the batch stopped it after {seconds:.0f} s (the time "
                                      f"limit plus {self.grace:.0f} s): its grading processes were killed",
                                      times={"start": 0.0, "notebook": time.monotonic() - started, "tests": 0.0})
                except Exception as exc:  # noqa: BLE001 - a judge that dies is this submission's row
                    if self._stopping:
                        return
                    if judge is not None:
                        self._drop(k, judge)
                    note = str(exc) if isinstance(exc, JudgeFailed) else f"grader error: {type(exc).__name__}: {exc}"
                    outcome = Outcome(status="crashed", note=note[:300])
                try:
                    progress(name, outcome)
                except Exception as exc:  # noqa: BLE001 - e.g. feedback that could not be written
                    try:
                        progress(name, Outcome(status="crashed", note=f"grader error while recording this "
                                               f"submission: {type(exc).__name__}: {exc}"[:300]))
                    except Exception:  # noqa: BLE001
                        traceback.print_exc()

        threads = [threading.Thread(target=drive, args=(k,), daemon=True) for k in range(min(self.jobs, len(tasks)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # an interruption: stop the judges first, then let the threads end
            self.kill_all()
            for t in threads:
                t.join(timeout=15)
            raise

    def grade(self, lab_name: str, submissions: Path, out: Path | None = None, limits: Limits | None = None,
              assigned_root: Path | None = None, progress: bool = True, force: bool = False,
              resume: bool = False) -> list[Row]:
        """Grade every submission in ``submissions`` against ``lab_name``; write the run folder (with
        ``resume``, continue the run in ``out`` or the latest run folder)."""
        limits = limits or Limits()
        lab_def = find_lab(lab_name)
        assigned = (assigned_root or REPO / "_assign") / lab_def.name
        if not (assigned / "questions.json").is_file():
            raise SystemExit(f"{assigned} is not assigned yet: run `make assign` first")
        lab = LabTests.load(assigned)
        secret = (secret_lines(lab_def.master, lab.tests) if lab_def.master.is_file() else hidden_test_lines(lab.tests))
        subs = find_submissions(Path(submissions))
        out = run_folder(lab.name, out, force, resume)
        self.last_out = out
        book = _Gradebook(out, [q.name for q in lab.questions], resume)
        try:
            if resume and progress:
                left = sum(sub.name not in book.rows for sub in subs)
                print(f"resuming {out}: {len(book.rows)} rows already written, {left} submissions to grade", flush=True)
            pending, digests = {}, {}
            for sub in subs:
                if sub.name in book.rows:
                    continue
                digests[sub.name] = file_sha256(sub.path)
                nb, why = read_submission(sub, lab)
                if nb is None:
                    row = _row(sub, lab, None, "invalid", why, 0.0)
                    row.sha256 = digests[sub.name]
                    row.feedback = feedback_text(row, lab, None, None, secret)
                    book.add(row)
                else:
                    pending[sub.name] = (sub, nb)

            def report(name: str, outcome: Outcome) -> None:
                sub, nb = pending[name]
                row = _row(sub, lab, outcome, outcome.status, outcome_note(outcome, nb), sum(outcome.times.values()))
                row.audit = outcome.audit
                row.tests = outcome.questions if isinstance(outcome.questions, dict) else {}
                row.sha256 = digests[name]
                row.feedback = feedback_text(row, lab, nb, outcome, secret)
                self.isolation = outcome.isolation or self.isolation
                book.add(row)
                if progress:
                    print(f"  {row.submission:40s} {row.status:8s} {row.total:6g} / {row.possible:g}  ({row.seconds:.1f} s)", flush=True)

            tasks = {name: {"assigned": str(assigned), "notebook": nb, "limits": dataclasses.asdict(limits)}
                     for name, (sub, nb) in pending.items()}
            self._run_all(tasks, report, limits.timeout + self.grace)
            rows = book.finish()
            if resume and not self.isolation and (out / "summary.json").is_file():  # nothing graded this time
                try:
                    self.isolation = str(json.loads((out / "summary.json").read_text()).get("isolation") or "")
                except (ValueError, AttributeError):
                    pass
        finally:
            book.close()
        write_summary(out, lab, rows, self.jobs, self.isolation)
        written.write_sheet(out, written.manual_questions(assigned), subs, lab.title)  # for the person who grades them
        return rows


def run_folder(lab_name: str, out: Path | None, force: bool, resume: bool = False, link_latest: bool = True) -> Path:
    """A fresh folder for this run's gradebook and feedback (see the module docstring); with
    ``resume``, the folder of the run to continue: ``out``, else the lab's ``latest``. Without
    ``link_latest`` (a regrade), ``latest`` moves only when :func:`point_latest` says so."""
    if resume:
        if force:
            raise SystemExit("--resume continues a run and --force replaces it: choose one")
        target = Path(out) if out is not None else REPO / "_grades" / lab_name / "latest"
        if out is None and not target.exists():
            raise SystemExit(f"no earlier run of {lab_name} to resume ({target} does not exist)")
        target = target.resolve()
        target.mkdir(parents=True, exist_ok=True)
        return target
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
    if link_latest:
        point_latest(out)
    return out


def point_latest(out: Path) -> None:
    """Point the lab's ``latest`` link at the run folder ``out`` (a folder of ``_grades/NN_slug/``)."""
    latest = out.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name)
    except OSError:
        pass


def grade_folder(lab_name: str, submissions: Path, out: Path | None = None, limits: Limits | None = None,
                 assigned_root: Path | None = None, progress: bool = True, jobs: int | None = None,
                 force: bool = False, resume: bool = False) -> list[Row]:
    with Grader(jobs) as grader:
        return grader.grade(lab_name, submissions, out, limits, assigned_root, progress, force, resume)


def _kill_children() -> None:
    """Kill every process this one started, and theirs (an interrupted batch: a judge whose start the
    signal cut short is not in the grader's list yet)."""
    if os.path.isdir("/proc"):
        for pid, (parent, _, _) in _processes().items():
            if parent == os.getpid():
                kill_tree(pid)


def _on_signal(signum, frame):
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade a folder of lab submissions into a gradebook and feedback.")
    parser.add_argument("lab", help="the lab, e.g. 00_getting_started")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (sub-folders are searched)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new _grades/<lab>/<date-time>/)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--timeout", type=float, default=Limits.timeout, help="seconds per submission (notebook and tests)")
    parser.add_argument("--test-seconds", type=float, default=Limits.test_seconds, help="seconds per test case")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory cap per submission")
    parser.add_argument("--disk-mb", type=int, default=Limits.disk_mb,
                        help="cap on what a submission may write in its working directory")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run (the latest run folder, or --out): grade only the "
                             "submissions without a row")
    regrading = parser.add_argument_group("regrade", "grade some questions or submissions of an earlier run again, "
                                          "into a new run folder (see course_tools.grading.regrade)")
    regrading.add_argument("--only", nargs="+", metavar="QUESTION", help="regrade only these questions")
    regrading.add_argument("--students", nargs="+", metavar="NAME",
                           help="regrade only these submissions (as the gradebook names them, or their file or folder name)")
    regrading.add_argument("--base", type=Path, default=None, help="the run to start from (default: the lab's latest)")
    regrading.add_argument("--reason", default="", help="why, recorded in the new run's regrade.json and changes.csv")
    args = parser.parse_args(argv)
    regrade = bool(args.only or args.students)
    conflict = ("--resume continues a run and --force replaces it: choose one" if args.resume and args.force else
                "expected --only QUESTION... or --students NAME... with --base and --reason (they belong to a regrade)"
                if not regrade and (args.base is not None or args.reason) else
                "--resume continues an interrupted run; a regrade (--only, --students) writes a new one: choose one"
                if regrade and args.resume else "")
    if conflict:
        print(conflict, file=sys.stderr)
        return 2
    limits = Limits(timeout=args.timeout, test_seconds=args.test_seconds, memory_mb=args.memory_mb, disk_mb=args.disk_mb)
    start = time.perf_counter()
    grader = Grader(args.jobs)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            if regrade:
                from .regrade import regrade as regrade_run

                rows = regrade_run(args.lab, args.submissions, only=args.only, students=args.students, base=args.base,
                                   reason=args.reason, out=args.out, force=args.force, limits=limits, grader=grader,
                                   argv=list(sys.argv[1:] if argv is None else argv))
            else:
                rows = grader.grade(args.lab, args.submissions, args.out, limits, force=args.force, resume=args.resume)
            out = grader.last_out
        finally:
            grader.close()
    except BadInput as bad:
        print(bad, file=sys.stderr)
        return 2
    except Interrupted as stop:
        for sig in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        grader.kill_all()
        _kill_children()
        out = getattr(grader, "last_out", None)
        where = f"; the rows of the submissions that finished are in {out / 'gradebook.csv'}" if out else ""
        again = ("the base run is unchanged: run the regrade again" if regrade else "GRADE_ARGS=--resume grades the rest")
        print(f"interrupted by {stop}: every grading process was stopped{where}; {again}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _on_signal:
                signal.signal(sig, handler)
    elapsed = time.perf_counter() - start
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    graded = [r for r in rows if r.times and (not regrade or r.submission in grader.last_regrade["names"])]
    split = {k: sum(r.times.get(k, 0.0) for r in graded) / max(len(graded), 1) for k in ("start", "notebook", "tests")}
    if regrade:
        done = grader.last_regrade
        print(f"regraded {', '.join(done['questions'])} of {done['regraded']} of {len(rows)} submissions in "
              f"{elapsed:.1f} s, from {done['base']}; the new gradebook holds every row: "
              + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    else:
        print(f"graded {len(rows)} submissions in {elapsed:.1f} s ({60 * len(rows) / max(elapsed, 1e-9):.1f} per minute, "
              f"{args.jobs} at a time): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    print("seconds per submission: " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    if grader.isolation:
        from .sandbox import describe

        print(f"isolation: {describe(grader.isolation)}")
    print(f"gradebook: {out / 'gradebook.csv'}\nfeedback:  {out / 'feedback'}/")
    if (out / "written.csv").is_file():
        print(f"written:   {out / 'written.md'} (the answers) and {out / 'written.csv'} (their scores): "
              "the written questions are graded by a person, and the gradebook's total leaves them out")
    if regrade:
        print(f"changes:   {out / 'changes.csv'}\nregrade:   {out / 'regrade.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
