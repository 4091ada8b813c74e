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
    from course_tools.grading.assign import discover_labs

    return discover_labs()


def once_per_run(folder: Path, testrun_uid: str, work):
    """Return ``work()``'s JSON-able result, computed once per test run even when pytest-xdist runs
    the suite in several processes: a lock and a record make the first process do the work and the
    others read its result."""
    import fcntl
    import json

    folder.mkdir(exist_ok=True)
    record = folder / ".done-by.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = json.loads(record.read_text()) if record.exists() else {}
        if saved.get("testrun_uid") != testrun_uid:
            saved = {"testrun_uid": testrun_uid, "result": work()}
            record.write_text(json.dumps(saved))
    return saved["result"]


@pytest.fixture(scope="session")
def assigned(labs, testrun_uid) -> Path:  # testrun_uid: pytest-xdist's id of this run
    """Run ``make assign`` once per test run (student notebooks, autograders, the book's copies)."""
    from course_tools.grading.assign import assign, copy_for_book

    def assign_all():
        for lab in labs:
            assign(lab, out)
            copy_for_book(lab, out)

    out = REPO / "_assign"
    once_per_run(out, testrun_uid, assign_all)
    return out


PYTHON = sys.executable


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the markers
def pytest_collection_modifyitems(config, items):
    """Tests of the built website share one build, and grading tests one set of warm judges: keep
    each group in one pytest-xdist worker."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "built_book" in names:
            item.add_marker(pytest.mark.xdist_group("website"))
        elif "grader" in names:
            item.add_marker(pytest.mark.xdist_group("grading"))


@pytest.fixture(scope="session")
def grader(assigned):
    """Two warm judges, with their fork servers, shared by every grading test of the run."""
    from course_tools.grading.batch import Grader

    with Grader(2) as g:
        yield g


def run(cmd, **kwargs):
    import subprocess

    kwargs.setdefault("cwd", REPO)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kwargs)


@pytest.fixture(scope="session")
def built_book(assigned, testrun_uid):
    """Build the website once per test run, as `make book` does, with warnings as errors.

    The website tests are grouped into one pytest-xdist worker; should two workers ever need the
    build, :func:`once_per_run` keeps them from running ``jupyter-book build`` at once (they would
    race on the execution cache's database)."""
    import subprocess

    def build():
        env = dict(os.environ, COURSE_PROFILE="ci", TQDM_DISABLE="1")
        env.pop("MPLBACKEND", None)  # with Agg forced, the kernels would draw no figure
        proc = run([Path(PYTHON).with_name("jupyter-book"), "build", ".", "-W", "-n", "--keep-going"], env=env)
        return [proc.args, proc.returncode, proc.stdout, proc.stderr]

    proc = subprocess.CompletedProcess(*once_per_run(REPO / "_build", testrun_uid, build))
    return {"process": proc, "html": REPO / "_build" / "html"}
