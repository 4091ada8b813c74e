"""Broken and dishonest submissions, generated for any lab, with the grade each must get.

Taught nowhere (instructor tooling). ``tests/grading/test_hostile.py`` runs it: every lab gets its
lab-specific cases (the solution, the untouched notebook, a partial answer and one submission that
breaks every by-hand rule with the rule's ``example`` call), and Lab 0 the whole suite (crashes,
timeouts, invalid files, forged results, crafted objects, banned calls reached four ways, a call
that sleeps, a process that dies during the tests, attacks on the judge). ``python -m
course_tools.grading.hostile LAB [--full]`` prints the table of cases with what was expected and
what was observed.

Every case starts from the lab's solution notebook (the autograder copy that ``make assign``
writes) or its untouched student notebook, and changes it the way a broken or dishonest
submission would. Expected scores are stated per question: ``"full"``, ``0`` or a number.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import REPO
from .assign import discover_labs, find_lab

MARKER = "/tmp/course-hostile-pwned"  # a crafted object that ran code in the judge would create it


@dataclass
class Case:
    name: str
    what: str
    status: str                       # the expected status
    scores: dict = field(default_factory=dict)   # question -> "full" | number; others: see `others`
    others: str | None = "full"       # expected score of unlisted questions: "full", "zero" or None (unchecked)
    same_as: str | None = None        # the row must equal this case's row (but name and seconds)
    feedback: tuple = ()              # texts the case's feedback must contain


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


def _cell_text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _before_check(nb: dict, question: str, source: str) -> dict:
    """``nb`` with a new cell just above ``grader.check(question)``: in that question's part."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        if re.search(rf'grader\.check\(\s*["\']{question}["\']', _cell_text(cell)):
            nb["cells"].insert(i, _code(source))
            return nb
    raise ValueError(f"no grader.check({question!r}) cell")


def _inject(nb: dict, function: str, lines: list[str]) -> dict:
    """``nb`` with ``lines`` run first in the body of ``def function`` (after its docstring)."""
    nb = copy.deepcopy(nb)
    pattern = re.compile(rf"^(\s*)def {function}\(.*?\):[^\n]*\n((?:\1[ \t]+(?:\"\"\"|''').*?(?:\"\"\"|''')[^\n]*\n)?)", re.S | re.M)
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        text = _cell_text(cell)
        m = pattern.search(text)
        if m:
            body_indent = m.group(1) + "    "
            insert = "".join(f"{body_indent}{line}\n" for line in lines)
            cell["source"] = text[:m.end()] + insert + text[m.end():]
            return nb
    raise ValueError(f"no definition of {function} in the notebook")


def _modules_of(example: str) -> list[str]:
    return sorted(set(re.findall(r"\b(course_utils(?:\.\w+)+)\.\w+\(", example)))


def lab_cases(lab_name: str, assigned_root: Path | None = None, full: bool = False) -> tuple[list[Case], dict]:
    """The cases and their submission files (notebook dicts, or raw bytes for broken files)."""
    lab = find_lab(lab_name)
    assigned = (assigned_root or REPO / "_assign") / lab.name
    solution = _read(assigned / "autograder" / f"{lab.name}.ipynb")
    student = _read(assigned / "student" / f"{lab.name}.ipynb")
    meta = _read(assigned / "questions.json")
    questions = {q["name"]: q for q in meta["questions"]}
    cases: list[Case] = []
    files: dict[str, dict | bytes] = {}

    def add(case: Case, content):
        cases.append(case)
        files[f"{case.name}.ipynb"] = content

    add(Case("solution", "the solution notebook", "graded"), solution)
    add(Case("untouched_student", "the student notebook as handed out", "graded", others="zero"), student)

    spec = lab.grading_spec()
    if "partial" not in spec:
        raise ValueError(f"{lab.folder}/grading.yml must describe a partial-credit answer (see CONTRIBUTING.md)")
    partial = spec["partial"]
    q = partial["question"]
    if q not in questions:
        raise ValueError(f"grading.yml names question {q!r}, which lab {lab.name} does not have")
    expected = float(partial.get("points", questions[q]["public"]))
    if not questions[q]["public"] - 1e-6 <= expected < questions[q]["points"]:
        raise ValueError(f"grading.yml: a partial answer to {q} scores between its public points and full marks")
    affected = {name: float(p) for name, p in (partial.get("affects") or {}).items()}
    add(Case("partial_public_only", f"{q}: an answer that passes the public tests only", "graded", {q: expected, **affected}),
        _with_cell(solution, partial["code"]))

    ruled = [qq for qq in meta["questions"] if qq["rule"]]
    if ruled:
        broken = solution
        for qq in ruled:
            example = qq["rule"]["example"]
            if not example:
                raise ValueError(f"grading.yml: the by-hand rule of {qq['name']} needs an example call")
            broken = _inject(broken, qq["names"][0], [f"import {m}" for m in _modules_of(example)] + [example])
        add(Case("breaks_every_rule", "every by-hand answer makes its rule's forbidden call first", "flagged",
                 {qq["name"]: 0 for qq in ruled}, feedback=("by-hand rule was broken",)), broken)
    if full:
        _full_suite(add, lab, solution, student, questions, assigned)
    return cases, files


def _full_suite(add, lab, solution: dict, student: dict, questions: dict, assigned: Path) -> None:
    """Every other case, for one lab (the Lab 0 suite)."""
    names = {q: info["names"] for q, info in questions.items()}
    first, last = list(questions)[0], list(questions)[-1]
    _broken_files_and_crashes(add, lab, solution, student, assigned)
    _tampering(add, student, questions)
    _forged_results(add, student, questions)
    _hunting_hidden_tests(add, solution, questions, names)
    _crafted_objects(add, solution, names, first)
    _banned_calls(add, solution, questions, names)
    _calls_that_fail(add, solution, questions, names, first, last)


def _broken_files_and_crashes(add, lab, solution, student, assigned) -> None:
    """Crashes, an endless loop, invalid files, and harmless oddities (early errors, floods of output, edited tests)."""
    add(Case("infinite_loop", "an endless loop in the first cell", "timeout", others="zero",
             feedback=("still running", "while True")), _with_cell(solution, "while True:\n    pass", at=1))
    add(Case("os_exit", "os._exit in the last cell", "crashed", others="zero"), _with_cell(solution, "import os\nos._exit(0)"))
    add(Case("segfault", "a segmentation fault", "crashed", others="zero", feedback=("signal 11",)),
        _with_cell(solution, "import ctypes\nctypes.string_at(0)"))
    add(Case("memory_blowup", "allocates memory until it runs out", "crashed", others="zero", feedback=("memory",)),
        _with_cell(solution, "hog = []\nwhile True:\n    hog.append(bytearray(256 * 2**20))"))
    add(Case("malformed_json", "a truncated file", "invalid", others="zero"), b'{"cells": [{"cell_type": "code", ')
    add(Case("empty_file", "an empty file", "invalid", others="zero"), b"")
    other = [lb for lb in discover_labs() if lb.name != lab.name]
    other_nb = (_read(assigned.parent / other[0].name / "student" / f"{other[0].name}.ipynb")
                if other and (assigned.parent / other[0].name / "student").exists()
                else {**copy.deepcopy(student), "metadata": {"otter": {"assignment_name": "99_another_lab"}}})
    add(Case("another_lab", "another lab's notebook", "invalid", others="zero"), other_nb)
    add(Case("early_exception", "an exception in an early cell; later questions are independent", "graded"),
        _with_cell(solution, "raise RuntimeError('a mistake early in the notebook')", at=1))
    add(Case("prints_200MB", "prints 200 MB", "graded"),
        _with_cell(solution, "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 2**20)\nprint('done')", at=1))

    edited = copy.deepcopy(student)
    for name in edited.get("metadata", {}).get("otter", {}).get("tests", {}):
        edited["metadata"]["otter"]["tests"][name] = re.sub(
            r"(def test\w*\(.*\):\n)", r"\1    return\n", edited["metadata"]["otter"]["tests"][name])
    add(Case("edited_public_tests", "public tests rewritten to pass", "graded", others="zero"), edited)
    deleted = copy.deepcopy(solution)
    deleted.get("metadata", {}).get("otter", {}).pop("tests", None)
    deleted["cells"] = [c for c in deleted["cells"] if "grader.check" not in _cell_text(c)]
    add(Case("deleted_public_tests", "public test cells and metadata deleted", "graded"), deleted)
    faked = copy.deepcopy(student)
    for c in faked["cells"]:
        if c.get("cell_type") == "code" and "grader.check" in _cell_text(c):
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "All tests passed!\n"}]
            c["execution_count"] = 1
    add(Case("fake_passed_outputs", "stored outputs claiming every test passed", "graded", others="zero"), faked)


