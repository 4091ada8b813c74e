"""The judge: runs every test of a lab, hidden ones too, against proxies for the notebook's code.

The judge is trusted. It holds the tests and computes every reference answer itself; the notebook
runs in a separate, sandboxed student process (:mod:`.student`), and the two talk only through
:class:`course_tools.grading.link.Link`. A test reads exactly as it does in the notebook
(``pixel_cross_entropy(scores, labels)``): the name resolves to a proxy, the call runs in the student
process, the result comes back as plain data (gradients included) and the test's assertions run
here. Whatever the student process does, it can only give wrong answers, run out of time or die for
the calls it serves: a call past its time limit, or a process that dies, fails that test; the process
is started again (at most ``max_restarts`` times) and the other questions are still graded.

By-hand rules (:mod:`course_utils.rules`) are decided here too: from the submitted cells' source,
and from the banned calls the student process reports while it serves a question's tests. Either
scores the question 0 and flags the submission. Scores come from otter's own test-file scoring.
What only the student process can count (a loop where a question asks for vectorised code,
:func:`course_utils.testing.expect_vectorized`) decides no points: a test records it as a flag for a
person to review.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .link import Link, LinkBroken, NotebookError
from .sandbox import FIRST_UID, MAX_FILES
from .sandbox import Limits as ProcessLimits
from .student import cell_source, code_cells, is_grader_cell

# what tampering looks like as text: searched for in a cell that does not parse (the AST scan of
# course_utils.rules.tamper_findings covers every other cell); they decide nothing, they ask a person to look
REVIEW = {
    r"input_transformers": "edits IPython's input transformers",
    r"\botter\.(?!Notebook)\w": "reaches into the otter grader",
    r"course_tools|course_utils\.(rules|testing)|from\s+course_utils\s+import\s+.*\b(rules|testing)\b": "touches the course's grader",
    r"__code__|__globals__|f_globals|f_back|_getframe": "rewrites code objects or walks stack frames",
    r"sys\.(settrace|setprofile)|threading\.(settrace|setprofile)": "installs a trace hook",
    r"\bgc\.(get_objects|get_referrers|get_referents)": "searches the interpreter's memory",
    r"\b(torch|np|numpy)\.testing\.\w+\s*=(?!=)": "replaces a test helper",
    r"(setattr\(\s*|\b)builtins\b": "replaces builtins",
    r"/proc\b|/dev/fd": "reads process internals",
    r"\bctypes\b": "calls C functions directly (ctypes)",
    r"\bos\.(kill|killpg|write|read|dup2?|fdopen|open)\b|\bsignal\.(pthread_kill|signal)\b|ptrace": "sends signals or uses raw file descriptors",
    r"\bsocket\b": "opens sockets",
    r"\bsys\.modules\b|\bimportlib\b|__import__": "imports modules by computed names",
    r"DisableTorchFunction|_disable_current_modes|_push_mode|_pop_mode|_set_torch_function_mode|torch\._C\b|"
    r"_python_dispatch|Torch(Function|Dispatch)Mode|__torch_(function|dispatch)__|torch\.overrides": "reaches into torch's mode machinery",
    r"_compiled_call_impl|_call_impl|_forward_(pre_)?hooks|register_(module_\w+|forward_\w*hook|full_backward_\w*hook|backward_hook)"
    r"|nn\.modules\.module": "reaches into PyTorch's call hooks",
    r"\b(threading|_thread|multiprocessing|subprocess|concurrent|pty|asyncio)\b|\bos\.(fork|forkpty|posix_spawnp?|system|popen|exec\w*|spawn\w*)\b"
    r"|num_workers\s*=\s*[1-9]": "runs code in another thread or process",
    r"(?<![\w.])(eval|exec|compile|globals|locals|vars|get_ipython|breakpoint)\s*\(|\binspect\b|__dict__|__class__\s*=(?!=)": "runs or looks up code dynamically",
    r"^\s*(%%?(?!(time|timeit|capture|matplotlib|config)\b)\w|!)": "runs an IPython magic or a shell command",
}


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("the test ran past its time limit")


@dataclass
class Limits:
    timeout: float = 300.0        # seconds for the whole submission: notebook and tests
    test_seconds: float = 30.0    # per test case (remote calls and the test's own work)
    memory_mb: int = 4096         # address-space cap of the student process
    file_mb: int = 64             # largest file the student process may write
    disk_mb: int = 256            # all it may write in its working directory
    max_restarts: int = 2         # new student processes after one died or hung during the tests
    audit: bool = False           # keep every message sent to the student process (tests)

    def process(self) -> ProcessLimits:
        return ProcessLimits(memory_mb=self.memory_mb, file_mb=self.file_mb, disk_mb=self.disk_mb)


# --- the lab ---------------------------------------------------------------------------------------------


@dataclass
class Question:
    name: str
    points: float
    public: float
    hidden: float
    names: list
    rule: dict | None = None
    check_gradients: bool = True  # VJPs checked against finite differences of the forward (link.py)


@dataclass
class LabTests:
    """Everything the judge needs about one lab (``make assign`` writes it to ``_assign/NN_slug``)."""

    name: str
    title: str
    questions: list[Question]
    tests: dict[str, str]          # question -> test file source, hidden tests included
    handout: dict                  # the student notebook as handed out
    data_dir: Path                 # the lab's files that go next to the notebook

    @classmethod
    def load(cls, assigned: Path) -> "LabTests":
        meta = json.loads((assigned / "questions.json").read_text())
        tests = {p.stem: p.read_text() for p in sorted((assigned / "tests").glob("*.py"))}
        handout = json.loads((assigned / "student" / f"{meta['lab']}.ipynb").read_text())
        questions = [Question(**q) for q in meta["questions"]]
        return cls(meta["lab"], meta.get("title", ""), questions, tests, handout, assigned / "student")

    @property
    def possible(self) -> float:
        return sum(q.points for q in self.questions)


@lru_cache(maxsize=64)
def _test_file(name: str, source: str):
    from otter.test_files import ExceptionTestFile

    return ExceptionTestFile.from_string(source, path=f"{name}.py")


# --- which cells the student wrote, and for which question ------------------------------------------------


def _key(cell: dict) -> tuple[str, str]:
    return (cell.get("cell_type", ""), cell_source(cell).strip())


def student_written(nb: dict, handout: dict) -> list[bool]:
    """For every cell of ``nb``: did the student write it (a code cell that matches no cell of the
    handout, once the two notebooks are aligned)?"""
    cells, hand = nb.get("cells", []), handout.get("cells", [])
    matcher = difflib.SequenceMatcher(a=[_key(c) for c in cells], b=[_key(c) for c in hand], autojunk=False)
    matched = {block.a + k for block in matcher.get_matching_blocks() for k in range(block.size)}
    return [i not in matched and c.get("cell_type") == "code" for i, c in enumerate(cells)]


def rule_findings(nb: dict, lab: LabTests) -> dict[str, list[str]]:
    """Per question with a by-hand rule: what in the submitted source breaks it. The code checked
    is what ``grader.check`` checks: everything reachable from the question's answers, and any
    statement that patches a library (:func:`course_utils.rules.source_findings`); and, in every
    cell, each place that stores a forbidden function where that check cannot follow it
    (:func:`course_utils.rules.stored_findings`: ``d['f'] = F.cross_entropy``, ``.append(...)``, a
    default argument, ...)."""
    from course_utils.rules import Rule, source_findings, stored_findings

    cells = [cell_source(c) if c.get("cell_type") == "code" and not is_grader_cell(cell_source(c)) else ""
             for c in nb.get("cells", [])]
    out = {}
    for q in lab.questions:
        if q.rule:
            rule = Rule.from_dict(q.rule)
            found = source_findings(rule, cells) + stored_findings(rule, cells)
            if found:
                out[q.name] = list(dict.fromkeys(str(f) for f in found))
    return out


def review_findings(nb: dict, lab: LabTests) -> list[str]:
    """What in the cells the student wrote reaches into the grader, torch's mode machinery or the
    interpreter (:func:`course_utils.rules.tamper_findings`; the handout's own cells are read for
    imports, not scanned), one line per offending line of code, quoting it. A cell that does not
    parse is searched line by line for :data:`REVIEW`. For a person to look at; not scored."""
    from course_utils.rules import Finding, tamper_findings

    cells = [c if isinstance(c, dict) else {} for c in nb.get("cells", [])]
    written = student_written({**nb, "cells": cells}, lab.handout)
    sources = [cell_source(c) if c.get("cell_type") == "code" else "" for c in cells]
    found = tamper_findings(sources, scan=[i for i, w in enumerate(written) if w], fallback=REVIEW)
    by_line: dict[tuple[int, int], list] = {}
    for f in found:
        by_line.setdefault((f.cell, f.line), []).append(f)
    lines = []
    for first, *others in by_line.values():  # one line per line of code, every kind of finding on it
        what = "; ".join(dict.fromkeys(f.what for f in [first, *others]))
        lines.append(str(Finding(first.cell, first.line, what, first.start, first.code)))
    return lines


# --- the fork server and the student process -------------------------------------------------------------


# the whole environment of a student process: nothing of the judge's own (no tokens, no paths to
# the tests), the ci profile (the sizes the tests expect), fixed hashing, one thread
STUDENT_ENV = {
    "LANG": "C.UTF-8", "COURSE_PROFILE": "ci", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class ForkServer:
    """The warm process that forks sandboxed student processes (:mod:`.forkserver`)."""

    def __init__(self, env: dict | None = None):
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **STUDENT_ENV, **(env or {})}
        if os.environ.get("COURSE_SANDBOX"):  # force a weaker isolation mode (the grader's own tests)
            env["COURSE_SANDBOX"] = os.environ["COURSE_SANDBOX"]
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "course_tools.grading.forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        theirs.close()
        self._hello = None

    def hello(self) -> dict:
        if self._hello is None:
            data = self.ctl.recv(65536)
            if not data:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"the grader's fork server did not start:\n{err}")
            self._hello = json.loads(data)
        return self._hello

    @property
    def mode(self) -> str:
        return self.hello()["mode"]

    def _ask(self, message: dict, fds=()) -> dict:
        self.hello()
        socket.send_fds(self.ctl, [json.dumps(message).encode()], list(fds))
        reply = json.loads(self.ctl.recv(65536) or b'{"error": "the fork server ended"}')
        if "error" in reply:
            raise RuntimeError(f"fork server: {reply['error']}")
        return reply

    def spawn(self, work: Path, slot: int, limits: ProcessLimits, fd: int) -> int:
        return int(self._ask({"op": "spawn", "work": str(work), "slot": slot, "limits": vars(limits)}, [fd])["pid"])

    def status(self, pid: int, wait: float = 2.0):
        return self.report(pid, wait)["status"]

    def report(self, pid: int, wait: float = 2.0) -> dict:
        """``{"status": exit code or None, "note": why the server killed it, "log": the last line of
        its output}`` (:mod:`.forkserver`)."""
        return self._ask({"op": "status", "pid": pid, "wait": wait})

    def check(self, pid: int) -> str:
        """Why the server killed the process now (it wrote more than its cap), or ""."""
        return str(self._ask({"op": "check", "pid": pid}).get("note") or "")

    def close(self) -> None:
        try:
            self.ctl.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


MAX_REPORTED_ERRORS = 1000


def ready_report(message: dict, nb: dict) -> dict | None:
    """The ``ready`` message of a student process, checked field by field (it is the only message the
    judge reads outside the request/reply flow): ``cells`` an int, ``errors`` a list of
    ``{"cell": index of a cell of the notebook, "error": an exception's name (an identifier of at most
    60 characters), "message": a string (kept to 200 characters), "line": the line of the cell, an int
    or null}``, ``memory_error`` a bool,
    ``output_chars`` an int. Anything else: ``None``."""
    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53

    cells = nb.get("cells") if isinstance(nb.get("cells"), list) else []
    errors = message.get("errors")
    if not (count(message.get("cells")) and count(message.get("output_chars")) and isinstance(message.get("memory_error"), bool)
            and isinstance(errors, list) and len(errors) <= min(len(cells), MAX_REPORTED_ERRORS)):
        return None
    clean = []
    for e in errors:
        if not (isinstance(e, dict) and {"cell", "error", "message"} <= set(e) and count(e["cell"]) and e["cell"] < len(cells)
                and isinstance(e["error"], str) and re.fullmatch(r"[A-Za-z_]\w{0,59}", e["error"], re.ASCII) and isinstance(e["message"], str)):
            return None
        line = e.get("line")
        if line is not None and not (count(line) and line < 100_000):
            return None
        clean.append({"cell": e["cell"], "error": e["error"], "message": e["message"][:200], "line": line})
    return {"cells": message["cells"], "errors": clean, "memory_error": message["memory_error"],
            "output_chars": message["output_chars"]}


class NotebookFailed(Exception):
    """The notebook could not be run to its end: ``status`` is ``timeout`` or ``crashed``."""

    def __init__(self, status: str, note: str):
        super().__init__(note)
        self.status, self.note = status, note


class StudentProcess:
    """One run of the notebook in the sandbox, and the link to it."""

    def __init__(self, server: ForkServer, work: Path, slot: int, limits: Limits, audit: list | None):
        self.server, self.work, self.limits = server, work, limits
        ours, theirs = socket.socketpair()
        started = time.monotonic()
        self.pid = server.spawn(work, slot, limits.process(), theirs.fileno())
        theirs.close()
        self.link = Link(ours, "judge", audit=audit)
        self.cell: int | None = None
        self.report: dict | None = None
        self.times = {"start": 0.0, "notebook": 0.0}
        self._started = started

    def wait_ready(self, deadline: float, nb: dict) -> dict:
        first = None
        while self.report is None:
            try:
                message, _ = self.link.receive(deadline)
            except LinkBroken as exc:
                if "time limit" in str(exc):
                    self.kill()
                    where = f": it was still running {describe_cell(nb, self.cell)}" if self.cell is not None else ""
                    raise NotebookFailed("timeout", f"the notebook ran past the time limit ({self.limits.timeout:.0f} s){where}") from None
                if "protocol" in str(exc):
                    self.kill()
                    raise NotebookFailed("crashed", "the notebook's process broke the grading protocol "
                                         "(something wrote to the grader's channel)") from None
                note = self.death_note(str(exc))  # (before the kill: its own exit status, not the kill's)
                self.kill()
                raise NotebookFailed("crashed", note) from None
            op = message.get("op")
            if op == "cell" and isinstance(message.get("index"), int) and not isinstance(message.get("index"), bool):
                if first is None:
                    first = time.monotonic()
                self.cell = message["index"]
            elif op == "ready":
                self.report = ready_report(message, nb)
                if self.report is None:
                    self.kill()
                    raise NotebookFailed("crashed", "the notebook's process sent a malformed ready report")
            else:
                self.kill()
                raise NotebookFailed("crashed", "the notebook's process broke the grading protocol "
                                     "(something wrote to the grader's channel)")
        now = time.monotonic()
        first = first or now
        self.times = {"start": first - self._started, "notebook": now - first}
        if self.report["memory_error"]:
            self.kill()
            raise NotebookFailed("crashed", f"ran out of memory (cap {self.limits.memory_mb} MB) in a code cell")
        over = self.server.check(self.pid)  # what it wrote, measured now rather than at the next round
        if over:
            self.kill()
            raise NotebookFailed("crashed", self._over_note(over))
        return self.report

    def _over_note(self, over: str) -> str:
        where = "in its working directory" + (" and /tmp" if self.server.mode == "user" else "")
        return f"the notebook {over} {where} (the cap is {self.limits.disk_mb} MB and " \
               f"{MAX_FILES} files): its process was stopped"

    def death_note(self, why: str) -> str:
        """Why the process ended, from the fork server: its exit status, the cap it went over, and the
        last line of its output (the judge never opens a file the student process could replace)."""
        report = self.server.report(self.pid, wait=2.0)
        status, tail = report.get("status"), str(report.get("log") or "")[:200]
        if report.get("note"):
            return self._over_note(str(report["note"]))
        how = "" if status is None else f"killed by signal {abs(status) if status < 0 else status - 128}" \
            if (status < 0 or status > 128) else f"exit code {status}"
        return "the notebook's process died" + (f" ({how})" if how else "") + " before grading finished" + (f": {tail}" if tail else "")

    def kill(self) -> None:
        for target in (self.pid, -self.pid):
            try:
                (os.kill if target > 0 else os.killpg)(abs(target), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        try:
            self.link.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        if not self.link.broken:
            try:
                self.link.deadline = time.monotonic() + 2  # a process that does not read gets no more
                self.link.notify("bye")
            except LinkBroken:
                pass
        self.kill()
        self.server.status(self.pid, wait=2.0)


def defining_cell(nb: dict, name: str, errors: list) -> dict | None:
    """Of the cells that raised (``errors``, as the ready report gives them), the one whose source
    defines ``name`` at its top level (``def``, ``class`` or an assignment), else ``None``."""
    pattern = re.compile(rf"^(?:async\s+def|def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*(?::[^=]*)?=(?!=)", re.M)
    cells = nb.get("cells") if isinstance(nb, dict) and isinstance(nb.get("cells"), list) else []
    for e in errors:
        index = e.get("cell") if isinstance(e, dict) else None
        if isinstance(index, int) and 0 <= index < len(cells) and isinstance(cells[index], dict) \
                and pattern.search(cell_source(cells[index])):
            return e
    return None


def raised_error(nb: dict, e: dict) -> str:
    """One cell's error as students read it: the cell, the error's type, its line and first line."""
    line = e.get("line")
    where = f"{describe_cell(nb, e.get('cell'))} raised {e.get('error') or 'an error'}" + (f" at line {line}" if line else "")
    return where + (f": {e['message']}" if e.get("message") else "")


def missing_answer(nb: dict, names: list[str], errors: list) -> str:
    """Why a test could not run: the names it needs that the notebook does not define, and the cell
    that should have defined them if it raised."""
    names = list(dict.fromkeys(names))
    listed = ", ".join(f"`{n}`" for n in names)
    verb = "is" if len(names) == 1 else "are"
    cause = next((e for e in (defining_cell(nb, n, errors) for n in names) if e is not None), None)
    if cause is not None:
        return (f"{listed} {verb} not defined because {raised_error(nb, cause)}. The tests of this question could "
                "not run: fix that cell, then run the notebook from the top")
    if errors:
        return (f"{listed} {verb} not defined when the notebook has run ({len(errors)} cells raised an error, "
                "listed above), so the tests of this question could not run")
    return f"{listed} {verb} not defined in the notebook, so the tests of this question could not run"


def describe_cell(nb: dict, index: int | None) -> str:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not isinstance(index, int) or isinstance(index, bool) \
            or not 0 <= index < len(cells) or not isinstance(cells[index], dict):
        return "a cell"
    first = next((line.strip() for line in cell_source(cells[index]).splitlines() if line.strip()), "")
    return f'cell {index + 1} ("{first[:60]}")'


class MissingAnswer(Exception):
    """A test needs a name the notebook does not define."""


class NotebookNamespace(dict):
    """What otter's test cases look names up in: each name becomes the notebook's value (plain data)
    or a proxy for its function, class or module; an undefined name gives otter's default."""

    def __init__(self, link: Link):
        super().__init__()
        self.link = link
        self.missing: list[str] = []   # the names a test asked for that the notebook does not define

    def get(self, name, default=None):
        try:
            return self.link.lookup(name)
        except KeyError:
            self.missing.append(name)
            return default

    def __getitem__(self, name):
        return self.link.lookup(name)

    def __contains__(self, name):
        try:
            self.link.lookup(name)
            return True
        except KeyError:
            return False


