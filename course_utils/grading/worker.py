"""Grade one submission inside the isolated process that :mod:`course_utils.grading.batch` starts.

Run as ``python -I -m course_utils.grading.worker`` with the submission as ``submission.ipynb`` in
the (fresh, empty) working directory. It reads a JSON request from standard input (the test files,
hidden ones included, and a nonce), and writes one line, ``<nonce> <json>``, to the file descriptor
the request names. Nothing it prints reaches a student.

Order of events, and why:

1. Import everything the tests rely on, and take a *snapshot* of the objects the tests and the
   grading machinery call (``torch.testing``, ``numpy.testing``, builtins, otter's test classes,
   this module, ...): student code runs in this same process, so it could replace them.
2. (The parent has already made the file system read-only outside the working directory, cut the
   network and dropped every capability, where the operating system allows.)
3. Seed everything and run the student's code cells one at a time in an in-process IPython shell
   (magics and ``display`` work; the notebook's kernel name does not matter). An exception in a
   cell is recorded and the next cell still runs, so independent questions are still graded.
   Printing is capped. otter's own grader cells are skipped: the worker, not the notebook, runs the
   tests.
4. Restore every snapshotted object that student code replaced, reset trace hooks and signal
   handlers, and *flag* the submission if anything had to be restored.
5. Run every test (hidden ones too) with otter's exception-based test runner, each under an alarm.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import signal
import sys
import time
import traceback
import types

OUTPUT_CAP = 20_000  # characters of student output kept (the rest is counted and dropped)
SKIP_LINE = re.compile(
    r"^\s*(#.*|import otter|grader\s*=\s*otter\.Notebook\(.*\)|grader\.(check|check_all|export)\(.*\)|)\s*$"
)


class CappedWriter(io.TextIOBase):
    """A text stream that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.cap, self.kept, self.total = cap, [], 0

    def writable(self) -> bool:
        return True

    def write(self, s) -> int:
        s = str(s)
        room = self.cap - sum(len(k) for k in self.kept) if self.total < self.cap else 0
        if room > 0:
            self.kept.append(s[:room])
        self.total += len(s)
        return len(s)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        body = "".join(self.kept)
        if self.total > self.cap:
            body += f"\n[... output truncated: {self.total - self.cap} more characters]"
        return body


def _is_grader_cell(source: str) -> bool:
    """otter's own cells (initialisation, ``grader.check``): the worker runs the tests itself."""
    lines = source.splitlines()
    return bool(lines) and all(SKIP_LINE.match(line) for line in lines) and "grader" in source or not source.strip()


def code_cells(nb: dict) -> list[str]:
    out = []
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if not _is_grader_cell(src):
            out.append(src)
    return out


# --- snapshot and restore -------------------------------------------------------------------------

WATCHED_MODULES = (
    "builtins", "math", "inspect", "traceback", "json", "types", "functools", "operator", "signal",
    "numpy", "numpy.testing", "numpy.testing._private.utils",
    "torch", "torch.testing", "torch.testing._comparison", "torch.nn.functional", "torch.autograd",
    "otter", "otter.test_files", "otter.test_files.abstract_test", "otter.test_files.exception_test",
    "course_utils.grading.worker",
)
WATCHED_CLASS_MODULES = ("otter.test_files", "course_utils.grading")
IGNORED = {("builtins", "_"), ("builtins", "__IPYTHON__"), ("builtins", "display"), ("builtins", "get_ipython"),
           ("builtins", "exit"), ("builtins", "quit")}


def take_snapshot() -> list:
    import torch

    entries = []
    for name in WATCHED_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        for key, value in list(vars(module).items()):
            if (name, key) in IGNORED:
                continue
            entries.append(("attr", module, key, value))
            if isinstance(value, types.FunctionType):
                entries.append(("code", value, value.__code__, (value.__defaults__, value.__kwdefaults__)))
            if isinstance(value, type) and value.__module__.startswith(WATCHED_CLASS_MODULES):
                for ckey, cvalue in list(vars(value).items()):
                    entries.append(("cls", value, ckey, cvalue))
    for ckey, cvalue in list(vars(torch.Tensor).items()):
        entries.append(("cls", torch.Tensor, ckey, cvalue))
    return entries


def restore_snapshot(entries: list) -> list[str]:
    """Put back everything student code replaced; return a description of each replacement."""
    changed = []
    for kind, owner, key, value in entries:
        if kind == "attr":
            current = vars(owner).get(key, _MISSING)
            if current is not value:
                changed.append(f"{owner.__name__}.{key} was replaced")
                setattr(owner, key, value)
        elif kind == "cls":
            current = vars(owner).get(key, _MISSING)
            if current is not value:
                changed.append(f"{owner.__qualname__}.{key} was replaced")
                try:
                    setattr(owner, key, value)
                except (AttributeError, TypeError):
                    pass
        else:  # the code object and defaults of a function
            defaults, kwdefaults = value
            if owner.__code__ is not key or owner.__defaults__ is not defaults or owner.__kwdefaults__ is not kwdefaults:
                changed.append(f"the code of {owner.__module__}.{owner.__qualname__} was replaced")
                owner.__code__, owner.__defaults__, owner.__kwdefaults__ = key, defaults, kwdefaults
    return changed


