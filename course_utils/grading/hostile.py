"""A suite of hostile and broken submissions, generated for any lab, with the grade each must get.

Taught nowhere (instructor tooling). ``tests/test_hostile.py`` runs it for every lab, so a new lab
gets the same coverage without writing anything but its ``grading.yml`` (the partial-credit case).
``python -m course_utils.grading.hostile LAB`` prints the table of cases with the expected and the
observed status.

Every case starts from the lab's solution notebook (the autograder copy that ``make assign``
writes) or its untouched student notebook, and changes it the way a broken or dishonest
submission would. The expected score is stated per question: ``"full"``, ``0`` or a number.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .assign import REPO, discover_labs, find_lab


@dataclass
class Case:
    name: str
    what: str
    status: str                       # the expected status
    scores: dict = field(default_factory=dict)   # question -> "full" | number; others: see `others`
    others: str | None = "full"       # expected score of unlisted questions: "full", "zero" or None (unchecked)
    same_as: str | None = None        # the row must equal this case's row (but name and seconds)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}


def _with_cell(nb: dict, source: str, at: int | None = None) -> dict:
    nb = copy.deepcopy(nb)
    if at is None:
        nb["cells"].append(_code(source))
    else:
        nb["cells"].insert(at, _code(source))
    return nb


def _question_args(tests: dict) -> dict[str, list[str]]:
    """The names each question's tests take from the notebook (the answers they check)."""
    from otter.test_files import ExceptionTestFile

    args = {}
    for name, source in tests.items():
        tf = ExceptionTestFile.from_string(source, path=f"{name}.py")
        names: list[str] = []
        for tc in tf.test_cases:
            for a in tc.body._get_func_params():
                if a != "env" and a not in names:
                    names.append(a)
        args[name] = names
    return args


