"""``make grade``: grade a folder of submissions safely into a CSV gradebook and feedback files.

Every submission gets one row and one status, and the batch never aborts:

``graded``   the notebook ran (its own errors included) and every test was run;
``timeout``  it ran past the wall-clock limit and was killed with everything it started;
``crashed``  the process died (``os._exit``, a segfault, the memory cap) or student code ran out of
             memory: never a silent 0;
``invalid``  not a notebook (malformed JSON, an empty file) or another lab's notebook;
``flagged``  graded, but student code replaced the test helpers or the grader, or hid from them
             (the score is computed after undoing it; a person should look).

Each submission runs in its own process (:mod:`course_utils.grading.worker`) with a fresh working
directory, the ``ci`` profile, fixed seeds, a memory cap, a cap on written files, no network and
its own PID and mount namespaces with a read-only file system and no capabilities where the
operating system allows (``unshare`` and ``setpriv`` as root). Submissions run in parallel, one per core.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .assign import REPO, find_lab
from .leaks import redact, secret_lines

STATUSES = ("graded", "timeout", "crashed", "invalid", "flagged")
SUSPICIOUS = {
    r"input_transformers": "edits IPython's input transformers",
    r"\botter\b(?!\.Notebook)": "touches the otter grader",
    r"course_utils\.grading": "touches the course's grader",
    r"__code__": "rewrites a function's code object",
    r"sys\.(settrace|setprofile)|threading\.settrace": "installs a trace hook",
    r"gc\.get_objects|gc\.get_referrers": "searches the interpreter's memory",
    r"(torch|np|numpy)\.testing\.\w+\s*=(?!=)": "replaces a test helper",
    r"setattr\(\s*(torch|np|numpy|builtins)": "replaces library functions",
    r"/proc/self|/proc/\d": "reads process internals",
}


@dataclass
class Limits:
    timeout: float = 300.0         # seconds of wall clock per submission
    memory_mb: int = 4096          # address-space cap per submission
    file_mb: int = 64              # largest file a submission may write
    test_seconds: float = 60.0     # per test case
    jobs: int = max(1, os.cpu_count() or 1)


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


# --- validation, before any student code runs --------------------------------------------------------


def _lab_title(lab) -> str:
    nb = json.loads(lab.master.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for line in src.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def validate(path: Path, lab, questions: dict) -> tuple[dict | None, str]:
    """Parse a submission without running it; return (notebook, "") or (None, why it is invalid)."""
    if path.suffix != ".ipynb":
        return None, f"not a notebook: expected a .ipynb file, got {path.name!r}"
    raw = path.read_bytes()
    if not raw.strip():
        return None, "empty file"
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not valid notebook JSON ({exc.__class__.__name__}: {str(exc)[:120]})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "not a Jupyter notebook: no list of cells"
    if any(not isinstance(c, dict) or "cell_type" not in c for c in nb["cells"]):
        return None, "not a Jupyter notebook: a cell has no cell_type"
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    tag = meta.get("course", {}).get("lab") if isinstance(meta.get("course"), dict) else None
    if tag is not None and tag != lab.name:
        return None, f"this is the notebook of lab {tag!r}, not {lab.name!r}"
    if tag is None:
        text = json.dumps(nb["cells"])
        checks = set(re.findall(r'grader\.check\(\\"(\w+)\\"\)', text))
        title = _lab_title(lab)
        if checks and not checks & set(questions):
            return None, f"its questions {sorted(checks)} belong to another lab, not {lab.name!r}"
        if not checks and not (title and title in text):
            return None, f"not recognisably a submission for {lab.name!r} (no lab metadata, title or questions)"
    return nb, ""


def static_flags(nb: dict) -> list[str]:
    """Patterns in the submission's code that only tampering needs (reviewed by a person, not scored)."""
    from .worker import code_cells

    source = "\n".join(code_cells(nb))
    return [why for pattern, why in SUSPICIOUS.items() if re.search(pattern, source)]


# --- running one submission --------------------------------------------------------------------------


JAIL = (
    # inside new mount, network and PID namespaces: everything read-only but the working directory,
    # then no capabilities at all (so the read-only mounts stay read-only), then the worker
    'mount --bind "$PWD" "$PWD" && mount -o remount,bind,ro / && '
    'for m in $(awk \'{print $2}\' /proc/mounts | grep -v -e "^/$" -e "^/proc" -e "^/dev" -e "^/sys"); do '
    '[ "$m" = "$PWD" ] || mount -o remount,bind,ro "$m" 2>/dev/null; done; '
    'exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"'
)


