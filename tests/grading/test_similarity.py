"""``make similarity`` (course_tools/grading/similarity.py): a planted pair (two submissions that
share their answers, the second with every local name renamed) ranks first among 20 independent
ones written in different ways; the hand-out's code counts for no one; earlier terms are compared
with the current one only; the page says it is for a person's judgement; bad input stops with one
line and status 2.

The submissions are generated: each answer of Lab 0 in one of several approaches (some wrong), local
names drawn at random, equivalent spellings (``dim=1`` or ``1``, ``.flatten()`` or ``.view(-1)``)
picked at random, comments and cells of its own added at random. ``python
tests/grading/test_similarity.py 300`` times the check on 300 such submissions.
"""

from __future__ import annotations

import copy
import csv
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_tools import REPO
from course_tools.grading import similarity

LAB = "00_getting_started"

CE = [
    # logsumexp and gather
    "    {a} = torch.logsumexp(scores, dim=1)\n    {b} = scores.gather(1, labels.unsqueeze(1)).squeeze(1)\n"
    "    return ({a} - {b}).mean()\n",
    # take_along_dim, inline
    "    return (torch.logsumexp(scores, 1) - torch.take_along_dim(scores, labels[:, None], dim=1)[:, 0]).mean()\n",
    # stable by hand: subtract the maximum
    "    {a} = scores.max(dim=1, keepdim=True).values\n"
    "    {b} = {a}.squeeze(1) + torch.log(torch.exp(scores - {a}).sum(dim=1))\n"
    "    {c} = torch.gather(scores, 1, labels[:, None]).squeeze(1)\n    return torch.mean({b} - {c})\n",
    # one-hot mask
    "    {a} = F.one_hot(labels, num_classes=scores.shape[1]).permute(0, 3, 1, 2).to(scores.dtype)\n"
    "    {b} = (scores * {a}).sum(dim=1)\n    return (torch.logsumexp(scores, dim=1) - {b}).mean()\n",
    # flatten the pixels, index with arange
    "    n, c, h, w = scores.shape\n    {a} = scores.permute(0, 2, 3, 1).reshape(-1, c)\n    {b} = labels.reshape(-1)\n"
    "    {c} = {a}[torch.arange({b}.numel()), {b}]\n    return (torch.logsumexp({a}, dim=1) - {c}).sum() / {b}.numel()\n",
    # a loop over the classes
    "    {a} = torch.zeros_like(scores[:, 0])\n    for k in range(scores.shape[1]):\n"
    "        {a} = torch.where(labels == k, scores[:, k], {a})\n    {b} = torch.logsumexp(scores, dim=1)\n"
    "    return torch.mean({b} - {a})\n",
    # wrong: overflows
    "    {a} = torch.log(torch.exp(scores).sum(1))\n    {b} = scores.gather(1, labels.unsqueeze(1))[:, 0]\n"
    "    return ({a} - {b}).mean()\n",
    # wrong: softmax, then the log
    "    {a} = torch.softmax(scores, dim=1)\n    {b} = ({a} * F.one_hot(labels, scores.size(1)).movedim(-1, 1)).sum(1)\n"
    "    return -torch.log({b}).mean()\n",
    # wrong: a sum, not a mean
    "    {a} = torch.logsumexp(scores, dim=1) - torch.gather(scores, 1, labels.unsqueeze(1)).squeeze(1)\n"
    "    return {a}.sum()\n",
]
ACC = [
    "    {p} = scores.argmax(dim=1)\n    {m} = labels != ignore_index\n    if not {m}.any():\n        return float('nan')\n"
    "    return float(({p}[{m}] == labels[{m}]).double().mean())\n",
    "    {m} = labels != ignore_index\n    {n} = int({m}.sum())\n    if {n} == 0:\n        return float('nan')\n"
    "    {k} = ((scores.argmax(1) == labels) & {m}).sum().item()\n    return {k} / {n}\n",
    "    import math\n    {p} = scores.argmax(1).flatten()\n    {t} = labels.flatten()\n    {m} = {t} != ignore_index\n"
    "    if {m}.sum() == 0:\n        return math.nan\n    return ({p}[{m}] == {t}[{m}]).float().mean().item()\n",
    "    {p} = torch.max(scores, dim=1).indices\n"
    "    {k} = torch.where(labels == ignore_index, torch.zeros_like(labels, dtype=torch.bool), {p} == labels)\n"
    "    {n} = (labels != ignore_index).sum()\n    return float({k}.sum() / {n}) if {n} > 0 else float('nan')\n",
    # wrong: the ignored pixels count
    "    return float((scores.argmax(dim=1) == labels).float().mean())\n",
    # wrong: a tensor, not a float
    "    {m} = labels != ignore_index\n    return (scores.argmax(1)[{m}] == labels[{m}]).double().mean()\n",
    "    import numpy as np\n    {p} = scores.argmax(1).numpy()\n    {t} = labels.numpy()\n    {m} = {t} != ignore_index\n"
    "    if not {m}.any():\n        return float('nan')\n    return float(np.mean({p}[{m}] == {t}[{m}]))\n",
]
EXTRA = [  # cells a student adds to try things out
    "x = torch.randn({n}, {c}, {h}, {h})\ny = torch.randint(0, {c}, ({n}, {h}, {h}))\n"
    "print(pixel_cross_entropy(x, y), F.cross_entropy(x, y))\n",
    "s = torch.tensor([[[[{n}.0, 0.0]], [[0.0, {c}.0]]]])\nprint(pixel_accuracy(s, torch.tensor([[[0, 1]]])))\n",
    "for size in range({n}):\n    sc = torch.randn(1, {c}, size + 1, size + 1)\n"
    "    print(size, pixel_cross_entropy(sc, sc.argmax(1)).item())\n",
    "import time\nt0 = time.time()\n"
    "pixel_cross_entropy(torch.randn({n}, {c}, 64, 64), torch.randint(0, {c}, ({n}, 64, 64)))\nprint(time.time() - t0)\n",
    "lab = torch.full(({n}, {h}, {h}), 255)\nprint(pixel_accuracy(torch.randn({n}, {c}, {h}, {h}), lab))\n",
]
NAMES = ["x", "y", "z", "tmp", "val", "out", "res", "lse", "logz", "true", "picked", "correct", "mask", "valid", "pred",
         "preds", "target", "tgt", "n_valid", "total", "hits", "log_norm", "norm", "keep", "ok", "good", "m", "p",
         "q", "r", "s1", "s2", "loss", "per_pixel", "chosen", "sel", "labeled", "count", "num", "den", "a1", "b1"]
