"""A batch always finishes (course_tools/grading/batch.py and what it starts): a student process that
floods the judge, never reads, forges its report, fills the disk, kills itself or plants a link or a
FIFO where a log used to be gets a row within its limits and spares the submissions beside it; a
judge that hangs is killed and replaced; an interrupted batch leaves no process behind and
``--resume`` finishes it. Lab 0, short limits."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from course_tools import REPO
from course_tools.grading import batch
from course_tools.grading.batch import Grader, Row, feedback_text
from course_tools.grading.judge import ForkServer, Judge, LabTests, Limits, Outcome, ready_report
from course_tools.grading.wire import Timeout, send_frame

LAB = "00_getting_started"
SECRET = "SECRET-4be1c0de"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's sandbox needs Linux")


def _code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}


def _solution(assigned: Path) -> dict:
    return json.loads((assigned / LAB / "autograder" / f"{LAB}.ipynb").read_text())


def _bare(*sources: str) -> dict:
    """A submission for Lab 0 that holds only ``sources`` (quick to run: its tests fail)."""
    return {"cells": [_code(source) for source in sources], "metadata": {"otter": {"assignment_name": LAB}},
            "nbformat": 4, "nbformat_minor": 5}


def _write(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in files.items():
        (folder / name).write_text(json.dumps(nb))
    return folder


# the student process's end of its socket, found without /proc
FIND_SOCKET = textwrap.dedent("""
    import os, stat, struct, json, gc
    def _judge_socket():
        for fd in range(3, 256):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    return fd
            except OSError:
                pass
    def _frame(message):
        body = json.dumps(message).encode()
        return b'CRS1' + struct.pack('>IQ', len(body), 0) + body
    """)
# the judge's first request of every test ("seed") is answered by a flood of requests for an op the
# judge does not serve; the student process never reads the judge's answers
FLOOD = FIND_SOCKET + textwrap.dedent("""
    def _flood(message, tensors):
        fd, frames = _judge_socket(), _frame({'op': 'nonsense', 'id': 1}) * 64
        while True:
            os.write(fd, frames)
    for _link in [o for o in gc.get_objects() if type(o).__name__ == 'Link']:
        _link.handlers['seed'] = _flood
    """)
FORGED_READY = FIND_SOCKET + textwrap.dedent("""
    os.write(_judge_socket(), _frame({'op': 'ready', 'cells': 1, 'errors': [{'cell': 'x', 'error': 5, 'message': None}, 7],
                                      'memory_error': False, 'output_chars': 0}))
    import time
    time.sleep(60)
    """)
NEVER_READS = "import time\nimport course_tools.grading.link as L\nL.Link.serve_forever = lambda self: time.sleep(3600)"
FILLER = "for i in range(100):\n    open(f'filler{i}.bin', 'wb').write(b'x' * 2**20)"
SIGKILL = "import os\nos.kill(os.getpid(), 9)"
# without namespaces /tmp is the machine's: the watcher counts what the slot's user writes there too
TMP_FILLER = ("import os, tempfile\nfolder = tempfile.mkdtemp(dir='/tmp')\nfor i in range(100):\n"
              "    open(os.path.join(folder, f'filler{i}.bin'), 'wb').write(b'x' * 2**20)\n"
              "    open(f'/tmp/filler-{os.getpid()}-{i}.bin', 'wb').write(b'x' * 2**20)")


def _symlink_log(secret: Path) -> str:
    return (f"import os\nos.write(2, b'the last line it printed\\n')\ntry:\n    os.unlink('.student.log')\nexcept OSError:\n    pass\n"
            f"os.symlink({str(secret)!r}, '.student.log')\nos._exit(1)")


FIFO_LOG = "import os\ntry:\n    os.unlink('.student.log')\nexcept OSError:\n    pass\nos.mkfifo('.student.log')\nos._exit(1)"


def _processes() -> dict[int, dict]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                out[int(entry)] = {"state": fields[0].decode(), "ppid": int(fields[1]), "sid": int(fields[3]),
                                   "uid": os.stat(f"/proc/{entry}").st_uid}
            except (OSError, IndexError, ValueError):
                pass
    return out


def _descendants(pid: int, procs: dict) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        p = stack.pop()
        for q, info in procs.items():
            if info["ppid"] == p and q not in found:
                found.add(q)
                stack.append(q)
    return found


def _alive(pids, procs: dict) -> list[int]:
    return [p for p in pids if p in procs and procs[p]["state"] not in ("Z", "X")]


def _no_student_left(sessions: set[int] | None = None, uid: int | None = None, seconds: float = 10.0) -> list[int]:
    """Processes of the grading users (uid 61000 and up, or ``uid``) still alive: of ``sessions`` if
    given, else descended from this process (other test runs on the machine have their own)."""
    deadline = time.monotonic() + seconds
    while True:
        procs = _processes()
        mine = _descendants(os.getpid(), procs) if sessions is None and uid is None else set(procs)
        left = [p for p, info in procs.items() if info["state"] not in ("Z", "X") and p in mine
                and (info["uid"] == uid if uid is not None else info["uid"] >= 61000)
                and (sessions is None or info["sid"] in sessions)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


# --- pieces that need no grading ------------------------------------------------------------------------


def test_send_frame_gives_up_at_its_deadline_when_the_other_side_never_reads():
    a, b = socket.socketpair()
    with a, b:
        started = time.monotonic()
        with pytest.raises(Timeout):
            for _ in range(1000):  # far more than the socket buffers hold
                send_frame(a, {"op": "nonsense", "pad": "x" * 65536}, None, deadline=time.monotonic() + 0.5)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("forged", [
    {"cells": 1, "errors": [{"cell": "x", "error": "E", "message": ""}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [7], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": True, "error": "E", "message": ""}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": 99, "error": "E", "message": ""}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": 0, "error": "not an identifier", "message": ""}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": 0, "error": "E" * 61, "message": ""}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": 0, "error": "E", "message": None}], "memory_error": False, "output_chars": 0},
    {"cells": "1", "errors": [], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": {}, "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [], "memory_error": 0, "output_chars": 0},
    {"cells": 1, "errors": [], "memory_error": False, "output_chars": 1.5},
    {"cells": 1, "errors": [], "memory_error": False},
    {"cells": 1, "errors": [{"cell": 0, "error": "E", "message": "", "line": "3"}], "memory_error": False, "output_chars": 0},
    {"cells": 1, "errors": [{"cell": 0, "error": "E", "message": "", "line": -1}], "memory_error": False, "output_chars": 0},
])
def test_a_malformed_ready_report_is_refused(forged):
    nb = {"cells": [_code("x = 1"), _code("y = 2")]}
    assert ready_report({"op": "ready", **forged}, nb) is None
    good = ready_report({"op": "ready", "cells": 2, "errors": [{"cell": 1, "error": "ValueError", "message": "m" * 500,
                                                              "line": 3}],
                         "memory_error": False, "output_chars": 3}, nb)
    assert good == {"cells": 2, "errors": [{"cell": 1, "error": "ValueError", "message": "m" * 200, "line": 3}],
                    "memory_error": False, "output_chars": 3}
    no_line = ready_report({"op": "ready", "cells": 2, "errors": [{"cell": 1, "error": "E", "message": ""}],
                            "memory_error": False, "output_chars": 3}, nb)
    assert no_line["errors"] == [{"cell": 1, "error": "E", "message": "", "line": None}], "the line is optional"


def test_feedback_never_raises_whatever_the_outcome_holds(assigned):
    lab = LabTests.load(assigned / LAB)
    row = Row("x.ipynb", "graded", {q.name: 0.0 for q in lab.questions}, possible=lab.possible)
    nb = {"cells": [_code("x = 1")]}
    forged = [7, None, {"cell": "x"}, {"cell": True, "error": 5}, {"cell": 10**9, "error": "E" * 500, "message": ["m"]},
              {"cell": 0, "error": "ValueError", "message": "fine"}]
    outcome = Outcome(status="graded", errors=forged, questions={q.name: {"cases": [], "violations": []} for q in lab.questions})
    text = feedback_text(row, lab, nb, outcome, set())
    assert "Status: **graded**" in text and 'cell 1 ("x = 1") raised ValueError: fine' in text
    outcome.questions = {q.name: {"cases": [{"bad": 1}]} for q in lab.questions}  # even a broken outcome
    assert "Status: **graded**" in feedback_text(row, lab, nb, outcome, set())


# --- hostile student processes, in a batch beside the solution ------------------------------------------------


@pytest.mark.grading
def test_hostile_channels_and_files_cost_only_their_own_row(assigned, grader, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    solution = _solution(assigned)
    files = {
        "solution.ipynb": solution,
        "flood.ipynb": _bare(FLOOD),
        "forged_ready.ipynb": _bare(FORGED_READY),
        "never_reads.ipynb": _bare(NEVER_READS),
        "filler.ipynb": _bare(FILLER, "x = 1"),
        "sigkill.ipynb": _bare(SIGKILL, "x = 1"),
        "symlink_log.ipynb": _bare(_symlink_log(secret)),
        "fifo_log.ipynb": _bare(FIFO_LOG),
    }
    folder = _write(tmp_path / "submissions", files)
    limits = Limits(timeout=40, test_seconds=2, disk_mb=32, max_restarts=0)
    started = time.monotonic()
    rows = {r.submission: r for r in grader.grade(LAB, folder, tmp_path / "grades", limits, progress=False)}
    elapsed = time.monotonic() - started
    assert set(rows) == set(files)
    assert elapsed < 120, f"the batch took {elapsed:.0f} s"
    assert all(r.seconds < limits.timeout for r in rows.values()), {r.submission: r.seconds for r in rows.values()}

    solution_row = rows["solution.ipynb"]
    assert (solution_row.status, solution_row.total) == ("graded", solution_row.possible), solution_row.note
    for name in ("flood.ipynb", "never_reads.ipynb"):  # the first test failed on its time limit; nothing hung
        assert rows[name].status in ("graded", "flagged") and rows[name].total == 0, (name, rows[name].note)
        assert "time limit" in rows[name].note, (name, rows[name].note)
    assert rows["forged_ready.ipynb"].status == "crashed"
    assert "malformed ready report" in rows["forged_ready.ipynb"].note
    assert rows["filler.ipynb"].status == "crashed" and "wrote more than 32 MB" in rows["filler.ipynb"].note
    assert rows["sigkill.ipynb"].status == "crashed" and "signal 9" in rows["sigkill.ipynb"].note
    link = rows["symlink_log.ipynb"]
    assert link.status == "crashed" and SECRET not in link.note and SECRET not in link.feedback
    assert "exit code 1" in link.note and "the last line it printed" in link.note
    assert rows["fifo_log.ipynb"].status == "crashed" and "exit code 1" in rows["fifo_log.ipynb"].note

    gradebook = (tmp_path / "grades" / "gradebook.csv").read_text()
    assert [line.split(",")[0] for line in gradebook.splitlines()[1:]] == sorted(files)
    assert not _no_student_left(), "student processes were left behind"


@pytest.mark.grading
def test_without_namespaces_the_same_notebooks_get_the_same_status(assigned, tmp_path):
    """The ``user`` isolation mode (Gradescope's containers): the disk cap is a watcher's, and a
    process that kills itself is ``crashed`` as with namespaces."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    lab = LabTests.load(assigned / LAB)
    limits = Limits(timeout=30, test_seconds=2, disk_mb=32, max_restarts=0)
    slot = 50  # a user of its own (61050), whatever else runs on this machine
    judge = Judge(slot, ForkServer(env={"COURSE_SANDBOX": "user"}))
    try:
        assert judge.server.mode == "user"
        outcomes = {name: judge.grade({"cells": [_code(source)], "metadata": {}}, lab, limits)
                    for name, source in [("filler", FILLER), ("tmp_filler", TMP_FILLER), ("sigkill", SIGKILL),
                                         ("symlink", _symlink_log(secret)), ("fifo", FIFO_LOG)]}
    finally:
        judge.close()
    assert outcomes["filler"].status == "crashed" and "wrote more than 32 MB" in outcomes["filler"].note
    assert outcomes["tmp_filler"].status == "crashed" and "wrote more than 32 MB" in outcomes["tmp_filler"].note
    left = [e.path for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d) for e in os.scandir(d)
            if e.stat(follow_symlinks=False).st_uid == 61000 + slot]
    assert not left, f"the submission's files outside its folder outlived it: {left[:3]}"
    assert outcomes["sigkill"].status == "crashed" and "signal 9" in outcomes["sigkill"].note
    assert outcomes["symlink"].status == "crashed" and SECRET not in outcomes["symlink"].note
    assert "the last line it printed" in outcomes["symlink"].note
    assert outcomes["fifo"].status == "crashed"
    assert not _no_student_left(uid=61000 + slot), "student processes were left behind"


