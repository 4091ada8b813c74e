"""``make export``: a grading run's gradebook as a learning management system imports it.

From a run folder of ``make grade`` (:mod:`.runs`) it writes ``export/`` into that folder:

``canvas.csv``    Canvas's gradebook import layout: ``Student, ID, SIS User ID, SIS Login ID, Section``,
                  then one column per question and one for the total, and a ``Points Possible`` row
``grades.csv``    a plain CSV keyed by the student identifier: student, submission, status, the scores,
                  total, possible, note, and where the identifier came from
``unmapped.csv``  (with ``--map``) the submissions the mapping does not name: exported all the same

A student's identifier comes, in this order, from the mapping file (``--map``), the ``student_id``
in the notebook's metadata (with ``--submissions``, the folder that was graded), the name Canvas
gives a downloaded submission (``smithjane_12345_678901_lab.ipynb``: Canvas user ID 12345), or the
submission's own folder or file name (``alice/lab.ipynb``: alice), which goes to ``SIS Login ID``.

The mapping file is a CSV with a header: its first column holds the submission's name as the
gradebook writes it (``alice/lab.ipynb``) or its folder name (``alice``); its other columns are any of
Canvas's ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section`` (a Canvas gradebook
export's columns, pasted next to the names). Nobody is dropped: a submission the mapping does not
name is exported under its folder name and listed in ``unmapped.csv`` and on stderr.

Only a row the grader scored (``graded`` or ``flagged``) has scores in ``canvas.csv``: a ``crashed``,
``timeout`` or ``invalid`` row is left blank, never a silent 0, and listed on stderr for a person to
look at (``grades.csv`` keeps every row with its status).

    python -m course_tools.grading.export 00_getting_started [--run DIR] [--map ids.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .runs import BadInput, Run, find_run, load_run

CANVAS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
SCORED = ("graded", "flagged")
# how Canvas names a downloaded submission: name, LATE if late, user ID, submission ID, the file's own name
CANVAS_NAME = re.compile(r"^(?P<name>[^_/]+)_(?:late_)?(?P<id>\d+)_\d+_.+$", re.IGNORECASE)


@dataclass
class Identity:
    student: str = ""
    id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    source: str = ""

    @property
    def key(self) -> str:
        """The one identifier of the plain CSV: the most specific one known."""
        return self.sis_user_id or self.sis_login_id or self.id or self.student

    def canvas(self) -> list[str]:
        return [self.student, self.id, self.sis_user_id, self.sis_login_id, self.section]


FIELDS = {"student": "student", "name": "student", "id": "id", "sis user id": "sis_user_id",
          "sis_user_id": "sis_user_id", "sis login id": "sis_login_id", "sis_login_id": "sis_login_id",
          "section": "section"}


def folder_name(submission: str) -> str:
    """``alice/lab.ipynb`` -> ``alice``; ``alice.ipynb`` -> ``alice``."""
    first = submission.strip("/").split("/")[0]
    return first[:-6] if first.endswith(".ipynb") else first


def read_map(path: Path) -> dict[str, Identity]:
    """The mapping file: submission name or folder name -> identity."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            records = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"expected a readable CSV mapping file: {path} ({type(exc).__name__})") from None
    if len(records) < 2 or len(records[0]) < 2:
        raise BadInput(f"expected a CSV mapping file with a header and at least one row (submission, then any of "
                       f"{', '.join(CANVAS)}): {path} has {len(records)} line(s)")
    header = [h.strip() for h in records[0]]
    unknown = [h for h in header[1:] if h.lower() not in FIELDS]
    if unknown:
        raise BadInput(f"expected the mapping's columns after the first to be among {', '.join(CANVAS)}: "
                       f"{path} has {', '.join(unknown)}")
    out = {}
    for rec in records[1:]:
        identity = Identity(source="mapping file")
        for h, value in zip(header[1:], rec[1:]):
            setattr(identity, FIELDS[h.lower()], value.strip())
        out[rec[0].strip()] = identity
    return out