SLOTS = "abcpmnkt"
PLANTED = (2, 1)   # the approaches of the planted pair, which no independent submission takes
# ways to write the same thing, one picked at random each time
SPELLINGS = [("dim=1", "1"), (".flatten()", ".reshape(-1)", ".view(-1)"), (".float()", ".double()"),
             ("labels[:, None]", "labels.unsqueeze(1)")]


def answer(template: str, rng: random.Random, names: dict | None = None) -> tuple[str, dict]:
    """A template with its local names filled in (fresh ones, or ``names``), spelled one of the
    equivalent ways (``dim=1`` or ``1``), with or without a comment."""
    names = names or dict(zip(SLOTS, rng.sample(NAMES, len(SLOTS))))
    body = template.format(**names)
    for spellings in SPELLINGS:  # the templates use the first spelling
        parts = body.split(spellings[0])
        body = "".join(part + (rng.choice(spellings) if k < len(parts) - 1 else "") for k, part in enumerate(parts))
    if rng.random() < 0.4:
        body = "    # " + rng.choice(["my answer", "per pixel", "see the chapter", "vectorized", "no loops"]) + "\n" + body
    return body, names


def rename(body: str, names: dict, rng: random.Random) -> str:
    """The same code with every local name replaced (what a student who copies does first)."""
    fresh = rng.sample([n for n in NAMES if n not in names.values()], len(names))
    mapping = {old: new + "_" for old, new in zip(names.values(), fresh)}
    out = re.sub(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b", lambda m: mapping[m.group(1)], body)
    return out.replace("# my answer", "# done").replace("# per pixel", "# pixelwise")


def notebook(handout: dict, ce: str | None, acc: str | None, extras: list[str]) -> dict:
    nb = copy.deepcopy(handout)
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        head = source.split("\n")[0] + "\n" if cell["cell_type"] == "code" else ""
        if source.startswith("def pixel_cross_entropy") and ce:
            cell["source"] = head + ce
        elif source.startswith("def pixel_accuracy") and acc:
            cell["source"] = head + acc
    at = next(k for k, c in enumerate(nb["cells"]) if "grader.check(\"pixel_accuracy\")" in "".join(c["source"]))
    for k, extra in enumerate(extras):
        nb["cells"].insert(at + 1 + k, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                                        "source": extra})
    return nb