# --- the batch itself ---------------------------------------------------------------------------------------------


FAKE_JUDGE = textwrap.dedent("""
    import json, os, subprocess, sys, time
    print(json.dumps({"ready": True, "mode": "fake"}), flush=True)
    for line in sys.stdin:
        task = json.loads(line)
        if task["notebook"]["metadata"].get("hang"):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
            with open(task["notebook"]["metadata"]["hang"], "w") as f:
                f.write(str(child.pid))
            time.sleep(600)
        print(json.dumps({"status": "graded", "scores": {"pixel_cross_entropy": 4.0, "pixel_accuracy": 4.0},
                          "times": {"start": 0.0, "notebook": 0.1, "tests": 0.1}}), flush=True)
    """)


@pytest.mark.grading
def test_a_judge_that_hangs_is_killed_with_what_it_started_and_replaced(assigned, tmp_path):
    quick, hang = _bare("x = 1"), _bare("x = 1")
    pid_file = tmp_path / "child.pid"
    hang["metadata"]["hang"] = str(pid_file)
    folder = _write(tmp_path / "submissions", {"a.ipynb": quick, "b_hangs.ipynb": hang, "c.ipynb": quick})
    fake = tmp_path / "fake_judge.py"
    fake.write_text(FAKE_JUDGE)
    with Grader(1, grace=0) as grader:
        grader.judge_command = [sys.executable, str(fake)]
        started = time.monotonic()
        rows = {r.submission: r for r in grader.grade(LAB, folder, tmp_path / "grades", Limits(timeout=2), progress=False)}
        elapsed = time.monotonic() - started
    assert elapsed < 20
    assert rows["b_hangs.ipynb"].status == "timeout" and "the batch stopped it" in rows["b_hangs.ipynb"].note
    assert rows["a.ipynb"].status == rows["c.ipynb"].status == "graded" and rows["c.ipynb"].total == 8
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive([child], _processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive([child], _processes()), "the hung judge's own child (a process of its own session) survived"


@pytest.mark.grading
def test_resume_grades_only_the_submissions_without_a_row(assigned, grader, tmp_path, monkeypatch):
    quick = _bare("x = 1")  # graded, 0 points
    folder = _write(tmp_path / "submissions", {"a.ipynb": quick, "b.ipynb": quick, "c.ipynb": quick})
    out = tmp_path / "run"
    out.mkdir()
    header = "submission,status,pixel_cross_entropy,pixel_accuracy,total,possible,seconds,note\r\n"
    kept = "b.ipynb,flagged,4,0,4,8,1.50,\"kept, from the first run\"\r\n"
    with open(out / "gradebook.csv", "w", newline="") as f:
        f.write(header + kept + "c.ipynb,gra")  # the row of c.ipynb was cut short by the interruption
    rows = grader.grade(LAB, folder, out, Limits(timeout=60, test_seconds=5), progress=False, resume=True)
    assert [r.submission for r in rows] == ["a.ipynb", "b.ipynb", "c.ipynb"]
    assert [r.status for r in rows] == ["graded", "flagged", "graded"] and rows[1].note == "kept, from the first run"
    with open(out / "gradebook.csv", newline="") as f:
        text = f.read()
    assert text.startswith(header) and kept in text
    assert [rec[0] for rec in csv.reader(io.StringIO(text))] == ["submission", "a.ipynb", "b.ipynb", "c.ipynb"]
    assert json.loads((out / "summary.json").read_text())["counts"]["graded"] == 2
    assert (out / "feedback" / "a.md").is_file() and (out / "feedback" / "c.md").is_file()
    # without --out, --resume continues the lab's latest run
    monkeypatch.setattr(batch, "REPO", tmp_path)
    with pytest.raises(SystemExit, match="no earlier run"):
        batch.run_folder(LAB, None, False, resume=True)
    first = batch.run_folder(LAB, None, False)
    assert batch.run_folder(LAB, None, False, resume=True) == first.resolve()


@pytest.mark.grading
def test_sigterm_stops_every_process_the_batch_started(assigned, tmp_path):
    folder = _write(tmp_path / "submissions", {"a.ipynb": _bare("x = 1"), "b_endless.ipynb": _bare("while True:\n    pass")})
    out = tmp_path / "grades"
    proc = subprocess.Popen([sys.executable, "-m", "course_tools.grading.batch", LAB, str(folder), "--jobs", "1",
                             "--out", str(out), "--timeout", "120"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COURSE_PROFILE": "ci"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the solution's row is written and the endless loop runs
            procs = _processes()
            tree = _descendants(proc.pid, procs)
            rows = (out / "gradebook.csv").read_text().splitlines() if (out / "gradebook.csv").exists() else []
            if len(rows) == 2 and any(procs[p]["uid"] >= 61000 for p in tree if p in procs):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the endless notebook never started")
        sessions = {procs[p]["sid"] for p in tree if p in procs}
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr
    deadline = time.monotonic() + 10
    while _alive(tree, _processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(tree, _processes()), "a judge, fork server or student process outlived the batch"
    assert not _no_student_left(sessions), "a student process outlived the batch"
    assert (out / "gradebook.csv").read_text().splitlines()[1].startswith("a.ipynb,graded,0,0,0,8,")
