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
def built_book(assigned):
    """Build the website once per session, as `make book` does, with warnings as errors."""
    env = dict(os.environ, COURSE_PROFILE="ci", TQDM_DISABLE="1")
    env.pop("MPLBACKEND", None)  # with Agg forced, the kernels would draw no figure into the pages
    jb = Path(PYTHON).with_name("jupyter-book")
    proc = run([jb, "build", ".", "-W", "-n", "--keep-going"], env=env)
    return {"process": proc, "html": REPO / "_build" / "html"}
