"""``make similarity``: which submissions share code, ranked, with the matching lines side by side.

Every pair of submissions is compared on the code its author wrote: the code cells that differ from
every code cell of the hand-out (the answer cells, and cells the student added). The comparison is
copydetect's (MOSS-style winnowing of k-grams of the tokenised code, run locally): names become one
token, so renaming variables changes nothing, while comments, blank lines and spacing are left
out. The hand-out's own code is boilerplate: a match with it counts for no one. Folders of earlier
terms (``--earlier DIR``) are compared with every current submission, never among themselves.

It writes ``index.html`` (the ranking, a histogram of the scores, and the top pairs with their
matching code highlighted side by side) and ``pairs.csv`` (every pair that shares anything) to
``_grades/NN_slug/similarity/<date>-<time>/`` (or ``--out DIR``). A pair's score is the smaller of
its two percentages (the share of each one's own code that matches the other), so a short answer
contained in a long one does not top the list. Similar code is a reason to look, never proof: short
answers to the same question converge, and the page says so.

    python -m course_tools.grading.similarity 00_getting_started path/to/submissions [--earlier DIR ...]
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import REPO
from .runs import BadInput

NOISE = 25            # copydetect's noise threshold: matches shorter than this (tokenised characters) never count
# matches at least this long are always found; equal to NOISE, every k-gram is a fingerprint (a winnowing
# window of 1): a larger window picks fingerprints by Python's salted str hash, so scores would vary between runs
GUARANTEE = NOISE
SHOW = 20             # pairs shown side by side on the page
LIST = 200            # pairs listed in the page's ranking (pairs.csv has all)
CONTEXT = 3           # lines of unmatched code kept around each match on the page
MAX_CODE = 500_000    # characters of a notebook's own code beyond which it is listed, not compared
SKIP_DIRS = (".ipynb_checkpoints", "__pycache__", "__MACOSX")


@dataclass
class Source:
    name: str                 # as shown: the path inside its folder, with "[earlier: DIR] " for an earlier term
    path: Path
    earlier: bool = False
    code: str = ""            # the code of its own, cell by cell
    problem: str = ""         # why it was not compared
    fingerprint: object = None


@dataclass
class Pair:
    a: Source
    b: Source
    score: float
    share_a: float
    share_b: float
    tokens: int
    slices: tuple = field(default=(), repr=False)


# --- what each notebook wrote itself -----------------------------------------------------------------------------


def _cells(nb: dict) -> list[tuple[int, str]]:
    """The code cells of a notebook: (index among all its cells, source)."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a Jupyter notebook: no list of cells")
    out = []
    for k, cell in enumerate(cells):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            out.append((k, "".join(map(str, source)) if isinstance(source, list) else str(source)))
    return out


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def handout_code(handout: Path) -> tuple[str, set[str]]:
    """The hand-out's code (the boilerplate) and its cells, normalised (a submission's cell equal to
    one of them is the hand-out's, not the student's)."""
    cells = _cells(json.loads(handout.read_text()))
    return "\n\n".join(source for _, source in cells), {_norm(source) for _, source in cells}