def _tampering(add, student, questions) -> None:
    """Tampering with the student process changes nothing the judge decides: flagged for review."""
    add(Case("patches_test_helpers", "replaces torch/numpy assertion helpers and builtins.isinstance", "flagged",
             others="zero", feedback=("replaces",)),
        _with_cell(student, "import torch, numpy\ntorch.testing.assert_close = lambda *a, **k: None\n"
                            "numpy.testing.assert_allclose = lambda *a, **k: None\n"
                            "import builtins\nbuiltins.isinstance = lambda *a: True"))
    add(Case("patches_test_runner", "replaces otter's test runner", "flagged", others="zero"),
        _with_cell(student, "from otter.test_files import exception_test as et\n"
                            "et.test_case.call_func = lambda self, env: None\n"
                            "et.ExceptionTestFile.run = lambda self, env: None"))
    add(Case("patches_grader", "replaces the course grader's code in its own process", "flagged", others="zero"),
        _with_cell(student, "import course_tools.grading.link as link\n"
                            "link.Link._serve_call = lambda self, message, tensors: ({'value': True}, {})\n"
                            "import course_tools.grading.wire as wire\nwire.Decoder.decode = lambda self, data, depth=0: 1.0"))
    add(Case("rewrites_test_files", "writes always-passing test files wherever it can", "graded", others="zero"),
        _with_cell(student, "import os, glob\nos.makedirs('tests', exist_ok=True)\n"
                            + "".join(f"open('tests/{n}.py', 'w').write('OK_FORMAT = False\\nname = \"{n}\"\\n')\n" for n in questions)
                            + f"for p in glob.glob({str(REPO / '_assign')!r} + '/*/tests/*.py') + glob.glob('/autograder/source/tests/*.py'):\n"
                              "    try:\n        open(p, 'w').write('')\n    except OSError:\n        pass"))
    add(Case("input_transformer", "an IPython input transformer that disables assertions", "flagged", others="zero"),
        _with_cell(student, "def no_asserts(lines):\n    return [l.replace('assert ', 'pass  # ') for l in lines]\n"
                            "get_ipython().input_transformers_cleanup.append(no_asserts)"))


