"""A grading run's folder, read back: what ``make report`` and ``make export`` start from.

``make grade`` writes each run to ``_grades/NN_slug/<date>-<time>/`` (:mod:`.batch`): ``gradebook.csv``
(one row per submission: status, score per question in lab order, total, possible, seconds, note),
``summary.json`` (the lab, the counts, the timings) and ``.rows.jsonl`` (per submission, its timings
and every test's result, hidden tests included). :func:`load_run` reads them into one :class:`Run`;
:func:`find_run` picks the run a command means (the one named, else the lab's newest).

Bad input is a :class:`BadInput`: the entry points print its one line and exit with 2.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import REPO

GRADEBOOK = "gradebook.csv"
JOURNAL = ".rows.jsonl"     # as batch.JOURNAL (not imported: reading a run needs none of the grader)
FIRST, LAST = ["submission", "status"], ["total", "possible", "seconds", "note"]
STATUSES = ("graded", "timeout", "crashed", "invalid", "flagged")   # as batch.STATUSES (a test keeps them equal)


class BadInput(Exception):
    """Input a command cannot use; its message is the one line the command prints."""


@dataclass
class Run:
    folder: Path
    lab: str
    title: str
    questions: list[str]
    points: dict[str, float | None]     # the lab's points per question (None where questions.json is gone)
    rows: list[dict]                    # the gradebook: submission, status, <question>..., total, possible, seconds, note
    tests: dict[str, dict] = field(default_factory=dict)   # submission -> question -> {"cases", "violations"}
    times: dict[str, dict] = field(default_factory=dict)   # submission -> {"start", "notebook", "tests"}

    def frame(self):
        """The gradebook as a pandas DataFrame, scores as floats."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=[*FIRST, *self.questions, *LAST])
        for column in [*self.questions, "total", "possible", "seconds"]:
            df[column] = pd.to_numeric(df[column], errors="coerce")
        return df


def find_run(lab: str | None, run: Path | None, root: Path | None = None) -> Path:
    """The run folder a command means: ``run`` if given, else the lab's ``latest`` (or, where that
    link is missing, its newest run folder)."""
    if run is not None:
        return Path(run)
    if not lab:
        raise BadInput("expected a lab (LAB=NN_slug) or a grading run folder (RUN=_grades/NN_slug/<date-time>)")
    base = (root or REPO / "_grades") / lab
    latest = base / "latest"
    if latest.exists():
        return latest.resolve()
    runs = sorted((p for p in base.glob("*/") if (p / GRADEBOOK).is_file()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise BadInput(f"expected a grading run of {lab} in {base} (`make grade LAB={lab} SUBMISSIONS=...` "
                       f"writes one), found none")
    return runs[-1]


def load_run(folder: Path, lab: str | None = None, min_rows: int = 1) -> Run:
    """Read a run folder; :class:`BadInput` if it is not one, if it is another lab's, or if it holds
    fewer than ``min_rows`` submissions."""
    folder = Path(folder)
    book = folder / GRADEBOOK
    if not book.is_file():
        raise BadInput(f"expected a grading run folder (as `make grade` writes, with {GRADEBOOK}): "
                       f"{folder} {'has no ' + GRADEBOOK if folder.is_dir() else 'is not a folder'}")
    with open(book, encoding="utf-8", errors="replace", newline="") as f:
        records = list(csv.reader(f))
    header = records[0] if records else []
    if header[:2] != FIRST or header[-4:] != LAST:
        raise BadInput(f"expected a gradebook with the columns {', '.join(FIRST)}, <questions>, {', '.join(LAST)}: "
                       f"{book} starts with {', '.join(header[:4]) or 'nothing'}")
    questions = header[2:-4]
    rows = [dict(zip(header, rec)) for rec in records[1:] if len(rec) == len(header) and rec[0]]
    if len(rows) < min_rows:
        raise BadInput(f"expected a grading run of at least {min_rows} submissions: {folder} has {len(rows)}")
    summary = _json(folder / "summary.json")
    found = str(summary.get("lab") or "") or (folder.parent.name if folder.parent.name[:2].isdigit() else "")
    if lab and found and found != lab:
        raise BadInput(f"expected a grading run of {lab}: {folder} is a run of {found}")
    name = lab or found
    points: dict[str, float | None] = dict.fromkeys(questions)
    title = name
    lab_file = _json(REPO / "_assign" / name / "questions.json") if name else {}
    if [q.get("name") for q in lab_file.get("questions", [])] == questions:
        points = {q["name"]: float(q["points"]) for q in lab_file["questions"]}
        title = lab_file.get("title") or name
    out = Run(folder, name, title, questions, points, rows)
    journal = folder / JOURNAL
    if journal.is_file():  # the last line of a submission wins (a resumed run appends)
        for line in journal.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                sub = entry["submission"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(entry.get("times"), dict):
                out.times[sub] = entry["times"]
            if isinstance(entry.get("tests"), dict) and entry["tests"]:  # (a row whose tests never ran has {})
                out.tests[sub] = entry["tests"]
    return out


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
