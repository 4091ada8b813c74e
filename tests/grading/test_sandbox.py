"""The student process's sandbox (course_tools/grading/sandbox.py), seen from inside: a notebook
that records what it can see and do, run by the real fork server, read back by the judge."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from course_tools import REPO
from course_tools.grading.judge import ForkServer, Limits, StudentProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux namespaces")

PROBE = r'''
import os, socket, json, sys
checks = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "env": sorted(os.environ)}
def attempt(fn):
    try:
        fn()
        return "allowed"
    except Exception as exc:
        return type(exc).__name__
checks["write_etc"] = attempt(lambda: open("/etc/course-sandbox-test", "w"))
checks["write_tmp_host"] = attempt(lambda: open("REPO/course-sandbox-test", "w"))
checks["write_work"] = attempt(lambda: open("scratch.txt", "w").write("ok"))
checks["repo_labs"] = os.path.exists("REPO/labs")
checks["repo_tests"] = os.path.exists("REPO/_assign") or os.path.exists("REPO/tests")
checks["network"] = attempt(lambda: socket.create_connection(("1.1.1.1", 53), timeout=1))
checks["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
status = open("/proc/self/status").read()
checks["capabilities"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
checks["no_new_privs"] = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0]
def big_file():
    with open("big.bin", "wb") as f:
        for _ in range(100):
            f.write(b"x" * 2**20)
checks["big_file"] = attempt(big_file)
checks["big_allocation"] = attempt(lambda: bytearray(6 * 2**30))
checks["open_fds"] = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        checks["open_fds"][fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
import torch, course_utils.data, sklearn
checks["imports"] = "ok"
'''.replace("REPO", str(REPO))


@pytest.fixture(scope="module")
def inside():
    server = ForkServer()
    work = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    try:
        os.chmod(work, 0o777)
        nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": PROBE}], "metadata": {}}
        (work / "submission.ipynb").write_text(json.dumps(nb))
        process = StudentProcess(server, work, 0, Limits(memory_mb=4096, file_mb=64), None)
        report = process.wait_ready(time.monotonic() + 120, nb)
        assert not report["errors"], report["errors"]
        process.link.deadline = time.monotonic() + 30
        checks = process.link.lookup("checks")
        process.close()
        yield server.mode, checks
    finally:
        server.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def test_root_gets_the_strongest_isolation(inside):
    mode, _ = inside
    if os.geteuid() == 0:
        assert mode == "namespaces", "as root on Linux every isolation layer must be available"
    else:
        assert mode in ("userns", "none")
        if mode == "none":
            pytest.skip("this machine offers no user namespaces")


def test_the_notebook_runs_as_an_unprivileged_user_with_no_capabilities(inside):
    mode, checks = inside
    assert checks["imports"] == "ok"
    assert int(checks["capabilities"], 16) == 0 and checks["no_new_privs"] == "1"
    if mode == "namespaces":
        assert checks["uid"] != 0


def test_it_sees_no_repository_no_test_and_no_other_process(inside):
    mode, checks = inside
    assert not checks["repo_labs"] and not checks["repo_tests"], "the masters and the tests must be out of sight"
    # PID 1 is the namespace's init, which only waits for the notebook's process (PID 2)
    assert checks["processes"] == [1, 2] and checks["pid"] == 2, f"it sees other processes: {checks['processes']}"


def test_it_writes_only_its_working_directory_and_has_no_network(inside):
    _, checks = inside
    assert checks["write_work"] == "allowed"
    assert checks["write_etc"] != "allowed" and checks["write_tmp_host"] != "allowed"
    assert checks["network"] != "allowed"


def test_its_files_memory_and_descriptors_are_limited(inside):
    _, checks = inside
    assert checks["big_file"] != "allowed", "a 100 MB file must hit the 64 MB cap"
    assert checks["big_allocation"] == "MemoryError"
    kinds = {fd: target.split(":")[0] if ":[" in target else target for fd, target in checks["open_fds"].items()}
    assert [k for k in kinds.values() if k == "socket"] == ["socket"], f"one socket (to the judge) only: {kinds}"
    # (its output goes to an anonymous file, "/memfd:student-log", that no path leads to)
    outside = [t for t in kinds.values() if t.startswith("/") and not t.startswith((checks["cwd"], "/dev/null", "/proc",
                                                                                    "/memfd:student-log"))]
    assert not outside, f"it holds files outside its working directory: {outside}"
    assert not {"COURSE_REPO", "HOME_OF_JUDGE"} & set(checks["env"]) and "COURSE_PROFILE" in checks["env"]
