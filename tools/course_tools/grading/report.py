"""``make report``: a grading run as an instructor would rather look at it than read it.

From a run folder of ``make grade`` (:mod:`.runs`) it writes ``report/`` into that folder:
``index.html``, one self-contained page (its plots are PNGs inside it, nothing is fetched), and the
same numbers as CSV files next to it:

``questions.csv``  per question and for the total: points, submissions, mean, median, spread, full marks, zeros
``histogram.csv``  per question and for the total: how many submissions got each score
``statuses.csv``   how many rows have each status
``tests.csv``      every test, hidden ones included: how many submissions it ran for, how many passed
``failures.csv``   per question, the failure messages grouped (numbers masked), most common first
``times.csv``      per submission: seconds in all, and for the start, the notebook and the tests

Every row of the gradebook counts in the scores (a row that was not graded scores 0). Test results
come from the rows whose tests ran. The page names hidden tests and quotes their messages: it is
for the instructor, never for students.

    python -m course_tools.grading.report 00_getting_started            # the lab's latest run
    python -m course_tools.grading.report --run _grades/00_getting_started/20260101-120000
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from .runs import STATUSES, BadInput, Run, find_run, load_run

YES = {True: "yes", False: ""}.get   # a boolean cell on the page
TOP_FAILURES = 5      # failure messages per question on the page (failures.csv has them all)
SLOWEST = 10          # the slowest submissions listed on the page
# Okabe and Ito's colour-blind-safe palette; hidden tests are also hatched, never told by colour alone
BLUE, ORANGE, GREEN, VERMILION, SKY, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#999999"
STATUS_COLOURS = {"graded": GREEN, "timeout": ORANGE, "crashed": VERMILION, "invalid": GREY, "flagged": BLUE}


# --- the numbers -------------------------------------------------------------------------------------------------


def _mask(message: str) -> str:
    """A failure message as a group: its first line, numbers masked (``expected 0.75, got 0.5`` and
    ``expected 0.75, got 0.25`` are one failure)."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else "(no message)"
    return re.sub(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", "#", first)[:200]


def tables(run: Run) -> dict[str, pd.DataFrame]:
    """Every table of the report, by the name of its CSV file."""
    df = run.frame()
    columns = [*run.questions, "total"]
    points = {**run.points, "total": float(df["possible"].max()) if len(df) else None}

    stats = []
    for q in columns:
        s = df[q].fillna(0.0)
        full = points[q]
        stats.append({"question": q, "points": full, "submissions": len(s), "mean": s.mean(), "median": s.median(),
                      "std": s.std(ddof=0), "min": s.min(), "max": s.max(),
                      "full_marks": int((s >= full - 1e-9).sum()) if full else None, "zero": int((s == 0).sum())})
    histogram = pd.concat([df[q].fillna(0.0).round(4).value_counts().sort_index().rename_axis("score")
                           .reset_index(name="count").assign(question=q) for q in columns], ignore_index=True)
    statuses = pd.DataFrame({"status": list(STATUSES), "count": [int((df["status"] == s).sum()) for s in STATUSES]})

    order: dict[tuple, dict] = {}      # (question, test) -> counts, in the order the tests ran
    failures: dict[tuple, dict] = {}   # (question, test, pattern) -> count and an example
    for sub in df["submission"]:
        for q in run.questions:
            info = (run.tests.get(sub) or {}).get(q)
            if not isinstance(info, dict):
                continue
            for case in info.get("cases") or []:
                if not isinstance(case, dict):
                    continue
                key = (q, str(case.get("name")))
                entry = order.setdefault(key, {"hidden": bool(case.get("hidden")), "points": case.get("points"),
                                                "ran": 0, "passed": 0})
                entry["ran"] += 1
                entry["passed"] += bool(case.get("passed"))
                if not case.get("passed"):
                    _count(failures, (q, key[1], _mask(str(case.get("message") or ""))), bool(case.get("hidden")),
                           str(case.get("message") or ""))
            for violation in info.get("violations") or []:
                _count(failures, (q, "by-hand rule", _mask(str(violation))), False, str(violation))
    tests = pd.DataFrame([{"question": q, "test": t, "hidden": e["hidden"], "points": e["points"], "ran": e["ran"],
                           "passed": e["passed"], "pass_rate": e["passed"] / e["ran"]} for (q, t), e in order.items()],
                         columns=["question", "test", "hidden", "points", "ran", "passed", "pass_rate"])
    rank = {q: k for k, q in enumerate(run.questions)}
    failed = pd.DataFrame([{"question": q, "test": t, "hidden": e["hidden"], "count": e["count"], "message": p,
                            "example": e["example"]} for (q, t, p), e in failures.items()],
                          columns=["question", "test", "hidden", "count", "message", "example"])
    if len(failed):
        failed = failed.sort_values(["question", "count"], key=lambda c: c.map(rank) if c.name == "question" else -c,
                                    kind="stable").reset_index(drop=True)
    times = pd.DataFrame([{"submission": r.submission, "status": r.status, "seconds": r.seconds,
                           **{k: (run.times.get(r.submission) or {}).get(k) for k in ("start", "notebook", "tests")}}
                          for r in df.itertuples()],
                         columns=["submission", "status", "seconds", "start", "notebook", "tests"])
    return {"questions": pd.DataFrame(stats), "histogram": histogram[["question", "score", "count"]],
            "statuses": statuses, "tests": tests, "failures": failed, "times": times}


def _count(groups: dict, key: tuple, hidden: bool, example: str) -> None:
    entry = groups.setdefault(key, {"hidden": hidden, "count": 0, "example": example[:500]})
    entry["count"] += 1


# --- the plots ---------------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    fig.set_facecolor("white")
    return fig


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _score_bars(ax, counts: pd.DataFrame, title: str, points: float | None) -> None:
    """A histogram of scores: one bar per score that occurs (few distinct scores), else 20 bins."""
    scores, n = counts["score"].to_numpy(float), counts["count"].to_numpy(int)
    top = points or (scores.max() if len(scores) else 1.0) or 1.0
    if len(scores) <= 30:
        ax.bar(scores, n, width=max(top / 40, 1e-3), color=BLUE)
    else:
        ax.hist(scores, bins=20, weights=n, color=BLUE, range=(0, top))
    ax.set_xlim(-top * 0.05, top * 1.05)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("score" + (f" (of {top:g})" if points else ""), fontsize=10)
    ax.set_ylabel("submissions", fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)


def plots(run: Run, t: dict[str, pd.DataFrame]) -> dict[str, tuple[str, str]]:
    """Each plot as (base64 PNG, alt text)."""
    out = {}
    hist, q_stats = t["histogram"], t["questions"].set_index("question")

    fig = _figure(6.4, 3.2)
    total = q_stats.loc["total"]
    _score_bars(fig.add_subplot(), hist[hist["question"] == "total"], "Total score", total["points"])
    out["total"] = (_png(fig), f"Histogram of the total score of {total['submissions']} submissions: mean "
                    f"{total['mean']:.2f}, median {total['median']:.2f} of {total['points']:g}.")

    n = len(run.questions)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(3.2 * cols, 2.6 * rows)
    for k, q in enumerate(run.questions):
        _score_bars(fig.add_subplot(rows, cols, k + 1), hist[hist["question"] == q], q, run.points.get(q))
    out["questions"] = (_png(fig), "Histograms of each question's score: " + "; ".join(
        f"{q} mean {q_stats.loc[q, 'mean']:.2f}" + (f" of {run.points[q]:g}" if run.points.get(q) else "")
        for q in run.questions) + ".")

    statuses = t["statuses"]
    fig = _figure(6.4, 2.4)
    ax = fig.add_subplot()
    bars = ax.barh(statuses["status"][::-1], statuses["count"][::-1],
                   color=[STATUS_COLOURS[s] for s in statuses["status"][::-1]])
    ax.bar_label(bars, padding=3, fontsize=10)
    ax.set_xlabel("submissions", fontsize=10)
    ax.set_xlim(0, max(1, statuses["count"].max()) * 1.15)
    out["statuses"] = (_png(fig), "Submissions per status: " + ", ".join(
        f"{c} {s}" for s, c in zip(statuses["status"], statuses["count"])) + ".")

    tests = t["tests"]
    if len(tests):
        fig = _figure(8.0, 0.9 + 0.32 * len(tests))
        ax = fig.add_subplot()
        labels = [f"{r.question}: {r.test}" + (" (hidden)" if r.hidden else "") for r in tests.itertuples()][::-1]
        bars = ax.barh(labels, (100 * tests["pass_rate"])[::-1], color=[SKY if h else BLUE for h in tests["hidden"][::-1]],
                       edgecolor="black", linewidth=0.5)
        for bar, hidden in zip(bars, tests["hidden"][::-1]):
            if hidden:
                bar.set_hatch("//")
        ax.bar_label(bars, labels=[f"{p:.0f}%" for p in (100 * tests["pass_rate"])[::-1]], padding=3, fontsize=9)
        ax.set_xlim(0, 112)
        ax.set_xlabel("submissions that passed (% of those the test ran for)", fontsize=10)
        ax.tick_params(axis="y", labelsize=9)
        out["tests"] = (_png(fig), "Pass rate of every test: " + "; ".join(
            f"{r.question} {r.test}{' (hidden)' if r.hidden else ''} {100 * r.pass_rate:.0f}%"
            for r in tests.itertuples()) + ".")

    times = t["times"]
    fig = _figure(8.0, 3.0)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.4])
    ax1.hist(times["seconds"], bins=20, color=BLUE)
    ax1.set_xlabel("seconds per submission", fontsize=10)
    ax1.set_ylabel("submissions", fontsize=10)
    split = times.sort_values("seconds").fillna({"start": 0.0, "notebook": 0.0, "tests": 0.0})
    x, bottom = range(len(split)), 0
    for part, colour in (("start", GREY), ("notebook", ORANGE), ("tests", BLUE)):
        ax2.bar(x, split[part], bottom=bottom, width=1.0, color=colour, label=part)
        bottom = bottom + split[part].to_numpy()
    ax2.set_xlabel("submissions, fastest to slowest", fontsize=10)
    ax2.set_ylabel("seconds", fontsize=10)
    ax2.set_xticks([])
    ax2.legend(fontsize=9, frameon=False)
    out["times"] = (_png(fig), f"Seconds per submission: median {times['seconds'].median():.1f}, slowest "
                    f"{times['seconds'].max():.1f}; each submission's time split into start, notebook and tests.")
    return out