def _forged_results(add, student, questions) -> None:
    """Forged results: there is no result channel to write to, and the judge computes every reference."""
    add(Case("forge_result_memory", "a blank notebook that hunts memory and frames for a nonce or a result channel",
             "flagged", others="zero"),
        _with_cell(student, "import gc, sys, json\nfound = [o for o in gc.get_objects() if isinstance(o, dict) and "
                            "('nonce' in o or 'result_fd' in o or 'tests' in o)]\n"
                            "frames, f = [], sys._getframe()\nwhile f is not None:\n    frames.append(f)\n    f = f.f_back\n"
                            "secrets = [v for fr in frames for k, v in fr.f_locals.items() if k in ('nonce', 'request', 'tests')]\n"
                            "print(len(found), len(secrets))"))
    forged_line = json.dumps({"questions": {q: {"cases": [{"passed": True, "points": 99, "hidden": True}]} for q in questions}})
    add(Case("forge_result_fds", "a blank notebook that writes forged 'all passed' results to every open descriptor",
             "crashed", others="zero", feedback=("protocol",)),
        _with_cell(student, "import os, json, struct\nline = " + repr(forged_line) + "\n"
                            "body = json.dumps({'op': 'ready', 're': 1, 'value': 99}).encode()\n"
                            "frame = b'CRS1' + struct.pack('>IQ', len(body), 0) + body\n"
                            "for fd in range(3, 256):\n"
                            "    for data in (line.encode() + b'\\n', frame):\n"
                            "        try:\n            os.write(fd, data)\n        except OSError:\n            pass"))
    add(Case("forge_via_proc", "a blank notebook that looks for the judge's descriptors in /proc", "flagged", others="zero"),
        _with_cell(student, "import os\nseen = []\nfor pid in os.listdir('/proc'):\n    if pid.isdigit():\n"
                            "        try:\n            seen += [os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd')]\n"
                            "        except OSError:\n            pass\nprint(seen)"))