def build_cases(lab_name: str, assigned_root: Path | None = None) -> tuple[list[Case], dict[str, dict | bytes]]:
    """The cases and their submission files (notebook dicts, or raw bytes for broken files)."""
    lab = find_lab(lab_name)
    assigned = (assigned_root or REPO / "_assign") / lab.name
    solution = _read(assigned / "autograder" / f"{lab.name}.ipynb")
    student = _read(assigned / "student" / f"{lab.name}.ipynb")
    tests = {p.stem: p.read_text() for p in sorted((assigned / "tests").glob("*.py"))}
    questions = json.loads((assigned / "questions.json").read_text())
    args = _question_args(tests)
    cases: list[Case] = []
    files: dict[str, dict | bytes] = {}

    def add(case: Case, content):
        cases.append(case)
        files[f"{case.name}.ipynb"] = content

    zero = {q: 0 for q in questions}
    add(Case("solution", "the solution notebook", "graded"), solution)
    add(Case("untouched_student", "the student notebook as handed out", "graded", others="zero"), student)

    spec = yaml.safe_load((lab.folder / "grading.yml").read_text()) if (lab.folder / "grading.yml").exists() else None
    if not spec or "partial" not in spec:
        raise ValueError(f"{lab.folder}/grading.yml must describe a partial-credit answer (see CONTRIBUTING.md)")
    partial = spec["partial"]
    q = partial["question"]
    if q not in questions:
        raise ValueError(f"grading.yml names question {q!r}, which lab {lab.name} does not have")
    # by default the partial answer passes the public tests and fails every hidden one
    expected = float(partial.get("points", questions[q]["public"]))
    if not questions[q]["public"] - 1e-6 <= expected < questions[q]["points"]:
        raise ValueError(f"grading.yml: a partial answer to {q} scores between its public points and full marks")
    # questions whose answers call the partial one may lose points too: grading.yml says how many
    affected = {name: float(p) for name, p in (partial.get("affects") or {}).items()}
    add(Case("partial_public_only", f"{q}: an answer that passes the public tests only", "graded", {q: expected, **affected}),
        _with_cell(solution, partial["code"]))

    add(Case("infinite_loop", "an endless loop in the first cell", "timeout", others=None),
        _with_cell(solution, "while True:\n    pass", at=1))
    add(Case("os_exit", "os._exit in the last cell", "crashed", others="zero"),
        _with_cell(solution, "import os\nos._exit(0)"))
    add(Case("segfault", "a segmentation fault", "crashed", others="zero"),
        _with_cell(solution, "import ctypes\nctypes.string_at(0)"))
    add(Case("memory_blowup", "allocates memory until it runs out", "crashed", others="zero"),
        _with_cell(solution, "hog = []\nwhile True:\n    hog.append(bytearray(256 * 2**20))"))
    add(Case("malformed_json", "a truncated file", "invalid", others="zero"), b'{"cells": [{"cell_type": "code", ')
    add(Case("empty_file", "an empty file", "invalid", others="zero"), b"")
    other = [lb for lb in discover_labs() if lb.name != lab.name]
    other_nb = (_read(assigned.parent / other[0].name / "student" / f"{other[0].name}.ipynb")
                if other and (assigned.parent / other[0].name / "student").exists()
                else {**copy.deepcopy(student), "metadata": {"course": {"lab": "99_another_lab"}}})
    add(Case("another_lab", "another lab's notebook", "invalid", others="zero"), other_nb)
    add(Case("early_exception", "an exception in an early cell; later questions are independent", "graded"),
        _with_cell(solution, "raise RuntimeError('a mistake early in the notebook')", at=1))
    add(Case("prints_200MB", "prints 200 MB", "graded"),
        _with_cell(solution, "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 2**20)\nprint('done')", at=1))

    # tampering with the public tests and their outputs changes nothing: the grader brings its own
    edited = copy.deepcopy(student)
    for name in edited.get("metadata", {}).get("otter", {}).get("tests", {}):
        edited["metadata"]["otter"]["tests"][name] = re.sub(
            r"(def test\w*\(.*\):\n)", r"\1    return\n", edited["metadata"]["otter"]["tests"][name])
    add(Case("edited_public_tests", "public tests rewritten to pass", "graded", others="zero"), edited)
    deleted = copy.deepcopy(solution)
    deleted.get("metadata", {}).get("otter", {}).pop("tests", None)
    deleted["cells"] = [c for c in deleted["cells"] if "grader.check" not in "".join(c.get("source", ""))]
    add(Case("deleted_public_tests", "public test cells and metadata deleted", "graded"), deleted)
    faked = copy.deepcopy(student)
    for c in faked["cells"]:
        if c.get("cell_type") == "code" and "grader.check" in "".join(c.get("source", "")):
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "All tests passed!\n"}]
            c["execution_count"] = 1
    add(Case("fake_passed_outputs", "stored outputs claiming every test passed", "graded", others="zero"), faked)

    # monkeypatching: undone before the tests run, and the row is flagged
    add(Case("patches_test_helpers", "replaces torch/numpy assertion helpers", "flagged", others="zero"),
        _with_cell(student, "import torch, numpy\ntorch.testing.assert_close = lambda *a, **k: None\n"
                            "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                            "import builtins\nbuiltins.isinstance = lambda *a: True"))
    add(Case("patches_test_runner", "replaces otter's test runner", "flagged", others="zero"),
        _with_cell(student, "from otter.test_files import exception_test as et\n"
                            "et.test_case.call_func = lambda self, env: None\n"
                            "et.ExceptionTestFile.run = lambda self, env: None"))
    add(Case("patches_grader", "replaces the course grader's functions", "flagged", others="zero"),
        _with_cell(student, "import course_utils.grading.worker as w\n"
                            "w.restore_snapshot = lambda entries: []\nw.take_snapshot = lambda: []"))
    add(Case("rewrites_test_files", "writes always-passing test files to disk", "graded", others="zero"),
        _with_cell(student, "import os, glob\nos.makedirs('tests', exist_ok=True)\n"
                            + "".join(f"open('tests/{n}.py', 'w').write('OK_FORMAT = False\\nname = \"{n}\"\\n')\n" for n in tests)
                            + f"for p in glob.glob({str(REPO / '_assign')!r} + '/*/tests/*.py'):\n"
                              "    try:\n        open(p, 'w').write('')\n    except OSError:\n        pass"))
    add(Case("input_transformer", "an IPython input transformer that disables assertions", "flagged", others="zero"),
        _with_cell(student, "def no_asserts(lines):\n    return [l.replace('assert ', 'pass  # ') for l in lines]\n"
                            "get_ipython().input_transformers_cleanup.append(no_asserts)"))
    # answers that cheat on equality or have the wrong type: zero for that question
    target = next((q for q, a in args.items() if a and not any(set(a) & set(b) for p, b in args.items() if p != q)),
                  next(iter(questions)))
    target_args = args[target] or [target]
    always = ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, o: False\n"
              "    def __getattr__(self, name):\n        return self\n    def __call__(self, *a, **k):\n        return self\n"
              "    __float__ = lambda self: 0.0\n    __bool__ = lambda self: True\n")
    binding = "\n".join(f"{a} = (lambda *a, **k: AlwaysEqual()) if callable(globals().get({a!r})) else AlwaysEqual()" for a in target_args)
    # questions whose answers call the broken one may lose points too, so only the target is checked
    add(Case("eq_always_true", f"{target}: an object whose __eq__ is always True", "graded", {target: 0}, others=None),
        _with_cell(solution, always + binding))
    wrong = "\n".join(
        f"{a} = (lambda *a, **k: torch.zeros(3, 1, dtype=torch.int8)) if callable(globals().get({a!r})) "
        f"else torch.zeros(3, 1, dtype=torch.int8)" for a in target_args)
    add(Case("wrong_dtype_shape", f"{target}: answers of the wrong dtype and shape", "graded", {target: 0}, others=None),
        _with_cell(solution, "import torch\n" + wrong))
    add(Case("prints_hidden_tests", "hunts for the hidden tests in memory and raises them as messages", "flagged",
             others=None),
        _with_cell(solution, "import gc\nfound = [o for o in gc.get_objects() if isinstance(o, str) and 'hidden=True' in o]\n"
                             "print(found)\nsecret = '\\n'.join(found) or 'nothing found'\n"
                             "def leak(*a, **k):\n    raise AssertionError(secret)\n"
                             + "\n".join(f"{a} = leak" for q in questions for a in args[q])))
    custom = copy.deepcopy(solution)
    custom.setdefault("metadata", {})["kernelspec"] = {"name": "my-custom-env", "display_name": "Mine", "language": "python"}
    add(Case("custom_kernel", "a custom kernel name", "graded"), custom)
    bare = copy.deepcopy(solution)
    bare["metadata"] = {}
    add(Case("missing_metadata", "all notebook metadata removed", "graded"), bare)
    add(Case("solution_again", "the solution, submitted twice", "graded", same_as="solution"), copy.deepcopy(solution))
    return cases, files


def write_submissions(files: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


def check(cases: list[Case], rows: dict, questions: dict) -> list[str]:
    """Compare the gradebook rows with the cases; return one line per mismatch."""
    problems = []
    for case in cases:
        row = rows.get(f"{case.name}.ipynb")
        if row is None:
            problems.append(f"{case.name}: no row in the gradebook")
            continue
        if row.status != case.status:
            problems.append(f"{case.name}: status {row.status!r} ({row.note}), expected {case.status!r}")
        for q, info in questions.items():
            want = case.scores.get(q, None)
            if want is None:
                if case.others is None:
                    continue
                want = info["points"] if case.others == "full" else 0
            got = row.scores.get(q, 0)
            if abs(got - want) > 1e-3:
                problems.append(f"{case.name}: {q} scored {got}, expected {want}")
        if case.same_as:
            ref = rows[f"{case.same_as}.ipynb"]
            if (row.status, row.scores, row.total, row.note) != (ref.status, ref.scores, ref.total, ref.note):
                problems.append(f"{case.name}: graded differently from {case.same_as}")
    return problems


def run_suite(lab_name: str, workdir: Path, jobs: int = 2, assigned_root: Path | None = None):
    """Grade every case; return (cases, rows by file name, questions, seconds per phase)."""
    from .batch import Limits, grade_folder

    cases, files = build_cases(lab_name, assigned_root)
    questions = json.loads(((assigned_root or REPO / "_assign") / lab_name / "questions.json").read_text())
    # the solution alone first: its time sets a time limit that is generous for honest notebooks
    # and short enough that the endless loop costs little
    first = workdir / "solution_only"
    write_submissions({"solution.ipynb": files["solution.ipynb"]}, first)
    start = time.perf_counter()
    solo = grade_folder(lab_name, first, workdir / "grades_solution", Limits(jobs=1), assigned_root, progress=False)
    solo_seconds = time.perf_counter() - start
    limits = Limits(timeout=max(45.0, 4 * solo[0].seconds + 15), jobs=jobs, memory_mb=3072)
    rest = workdir / "submissions"
    write_submissions(files, rest)
    start = time.perf_counter()
    rows = {r.submission: r for r in grade_folder(lab_name, rest, workdir / "grades", limits, assigned_root, progress=False)}
    batch_seconds = time.perf_counter() - start
    return cases, rows, questions, {"solution": solo_seconds, "batch": batch_seconds, "timeout": limits.timeout}


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description="Run the hostile-submission suite on a lab and print its table.")
    parser.add_argument("labs", nargs="*")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    failed = False
    for name in args.labs or [lb.name for lb in discover_labs()]:
        with tempfile.TemporaryDirectory() as tmp:
            cases, rows, questions, times = run_suite(name, Path(tmp), args.jobs)
            print(f"\n{name}: {len(cases)} cases; solution graded in {times['solution']:.1f} s; "
                  f"batch of {len(cases)} in {times['batch']:.1f} s ({60 * len(cases) / times['batch']:.1f} per minute; "
                  f"time limit {times['timeout']:.0f} s)")
            print(f"| case | what | expected | observed | score |\n|---|---|---|---|---|")
            for c in cases:
                r = rows.get(f"{c.name}.ipynb")
                print(f"| {c.name} | {c.what} | {c.status} | {r.status if r else '-'} | "
                      f"{r.total:g} / {r.possible:g} |" if r else "| - |")
            problems = check(cases, rows, questions)
            for p in problems:
                print("MISMATCH:", p)
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
