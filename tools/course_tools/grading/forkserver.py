"""A warm process that starts sandboxed student processes in milliseconds instead of seconds.

``python -I -m course_tools.grading.forkserver FD`` is started once per grading slot, as a fresh
interpreter (so its memory holds nothing the judge knows: no test, no answer), imports torch,
NumPy, SciPy, matplotlib, IPython, scikit-learn, scikit-image and ``course_utils``, loads the
bundled digits, and then forks one student process per submission over the control socket ``FD``
(a ``SOCK_SEQPACKET`` socket; each request is one JSON message, the student's end of its link to the
judge travels with it as a file descriptor):

``{"op": "spawn", "work": dir, "slot": k, "limits": {...}}`` + fd   ->  ``{"pid": n}``
``{"op": "status", "pid": n, "wait": seconds}``                    ->  ``{"status": exit code or null}``

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
)
MAX_MESSAGE = 65536


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


def spawn(ctl: socket.socket, request: dict, fd: int, mode: str, root: str) -> tuple[int, int]:
    """Fork a student process serving the judge on ``fd``; return (its PID as the judge sees it,
    the PID of the process forked here, which ends with the student process's exit code)."""
    work, slot = str(request["work"]), int(request.get("slot", 0))
    limits = sandbox.Limits(**{k: int(v) for k, v in (request.get("limits") or {}).items() if k in sandbox.Limits.__annotations__})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            ctl.close()
            os.close(r)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            log = os.open(os.path.join(work, ".student.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            if os.geteuid() == 0 and mode in ("namespaces", "user"):
                os.fchown(log, sandbox.FIRST_UID + slot, sandbox.FIRST_UID + slot)
            os.closerange(3, fd)
            os.closerange(fd + 1, w)
            os.closerange(w + 1, 4096)
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
    return (int(data) if data.strip().isdigit() else pid), pid


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


def _status(request: dict, children: dict[int, int], statuses: dict[int, int]) -> int | None:
    """The exit code of a student's process, waiting up to ``request["wait"]`` seconds for it to end."""
    forked = children.get(int(request["pid"]), int(request["pid"]))
    until = time.monotonic() + float(request.get("wait", 0))
    while forked not in statuses and time.monotonic() < until:
        _reap(statuses, forked)
        if forked not in statuses:
            time.sleep(0.01)
    return statuses.get(forked)


def _serve(ctl: socket.socket, mode: str, root: str, children: dict[int, int]) -> None:
    """Answer ``spawn`` and ``status`` requests until the judge closes the socket."""
    statuses: dict[int, int] = {}   # forked pid -> exit code
    while True:
        _reap(statuses)
        ready, _, _ = select.select([ctl], [], [], 0.2)
        if not ready:
            continue
        message, fds, _, _ = socket.recv_fds(ctl, MAX_MESSAGE, 2)
        if not message:
            return
        try:
            request = json.loads(message)
            if request.get("op") == "spawn" and len(fds) == 1:
                student, forked = spawn(ctl, request, fds[0], mode, root)
                children[student] = forked
                _send(ctl, {"pid": student})
            elif request.get("op") == "status":
                _send(ctl, {"status": _status(request, children, statuses)})
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
    children: dict[int, int] = {}   # student pid -> the process this server forked for it
    try:
        _serve(ctl, mode, root, children)
    finally:
        for student in children:
            try:
                os.kill(student, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        sandbox.cleanup_root(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