def _hunting_hidden_tests(add, solution, questions, names) -> None:
    """Reading the hidden tests: none is in the process, on its disk or in any message it receives."""
    # a file of hidden tests names its question (``name = "..."``) and marks cases ``hidden=True``
    markers = repr([f'name = "{q}"' for q in questions] + [f"name: {q}" for q in questions])
    hunt = ("import os, gc\nmarkers = " + markers + "\n"
            "found = [o for o in gc.get_objects() if isinstance(o, str) and 'hidden=True' in o]\n"
            "for top in ('/', os.getcwd()):\n    for root, dirs, files in os.walk(top):\n"
            "        dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev', 'usr', 'lib', 'lib64', 'etc', 'bin', 'sbin', 'site-packages')]\n"
            "        for name in files:\n            if name.endswith(('.py', '.ipynb', '.json')) and 'site-packages' not in root:\n"
            "                try:\n                    text = open(os.path.join(root, name), errors='ignore').read()\n"
            "                except OSError:\n                    continue\n"
            "                if any(m in text for m in markers) and 'markers = ' not in text:  # not this notebook itself\n                    found.append(text)\n"
            "found.sort(key=lambda text: 'hidden=True' not in text)  # test files first, before notebooks that quote them\n"
            "secret = '\\n'.join(found) or 'nothing found'\n"
            "def leak(*a, **k):\n    raise AssertionError(secret)\n"
            + "\n".join(f"{a} = leak" for q in questions for a in names[q]))
    add(Case("reads_hidden_tests", "hunts disk and memory for hidden tests and raises them as messages", "flagged",
             others="zero", feedback=("nothing found",)), _with_cell(solution, hunt))


def _crafted_objects(add, solution, names, first) -> None:
    """Crafted objects: nothing that crosses can run code in the judge or fool its comparisons."""
    target = first
    target_args = names[target] or [target]
    payload = ("import os, pickle\nclass Payload:\n    def __reduce__(self):\n"
               f"        return (os.system, ('touch {MARKER}',))\n"
               + "\n".join(f"{a} = lambda *a, **k: pickle.dumps(Payload())" for a in target_args)
               + "\nclass Sneaky:\n    def __reduce__(self):\n" f"        return (os.system, ('touch {MARKER}',))\n")
    add(Case("pickle_payload", f"{target}: returns a pickle whose loading would run a command", "graded", {target: 0},
             others=None), _with_cell(solution, payload))
    subclass = ("import torch\nclass Liar(torch.Tensor):\n    @classmethod\n"
                "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                "        out = super().__torch_function__(func, types, args, kwargs or {})\n"
                "        return True if getattr(func, '__name__', '') in ('eq', '__eq__', 'allclose', 'equal', 'isclose') else out\n"
                + "\n".join(f"{a} = lambda *a, **k: torch.zeros(()).as_subclass(Liar)" for a in target_args))
    add(Case("tensor_subclass", f"{target}: a tensor subclass whose comparisons always succeed", "graded", {target: 0},
             others=None), _with_cell(solution, subclass))
    always = ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, o: False\n"
              "    def __getattr__(self, name):\n        return self\n    def __call__(self, *a, **k):\n        return self\n"
              "    __float__ = lambda self: 0.0\n    __bool__ = lambda self: True\n")
    binding = "\n".join(f"{a} = lambda *a, **k: AlwaysEqual()" for a in target_args)
    add(Case("eq_always_true", f"{target}: an object whose __eq__ is always True", "graded", {target: 0}, others=None),
        _with_cell(solution, always + binding))
    wrong = "\n".join(f"{a} = lambda *a, **k: torch.zeros(3, 1, dtype=torch.int8)" for a in target_args)
    add(Case("wrong_dtype_shape", f"{target}: answers of the wrong dtype and shape", "graded", {target: 0}, others=None),
        _with_cell(solution, "import torch\n" + wrong))