# --- grading one submission -----------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str
    note: str = ""
    scores: dict = field(default_factory=dict)
    questions: dict = field(default_factory=dict)   # name -> {"cases": [...], "violations": [...]}
    errors: list = field(default_factory=list)      # cells that raised
    flags: list = field(default_factory=list)
    times: dict = field(default_factory=dict)
    audit: list = field(default_factory=list)
    isolation: str = ""


class Judge:
    """Grades submissions of one lab after another with one fork server (one grading slot)."""

    def __init__(self, slot: int = 0, server: ForkServer | None = None):
        self.slot = slot
        self.server = server or ForkServer()

    def close(self) -> None:
        self.server.close()

    def grade(self, nb: dict, lab: LabTests, limits: Limits) -> Outcome:
        scratch = Path(tempfile.mkdtemp(prefix="grade-"))
        try:
            os.chmod(scratch, 0o711)
            work = scratch / "work"
            work.mkdir()
            for p in lab.data_dir.iterdir():  # the lab's data files, next to the notebook as students have them
                if p.is_file() and p.suffix != ".ipynb":
                    shutil.copy2(p, work / p.name)
            (work / "submission.ipynb").write_text(json.dumps(nb))
            for p in work.iterdir():
                os.chmod(p, 0o644)
            if os.geteuid() == 0 and self.server.mode in ("namespaces", "user"):
                os.chown(work, FIRST_UID + self.slot, FIRST_UID + self.slot)  # the slot's unprivileged user
            os.chmod(work, 0o700)
            return self._grade(nb, lab, limits, work)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _grade(self, nb: dict, lab: LabTests, limits: Limits, work: Path) -> Outcome:
        started = time.monotonic()
        audit: list | None = [] if limits.audit else None
        out = Outcome(status="graded", scores={q.name: 0.0 for q in lab.questions})
        out.flags = review_findings(nb, lab)
        session = _Session(self, nb, work, limits, audit, deadline=started + limits.timeout)
        try:
            session.start()
        except NotebookFailed as failed:
            out.status, out.note = failed.status, failed.note
            out.times = {"start": 0.0, "notebook": time.monotonic() - started, "tests": 0.0}
            out.audit = audit or []
            return out
        out.errors = session.process.report["errors"]
        out.times = dict(session.process.times)
        tests_started = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _alarm)
        files = {q.name: _test_file(q.name, lab.tests[q.name]) for q in lab.questions}
        runs = {q.name: ([None] * len(files[q.name].test_cases), []) for q in lab.questions}
        try:
            # every public test of every question first, then the hidden ones: the process that
            # answers a public test has not yet seen any hidden test's inputs, so a public test's
            # feedback (which students read) cannot carry them
            for hidden in (False, True):
                for q in lab.questions:
                    self._run_cases(session, q, files[q.name], hidden, runs[q.name], out)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            session.close()
        out.times["tests"] = time.monotonic() - tests_started
        for q in lab.questions:
            test_file, (slots, violations) = files[q.name], runs[q.name]
            test_file.test_case_results = [_result(tc, c["passed"], c["message"]) for tc, c in zip(test_file.test_cases, slots)]
            out.questions[q.name] = {"cases": slots, "violations": sorted(set(violations))}
            out.scores[q.name] = round(float(test_file.score), 4)
        _apply_rules(out, nb, lab)
        out.audit = audit or []
        return out

    def _run_cases(self, session: "_Session", q: Question, test_file, hidden: bool, run: tuple, out: Outcome) -> None:
        """Run the public (or the hidden) test cases of one question in the student's process,
        restarting it if it is lost; each case's record goes to its slot of ``run[0]``."""
        slots, violations = run
        for index, tc in enumerate(test_file.test_cases):
            if bool(tc.hidden) != hidden:
                continue
            process = session.alive()
            case_started = time.monotonic()
            warned: list = []
            if process is None:
                passed, message = False, f"not run: {session.lost or 'the notebook process was lost too often'}"
            elif time.monotonic() >= session.deadline:
                passed, message = False, f"not run: the submission ran past its time limit ({session.limits.timeout:.0f} s)"
                out.status = "timeout"
            else:
                passed, message, broken, warned = self._run_case(process, tc, q, session.limits, session.deadline, session.nb)
                violations += process.link.violations
                process.link.violations = []
                out.flags += [f"{q.name}: {text}" for text in process.link.review if f"{q.name}: {text}" not in out.flags]
                process.link.review = []
                if broken:
                    session.drop()
                    what = ("the notebook's code ran past a test's time limit" if broken == "hung"
                            else "the notebook's process stopped answering")
                    out.note = out.note or f"{what} during the tests of {q.name}; its process was started again"
            slots[index] = {"name": getattr(getattr(tc.body, "test_func", None), "__name__", tc.name),
                            "hidden": bool(tc.hidden), "points": float(tc.points or 0),
                            "passed": passed, "message": message[:1500], "warnings": warned[:5],
                            "seconds": round(time.monotonic() - case_started, 3)}

    def _run_case(self, process: StudentProcess, tc, q: Question, limits: Limits, deadline: float, nb: dict):
        """Run one test case; return (passed, message, why the process must be replaced or "", the
        warnings the test itself raised here in the judge)."""
        errors = process.report.get("errors", [])
        caught: list = []
        link = process.link
        seconds = max(0.1, min(limits.test_seconds, deadline - time.monotonic()))
        link.rule = q.rule
        link.check_gradients = q.check_gradients
        link.deadline = time.monotonic() + seconds
        broken = ""
        try:
            # the limit covers everything from here on, the seeding request included
            signal.setitimer(signal.ITIMER_REAL, seconds + 2.0)  # the test's own work has a limit too
            link.remote("seed", None)
            namespace = NotebookNamespace(link)
            try:
                with warnings.catch_warnings(record=True) as caught:  # recorded: a test must not warn students
                    warnings.simplefilter("always")
                    tc.body.call_func(namespace)
            except Exception:
                if namespace.missing:  # otter passed None for it: say why instead of "'NoneType' object ..."
                    raise MissingAnswer(missing_answer(nb, namespace.missing, errors)) from None
                raise
            passed, message = True, ""
        except MissingAnswer as exc:
            passed, message = False, str(exc)
        except TestTimeout:
            passed, message, broken = False, f"the test ran past its time limit ({seconds:.0f} s)", "hung"
        except LinkBroken as exc:
            why = str(exc)
            broken = "hung" if "time limit" in why else "stopped answering"
            passed = False
            message = (f"the notebook's code ran past the test's time limit ({seconds:.0f} s)" if broken == "hung"
                       else f"the notebook's process stopped answering: {why}")
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a test is a failure too
            passed = False
            kind = getattr(exc, "remote_type", None) if isinstance(exc, NotebookError) else None
            message = f"{kind or type(exc).__name__}: {exc}" + (" (raised by your code)" if kind else "")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            link.deadline = None
            link.rule = None
        if not broken:
            try:
                link.deadline = time.monotonic() + 10
                link.remote("release", None)
            except (LinkBroken, NotebookError):
                broken = "stopped answering"
            finally:
                link.deadline = None
                link.proxies.clear()
        warned = list(dict.fromkeys(f"{w.category.__name__}: {(str(w.message).splitlines() or [''])[0][:200]}" for w in caught))
        return passed, message, broken, warned