def own_code(nb: dict, handout_cells: set[str]) -> str:
    """The code cells a student wrote or changed, each under a ``# cell N`` line (N counts every cell
    from 1, as Jupyter shows them); IPython's ``%`` and ``!`` lines become comments."""
    parts = []
    for k, source in _cells(nb):
        if not source.strip() or _norm(source) in handout_cells:
            continue
        lines = [("# " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        parts.append(f"# cell {k + 1}\n" + "\n".join(lines).rstrip() + "\n")
    return "\n".join(parts)


def find_notebooks(folder: Path) -> list[Path]:
    """Every ``.ipynb`` under ``folder``, at any depth (hidden folders and checkpoints left out)."""
    return sorted(p for p in folder.rglob("*.ipynb") if p.is_file() and not any(
        part.startswith(".") or part in SKIP_DIRS for part in p.relative_to(folder).parts))


def collect(folder: Path, handout_cells: set[str], earlier: bool = False) -> list[Source]:
    found = []
    for path in find_notebooks(folder):
        name = str(path.relative_to(folder))
        source = Source(f"[earlier: {folder.name}] {name}" if earlier else name, path, earlier)
        try:
            source.code = own_code(json.loads(path.read_text(encoding="utf-8")), handout_cells)
            if not source.code.strip():
                source.problem = "no code of its own (the hand-out's cells only)"
            elif len(source.code) > MAX_CODE:
                source.problem = f"more than {MAX_CODE // 1000} kB of code of its own: not compared, look at it yourself"
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, TypeError, AttributeError) as exc:
            source.problem = f"not a readable notebook ({type(exc).__name__})"
        found.append(source)
    return found


# --- the comparison ------------------------------------------------------------------------------------------------


def compare(current: list[Source], earlier: list[Source], boilerplate: str, noise: int = NOISE,
            guarantee: int = GUARANTEE) -> list[Pair]:
    """Every pair of current submissions, and every current one against every earlier one, that
    shares code: ranked by score, then by matching tokens."""
    from copydetect import CodeFingerprint, compare_files

    window = guarantee - noise + 1
    plate = CodeFingerprint("handout.py", noise, 1, fp=io.StringIO(boilerplate), language="python")
    plate_hashes = list(plate.hashes)
    for s in current + earlier:
        if not s.problem:
            s.fingerprint = CodeFingerprint(s.name + ".py", noise, window, boilerplate=plate_hashes,
                                            fp=io.StringIO(s.code), language="python")
            if not s.fingerprint.hashes:
                s.problem = "no code of its own beyond the hand-out's"
    ok = [s for s in current if not s.problem]
    old = [s for s in earlier if not s.problem]
    pairs = []
    for i, a in enumerate(ok):
        for b in ok[i + 1:] + old:
            if a.fingerprint.hashes.isdisjoint(b.fingerprint.hashes):
                continue
            tokens, (share_a, share_b), slices = compare_files(a.fingerprint, b.fingerprint)
            if tokens > 0:
                pairs.append(Pair(a, b, float(min(share_a, share_b)), float(share_a), float(share_b), int(tokens),
                                  slices))
    pairs.sort(key=lambda p: (-p.score, -p.tokens, p.a.name, p.b.name))
    return pairs


# --- the report ----------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 80rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.warn { background: #fff4e0; border-left: 4px solid #E69F00; padding: .5rem .8rem; }
table { border-collapse: collapse; font-size: .92rem; } td.num { text-align: right; }
th, td { border-bottom: 1px solid #ddd; padding: .2rem .6rem; text-align: left; } th { background: #f4f4f4; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.pair pre { margin: 0; padding: .5rem; background: #fafafa; border: 1px solid #ddd; overflow-x: auto;
            font-size: .8rem; line-height: 1.35; }
mark { background: #ffe08a; outline: 1px solid #E69F00; } img { max-width: 100%; height: auto; }
"""


def _side(source: Source, slices) -> str:
    from copydetect.utils import highlight_overlap

    marked, _ = highlight_overlap(source.code, slices, "<mark>", "</mark>", truncate=CONTEXT, escape_html=True)
    return marked


def _histogram(pairs: list[Pair], compared: int) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    everything = compared * (compared - 1) // 2
    scores = [100 * p.score for p in pairs]
    ax.hist(scores, bins=20, range=(0, 100), color="#0072B2")
    ax.set_yscale("log")
    ax.set_xlabel("score (% of the code of both that matches)", fontsize=10)
    ax.set_ylabel("pairs", fontsize=10)
    ax.set_title(f"{len(pairs)} of {everything} pairs of current submissions share some code" if everything
                 else f"{len(pairs)} pairs share some code", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def page(lab: str, pairs: list[Pair], sources: list[Source], earlier_dirs: list[Path], seconds: float,
         show: int = SHOW) -> str:
    current = [s for s in sources if not s.earlier]
    compared = sum(1 for s in current if not s.problem)
    skipped = [s for s in sources if s.problem]
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    rows = "".join(
        f"<tr><td class=num>{k}</td><td class=num>{pct(p.score)}</td><td><a href='#pair-{k}'>{html.escape(p.a.name)}</a>"
        f"</td><td>{html.escape(p.b.name)}</td><td class=num>{pct(p.share_a)}</td><td class=num>{pct(p.share_b)}</td>"
        f"<td class=num>{p.tokens}</td></tr>" if k <= show else
        f"<tr><td class=num>{k}</td><td class=num>{pct(p.score)}</td><td>{html.escape(p.a.name)}</td>"
        f"<td>{html.escape(p.b.name)}</td><td class=num>{pct(p.share_a)}</td><td class=num>{pct(p.share_b)}</td>"
        f"<td class=num>{p.tokens}</td></tr>"
        for k, p in enumerate(pairs[:LIST], 1))
    alt = (f"Histogram of the scores of the {len(pairs)} pairs that share code"
           + (f"; the highest is {100 * pairs[0].score:.0f}%" if pairs else "") + ".")
    parts = [
        f"<h1>Code similarity: {html.escape(lab)}</h1>",
        "<p class=warn><strong>A tool for a person's judgement, not proof.</strong> A high score says that two "
        "notebooks share long runs of code once names, comments and spacing are set aside; short answers to the "
        "same question converge on the same code, students may work together where that is allowed, and code "
        "from a common source (the chapter, the documentation) matches too. Read the code side by side, and talk "
        "with the students, before concluding anything.</p>",
        f"<p>{len(current)} submissions ({compared} compared), "
        + (f"{sum(1 for s in sources if s.earlier)} from earlier terms "
           f"({', '.join(html.escape(str(d)) for d in earlier_dirs)}), " if earlier_dirs else "")
        + f"{len(pairs)} pairs share code, compared in {seconds:.1f} s on {datetime.now():%Y-%m-%d %H:%M}. The code "
        "compared is each notebook's own: the code cells that differ from the hand-out's, with the hand-out's code "
        "as boilerplate (a match with it counts for no one). A pair's <em>score</em> is the smaller of its two "
        "percentages: how much of each one's own code matches the other. <code>pairs.csv</code> lists every pair.</p>",
        f'<img src="data:image/png;base64,{_histogram(pairs, compared)}" alt="{html.escape(alt)}">',
        "<h2>Ranking</h2>",
        "<table><thead><tr><th>#</th><th>score</th><th>submission</th><th>and</th><th>% of first</th>"
        f"<th>% of second</th><th>tokens matched</th></tr></thead><tbody>{rows}</tbody></table>",
        f"<h2>The top {min(show, len(pairs))} pairs, side by side</h2>",
        "<p>Matching code is highlighted; unmatched code far from a match is cut (…).</p>"]
    for k, p in enumerate(pairs[:show], 1):
        parts.append(f"<h3 id='pair-{k}'>{k}. {html.escape(p.a.name)} and {html.escape(p.b.name)}: {pct(p.score)} "
                     f"({pct(p.share_a)} and {pct(p.share_b)}, {p.tokens} tokens)</h3><div class=pair>"
                     f"<pre>{_side(p.a, p.slices[0])}</pre><pre>{_side(p.b, p.slices[1])}</pre></div>")
    if skipped:
        parts += ["<h2>Not compared</h2><ul>"] + [f"<li>{html.escape(s.name)}: {html.escape(s.problem)}</li>"
                                                  for s in skipped] + ["</ul>"]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>Code similarity: {html.escape(lab)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_csv(pairs: list[Pair], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "score", "submission_a", "submission_b", "share_a", "share_b", "tokens", "b_is_earlier"])
        for k, p in enumerate(pairs, 1):
            w.writerow([k, f"{p.score:.4f}", p.a.name, p.b.name, f"{p.share_a:.4f}", f"{p.share_b:.4f}", p.tokens,
                        int(p.b.earlier)])


# --- the command ---------------------------------------------------------------------------------------------------


def handout_of(lab: str, assigned: Path | None = None) -> Path:
    path = (assigned or REPO / "_assign") / lab / "student" / f"{lab}.ipynb"
    if not path.is_file():
        raise BadInput(f"expected the hand-out of {lab} at {path}: run `make assign` (or name a lab that exists)")
    return path


def run(lab: str, submissions: Path, earlier_dirs: list[Path] = (), out: Path | None = None,
        assigned: Path | None = None, show: int = SHOW, noise: int = NOISE, guarantee: int = GUARANTEE) -> dict:
    """Compare, write the report; return what it found (for the command's last lines and for tests)."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise BadInput(f"expected a folder of submitted notebooks: {submissions} is not a folder")
    for d in earlier_dirs:
        if not Path(d).is_dir():
            raise BadInput(f"expected a folder of an earlier term's notebooks: {d} is not a folder")
    boilerplate, cells = handout_code(handout_of(lab, assigned))
    started = time.perf_counter()
    current = collect(submissions, cells)
    if len(current) < 2:
        raise BadInput(f"expected a folder of at least two submitted notebooks (.ipynb, at any depth): "
                       f"{submissions} has {len(current)}")
    earlier = [s for d in earlier_dirs for s in collect(Path(d), cells, earlier=True)]
    pairs = compare(current, earlier, boilerplate, noise, guarantee)
    seconds = time.perf_counter() - started
    if out is None:
        base = REPO / "_grades" / lab / "similarity"
        out = base / datetime.now().strftime("%Y%m%d-%H%M%S")
        k = 1
        while out.exists():
            k += 1
            out = base / f"{datetime.now():%Y%m%d-%H%M%S}-{k}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(pairs, out / "pairs.csv")
    (out / "index.html").write_text(page(lab, pairs, current + earlier, list(earlier_dirs), seconds, show),
                                    encoding="utf-8")
    return {"out": out, "pairs": pairs, "seconds": seconds, "sources": current + earlier}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make similarity", description=__doc__.split("\n")[0])
    parser.add_argument("lab", help="the lab, e.g. 00_getting_started (its hand-out is the boilerplate)")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (sub-folders are searched)")
    parser.add_argument("--earlier", type=Path, nargs="+", default=[], metavar="DIR",
                        help="folders of earlier terms' notebooks, compared with every current submission")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new _grades/<lab>/similarity/<date-time>/)")
    parser.add_argument("--show", type=int, default=SHOW, help="pairs shown side by side on the page")
    parser.add_argument("--noise", type=int, default=NOISE,
                        help="shortest match that counts, in characters of tokenised code")
    args = parser.parse_args(argv)
    try:
        found = run(args.lab, args.submissions, args.earlier, args.out, show=args.show, noise=args.noise,
                    guarantee=args.noise)
    except BadInput as bad:
        print(f"make similarity: {bad}", file=sys.stderr)
        return 2
    pairs, sources = found["pairs"], found["sources"]
    print(f"compared {sum(not s.problem for s in sources)} notebooks in {found['seconds']:.1f} s: "
          f"{len(pairs)} pairs share code" + (f"; the top one, {pairs[0].a.name} and {pairs[0].b.name}, "
                                               f"{100 * pairs[0].score:.0f}%" if pairs else ""))
    print(f"report: {found['out'] / 'index.html'}\nevery pair: {found['out'] / 'pairs.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