@lru_cache(maxsize=1)
def sandbox_prefix() -> tuple[str, ...]:
    """The isolation this machine allows: new network, PID and mount namespaces with a read-only
    file system and no capabilities (``unshare`` and ``setpriv`` as root on Linux), else none."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None or sys.platform != "linux" or os.geteuid() != 0:
        return ()
    cmd = (unshare, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", JAIL, "jail")
    try:
        with tempfile.TemporaryDirectory() as probe:
            ok = subprocess.run(cmd + ("true",), cwd=probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return cmd if ok else ()


def _limit_resources(limits: Limits):
    def apply():
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        size = limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail instead of killing
    return apply


def run_submission(nb: dict, lab_dir: Path, tests: dict, limits: Limits) -> tuple[str, dict | None, str]:
    """Run the worker on one parsed notebook; return (status, worker result or None, note)."""
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        for p in lab_dir.iterdir():  # the lab's data files, next to the notebook as students have them
            if p.suffix != ".ipynb" and p.name != "tests" and p.is_file():
                shutil.copy2(p, work / p.name)
        (work / "submission.ipynb").write_text(json.dumps(nb))
        log_path = Path(tmp) / "worker.log"
        read_fd, write_fd = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work), "MPLCONFIGDIR": str(work), "TMPDIR": str(work), "MPLBACKEND": "Agg",
            "COURSE_PROFILE": "ci", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1", "LANG": "C.UTF-8",
        }
        request = json.dumps({"nonce": nonce, "result_fd": write_fd, "tests": tests, "test_seconds": limits.test_seconds})
        cmd = [*sandbox_prefix(), sys.executable, "-I", "-m", "course_utils.grading.worker"]
        chunks: list[bytes] = []
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=work, env=env, stdin=subprocess.PIPE, stdout=log, stderr=log,
                pass_fds=(write_fd,), start_new_session=True, preexec_fn=_limit_resources(limits),
            )
            os.close(write_fd)
            reader = threading.Thread(target=_drain, args=(read_fd, chunks), daemon=True)
            reader.start()
            try:
                proc.stdin.write(request.encode())
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc)
            reader.join(timeout=10)
        tail = log_path.read_bytes()[-2000:].decode("utf-8", "replace")
    if timed_out:
        return "timeout", None, f"killed after {limits.timeout:.0f} s"
    result = _parse_result(b"".join(chunks), nonce)
    if result is None:
        code = proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        last = tail.strip().splitlines()[-1][:200] if tail.strip() else ""
        return "crashed", None, f"the notebook's process died ({how}) before grading finished" + (f": {last}" if last else "")
    if result.get("memory_error"):
        return "crashed", result, f"ran out of memory (cap {limits.memory_mb} MB) in a code cell"
    return "graded", result, ""


def _drain(fd: int, chunks: list) -> None:
    with os.fdopen(fd, "rb") as f:
        while True:
            block = f.read(65536)
            if not block:
                break
            if sum(len(c) for c in chunks) < 16 * 2**20:
                chunks.append(block)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and everything it started (its session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait
        pass


def _parse_result(data: bytes, nonce: str) -> dict | None:
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(nonce + " "):
            try:
                return json.loads(line[len(nonce) + 1:])
            except json.JSONDecodeError:
                return None
    return None


# --- scores and feedback -----------------------------------------------------------------------------


def score_question(q: dict) -> float:
    cases = q.get("cases", [])
    if q.get("all_or_nothing"):
        return sum(c["points"] for c in cases) if cases and all(c["passed"] for c in cases) else 0.0
    return sum(c["points"] for c in cases if c["passed"])


def feedback_text(row: Row, lab_name: str, result: dict | None, questions: dict, secret: set[str]) -> str:
    lines = [f"# Feedback: {lab_name}, {row.submission}", "", f"Status: **{row.status}**"]
    if row.note:
        lines.append(f"Note: {row.note}")
    lines.append("")
    if result is None:
        lines.append("Your notebook could not be graded, so no question was scored.")
        return redact("\n".join(lines) + "\n", secret)
    if result.get("errors"):
        cells = ", ".join(f"code cell {e['cell'] + 1} ({e['error']})" for e in result["errors"][:10])
        lines += [f"These cells raised an error when your notebook ran from top to bottom: {cells}.", ""]
    for name, info in questions.items():
        q = result["questions"].get(name, {"cases": []})
        lines.append(f"## {name}: {row.scores.get(name, 0):g} / {info['points']:g}")
        for c in q.get("cases", []):
            if c["hidden"]:
                continue
            lines.append(f"- public test `{c['name']}`: " + ("passed" if c["passed"] else "failed"))
            if not c["passed"] and c["message"]:
                lines.append("  ```\n  " + c["message"][:800].replace("\n", "\n  ") + "\n  ```")
        lines.append("- hidden tests: run by the grader, results not shown")
        lines.append("")
    lines.append(f"Total: {row.total:g} / {row.possible:g}")
    return redact("\n".join(lines) + "\n", secret)


def grade_one(path: Path, lab, assigned: Path, tests: dict, questions: dict, limits: Limits, secret: set[str]) -> Row:
    start = time.perf_counter()
    possible = sum(q["points"] for q in questions.values())
    row = Row(submission=path.name, status="invalid", scores={q: 0.0 for q in questions}, possible=possible)
    result = None
    try:
        nb, why = validate(path, lab, questions)
        if nb is None:
            row.note = why
        else:
            status, result, note = run_submission(nb, assigned / "student", tests, limits)
            row.status, row.note = status, note
            if result is not None:
                for name in questions:
                    row.scores[name] = round(score_question(result["questions"].get(name, {})), 4)
                flags = list(result.get("flags", [])) + static_flags(nb)
                if flags and status == "graded":
                    row.status = "flagged"
                    row.note = "; ".join(dict.fromkeys(flags))
                if status == "crashed":
                    row.scores = {q: 0.0 for q in questions}
            row.total = round(sum(row.scores.values()), 4)
    except Exception as exc:  # never abort the batch: the grader's own failure is a status too
        row.status, row.note = "crashed", f"grader error: {exc.__class__.__name__}: {exc}"
    row.seconds = round(time.perf_counter() - start, 2)
    row.feedback = feedback_text(row, lab.name, result, questions, secret)
    return row


def grade_folder(lab_name: str, submissions: Path, out: Path | None = None, limits: Limits | None = None,
                 assigned_root: Path | None = None, progress: bool = True) -> list[Row]:
    """Grade every file in ``submissions`` against lab ``lab_name``; write ``gradebook.csv`` and
    ``feedback/`` into ``out`` (default ``_grades/<lab>``). Needs ``make assign`` first."""
    limits = limits or Limits()
    lab = find_lab(lab_name)
    assigned = (assigned_root or REPO / "_assign") / lab.name
    if not (assigned / "tests").is_dir():
        raise SystemExit(f"{assigned}/tests is missing: run `make assign` first")
    tests = {p.stem: p.read_text() for p in sorted((assigned / "tests").glob("*.py"))}
    questions = json.loads((assigned / "questions.json").read_text())
    secret = secret_lines(lab.master, tests)
    files = sorted(p for p in Path(submissions).iterdir() if p.is_file() and not p.name.startswith("."))
    out = out or REPO / "_grades" / lab.name
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=limits.jobs) as pool:
        futures = [pool.submit(grade_one, p, lab, assigned, tests, questions, limits, secret) for p in files]
        rows = []
        for f in futures:
            row = f.result()
            rows.append(row)
            if progress:
                print(f"  {row.submission:40s} {row.status:8s} {row.total:6g} / {row.possible:g}  ({row.seconds:.1f} s)", flush=True)
    write_gradebook(rows, list(questions), out / "gradebook.csv")
    for row in rows:
        (out / "feedback" / f"{Path(row.submission).stem}.md").write_text(row.feedback)
    return rows


def write_gradebook(rows: list[Row], questions: list[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "status", *questions, "total", "possible", "seconds", "note"])
        for r in rows:
            w.writerow([r.submission, r.status, *(f"{r.scores.get(q, 0):g}" for q in questions),
                        f"{r.total:g}", f"{r.possible:g}", f"{r.seconds:.2f}", r.note])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade a folder of lab submissions into a CSV gradebook.")
    parser.add_argument("lab", help="the lab, e.g. 00_getting_started")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: _grades/<lab>)")
    parser.add_argument("--timeout", type=float, default=Limits.timeout, help="seconds per submission")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory cap per submission")
    parser.add_argument("--jobs", type=int, default=Limits().jobs, help="submissions graded at once")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    limits = Limits(timeout=args.timeout, memory_mb=args.memory_mb, jobs=args.jobs)
    start = time.perf_counter()
    rows = grade_folder(args.lab, args.submissions, args.out, limits)
    out = args.out or REPO / "_grades" / args.lab
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    elapsed = time.perf_counter() - start
    print(f"graded {len(rows)} submissions in {elapsed:.1f} s ({60 * len(rows) / max(elapsed, 1e-9):.1f} per minute): "
          + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    print(f"gradebook: {out / 'gradebook.csv'}\nfeedback:  {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