class _Session:
    """The student's process during one grading: started once, started again (at most
    ``limits.max_restarts`` times) after a test kills or loses it, within the submission's deadline."""

    def __init__(self, judge: Judge, nb: dict, work: Path, limits: Limits, audit: list | None, deadline: float):
        self.judge, self.nb, self.work, self.limits, self.audit, self.deadline = judge, nb, work, limits, audit, deadline
        self.process: StudentProcess | None = None
        self.restarts, self.lost = 0, ""

    def start(self) -> None:
        self.process = StudentProcess(self.judge.server, self.work, self.judge.slot, self.limits, self.audit)
        self.process.wait_ready(self.deadline, self.nb)

    def alive(self) -> StudentProcess | None:
        """The process, started again if it was lost and restarts and time are left; else ``None``."""
        if self.process is None and not self.lost and self.restarts < self.limits.max_restarts and time.monotonic() < self.deadline:
            self.restarts += 1
            try:
                self.start()
            except NotebookFailed as failed:
                self.process, self.lost = None, failed.note
        return self.process

    def drop(self) -> None:
        if self.process is not None:
            self.process.kill()
        self.process = None

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def _apply_rules(out: Outcome, nb: dict, lab: LabTests) -> None:
    """Add the source check's findings to those seen while the tests ran; a question that broke its
    by-hand rule scores 0 and the submission is flagged for review."""
    for q_name, found in rule_findings(nb, lab).items():
        out.questions[q_name]["violations"] = sorted(set(out.questions[q_name]["violations"]) | set(found))
    broken_rules = [q.name for q in lab.questions if out.questions[q.name]["violations"]]
    for name in broken_rules:
        out.scores[name] = 0.0
    if broken_rules:
        out.flags = [f"broke the by-hand rule of {', '.join(broken_rules)}"] + out.flags
    if out.status == "graded" and out.flags:
        out.status = "flagged"


