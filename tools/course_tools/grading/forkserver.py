"""A warm process that starts sandboxed student processes in milliseconds instead of seconds.

``python -I -m course_tools.grading.forkserver FD`` is started once per grading slot, as a fresh
interpreter (so its memory holds nothing the judge knows: no test, no answer), imports torch,
NumPy, SciPy, matplotlib, IPython, scikit-learn, scikit-image and ``course_utils``, loads the
bundled digits, and then forks one student process per submission over the control socket ``FD``
(a ``SOCK_SEQPACKET`` socket; each request is one JSON message, the student's end of its link to the
judge travels with it as a file descriptor):

``{"op": "spawn", "work": dir, "slot": k, "limits": {...}}`` + fd   ->  ``{"pid": n}``
``{"op": "status", "pid": n, "wait": seconds}``                    ->  ``{"status": exit code or null,
                                                                       "note": why it was killed or "",
                                                                       "log": last line of its output}``
``{"op": "check", "pid": n}``                                      ->  ``{"note": "" or why it was killed}``

A student process's standard output and error go to an anonymous file (``memfd_create``) that only
this server and that process hold: nobody opens a path to it, so a notebook that replaces a log file
with a symbolic link or a FIFO changes nothing, and ``status`` quotes its last line (a traceback's
last line, say). While student processes run, it checks every quarter of a second that each one's
working directory holds at most ``disk_mb`` MB (:func:`.sandbox.usage`, :func:`.sandbox.tmpfs_full`)
and kills one that goes over; ``check`` does it at once (the judge asks when the notebook is done).

It never reads a notebook, a test or a result. It exits, killing every student process it started,
when the judge closes the control socket (or dies: it asked for a parent-death signal).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback

from . import sandbox

PRELOAD = (
    "torch", "torch.nn.functional", "torch.utils.data", "numpy", "scipy", "scipy.ndimage", "scipy.stats",
    "scipy.optimize", "matplotlib", "matplotlib.pyplot", "IPython.core.interactiveshell",
    "IPython.core.inputtransformer2", "sklearn", "sklearn.datasets", "skimage", "tqdm.auto", "ipywidgets",
    "safetensors.torch", "course_utils", "course_utils.data", "course_utils.plotting", "course_utils.nets",
    "course_utils.ops", "course_utils.metrics", "course_utils.rules", "course_utils.testing",
    "course_tools.grading.student", "course_tools.grading.link",
    # what IPython's shell imports when the student process creates it (loaded once here rather than
    # in every student process, and readable even where the interpreter is not readable to the
    # sandbox's user)
    "bdb", "pdb", "sqlite3", "hashlib", "random", "bz2", "lzma", "glob", "shutil", "unicodedata",
    "IPython.core.magics", "IPython.core.completer", "IPython.core.completerlib", "IPython.core.application",
    "IPython.core.crashhandler", "IPython.core.logger", "IPython.core.oinspect",
)
MAX_MESSAGE = 65536
WATCH_SECONDS = 0.25  # how often the working directories are measured


def preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional library only costs speed
            pass
    import torch

    torch.set_num_threads(1)  # no torch thread pool exists yet, so forking stays safe
    try:
        import io

        import matplotlib.pyplot as plt

        from course_utils.data.digit_scenes import _bundled_digits

        _bundled_digits()
        fig, ax = plt.subplots()  # the first figure loads fonts and the renderer's caches
        ax.imshow([[0, 1], [1, 0]])
        ax.plot([0, 1], label="warm-up")
        ax.legend()
        ax.set_title("warm-up")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    except Exception:  # noqa: BLE001
        pass


def _send(ctl: socket.socket, message: dict) -> None:
    ctl.send(json.dumps(message).encode())


class Child:
    """What this server keeps about one student process."""

    def __init__(self, forked: int, work: str, slot: int, disk_mb: int, log: int):
        self.forked, self.work, self.slot, self.disk_mb, self.log = forked, work, slot, disk_mb, log
        self.note = ""   # why this server killed it ("wrote more than 256 MB")


def _log_file() -> int:
    """An anonymous file for a student process's output: no path leads to it."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("student-log", getattr(os, "MFD_CLOEXEC", 0))
    with tempfile.TemporaryFile() as f:  # unlinked at once (another system: no memfd)
        return os.dup(f.fileno())


def _last_line(fd: int) -> str:
    """The last non-empty line of a student process's output, 200 characters at most."""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, 4000, max(0, size - 4000))
    except OSError:
        return ""
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""


def _close_all_but(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep) + [4096]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def spawn(ctl: socket.socket, request: dict, fd: int, mode: str, root: str) -> tuple[int, Child]:
    """Fork a student process serving the judge on ``fd``; return (its PID as the judge sees it,
    what this server keeps about it: the PID of the process forked here, which ends with the student
    process's exit code, and its log)."""
    work, slot = str(request["work"]), int(request.get("slot", 0))
    limits = sandbox.Limits(**{k: int(v) for k, v in (request.get("limits") or {}).items() if k in sandbox.Limits.__annotations__})
    log = _log_file()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            ctl.close()
            os.close(r)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            _close_all_but({0, 1, 2, fd, w})
            sandbox.enter(mode, work, slot, limits, root, lambda p: os.write(w, f"{p}\n".encode()))
            try:
                os.close(w)  # the process that serves the judge keeps no copy of the report pipe
            except OSError:
                pass
            os.environ.update(HOME=work, TMPDIR=work, MPLCONFIGDIR=work)
            from .student import main

            code = main(socket.socket(fileno=fd), work)
        except BaseException:  # noqa: BLE001 - the judge sees the socket close and reports "crashed"
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(w)
    os.close(fd)
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(r, 32)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return (int(data) if data.strip().isdigit() else pid), Child(pid, work, slot, limits.disk_mb, log)


