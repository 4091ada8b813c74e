"""Find the Chromium or Chrome that the website's browser tests drive, or install one.

``python -m course_tools.browser`` prints the path of a usable browser and exits 0; ``make test``
runs it first and hands the path to the tests as ``COURSE_CHROMIUM``. In order it tries:

1. ``COURSE_CHROMIUM``, if set;
2. a Chromium or Chrome on the ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``, ...);
3. a browser Playwright downloaded before (``~/.cache/ms-playwright``);
4. installing one: Debian's ``chromium`` package when running as root with ``apt-get``, else
   Playwright's own download (``playwright install chromium``) where the network allows it.

If all of that fails it prints one line saying what to do and exits 1.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PLAYWRIGHT_GLOB = "~/.cache/ms-playwright/chromium-*/chrome-linux*/chrome"


def _works(path: str) -> bool:
    try:
        return subprocess.run([path, "--version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def find() -> str | None:
    candidates = [os.environ.get("COURSE_CHROMIUM")] + [shutil.which(n) for n in NAMES]
    candidates += sorted(glob.glob(os.path.expanduser(PLAYWRIGHT_GLOB)), reverse=True)
    return next((c for c in candidates if c and os.access(c, os.X_OK) and _works(c)), None)


def install(log=sys.stderr) -> None:
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's chromium for the browser tests (apt-get)", file=log)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if find():
            return
    print("trying Playwright's own Chromium download for the browser tests", file=log)
    subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=900)


def main() -> int:
    path = find()
    if path is None:
        install()
        path = find()
    if path is None:
        print("the browser tests need Chromium or Chrome: install one (Debian: `apt-get install chromium`) or set "
              "COURSE_CHROMIUM=/path/to/chrome; or leave them out with PYTEST_ARGS='-m \"not browser\"'", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
