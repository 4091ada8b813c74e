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
def assigned(labs) -> Path:
    """Run ``make assign`` once per session (student notebooks, autograders, the book's copies)."""
    from course_utils.grading.assign import assign, copy_for_book

    out = REPO / "_assign"
    for lab in labs:
        assign(lab, out)
        copy_for_book(lab, out)
    return out


def run(cmd, **kwargs):
    import subprocess

    kwargs.setdefault("cwd", REPO)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kwargs)


PYTHON = sys.executable


@pytest.fixture(scope="session")
def built_book(assigned):
    """Build the website once per session, as `make book` does, with warnings as errors."""
    env = dict(os.environ, COURSE_PROFILE="ci", MPLBACKEND="Agg", TQDM_DISABLE="1")
    jb = Path(PYTHON).with_name("jupyter-book")
    proc = run([jb, "build", ".", "-W", "-n", "--keep-going"], env=env)
    return {"process": proc, "html": REPO / "_build" / "html"}