def _result(tc, passed: bool, message: str):
    from otter.test_files.abstract_test import TestCaseResult

    return TestCaseResult(test_case=tc, message=message, passed=passed)


# --- judge workers for the batch -------------------------------------------------------------------------


def _die_with_parent() -> None:
    """End this judge (and so its fork server, which asked for a parent-death signal) when the batch
    that started it is gone, even in the middle of a task: nothing of a batch outlives it."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def serve(slot: int) -> int:
    """``python -m course_tools.grading.judge --slot K``: a judge process for :mod:`.batch`. Once its
    fork server is warm it writes ``{"ready": true, "mode": ...}``; then it reads one task per line
    on standard input (JSON: the assigned lab's folder, the notebook, the limits) and answers each
    with one line of JSON (the :class:`Outcome`). Both ends are trusted; what the tests print goes to
    standard error."""
    import dataclasses

    _die_with_parent()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    judge = Judge(slot)
    import numpy  # noqa: F401 - what the tests import, loaded while the fork server warms up
    import scipy.stats  # noqa: F401
    import torch  # noqa: F401
    from otter.test_files import ExceptionTestFile  # noqa: F401

    protocol.write(json.dumps({"ready": True, "mode": judge.server.mode}) + "\n")
    protocol.flush()
    try:
        for line in sys.stdin:
            task = json.loads(line)
            try:  # (the lab too: a lab being assigned again meanwhile is this submission's status)
                lab = _load_lab(task["assigned"], os.path.getmtime(os.path.join(task["assigned"], "questions.json")))
                limits = Limits(**task.get("limits", {}))
                outcome = judge.grade(task["notebook"], lab, limits)
            except Exception as exc:  # noqa: BLE001 - a grader bug is this submission's status, not the batch's end
                outcome = Outcome(status="crashed", note=f"grader error: {type(exc).__name__}: {exc}")
            outcome.isolation = judge.server.mode
            protocol.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
            protocol.flush()
    finally:
        judge.close()
    return 0


@lru_cache(maxsize=16)
def _load_lab(assigned: str, mtime: float) -> LabTests:
    return LabTests.load(Path(assigned))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="A judge process for the batch grader (reads tasks on stdin).")
    parser.add_argument("--slot", type=int, default=0)
    sys.exit(serve(parser.parse_args().slot))