def _reap(statuses: dict[int, int], pid: int = -1) -> None:
    """Record the exit code of every forked child that ended (or of ``pid``), without waiting."""
    while True:
        try:
            ended, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if ended == 0:
            return
        statuses[ended] = os.waitstatus_to_exitcode(status)
        if pid != -1:
            return


def _status(request: dict, children: dict[int, Child], statuses: dict[int, int], mode: str) -> dict:
    """The exit code of a student's process, waiting up to ``request["wait"]`` seconds for it to end,
    why this server killed it, and the last line of its output (its log is closed once it ended)."""
    student = int(request["pid"])
    child = children.get(student)
    forked = child.forked if child else student
    until = time.monotonic() + float(request.get("wait", 0))
    while forked not in statuses and time.monotonic() < until:
        _reap(statuses, forked)
        if forked not in statuses:
            time.sleep(0.01)
    reply = {"status": statuses.get(forked), "note": child.note if child else "", "log": ""}
    if child is not None and child.log >= 0:
        reply["log"] = _last_line(child.log)
        if reply["status"] is not None:
            os.close(child.log)
            child.log = -1
    if reply["status"] is not None and mode == "user":
        _reap(statuses)
        if all(c.forked in statuses for c in children.values()):
            # nothing of this slot runs any more: a process the notebook detached from its group dies too
            for slot in {c.slot for c in children.values()}:
                sandbox.kill_user(sandbox.FIRST_UID + slot)
                sandbox.remove_user_files(sandbox.FIRST_UID + slot)
    return reply


def _over(student: int, child: Child, mode: str) -> str:
    """Why this student process must be killed for what it wrote ("" if it need not)."""
    if mode in ("namespaces", "userns"):
        note = sandbox.tmpfs_full(f"/proc/{student}/root{child.work}", child.disk_mb)
    else:  # without a tmpfs: a watcher, which in the user mode counts the slot user's files in /tmp too
        note = sandbox.usage(child.work, child.disk_mb, sandbox.FIRST_UID + child.slot if mode == "user" else None)
    return note


def _watch(children: dict[int, Child], statuses: dict[int, int], mode: str, only: int | None = None) -> None:
    """Kill every running student process (or only ``only``) whose working directory is over its cap."""
    for student, child in children.items():
        if (only is not None and student != only) or child.note or child.forked in statuses:
            continue
        note = _over(student, child, mode)
        if note:
            child.note = note
            for kill, target in ((os.killpg, student), (os.kill, student)):
                try:
                    kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _serve(ctl: socket.socket, mode: str, root: str, children: dict[int, Child]) -> None:
    """Answer ``spawn``, ``status`` and ``check`` requests until the judge closes the socket."""
    statuses: dict[int, int] = {}   # forked pid -> exit code
    watched = time.monotonic()
    while True:
        _reap(statuses)
        if time.monotonic() - watched >= WATCH_SECONDS:
            _watch(children, statuses, mode)
            watched = time.monotonic()
        ready, _, _ = select.select([ctl], [], [], WATCH_SECONDS)
        if not ready:
            continue
        message, fds, _, _ = socket.recv_fds(ctl, MAX_MESSAGE, 2)
        if not message:
            return
        try:
            request = json.loads(message)
            if request.get("op") == "spawn" and len(fds) == 1:
                _reap(statuses)
                for old in children.values():  # the judge asks only about its newest process
                    if old.forked in statuses and old.log >= 0:
                        os.close(old.log)
                        old.log = -1
                slot = int(request.get("slot", 0))
                if mode == "user" and all(c.forked in statuses for c in children.values() if c.slot == slot):
                    # a fresh start for the slot's user: nothing of an earlier submission runs or stays in /tmp
                    sandbox.kill_user(sandbox.FIRST_UID + slot)
                    sandbox.remove_user_files(sandbox.FIRST_UID + slot)
                student, child = spawn(ctl, request, fds[0], mode, root)
                children[student] = child
                _send(ctl, {"pid": student})
            elif request.get("op") == "status":
                _send(ctl, _status(request, children, statuses, mode))
            elif request.get("op") == "check":
                student = int(request["pid"])
                _reap(statuses)
                _watch(children, statuses, mode, only=student)
                _send(ctl, {"note": children[student].note if student in children else ""})
            else:
                for fd in fds:
                    os.close(fd)
                _send(ctl, {"error": "unknown request"})
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            _send(ctl, {"error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ctl = socket.socket(fileno=int(argv[0]))
    if sys.platform.startswith("linux"):
        sandbox._prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
    preload()
    root = tempfile.mkdtemp(prefix="course-sandbox-")
    os.chmod(root, 0o755)
    mode = os.environ.get("COURSE_SANDBOX") or sandbox.probe(root)
    if mode not in sandbox.MODES:
        mode = "none"
    _send(ctl, {"ready": True, "mode": mode, "pid": os.getpid()})
    children: dict[int, Child] = {}   # student pid -> what this server keeps about it
    try:
        _serve(ctl, mode, root, children)
    finally:
        for student in children:
            try:
                os.kill(student, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if mode == "user":
            for slot in {c.slot for c in children.values()}:
                sandbox.kill_user(sandbox.FIRST_UID + slot)
                sandbox.remove_user_files(sandbox.FIRST_UID + slot)
        sandbox.cleanup_root(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