class _Missing:
    pass


_MISSING = _Missing()


# --- the run ----------------------------------------------------------------------------------------


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("this test ran past its time limit")


def _memory_error(exc) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def main() -> int:
    request = json.loads(sys.stdin.read())
    sys.stdin.close()
    nonce, result_fd = request["nonce"], int(request["result_fd"])
    test_seconds = float(request.get("test_seconds", 60))
    result = {"cells": 0, "errors": [], "memory_error": False, "flags": [], "questions": {}, "output_chars": 0}

    # 1. everything the tests need, imported before any student code, then the snapshot
    import numpy  # noqa: F401
    import numpy.testing  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    import torch.testing  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell
    from otter.test_files import ExceptionTestFile

    from course_utils.runtime import seed_everything

    with open("submission.ipynb", encoding="utf-8") as f:
        nb = json.load(f)
    cells = code_cells(nb)
    import torch._dynamo  # noqa: F401 - importing it rebinds torch.manual_seed: do it before the snapshot
    seed_everything(0)
    snapshot = take_snapshot()
    # local names for everything used after student code: module globals can be replaced
    restore, capped, dumps, on_alarm, too_slow = restore_snapshot, CappedWriter, json.dumps, _alarm, TestTimeout
    real_stdout, real_stderr = sys.stdout, sys.stderr
    result_stream = os.fdopen(result_fd, "w")

    # 3. the student's code
    shell = InteractiveShell.instance()
    transformers = (list(shell.input_transformers_cleanup), list(shell.input_transformers_post))
    captured = CappedWriter()
    sys.stdout = sys.stderr = captured
    try:
        import matplotlib.pyplot as plt
    except Exception:  # pragma: no cover - matplotlib is a dependency
        plt = None
    for i, source in enumerate(cells):
        try:
            outcome = shell.run_cell(source, store_history=False)
        except BaseException as exc:  # noqa: BLE001 - a student's SystemExit or worse
            result["errors"].append({"cell": i, "error": type(exc).__name__})
            continue
        error = outcome.error_before_exec or outcome.error_in_exec
        result["cells"] += 1
        if plt is not None:
            try:
                plt.close("all")
            except Exception:
                pass
        if error is not None:
            result["errors"].append({"cell": i, "error": type(error).__name__})
            if _memory_error(error):
                result["memory_error"] = True
                break
    sys.stdout, sys.stderr = real_stdout, real_stderr
    result["output_chars"] = captured.total
    env = shell.user_ns

    # 4. undo tampering, and say so
    flags = restore(snapshot)
    if sys.gettrace() is not None or sys.getprofile() is not None:
        flags.append("a trace or profile hook was installed")
        sys.settrace(None)
        sys.setprofile(None)
    if (list(shell.input_transformers_cleanup), list(shell.input_transformers_post)) != transformers:
        flags.append("IPython input transformers were changed")
    result["flags"] = flags
    signal.signal(signal.SIGALRM, on_alarm)

    # 5. the tests, each under an alarm
    for name, source in request["tests"].items():
        cases = []
        try:
            test_file = ExceptionTestFile.from_string(source, path=f"{name}.py")
        except Exception as exc:  # a broken test file is the instructor's bug: report it loudly
            result["questions"][name] = {"error": f"test file failed to load: {exc!r}", "cases": []}
            continue
        for tc in test_file.test_cases:
            started = time.perf_counter()
            passed, message = True, ""
            quiet = capped(2000)
            sys.stdout = sys.stderr = quiet
            signal.setitimer(signal.ITIMER_REAL, test_seconds)
            try:
                tc.body.call_func(env)
            except BaseException as exc:  # noqa: BLE001 - SystemExit from student code fails the test
                passed = False
                message = f"{type(exc).__name__}: {exc}"[:1500]
                if isinstance(exc, too_slow):
                    message = "the test ran past its time limit"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stdout, sys.stderr = real_stdout, real_stderr
            cases.append({
                "name": tc.name, "hidden": bool(tc.hidden), "points": float(tc.points or 0), "passed": passed,
                "message": message, "seconds": round(time.perf_counter() - started, 3),
            })
        result["questions"][name] = {"cases": cases, "all_or_nothing": bool(getattr(test_file, "all_or_nothing", False))}

    result_stream.write(nonce + " " + dumps(result) + "\n")
    result_stream.flush()
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # the worker itself failed: the parent reports "crashed"
        traceback.print_exc(file=sys.__stderr__)
        code = 3
    sys.stdout.flush()
    os._exit(code)