def independent(handout: dict, count: int, seed: int, distinct: bool = True) -> list[dict]:
    """``count`` submissions, each written its own way: with ``distinct``, no two pick the same pair
    of approaches; some leave a question unanswered; each adds 0 to 2 cells of its own."""
    rng = random.Random(seed)
    combos = [(i, j) for i in range(len(CE)) for j in range(len(ACC)) if (i, j) != PLANTED]
    rng.shuffle(combos)
    out = []
    for k in range(count):
        i, j = combos[k % len(combos)] if distinct else (rng.randrange(len(CE)), rng.randrange(len(ACC)))
        ce = answer(CE[i], rng)[0] if rng.random() > 0.05 else None
        acc = answer(ACC[j], rng)[0] if rng.random() > 0.05 else None
        extras = [rng.choice(EXTRA).format(n=rng.randint(1, 9), c=rng.randint(2, 9), h=rng.randint(3, 40))
                  for _ in range(rng.randint(0, 2))]
        out.append(notebook(handout, ce, acc, extras))
    return out


def planted(handout: dict, seed: int) -> tuple[dict, dict]:
    """Two submissions that share both answers, the second with every local name renamed, other
    comments and its own extra cell."""
    rng = random.Random(seed)
    ce, ce_names = answer(CE[PLANTED[0]], rng)
    acc, acc_names = answer(ACC[PLANTED[1]], rng)
    first = notebook(handout, ce, acc, [EXTRA[0].format(n=2, c=3, h=4)])
    second = notebook(handout, rename(ce, ce_names, rng), rename(acc, acc_names, rng), [EXTRA[4].format(n=1, c=4, h=5)])
    return first, second


def write(folder: Path, notebooks: dict[str, dict]) -> Path:
    for name, nb in notebooks.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "00_getting_started.ipynb").write_text(json.dumps(nb))
    return folder


# --- the tests -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handout(assigned) -> dict:
    return json.loads((assigned / LAB / "student" / f"{LAB}.ipynb").read_text())


