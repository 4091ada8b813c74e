"""Shared fixtures. Every notebook and grading test runs under the ``ci`` run profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import PYTHON, REPO, once_per_run, run

os.environ["COURSE_PROFILE"] = "ci"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def labs():
    from course_tools.grading.assign import discover_labs

    return discover_labs()


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
