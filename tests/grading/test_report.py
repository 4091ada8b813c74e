"""``make report`` (course_tools/grading/report.py): its numbers equal a hand computation from the
gradebook and the test results a run records, its page is one self-contained file that a browser
opens without a request or an error, a real run of the grader records what it needs, and bad input
stops with one line and status 2."""

from __future__ import annotations

import base64
import csv
import json
import re
import statistics
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from course_tools.grading import report, runs
from helpers import PYTHON

LAB = "00_getting_started"
Q = ["pixel_cross_entropy", "pixel_accuracy"]


def _case(name: str, hidden: bool, passed: bool, message: str = "") -> dict:
    return {"name": name, "hidden": hidden, "points": 1.0, "passed": passed, "message": message, "seconds": 0.01}


def _tests(ce: tuple, acc: tuple, violations: list | None = None) -> dict:
    """Test results of one submission: which of (public, hidden) pass for each question."""
    return {"pixel_cross_entropy": {"cases": [
                _case("test_ce_public", False, ce[0], "" if ce[0] else "AssertionError: expected 0.75, got 0.5"),
                _case("test_ce_hidden", True, ce[1], "" if ce[1] else "AssertionError: keep the dtype of the scores")],
                "violations": violations or []},
            "pixel_accuracy": {"cases": [
                _case("test_acc_public", False, acc[0], "" if acc[0] else "AssertionError: expected 0.75, got 0.25"),
                _case("test_acc_hidden", True, acc[1], "" if acc[1] else "TypeError: 'NoneType' object")],
                "violations": []}}


# submission, status, scores, seconds, test results (None: its tests never ran)
ROWS = [
    ("alice/lab.ipynb", "graded", (4, 4), 4.0, _tests((1, 1), (1, 1))),
    ("bob/lab.ipynb", "flagged", (0, 2), 3.5, _tests((0, 0), (1, 0), ["calling torch.nn.functional.cross_entropy"])),
    ("carol/lab.ipynb", "graded", (2, 0), 2.0, _tests((1, 0), (0, 0))),
    ("dave/lab.ipynb", "graded", (2, 2), 2.5, _tests((0, 1), (0, 1))),
    ("erin/lab.ipynb", "invalid", (0, 0), 0.0, None),
    ("frank/lab.ipynb", "timeout", (0, 0), 300.0, None),
]


def make_run(folder: Path, rows=ROWS) -> Path:
    """A run folder as `make grade` writes it (gradebook, summary, the journal of test results)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "gradebook.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "status", *Q, "total", "possible", "seconds", "note"])
        for name, status, scores, seconds, _ in rows:
            w.writerow([name, status, *(f"{s:g}" for s in scores), f"{sum(scores):g}", "8", f"{seconds:.2f}", ""])
    (folder / "summary.json").write_text(json.dumps({"lab": LAB}))
    with open(folder / ".rows.jsonl", "w") as f:
        for name, _, _, seconds, tests in rows:
            times = {"start": 0.1, "notebook": seconds / 2, "tests": seconds / 2 - 0.1} if tests else {}
            f.write(json.dumps({"submission": name, "times": times, **({"tests": tests} if tests else {})}) + "\n")
    return folder


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The report of :data:`ROWS`, written once for the tests that read it."""
    run = make_run(tmp_path_factory.mktemp("report") / "run")
    assert report.main(["--run", str(run)]) == 0
    return run / "report"


def test_score_tables_equal_a_hand_computation_from_the_gradebook(written):
    questions = {r["question"]: r for r in _csv(written / "questions.csv")}
    for k, q in enumerate([*Q, "total"]):
        scores = [sum(s) if q == "total" else s[k] for _, _, s, _, _ in ROWS]
        row, full = questions[q], 8 if q == "total" else 4
        assert int(row["submissions"]) == len(ROWS)
        assert float(row["mean"]) == pytest.approx(statistics.mean(scores))
        assert float(row["median"]) == pytest.approx(statistics.median(scores))
        assert float(row["std"]) == pytest.approx(statistics.pstdev(scores))
        assert int(row["full_marks"]) == sum(s == full for s in scores)
        assert int(row["zero"]) == sum(s == 0 for s in scores)
        counts = {float(r["score"]): int(r["count"]) for r in _csv(written / "histogram.csv") if r["question"] == q}
        assert counts == dict(Counter(float(s) for s in scores))
    statuses = {r["status"]: int(r["count"]) for r in _csv(written / "statuses.csv")}
    assert statuses == {"graded": 3, "timeout": 1, "crashed": 0, "invalid": 1, "flagged": 1}


def test_every_test_has_its_pass_rate_hidden_ones_named(written):
    tests = {(r["question"], r["test"]): r for r in _csv(written / "tests.csv")}
    ran = [t for *_, t in ROWS if t]
    for (q, name), row in tests.items():
        results = [c["passed"] for t in ran for c in t[q]["cases"] if c["name"] == name]
        assert int(row["ran"]) == len(results) == 4
        assert int(row["passed"]) == sum(results)
        assert float(row["pass_rate"]) == pytest.approx(sum(results) / len(results))
    assert {k[1] for k in tests} == {"test_ce_public", "test_ce_hidden", "test_acc_public", "test_acc_hidden"}
    assert [r["hidden"] for r in _csv(written / "tests.csv")] == ["False", "True", "False", "True"]
    page = (written / "index.html").read_text()
    assert "<td>test_ce_hidden</td><td>yes</td>" in page and "<td>test_ce_public</td><td></td>" in page
    assert "For the instructor only" in page