# --- the page ----------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .warn { background: #fff4e0; border-left: 4px solid #E69F00; padding: .5rem .8rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num, th.num { text-align: right; }
img { max-width: 100%; height: auto; } code, .msg { font-family: ui-monospace, monospace; font-size: .85rem; }
.msg { white-space: pre-wrap; word-break: break-word; }
"""


def _table(df: pd.DataFrame, formats: dict | None = None, wrap: tuple = ()) -> str:
    """An HTML table of ``df``, every cell escaped; numbers right-aligned."""
    formats = formats or {}
    head = "".join(f"<th{' class=num' if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool else ''}>"
                   f"{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else (formats[c](v) if c in formats else str(v))
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            cls = " class=msg" if c in wrap else (" class=num" if numeric else "")
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(plot: tuple[str, str]) -> str:
    data, alt = plot
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def page(run: Run, t: dict[str, pd.DataFrame], p: dict[str, tuple[str, str]]) -> str:
    n = len(t["times"])
    two = lambda v: f"{v:.2f}"  # noqa: E731
    fails = t["failures"]
    parts = [f"<h1>Grading report: {html.escape(run.title)}</h1>",
             f"<p class=meta>Run <code>{html.escape(str(run.folder))}</code>, {n} submissions, "
             f"report written {datetime.now():%Y-%m-%d %H:%M}.</p>",
             "<p class=warn><strong>For the instructor only.</strong> This page names the hidden tests and quotes "
             "their failure messages; do not share it with students (their feedback is in <code>feedback/</code>).</p>",
             "<h2>Statuses</h2>", _img(p["statuses"]),
             "<h2>Scores</h2>",
             "<p>Every row counts: a submission that was not graded (invalid, crashed, timed out) scores 0.</p>",
             _img(p["total"]), _img(p["questions"]),
             _table(t["questions"], {c: two for c in ("mean", "median", "std", "min", "max")} | {"points": "{:g}".format}),
             "<h2>Tests</h2>"]
    if len(t["tests"]):
        ran = sum(1 for s in t["times"]["submission"] if run.tests.get(s))
        parts += [f"<p>The pass rate of each test among the {ran} submissions whose tests ran; hidden tests are "
                  "hatched and marked (hidden).</p>", _img(p["tests"]),
                  _table(t["tests"].assign(pass_rate=100 * t["tests"]["pass_rate"]).rename(columns={"pass_rate": "pass %"}),
                         {"pass %": "{:.0f}".format, "points": "{:.4g}".format, "hidden": YES})]
    else:
        parts.append("<p>This run recorded no test results (it was graded before the grader kept them, or no "
                     "submission's tests ran): grade again to see them.</p>")
    parts.append("<h2>Most common failures</h2>")
    if len(fails):
        parts.append(f"<p>Per question, the {TOP_FAILURES} most common failures of a test, grouped by the first line "
                     "of their message with numbers masked, with one message in full; <code>failures.csv</code> has them "
                     "all.</p>")
        for q in run.questions:
            top = fails[fails["question"] == q].head(TOP_FAILURES)
            if len(top):
                shown = top[["test", "hidden", "count", "example"]].rename(columns={"example": "message (an example)"})
                parts += [f"<h3>{html.escape(q)}</h3>", _table(shown, {"hidden": YES}, wrap=("message (an example)",))]
    else:
        parts.append("<p>No test failed.</p>")
    times = t["times"]
    parts += ["<h2>Time per submission</h2>", _img(p["times"]),
              f"<p>Median {times['seconds'].median():.1f} s, 90th percentile {times['seconds'].quantile(0.9):.1f} s, "
              f"slowest {times['seconds'].max():.1f} s, {times['seconds'].sum():.0f} s in all. The slowest:</p>",
              _table(times.sort_values("seconds", ascending=False).head(SLOWEST),
                     {c: "{:.2f}".format for c in ("seconds", "start", "notebook", "tests")}),
              "<h2>Files</h2><p>The same numbers as CSV, next to this page: " +
              ", ".join(f'<a href="{name}.csv">{name}.csv</a>' for name in t) + ".</p>"]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>Grading report: {html.escape(run.title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(run: Run, out: Path | None = None) -> Path:
    """Write the page and its CSV files to ``out`` (default: the run's ``report/``); return the page."""
    out = Path(out) if out is not None else run.folder / "report"
    out.mkdir(parents=True, exist_ok=True)  # (a report written again replaces its own files, nothing else)
    t = tables(run)
    for name, df in t.items():
        df.to_csv(out / f"{name}.csv", index=False)
    target = out / "index.html"
    target.write_text(page(run, t, plots(run, t)), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make report", description=__doc__.split("\n")[0])
    parser.add_argument("lab", nargs="?", help="the lab, e.g. 00_getting_started (its latest run, unless --run)")
    parser.add_argument("--run", type=Path, default=None, help="a grading run folder (default: the lab's latest)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: RUN/report/)")
    args = parser.parse_args(argv)
    try:
        run = load_run(find_run(args.lab, args.run), args.lab, min_rows=2)
        target = write_report(run, args.out)
    except BadInput as bad:
        print(f"make report: {bad}", file=sys.stderr)
        return 2
    print(f"report: {target}\nits numbers as CSV: {target.parent}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
