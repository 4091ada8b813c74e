"""The student process's sandbox (course_tools/grading/sandbox.py), seen from inside: a notebook
that records what it can see and do, run by the real fork server, read back by the judge.

"No network" is checked without the internet: TCP servers on the host's own addresses (loopback and
its other interfaces), outside the sandbox, must be out of the notebook's reach while the same code,
run by an ordinary process, reaches them (the positive control)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from course_tools import REPO
from course_tools.grading.judge import ForkServer, Limits, StudentProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux namespaces")

# the network attempt, run as it is inside the sandbox and by the unsandboxed control process
REACH = r'''
import errno, socket
def reach(targets, tag):
    """Connect to every (host, port), send ``tag``: "allowed", or the error's errno name."""
    out = {}
    for host, port in targets:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # (no name lookup: IPv4 numbers)
                s.settimeout(3)
                s.connect((host, port))
                s.sendall(tag.encode())
            out[f"{host}:{port}"] = "allowed"
        except OSError as exc:
            out[f"{host}:{port}"] = errno.errorcode.get(exc.errno, type(exc).__name__)
    return out
def interfaces():
    with open("/proc/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.read().splitlines()[2:])
'''
NO_NETWORK_MODES = ("namespaces", "userns")  # the modes that unshare the network namespace (sandbox.enter)


def local_addresses() -> list[str]:
    """The host's own IPv4 addresses other than loopback, from the kernel's table of local routes."""
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return []
    found = []
    for above, line in zip(lines, lines[1:]):
        address = above.split()[-1] if above.split() else ""
        if line.strip() == "/32 host LOCAL" and not address.startswith("127.") and address not in found:
            found.append(address)
    return found


class Listener:
    """A TCP server on one of the host's addresses, outside every sandbox. It accepts only when asked
    (:meth:`arrivals`), so a connection that got through waits in the backlog with the tag it sent."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.target = (address, self.sock.getsockname()[1])

    def arrivals(self, wait: float = 0.1) -> list[str]:
        tags = []
        while select.select([self.sock], [], [], wait)[0]:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(2)
                tags.append(conn.recv(64).decode(errors="replace"))
        return tags

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def listeners():
    """Servers on the host's loopback and on up to two of its other addresses (before any fork server
    starts; Python's sockets are not inherited across exec, so no sandbox holds them)."""
    servers = [Listener(a) for a in ["127.0.0.1"] + local_addresses()[:2]]
    yield servers
    for server in servers:
        server.close()


def reached_by_an_ordinary_process(servers) -> dict:
    """The positive control: the same code as the sandbox's, in a plain child process of the host."""
    targets = [s.target for s in servers]
    code = REACH + f"\nimport json\nprint(json.dumps(reach({targets!r}, 'control')))"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


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
checks["network"] = reach(TARGETS, "sandbox")
checks["interfaces"] = interfaces()
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


def run_in_sandbox(source: str, env: dict | None = None) -> tuple[str, dict]:
    """Run a one-cell notebook in the real fork server's sandbox; return the mode and its ``checks``."""
    server = ForkServer(env=env)
    work = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    try:
        os.chmod(work, 0o777)
        nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": source}], "metadata": {}}
        (work / "submission.ipynb").write_text(json.dumps(nb))
        process = StudentProcess(server, work, 0, Limits(memory_mb=4096, file_mb=64), None)
        report = process.wait_ready(time.monotonic() + 120, nb)
        assert not report["errors"], report["errors"]
        process.link.deadline = time.monotonic() + 30
        checks = process.link.lookup("checks")
        process.close()
        return server.mode, checks
    finally:
        server.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


# (TARGETS is defined by with_targets before this runs)
ENTER_THEN_REACH = r'''
import json, sys
from course_tools.grading import sandbox
mode, work, root = sys.argv[1:4]
sandbox.enter(mode, work, 0, sandbox.Limits(), root, lambda pid: None)
print(json.dumps({"network": reach(TARGETS, "sandbox"), "interfaces": interfaces()}), flush=True)
'''


def with_targets(source: str, servers) -> str:
    return REACH + f"\nTARGETS = {[s.target for s in servers]!r}\n" + source


@pytest.fixture(scope="module")
def inside(listeners):
    mode, checks = run_in_sandbox(with_targets(PROBE, listeners))
    checks["arrived"] = [tag for s in listeners for tag in s.arrivals()]  # what got through, before the control
    return mode, checks


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


def test_it_writes_only_its_working_directory(inside):
    _, checks = inside
    assert checks["write_work"] == "allowed"
    assert checks["write_etc"] != "allowed" and checks["write_tmp_host"] != "allowed"


def assert_no_network(mode: str, checks: dict, servers) -> None:
    """What the namespace modes promise (a network namespace of its own), against servers on the
    host's loopback and interfaces, with an ordinary process reaching the same servers as control."""
    if mode not in NO_NETWORK_MODES:
        pytest.skip(f"the {mode!r} sandbox promises no network isolation (only {' and '.join(NO_NETWORK_MODES)} "
                    "unshare the network namespace): nothing to check on this machine")
    blocked = {target: result for target, result in checks["network"].items() if result != "allowed"}
    assert blocked == checks["network"], f"the sandbox reached a server on the host: {checks['network']}"
    assert set(blocked.values()) <= {"ENETUNREACH", "ECONNREFUSED", "EHOSTUNREACH", "ETIMEDOUT", "TimeoutError"}, (
        f"the attempts failed for another reason than the network (a broken probe?): {blocked}")
    assert checks["arrived"] == [], f"the host's servers received {checks['arrived']} from the sandbox"
    assert checks["interfaces"] == ["lo"], f"the sandbox sees the host's interfaces: {checks['interfaces']}"
    control = reached_by_an_ordinary_process(servers)
    if not all(result == "allowed" for result in control.values()):
        pytest.skip(f"this host blocks its own local connections ({control}): no positive control is possible")
    assert [tag for s in servers for tag in s.arrivals()] == ["control"] * len(servers)
    assert set(control) == set(checks["network"]) and len(control) == len(servers)


def test_it_cannot_reach_servers_on_the_hosts_loopback_or_interfaces(inside, listeners):
    mode, checks = inside
    assert_no_network(mode, checks, listeners)


def user_namespaces_work() -> bool:
    code = "import ctypes, os; libc = ctypes.CDLL(None); os._exit(libc.unshare(0x10000000 | 0x40000000) != 0)"
    return subprocess.run([sys.executable, "-I", "-c", code], timeout=30).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user the strongest mode, tested above, is 'userns' already")
def test_the_user_namespace_mode_cannot_reach_them_either(listeners, tmp_path):
    # root's fallback list never picks 'userns' (it is what a non-root grader gets): forced here, by
    # calling the fork server's own sandbox.enter in a fresh interpreter (a fork server costs seconds)
    if not user_namespaces_work():
        pytest.skip("this kernel refuses user namespaces, so no grader here can get the 'userns' mode")
    work, root = tmp_path / "work", tmp_path / "root"
    work.mkdir()
    root.mkdir()
    os.chmod(work, 0o777)
    os.chmod(root, 0o755)
    code = with_targets(ENTER_THEN_REACH, listeners)
    done = subprocess.run([sys.executable, "-I", "-c", code, "userns", str(work), str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    checks = json.loads(done.stdout)
    checks["arrived"] = [tag for s in listeners for tag in s.arrivals()]
    assert_no_network("userns", checks, listeners)


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
