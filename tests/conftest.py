"""Shared fixtures. Every notebook and grading test runs under the ``ci`` run profile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ["COURSE_PROFILE"] = "ci"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def labs():
    from course_utils.grading.assign import discover_labs

    return discover_labs()


@pytest.fixture(scope="session")
def assigned(labs, testrun_uid) -> Path:  # testrun_uid: pytest-xdist's id of this run
    """Run ``make assign`` once per test run (student notebooks, autograders, the book's copies),
    even when pytest-xdist runs the suite in several processes: a lock and a marker make the
    first process do it and the others wait for it."""
    import fcntl

    from course_utils.grading.assign import assign, copy_for_book

    out = REPO / "_assign"
    out.mkdir(exist_ok=True)
    marker = out / ".assigned-by"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and marker.read_text() == testrun_uid):
            for lab in labs:
                assign(lab, out)
                copy_for_book(lab, out)
            marker.write_text(testrun_uid)
    return out


PYTHON = sys.executable


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the markers
def pytest_collection_modifyitems(config, items):
    """Tests of the built website share one build: keep them in one pytest-xdist worker."""
    for item in items:
        if "built_book" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("website"))


def run(cmd, **kwargs):
    import subprocess

    kwargs.setdefault("cwd", REPO)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kwargs)


@pytest.fixture(scope="session")
def built_book(assigned, testrun_uid):
    """Build the website once per test run, as `make book` does, with warnings as errors.

    The website tests are grouped into one pytest-xdist worker, but should two workers ever need
    the build, a lock makes the first one build and the other reuse its result: two concurrent
    ``jupyter-book build`` runs would race on the execution cache's database."""
    import fcntl
    import json
    import subprocess

    out = REPO / "_build"
    out.mkdir(exist_ok=True)
    record = out / ".built-by.json"
    with open(out / ".book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = json.loads(record.read_text()) if record.exists() else {}
        if saved.get("testrun_uid") != testrun_uid:
            env = dict(os.environ, COURSE_PROFILE="ci", TQDM_DISABLE="1")
            env.pop("MPLBACKEND", None)  # with Agg forced, the kernels would draw no figure
            jb = Path(PYTHON).with_name("jupyter-book")
            proc = run([jb, "build", ".", "-W", "-n", "--keep-going"], env=env)
            saved = {"testrun_uid": testrun_uid, "args": proc.args, "returncode": proc.returncode,
                     "stdout": proc.stdout, "stderr": proc.stderr}
            record.write_text(json.dumps(saved))
    proc = subprocess.CompletedProcess(saved["args"], saved["returncode"], saved["stdout"], saved["stderr"])
    return {"process": proc, "html": out / "html"}
