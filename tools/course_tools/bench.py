"""``make bench``: how long ``make test`` takes from a fresh clone, install included, group by group.

It clones the repository's committed ``HEAD`` into a temporary folder, times ``make install`` there,
then ``make test`` (with a JUnit report), and prints one table: the wall time of the install and of
the tests, and for every test group (``tests/unit``, ``tests/notebooks``, ``tests/grading``,
``tests/website``) the number of tests and the seconds they took (setup, call and teardown, added
up over the two workers: the group's share of the machine). Run it on an idle machine: anything
else running makes every figure slower.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from . import REPO


def timed(cmd: list[str], cwd: Path, log) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start, proc.returncode


def group_times(junit: Path) -> dict[str, tuple[int, float]]:
    """``{group: (tests, seconds)}`` from pytest's JUnit report."""
    groups: dict[str, list[float]] = defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = (case.get("classname") or "").split(".")
        group = parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"
        groups[group].append(float(case.get("time") or 0))
    return {g: (len(t), sum(t)) for g, t in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="course-bench-"))
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    log_path = tmp / "bench.log"
    with open(log_path, "w") as log:
        install, code = timed(["make", "install"], clone, log)
        if code:
            print(f"make install failed; see {log_path}", file=sys.stderr)
            return code
        junit = tmp / "junit.xml"
        tests, code = timed(["make", "test", f"PYTEST_ARGS=--junitxml={junit}"], clone, log)
    print(f"fresh clone of {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True).stdout.strip()}:"
          f" make install {install:.0f} s, make test {tests:.0f} s, {install + tests:.0f} s in all"
          + ("" if code == 0 else f" (make test FAILED, exit {code}; see {log_path})"))
    if junit.exists():
        print("| group | tests | seconds of test time |\n|---|---|---|")
        for group, (n, seconds) in group_times(junit).items():
            print(f"| {group} | {n} | {seconds:.0f} |")
    if args.keep:
        print(f"clone and log kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