def _banned_calls(add, solution, questions, names) -> None:
    """A banned call, reached four ways (Lab 0's rule: pixel_cross_entropy without F.cross_entropy)."""
    ruled = [q for q, info in questions.items() if info["rule"]]
    if ruled:
        q = ruled[0]
        fn, example = names[q][0], questions[q]["rule"]["example"]
        call = example.split("(", 1)[0]
        module, attr = call.rsplit(".", 1)
        others = [o for o in questions if o != q]
        ways = {
            "directly": _inject(solution, fn, [example]),
            "through a computed getattr": _inject(solution, fn, [f"getattr({module}, {attr[:3]!r} + {attr[3:]!r})" + example[len(call):]]),
            "through a reference bound in another question's cell": _inject(
                _before_check(solution, others[0], f"globals()['_sneaky'] = getattr({module}, {attr!r})") if others else solution,
                fn, ["_sneaky" + example[len(call):]]),
        }
        if "aten._log_softmax" in questions[q]["rule"]["ops"]:
            ways["through torch.ops.aten"] = _inject(solution, fn, ["torch.ops.aten._log_softmax(torch.zeros(1, 2), 1, False)"])
        for k, (way, nb) in enumerate(ways.items()):
            add(Case(f"banned_call_{k + 1}", f"{q}: the forbidden call {way}", "flagged", {q: 0},
                     feedback=("by-hand rule was broken",)), nb)


def _calls_that_fail(add, solution, questions, names, first, last) -> None:
    """Calls that hang or kill the process (that test fails, the process is started again, the rest is graded), attacks on the judge, and metadata oddities."""
    # (Lab 0: only the first hidden test of pixel_accuracy passes scores with 9 rows and labels with 7)
    add(Case("sleeps_in_a_call", f"{last}: sleeps for ever in one hidden test", "graded",
             {last: round(questions[last]["points"] * 2 / 3, 4)}, feedback=("time limit",)),
        _inject(solution, names[last][0], ["import time", "if scores.dim() == 4 and scores.shape[2] == 9:",
                                            "    time.sleep(10 ** 6)"]))
    add(Case("exits_during_tests", f"{last}: exits when the hidden test's ignore label 7 shows up", "graded",
             {last: round(questions[last]["points"] * 2 / 3, 4)}, feedback=("stopped answering",)),
        _inject(solution, names[last][0], ["import os", "if bool((labels == 7).any()) and ignore_index == 7:", "    os._exit(1)"]))
    add(Case("killed_during_tests", f"{first}: kills itself (abort) on float64 scores (the hidden tests)", "graded",
             {first: round(questions[first]["points"] / 3, 4)}, feedback=("stopped answering",)),
        _inject(solution, names[first][0], ["import os", "if scores.dtype == torch.float64:", "    os.abort()"]))
    add(Case("attacks_the_judge", "signals every process it can see and tries to ptrace its parent", "flagged"),
        _with_cell(solution, "import os, signal, ctypes\nmine = os.getpid()\n"
                             "for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
                             "    if pid > 0 and pid != mine:\n        try:\n            os.kill(pid, signal.SIGKILL)\n"
                             "        except OSError:\n            pass\n"
                             "libc = ctypes.CDLL(None)\nprint(libc.ptrace(16, os.getppid(), 0, 0), libc.ptrace(16, 1, 0, 0))"))
    custom = copy.deepcopy(solution)
    custom.setdefault("metadata", {})["kernelspec"] = {"name": "my-custom-env", "display_name": "Mine", "language": "python"}
    add(Case("custom_kernel", "a custom kernel name", "graded"), custom)
    bare = copy.deepcopy(solution)
    bare["metadata"] = {}
    add(Case("missing_metadata", "all notebook metadata removed", "graded"), bare)
    add(Case("solution_again", "the solution, submitted twice", "graded", same_as="solution"), copy.deepcopy(solution))


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
        for text in case.feedback:
            if text not in row.feedback:
                problems.append(f"{case.name}: the feedback does not say {text!r}")
        if case.same_as:
            ref = rows[f"{case.same_as}.ipynb"]
            if (row.status, row.scores, row.total, row.note) != (ref.status, ref.scores, ref.total, ref.note):
                problems.append(f"{case.name}: graded differently from {case.same_as}")
    return problems