def test_failures_are_grouped_with_numbers_masked_most_common_first(written):
    failures = _csv(written / "failures.csv")
    acc_public = [f for f in failures if f["test"] == "test_acc_public"]
    # 'expected 0.75, got 0.25' twice (carol, dave): one group
    assert [(f["message"], int(f["count"])) for f in acc_public] == [("AssertionError: expected #, got #", 2)]
    assert acc_public[0]["example"] == "AssertionError: expected 0.75, got 0.25"
    rule = [f for f in failures if f["test"] == "by-hand rule"]
    assert rule and rule[0]["question"] == "pixel_cross_entropy" and int(rule[0]["count"]) == 1
    for q in Q:  # most common first, question by question, in lab order
        counts = [int(f["count"]) for f in failures if f["question"] == q]
        assert counts == sorted(counts, reverse=True)
    assert [f["question"] for f in failures] == sorted((f["question"] for f in failures), key=Q.index)


def test_time_per_submission_comes_from_the_gradebook_and_the_journal(written):
    times = {r["submission"]: r for r in _csv(written / "times.csv")}
    assert {k: float(v["seconds"]) for k, v in times.items()} == {name: s for name, _, _, s, _ in ROWS}
    assert float(times["alice/lab.ipynb"]["notebook"]) == pytest.approx(2.0)
    assert times["erin/lab.ipynb"]["notebook"] == ""


def test_the_page_is_one_file_with_its_images_inside(written):
    page = (written / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything from the network"
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)">', page)
    assert len(images) == page.count("<img") == 5
    for data, alt in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" and len(alt) > 20


def test_a_run_graded_before_test_results_were_kept_still_gets_its_scores(tmp_path):
    run = make_run(tmp_path / "run")
    (run / ".rows.jsonl").unlink()
    assert report.main(["--run", str(run)]) == 0
    assert "recorded no test results" in (run / "report" / "index.html").read_text()
    assert len(_csv(run / "report" / "questions.csv")) == 3


def test_the_latest_run_of_a_lab_is_the_default(tmp_path):
    base = tmp_path / "_grades" / LAB
    make_run(base / "20260101-100000", ROWS[:2])
    newest = make_run(base / "20260102-100000")
    (base / "latest").symlink_to(newest.name)
    assert runs.find_run(LAB, None, root=tmp_path / "_grades") == newest.resolve()
    with pytest.raises(runs.BadInput, match="expected a grading run of 01_other"):
        runs.find_run("01_other", None, root=tmp_path / "_grades")


@pytest.mark.parametrize("case", ["not a run", "no folder", "one submission", "another lab", "other columns"])
def test_bad_input_stops_with_one_line_and_status_2(case, tmp_path, capsys):
    folder = tmp_path / "run"
    args = ["--run", str(folder)]
    if case == "not a run":
        folder.mkdir()
        (folder / "notes.txt").write_text("hello")
    elif case == "one submission":
        make_run(folder, ROWS[:1])
    elif case == "another lab":
        make_run(folder)
        args = ["01_backprop_message_passing", *args]
    elif case == "other columns":
        folder.mkdir()
        (folder / "gradebook.csv").write_text("name,score\nalice,3\nbob,4\n")
    assert report.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "expected" in err, err


def test_bad_input_from_the_command_line_prints_no_traceback(tmp_path):
    proc = subprocess.run([PYTHON, "-m", "course_tools.grading.report", "--run", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"make report: expected a grading run folder (as `make grade` writes, with gradebook.csv): {tmp_path} "
        "has no gradebook.csv"]


def test_the_statuses_are_the_graders():
    from course_tools.grading.batch import JOURNAL, STATUSES

    assert runs.STATUSES == STATUSES and runs.JOURNAL == JOURNAL


@pytest.mark.browser
def test_the_page_opens_in_a_browser_without_a_request_or_an_error(written):
    import os

    from playwright.sync_api import sync_playwright

    chromium = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.is_file():
        pytest.fail(f"the browser tests need a Chromium at {chromium}: set COURSE_CHROMIUM (`make test` does)")
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else (problems.append(route.request.url), route.abort()))
            page.goto((written / "index.html").as_uri())
            images = page.evaluate("[...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt])")
        finally:
            browser.close()
    assert not problems, problems
    assert len(images) == 5 and all(ok and alt for ok, alt in images)


@pytest.mark.grading
def test_a_real_run_records_every_tests_result_for_the_report(assigned, grader, tmp_path):
    """The grader's journal holds each test's result, hidden ones included, and the report reads it:
    the solution passes every test, the untouched hand-out none."""
    solution = json.loads((assigned / LAB / "autograder" / f"{LAB}.ipynb").read_text())
    handout = json.loads((assigned / LAB / "student" / f"{LAB}.ipynb").read_text())
    subs = tmp_path / "subs"
    for name, nb in (("solution", solution), ("untouched", handout)):
        (subs / name).mkdir(parents=True)
        (subs / name / f"{LAB}.ipynb").write_text(json.dumps(nb))
    grader.grade(LAB, subs, out=tmp_path / "run", progress=False)
    run = runs.load_run(tmp_path / "run", LAB, min_rows=2)
    assert set(run.tests) == {f"solution/{LAB}.ipynb", f"untouched/{LAB}.ipynb"}
    report.write_report(run)
    tests = _csv(tmp_path / "run" / "report" / "tests.csv")
    assert {r["hidden"] for r in tests} == {"True", "False"}
    assert all(r["ran"] == "2" and r["passed"] == "1" for r in tests), tests
