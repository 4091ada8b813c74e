"""``make export`` (course_tools/grading/export.py): the Canvas CSV parses with the import's header,
its ``Points Possible`` row and one row per submission; the plain CSV is keyed by the student's
identifier (mapping file, notebook metadata, Canvas's download name, folder name); unmapped students
are listed, never dropped; a row the grader did not score is never imported as a 0."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from course_tools.grading import export

LAB = "00_getting_started"
Q = ["pixel_cross_entropy", "pixel_accuracy"]
ROWS = [  # submission, status, scores
    ("alice/lab.ipynb", "graded", (4, 2.6667)),
    ("bob/lab.ipynb", "flagged", (0, 4)),
    ("smithjane_LATE_12345_678901_00_getting_started.ipynb", "graded", (1.3333, 0)),
    ("carol/lab.ipynb", "crashed", (0, 0)),
    ("dave/lab.ipynb", "graded", (4, 4)),
]


def make_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "gradebook.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "status", *Q, "total", "possible", "seconds", "note"])
        for name, status, scores in ROWS:
            w.writerow([name, status, *(f"{s:g}" for s in scores), f"{sum(scores):g}", "8", "1.00", ""])
    (folder / "summary.json").write_text(json.dumps({"lab": LAB}))
    return folder


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_the_canvas_csv_has_the_import_layout_and_every_submission(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    mapping = tmp_path / "ids.csv"
    mapping.write_text("submission,SIS User ID,Section\nalice,S001,A\nbob/lab.ipynb,S002,B\nzoe,S099,A\n")
    assert export.main(["--run", str(run), "--map", str(mapping)]) == 0
    rows = _rows(run / "export" / "canvas.csv")
    header = rows[0]
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert len(header) == 5 + len(Q) + 1 and header[5].endswith(": pixel_cross_entropy")
    assert header[-1]  # the total, under the lab's title (a new assignment)
    assert rows[1][:5] == ["Points Possible", "", "", "", ""] and rows[1][-1] == "8"
    body = {tuple(r[:5]): r[5:] for r in rows[2:]}
    assert len(rows) - 2 == len(ROWS) == len(body)
    assert body[("", "", "S001", "", "A")] == ["4", "2.6667", "6.6667"]
    assert body[("", "", "S002", "", "B")] == ["0", "4", "4"]                       # flagged: scored
    assert body[("smithjane", "12345", "", "", "")] == ["1.3333", "0", "1.3333"]    # Canvas's download name
    assert body[("carol", "", "", "carol", "")] == ["", "", ""]                   # crashed: blank, not 0
    assert body[("dave", "", "", "dave", "")] == ["4", "4", "8"]

    grades = {r["submission"]: r for r in csv.DictReader(open(run / "export" / "grades.csv", newline=""))}
    assert set(grades) == {name for name, _, _ in ROWS}
    assert [grades[n]["student"] for n, _, _ in ROWS] == ["S001", "S002", "12345", "carol", "dave"]
    assert grades["carol/lab.ipynb"]["status"] == "crashed" and grades["carol/lab.ipynb"]["total"] == "0"

    # not in the mapping: listed in unmapped.csv and on stderr, exported all the same
    unmapped = _rows(run / "export" / "unmapped.csv")[1:]
    assert [r[0] for r in unmapped] == [ROWS[2][0], "carol/lab.ipynb", "dave/lab.ipynb"]
    err = capsys.readouterr().err
    assert all(f"unmapped: {r[0]}" in err for r in unmapped)
    assert "no submission: zoe" in err and "carol/lab.ipynb (crashed)" in err


def test_identifiers_from_the_notebooks_metadata(tmp_path):
    run = make_run(tmp_path / "run")
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "lab.ipynb").write_text(json.dumps({"cells": [], "metadata": {"student_id": "a.smith"}}))
    assert export.main(["--run", str(run), "--submissions", str(subs), "--total-only",
                        "--assignment", "Lab 0 (123456)"]) == 0
    rows = _rows(run / "export" / "canvas.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 0 (123456)"]
    assert rows[2] == ["alice", "", "", "a.smith", "", "6.6667"]
    assert not (run / "export" / "unmapped.csv").exists(), "without a mapping nobody is unmapped"


@pytest.mark.parametrize("content, why", [
    ("submission\nalice\n", "a header and at least one row"),
    ("submission,email\nalice,a@x\n", "among Student, ID"),
])
def test_a_bad_mapping_stops_with_one_line_and_status_2(content, why, tmp_path, capsys):
    run = make_run(tmp_path / "run")
    (tmp_path / "ids.csv").write_text(content)
    assert export.main(["--run", str(run), "--map", str(tmp_path / "ids.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0], err
    assert export.main(["--run", str(tmp_path)]) == 2
    assert "expected a grading run folder" in capsys.readouterr().err