def run_suite(lab_name: str, workdir: Path, grader=None, full: bool = False, assigned_root: Path | None = None):
    """Grade every case; return (cases, rows by file name, questions, seconds per phase)."""
    from .batch import Grader
    from .judge import Limits

    cases, files = lab_cases(lab_name, assigned_root, full)
    meta = _read((assigned_root or REPO / "_assign") / lab_name / "questions.json")
    questions = {q["name"]: q for q in meta["questions"]}
    own = grader is None
    grader = grader or Grader(2)
    try:
        # the solution alone first, under the default limits (its row is the solution case's): its
        # time sets limits for the others that are generous for honest notebooks and short enough
        # that the endless loop costs little
        first = workdir / "solution_only"
        write_submissions({"solution.ipynb": files["solution.ipynb"]}, first)
        start = time.perf_counter()
        solo = grader.grade(lab_name, first, workdir / "grades_solution", Limits(audit=True), assigned_root, progress=False)
        solo_seconds = time.perf_counter() - start
        # (the notebook and its tests only: the first submission's start also waits for the warm-up)
        honest = solo[0].times.get("notebook", solo[0].seconds) + solo[0].times.get("tests", 0.0)
        limits = Limits(timeout=max(30.0, 3 * honest + 15), test_seconds=max(5.0, 3 * max(solo[0].times.get("tests", 1.0), 1.0)),
                        memory_mb=3072, audit=True)
        rest = workdir / "submissions"
        write_submissions({name: f for name, f in files.items() if name != "solution.ipynb"}, rest)
        start = time.perf_counter()
        rows = {r.submission: r for r in grader.grade(lab_name, rest, workdir / "grades", limits, assigned_root, progress=False)}
        rows[solo[0].submission] = solo[0]
        batch_seconds = time.perf_counter() - start
    finally:
        if own:
            grader.close()
    return cases, rows, questions, {"solution": solo_seconds, "batch": batch_seconds, "timeout": limits.timeout,
                                    "test_seconds": limits.test_seconds}


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description="Run the hostile-submission suite on labs and print its table.")
    parser.add_argument("labs", nargs="*")
    parser.add_argument("--full", action="store_true", help="every case (the default for Lab 0 only)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from .batch import Grader

    failed = False
    with Grader(args.jobs) as grader:
        for name in args.labs or [lb.name for lb in discover_labs()]:
            with tempfile.TemporaryDirectory() as tmp:
                full = args.full or name == discover_labs()[0].name
                cases, rows, questions, times = run_suite(name, Path(tmp), grader, full)
                print(f"\n{name}: {len(cases)} cases; solution graded in {times['solution']:.1f} s; batch of "
                      f"{len(cases)} in {times['batch']:.1f} s ({60 * len(cases) / times['batch']:.1f} per minute; limits "
                      f"{times['timeout']:.0f} s per submission, {times['test_seconds']:.0f} s per test)")
                print("| case | what | expected | observed | score |\n|---|---|---|---|---|")
                for c in cases:
                    r = rows.get(f"{c.name}.ipynb")
                    print(f"| {c.name} | {c.what} | {c.status} | {r.status if r else '-'} | "
                          + (f"{r.total:g} / {r.possible:g} |" if r else "- |"))
                problems = check(cases, rows, questions)
                for p in problems:
                    print("MISMATCH:", p)
                failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
