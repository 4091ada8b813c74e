"""Written questions: the short reflections at the end of every lab, which a person grades.

Taught nowhere (instructor tooling); the README's "For instructors" section documents it.

A written question is otter's manually graded question (``manual: true`` in its ``# BEGIN QUESTION``
cell), with its rubric as the question's solution, which otter keeps out of the student notebook.
``make assign`` lists the written questions of a lab in ``questions.json`` under ``manual`` (name,
points, prompt, rubric; :func:`course_tools.grading.assign.manual_questions`), apart from the
autograded ``questions``, so the judge never runs or scores them. This module is what the grader
does with them:

* :func:`feedback_lines`: the lines a student's feedback (``make grade``) and Gradescope's output end
  with, naming each written question and its points, "graded by a person", outside the total;
* :func:`answers`: a submission's answer to each written question, read from its notebook (the
  cells after the question's prompt, up to the next question), never raising on a malformed notebook;
* :func:`write_sheet`: ``written.csv`` (one row per submission, an empty score column per written
  question for the grader to fill in, and the answers; scores already entered are kept when a run is
  resumed) and ``written.md`` (question by question: the
  prompt, the rubric and every submission's answer, so a grader reads all answers to one question in
  a row) in the run's folder.

The autograder's total, its ``possible`` and Canvas's export count the autograded points only; the
written points are added by the person who grades them.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

BEGIN, END = "<!-- BEGIN QUESTION -->", "<!-- END QUESTION -->"  # otter's tags around a written question
PLACEHOLDER = "_Type your answer here, replacing this text._"    # otter's empty answer cell
MAX_ANSWER = 6000  # characters of an answer kept in the sheet and in Gradescope's output


def manual_questions(assigned: Path) -> list[dict]:
    """The written questions of an assigned lab (``questions.json``'s ``manual``), in lab order."""
    try:
        meta = json.loads((Path(assigned) / "questions.json").read_text())
    except (OSError, ValueError):
        return []
    manual = meta.get("manual") if isinstance(meta, dict) else None
    return [q for q in manual if isinstance(q, dict) and q.get("name")] if isinstance(manual, list) else []


def manual_points(manual: list[dict]) -> float:
    return float(sum(float(q.get("points") or 0) for q in manual))


def feedback_lines(manual: list[dict], answered: dict[str, str] | None = None) -> list[str]:
    """Markdown naming each written question, its points and who grades it (empty for a lab without
    one). With ``answered``, each question's answer follows it, quoted."""
    if not manual:
        return []
    lines = [f"## Written questions: {manual_points(manual):g} points, graded by a person",
             "", "Not in the total above: a person grades your answers from your notebook.", ""]
    for q in manual:
        title = re.sub(r"\s*\(\d+(\.\d+)? points?\)", "", str(q.get("title") or "written question"))
        lines.append(f"- {q['name']} ({title}): manual, {float(q.get('points') or 0):g} "
                     f"point{'s' if float(q.get('points') or 0) != 1 else ''}, graded by a person")
        if answered is not None:
            text = answered.get(q["name"], "")
            lines += [("  > " + text.replace("\n", "\n  > ")) if text else "  > (no answer)"]
    return lines + [""]


def _source(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def answers(nb: dict | None, manual: list[dict]) -> dict[str, str]:
    """Each written question's answer in a submitted notebook: the markdown and code cells after the
    cell that holds its prompt (found by otter's ``<!-- BEGIN QUESTION -->`` tag and the prompt's
    first line), up to the next cell tagged by otter, without the untouched placeholder. "" where the
    question has no answer, or the prompt is gone. Never raises."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    cells = [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []
    sources = [_source(c) for c in cells]
    out = {}
    for q in manual:
        title = str(q.get("title") or "")
        start = next((i for i, s in enumerate(sources) if BEGIN in s and title and title in s), None)
        parts = []
        if start is not None:
            for cell, src in zip(cells[start + 1:], sources[start + 1:]):
                if BEGIN in src or END in src or "grader.check(" in src:
                    break
                text = src.strip()
                if text and text != PLACEHOLDER and cell.get("cell_type") in ("markdown", "code"):
                    parts.append(text if cell.get("cell_type") == "markdown" else f"```python\n{text}\n```")
        answer = "\n\n".join(parts)
        out[q["name"]] = answer[:MAX_ANSWER] + (" [...]" if len(answer) > MAX_ANSWER else "")
    return out


def _read_notebook(path: Path | None) -> dict | None:
    if path is None or Path(path).suffix != ".ipynb":
        return None
    try:
        nb = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return nb if isinstance(nb, dict) else None


def write_sheet(out: Path, manual: list[dict], submissions: list, title: str = "") -> list[Path]:
    """``written.csv`` and ``written.md`` in the run folder ``out`` for ``submissions`` (objects with
    ``name`` and ``path``, as :func:`course_tools.grading.batch.find_submissions` gives them); nothing
    for a lab without written questions. Returns the files written."""
    if not manual:
        return []
    try:
        return _write_sheet(Path(out), manual, submissions, title)
    except OSError as exc:  # the gradebook is written: a missing sheet must not cost the batch
        print(f"could not write the written questions' sheet: {exc}")
        return []


def _scores_entered(sheet: Path, names: list[str]) -> dict[str, list[str]]:
    """The scores a person already wrote into ``written.csv`` (a resumed run keeps them), by submission."""
    try:
        rows = list(csv.reader(sheet.open(newline="", encoding="utf-8")))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows or rows[0][1:1 + len(names) + 1] != [*names, "written total"]:
        return {}
    return {r[0]: r[1:2 + len(names)] for r in rows[2:] if len(r) >= 2 + len(names) and any(v.strip() for v in r[1:2 + len(names)])}


def spreadsheet_text(text: str) -> str:
    """``text`` as a spreadsheet shows it, never runs it: an answer that starts like a formula
    (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) gets a leading apostrophe, so opening ``written.csv``
    in Excel or Sheets cannot run what a student wrote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _write_sheet(out: Path, manual: list[dict], submissions: list, title: str) -> list[Path]:
    found = {s.name: answers(_read_notebook(s.path), manual) for s in submissions}
    sheet = out / "written.csv"
    names = [q["name"] for q in manual]
    entered = _scores_entered(sheet, names) if sheet.is_file() else {}
    part = sheet.with_name(sheet.name + ".part")
    with open(part, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["submission", *names, "written total", *(f"{n}: answer" for n in names)])
        w.writerow(["Points Possible", *(f"{float(q.get('points') or 0):g}" for q in manual),
                    f"{manual_points(manual):g}", *([""] * len(manual))])
        for name, given in found.items():
            w.writerow([name, *entered.get(name, [""] * (len(manual) + 1)), *(spreadsheet_text(given[n]) for n in names)])
    part.replace(sheet)
    lines = [f"# Written questions{': ' + title if title else ''}", "",
             f"{len(manual)} questions, {manual_points(manual):g} points, graded by a person: the gradebook's total "
             "leaves them out. Write each score in `written.csv` (the second row gives the points).", ""]
    for q in manual:
        lines += [f"## {q.get('title') or q['name']} ({float(q.get('points') or 0):g} points, `{q['name']}`)", "",
                  q.get("prompt", ""), "", "### Rubric", "", q.get("rubric", ""), "", "### Answers", ""]
        for name, given in found.items():
            text = given[q["name"]]
            lines += [f"**{name}**", "", ("> " + text.replace("\n", "\n> ")) if text else "> (no answer)", ""]
    notes = out / "written.md"
    notes.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [sheet, notes]
