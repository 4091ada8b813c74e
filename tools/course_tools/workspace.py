"""``make lab``: the student's own copy of every lab, in ``work/``, made once and never overwritten.

The hand-outs (``_assign/NN_slug/student/``) and the website's copies (``labs/NN_slug/student/``)
are generated, and a build may replace them; ``work/`` belongs to the student. For each lab this
copies the hand-out (the notebook and its data files) to ``work/NN_slug/`` the first time, and after
that only adds files that are missing. When the hand-out changes later (the course was updated),
the student's notebook stays as it is and the new hand-out is put next to it as
``NN_slug.update-<hash>.ipynb``, with a line saying so. ``make clean`` does not touch ``work/``;
``git`` ignores it, so keep your own copy of it (or commit it to a repository of your own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from . import REPO
from .grading.assign import assign, discover_labs

WORK = REPO / "work"
RECORD = ".handouts.json"  # in work/: the hash of the hand-out each lab's copy was made from


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def prepare(work: Path = WORK, assigned: Path = REPO / "_assign", log=sys.stdout) -> list[str]:
    """Make or complete ``work/``; return one line per thing done (also printed to ``log``)."""
    work.mkdir(exist_ok=True)
    record_path = work / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    done = []

    def say(line: str) -> None:
        done.append(line)
        print(line, file=log)

    for lab in discover_labs():
        handout = assigned / lab.name / "student"
        if not (handout / f"{lab.name}.ipynb").is_file():
            say(f"{lab.name}: generating the hand-out from the lab's master (once)")
            assign(lab, assigned, quiet=True)
        notebook, dest = handout / f"{lab.name}.ipynb", work / lab.name
        if not dest.exists():
            shutil.copytree(handout, dest)
            record[lab.name] = _hash(notebook)
            say(f"{lab.name}: your copy is work/{lab.name}/{lab.name}.ipynb")
            continue
        for src in sorted(handout.rglob("*")):  # data files added to the lab since the copy; nothing is replaced
            target = dest / src.relative_to(handout)
            if src.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                say(f"{lab.name}: added {target.relative_to(work)}")
        now = _hash(notebook)
        if record.get(lab.name) not in (None, now):
            update = dest / f"{lab.name}.update-{now}.ipynb"
            if not update.exists():
                shutil.copy2(notebook, update)
                say(f"{lab.name}: the lab was updated; the new hand-out is work/{lab.name}/{update.name} "
                    f"(your {lab.name}.ipynb is untouched: copy your answers across if you want the new version)")
        record.setdefault(lab.name, now)
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=WORK, help="the student's folder (default: work/)")
    args = parser.parse_args(argv)
    prepare(args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
