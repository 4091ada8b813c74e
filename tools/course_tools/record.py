"""``make record``: run a lab under a profile once per seed, so its results file holds every seed.

``make record LAB=04_skips_unpooling_unets PROFILE=cpu SEEDS="0 1 2"`` executes the lab's master
notebook in its own folder with ``COURSE_PROFILE`` and ``COURSE_SEED`` set, one seed after the
other; each run adds its numbers to ``labs/<lab>/results_<profile>.json`` (see
:func:`course_utils.results.write`), which the chapters read for mean and spread over seeds. The
executed notebooks go to a temporary folder, never next to the master. Run it on an idle machine:
the results record training times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import REPO


def main(argv: list[str] | None = None) -> int:
    from course_tools.grading.assign import find_lab

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lab", help="the lab's folder name, e.g. 04_skips_unpooling_unets")
    parser.add_argument("--profile", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    lab = find_lab(args.lab)
    changed = subprocess.run(["git", "status", "--porcelain", "--", str(lab.master)], cwd=REPO,
                             capture_output=True, text=True).stdout.strip()
    if changed:
        print(f"note: {lab.master.relative_to(REPO)} has uncommitted changes; the results will name the last commit",
              file=sys.stderr)
    out = Path(tempfile.mkdtemp(prefix=f"record-{lab.name}-"))
    jupyter = Path(sys.executable).with_name("jupyter")
    for seed in args.seeds:
        env = dict(os.environ, COURSE_PROFILE=args.profile, COURSE_SEED=str(seed), MPLBACKEND="Agg", TQDM_DISABLE="1")
        start = time.perf_counter()
        proc = subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", lab.master.name,
                               "--output", str(out / f"{lab.name}-seed{seed}.ipynb"),
                               f"--ExecutePreprocessor.timeout={args.timeout}"],
                              cwd=lab.folder, env=env, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr)
            print(f"{lab.name}, seed {seed}: the run failed; results of the seeds before it are kept", file=sys.stderr)
            return proc.returncode
        print(f"{lab.name}, {args.profile} profile, seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"results: {(lab.folder / f'results_{args.profile}.json').relative_to(REPO)}; executed notebooks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