def metadata_id(submissions: Path | None, submission: str) -> str:
    """The ``student_id`` in the notebook's metadata, if the graded folder is known and says one."""
    if submissions is None or not submission.endswith(".ipynb"):
        return ""
    try:
        meta = json.loads((submissions / submission).read_text(encoding="utf-8")).get("metadata") or {}
        value = meta.get("student_id") if isinstance(meta, dict) else None
    except (OSError, ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return ""
    return str(value).strip() if isinstance(value, (str, int)) and str(value).strip() else ""


def identify(submission: str, mapping: dict[str, Identity] | None, submissions: Path | None) -> tuple[Identity, bool]:
    """(the identity of a submission, whether the mapping named it)."""
    folder = folder_name(submission)
    if mapping is not None:
        for key in (submission, folder):
            if key in mapping:
                return mapping[key], True
    from_meta = metadata_id(submissions, submission)
    if from_meta:
        return Identity(student=folder, sis_login_id=from_meta, source="notebook metadata"), False
    canvas = CANVAS_NAME.match(folder)
    if canvas:
        return Identity(student=canvas["name"], id=canvas["id"], source="Canvas file name"), False
    return Identity(student=folder, sis_login_id=folder, source="folder name"), False


def export(run: Run, out: Path | None = None, mapping: dict[str, Identity] | None = None,
           submissions: Path | None = None, assignment: str | None = None, total_only: bool = False) -> dict:
    """Write the export files; return what the command reports (paths, unmapped, unscored, duplicates)."""
    out = Path(out) if out is not None else run.folder / "export"
    out.mkdir(parents=True, exist_ok=True)
    total_name = assignment or run.title
    questions = [] if total_only else run.questions
    columns = [f"{run.title}: {q}" for q in questions] + [total_name]
    possible = next((r["possible"] for r in run.rows if r.get("possible")), "")
    points = [f"{run.points[q]:g}" if run.points.get(q) is not None else "" for q in questions] + [possible]

    rows, unmapped, unscored, seen = [], [], [], {}
    for r in run.rows:
        identity, mapped = identify(r["submission"], mapping, submissions)
        if mapping is not None and not mapped:
            unmapped.append((r["submission"], identity.key))
        if r["status"] not in SCORED:
            unscored.append((r["submission"], r["status"]))
        seen.setdefault(identity.key, []).append(r["submission"])
        rows.append((r, identity))
    unmapped_path = out / "unmapped.csv"
    if unmapped_path.exists():
        unmapped_path.unlink()

    with open(out / "canvas.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CANVAS + columns)
        w.writerow(["Points Possible", "", "", "", ""] + points)
        for r, identity in rows:
            scores = [r[q] for q in questions] + [r["total"]] if r["status"] in SCORED else [""] * len(columns)
            w.writerow(identity.canvas() + scores)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "submission", "status", *run.questions, "total", "possible", "note", "identified_by"])
        for r, identity in rows:
            w.writerow([identity.key, r["submission"], r["status"], *(r[q] for q in run.questions), r["total"],
                        r["possible"], r["note"], identity.source])
    if unmapped:
        with open(unmapped_path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["submission", "exported_as"])
            w.writerows(unmapped)
    missing = sorted(set(mapping or {}) - {r["submission"] for r in run.rows}
                     - {folder_name(r["submission"]) for r in run.rows})
    return {"out": out, "rows": len(rows), "unmapped": unmapped, "unscored": unscored, "missing": missing,
            "duplicates": {k: v for k, v in seen.items() if len(v) > 1}}


def _count(items, one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make export", description=__doc__.split("\n")[0])
    parser.add_argument("lab", nargs="?", help="the lab, e.g. 00_getting_started (its latest run, unless --run)")
    parser.add_argument("--run", type=Path, default=None, help="a grading run folder (default: the lab's latest)")
    parser.add_argument("--map", type=Path, default=None,
                        help="CSV: submission (or its folder name), then any of Student, ID, SIS User ID, "
                             "SIS Login ID, Section")
    parser.add_argument("--submissions", type=Path, default=None,
                        help="the folder that was graded (to read a student_id from each notebook's metadata)")
    parser.add_argument("--assignment", default=None,
                        help="the total's column name: an existing Canvas assignment as its export names it, "
                             "e.g. 'Lab 0 (123456)' (default: the lab's title, a new assignment)")
    parser.add_argument("--total-only", action="store_true", help="no column per question in canvas.csv")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: RUN/export/)")
    args = parser.parse_args(argv)
    try:
        run = load_run(find_run(args.lab, args.run), args.lab)
        mapping = read_map(args.map) if args.map is not None else None
        if args.submissions is not None and not args.submissions.is_dir():
            raise BadInput(f"expected the folder of submissions that was graded: {args.submissions} is not a folder")
        found = export(run, args.out, mapping, args.submissions, args.assignment, args.total_only)
    except BadInput as bad:
        print(f"make export: {bad}", file=sys.stderr)
        return 2
    out = found["out"]
    print(f"exported {found['rows']} rows: {out / 'canvas.csv'} (Canvas's gradebook import), {out / 'grades.csv'}")
    if mapping is None:
        print("no mapping file (MAP=...): each student is named by its submission's folder or file name")
    for submission, key in found["unmapped"]:
        print(f"unmapped: {submission} (not in {args.map}; exported as {key!r})", file=sys.stderr)
    if found["unmapped"]:
        print(f"{_count(found['unmapped'], 'submission is', 'submissions are')} not in the mapping: listed in "
              f"{out / 'unmapped.csv'}", file=sys.stderr)
    for name in found["missing"]:
        print(f"no submission: {name} (in the mapping, not in this run)", file=sys.stderr)
    for key, subs in found["duplicates"].items():
        print(f"one student, several rows: {key!r} for {', '.join(subs)}", file=sys.stderr)
    if found["unscored"]:
        print(f"{_count(found['unscored'], 'row was', 'rows were')} not scored, left blank in canvas.csv (look at "
              "them before importing): " + ", ".join(f"{s} ({st})" for s, st in found["unscored"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
