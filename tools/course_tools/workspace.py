"""``make lab``: the student's own copy of every lab, in ``work/``, made once and never overwritten.

The hand-outs (``_assign/NN_slug/student/``) and the website's copies (``labs/NN_slug/student/``)
are generated, and a build may replace them; ``work/`` belongs to the student. For each lab this
copies the hand-out (the notebook and its data files) to ``work/NN_slug/`` the first time, and after
that only adds files that are missing. When the hand-out changes later (the course was updated),
the student's notebook stays as it is and the new hand-out is put next to it as
``update-<date>.ipynb``, with a line saying so, once per change of its content (the cells' types and
sources: regenerating a hand-out gives its cells new random ids, which is no change). ``make clean``
does not touch ``work/``;
``git`` ignores it, so keep your own copy of it (or commit it to a repository of your own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from datetime import date
from pathlib import Path

from . import REPO
from .grading.assign import assign, discover_labs

WORK = REPO / "work"
RECORD = ".handouts.json"  # in work/: per lab, the content hash of the hand-out copied and of the last update offered


def _file_hash(path: Path) -> str:
    """The hash the record held before content hashes (kept to read an old record)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def _hash(path: Path) -> str:
    """A hash of what a student reads and runs: each cell's type and source, in order (not the cells'
    random ids, outputs or metadata, which change every time a hand-out is generated)."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        content = [[c.get("cell_type"), "".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source")]
                   for c in cells if isinstance(c, dict)]
    except (ValueError, UnicodeDecodeError, AttributeError):
        return _file_hash(path)
    return "c" + hashlib.sha256(json.dumps(content).encode()).hexdigest()[:10]


def _update_name(dest: Path) -> Path:
    """``update-<date>.ipynb`` in the lab's folder (``-2``, ``-3`` ... for a second update that day):
    short, so a file browser shows the part that differs."""
    day = date.today().isoformat()
    name, n = dest / f"update-{day}.ipynb", 1
    while name.exists():
        n += 1
        name = dest / f"update-{day}-{n}.ipynb"
    return name


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
            record[lab.name] = {"copied": _hash(notebook)}
            say(f"{lab.name}: your copy is work/{lab.name}/{lab.name}.ipynb")
            continue
        for src in sorted(handout.rglob("*")):  # data files added to the lab since the copy; nothing is replaced
            target = dest / src.relative_to(handout)
            if src.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                say(f"{lab.name}: added {target.relative_to(work)}")
        now = _hash(notebook)
        seen = record.get(lab.name)
        if isinstance(seen, str):  # a record from before content hashes: the raw file's hash
            seen = {"copied": now if seen == _file_hash(notebook) else seen}
        seen = seen if isinstance(seen, dict) else {"copied": now}
        if now not in (seen.get("copied"), seen.get("offered")):
            update = _update_name(dest)
            shutil.copy2(notebook, update)
            seen["offered"] = now
            say(f"{lab.name}: the lab was updated; the new hand-out is work/{lab.name}/{update.name} "
                f"(your {lab.name}.ipynb is untouched: copy your answers across if you want the new version)")
        record[lab.name] = seen
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