@pytest.fixture(scope="module")
def planted_run(handout, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("similarity")
    notebooks = {f"student{k:02d}": nb for k, nb in enumerate(independent(handout, 20, seed=1))}
    notebooks["student20"], notebooks["student21"] = planted(handout, seed=2)
    write(tmp / "subs", notebooks)
    return similarity.run(LAB, tmp / "subs", out=tmp / "report")


def test_a_planted_pair_with_renamed_names_ranks_first_among_twenty_independent_submissions(planted_run):
    pairs = planted_run["pairs"]
    top = pairs[0]
    assert {top.a.name, top.b.name} == {f"student20/{LAB}.ipynb", f"student21/{LAB}.ipynb"}
    assert top.score >= 0.7, f"the planted pair scores only {top.score:.2f}"
    assert pairs[1].score < top.score - 0.05, "an independent pair scores as high as the planted one"
    with open(planted_run["out"] / "pairs.csv", newline="") as f:
        first = next(csv.DictReader(f))
    assert (first["rank"], first["submission_a"], first["submission_b"]) == ("1", top.a.name, top.b.name)
    assert float(first["score"]) == pytest.approx(top.score, abs=1e-4)


def test_the_page_shows_the_matching_lines_side_by_side_and_says_it_is_not_proof(planted_run):
    page = (planted_run["out"] / "index.html").read_text()
    assert "A tool for a person's judgement, not proof." in page
    first = page.split("<h3 id='pair-1'>", 1)[1].split("<h3", 1)[0]
    left, right = re.findall(r"<pre>(.*?)</pre>", first, re.S)
    # the planted pair's answers differ only in names: both sides highlight the same statements
    assert "<mark>" in left and "<mark>" in right
    assert "torch.exp(scores - " in left and "torch.exp(scores - " in right
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_the_handout_code_counts_for_no_one(assigned, handout, tmp_path):
    solution = "    return (torch.logsumexp(scores, dim=1) - scores.gather(1, labels[:, None])[:, 0]).mean()\n"
    write(tmp_path / "subs", {"untouched1": handout, "untouched2": handout,
                              "copy1": notebook(handout, solution, None, []),
                              "copy2": notebook(handout, solution, None, [])})
    found = similarity.run(LAB, tmp_path / "subs", out=tmp_path / "report")
    skipped = {s.name.split("/")[0]: s.problem for s in found["sources"] if s.problem}
    assert set(skipped) == {"untouched1", "untouched2"}, "a hand-out left as it is has no code of its own"
    assert [(p.a.name.split("/")[0], p.b.name.split("/")[0]) for p in found["pairs"]] == [("copy1", "copy2")]
    assert found["pairs"][0].score == pytest.approx(1.0)
    # what matches is the answer: the hand-out's own lines are never the whole of a match
    assert "logsumexp" in similarity.own_code(notebook(handout, solution, None, []), similarity.handout_code(
        assigned / LAB / "student" / f"{LAB}.ipynb")[1])


def test_earlier_terms_are_compared_with_the_current_one_only(handout, tmp_path):
    nbs = independent(handout, 3, seed=5)
    write(tmp_path / "now", {"ann": nbs[0], "ben": nbs[1]})
    write(tmp_path / "2024", {"old1": nbs[0], "old2": nbs[0]})  # the two earlier ones are copies of each other
    found = similarity.run(LAB, tmp_path / "now", [tmp_path / "2024"], out=tmp_path / "report")
    names = [(p.a.name, p.b.name) for p in found["pairs"] if p.score == pytest.approx(1.0)]
    assert sorted(names) == [(f"ann/{LAB}.ipynb", f"[earlier: 2024] old1/{LAB}.ipynb"),
                             (f"ann/{LAB}.ipynb", f"[earlier: 2024] old2/{LAB}.ipynb")]
    assert all(not p.a.earlier for p in found["pairs"])


@pytest.mark.parametrize("case", ["one notebook", "not a folder", "no hand-out"])
def test_bad_input_stops_with_one_line_and_status_2(case, handout, tmp_path, capsys):
    lab, folder = LAB, tmp_path / "subs"
    if case == "one notebook":
        write(folder, {"alone": handout})
    elif case == "no hand-out":
        write(folder, {"a": handout, "b": handout})
        lab = "99_no_such_lab"
    assert similarity.main([lab, str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "expected" in err, err


def test_bad_input_from_the_command_line_prints_no_traceback(handout, tmp_path):
    write(tmp_path / "subs", {"alone": handout})
    proc = subprocess.run([sys.executable, "-m", "course_tools.grading.similarity", LAB, str(tmp_path / "subs")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "make similarity: expected a folder of at least two submitted notebooks (.ipynb, at any depth): "
        f"{tmp_path / 'subs'} has 1"]


if __name__ == "__main__":  # python tests/grading/test_similarity.py 300 [folder]: the time of a class of 300
    import tempfile

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="similarity-"))
    hand_out = json.loads((REPO / "_assign" / LAB / "student" / f"{LAB}.ipynb").read_text())
    write(folder / "subs", {f"s{k:03d}": nb for k, nb in enumerate(independent(hand_out, count, seed=3, distinct=False))})
    started = time.perf_counter()
    result = similarity.run(LAB, folder / "subs", out=folder / "report")
    print(f"{count} submissions: compared in {result['seconds']:.1f} s, report written after "
          f"{time.perf_counter() - started:.1f} s; {len(result['pairs'])} pairs share code; {folder / 'report'}")
