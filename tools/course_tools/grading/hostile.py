"""Broken and dishonest submissions, generated for any lab, with the grade each must get.

Taught nowhere (instructor tooling). ``tests/grading/test_hostile.py`` runs it: every lab gets its
lab-specific cases (the solution, the untouched notebook, a partial answer and one submission that
breaks every by-hand rule with the rule's ``example`` call), and Lab 0 the whole suite (crashes,
timeouts, invalid files, forged results, crafted objects, banned calls reached four ways, a call
that sleeps, a process that dies during the tests, attacks on the judge). ``python -m
course_tools.grading.hostile LAB [--full]`` prints the table of cases with what was expected and
what was observed.

The suite also grows by attack class (:data:`ATTACK_CLASSES`: in-place input poisoning, ``.grad``
writes, forged VJPs, lying modules, half-precision results, stored forbidden functions, a neutered
run-time ban, forbidden work outside the ban's reach, module attributes PyTorch calls, pure-Python
pixel loops), with cases for Labs 0 to 3 built from the untouched student notebook (see
:func:`_classes`). Each case states the honest outcome: the status and the per-question score an
honest grader gives, computed from the points of the otter tests the answer should pass.
``python -m course_tools.grading.hostile LAB --classes`` prints one table per class and lab;
``tests/grading/test_hostile_classes.py`` runs them.

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
import textwrap
import time
from dataclasses import dataclass, field
from functools import lru_cache
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
    klass: str | None = None          # the attack class (a key of ATTACK_CLASSES), for --classes
    submission: str | None = None     # the submission it is graded in (default: its own, ``name``)
    question: str | None = None       # the question it attacks (for the class tables)
    unchecked: tuple = ()             # questions whose score this case does not state


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


def _load(lab_name: str, assigned_root: Path | None):
    """(lab, its assigned folder, the solution notebook, the student notebook, questions by name)."""
    lab = find_lab(lab_name)
    assigned = (assigned_root or REPO / "_assign") / lab.name
    solution = _read(assigned / "autograder" / f"{lab.name}.ipynb")
    student = _read(assigned / "student" / f"{lab.name}.ipynb")
    meta = _read(assigned / "questions.json")
    return lab, assigned, solution, student, {q["name"]: q for q in meta["questions"]}


def _collector():
    cases: list[Case] = []
    files: dict[str, dict | bytes] = {}

    def add(case: Case, content):
        """Add a case; ``content`` is its submission file, or None for a case graded in another
        case's submission (``case.submission``)."""
        cases.append(case)
        if content is not None:
            files[f"{case.name}.ipynb"] = content

    return cases, files, add


def class_cases(lab_name: str, assigned_root: Path | None = None) -> tuple[list[Case], dict]:
    """The attack-class cases of a lab and their submission files (none for Labs 4 to 6)."""
    lab, assigned, solution, student, questions = _load(lab_name, assigned_root)
    cases, files, add = _collector()
    _classes(lab, add, solution, student, questions, assigned)
    return cases, files


def lab_cases(lab_name: str, assigned_root: Path | None = None, full: bool = False,
              classes: bool = False) -> tuple[list[Case], dict]:
    """The cases and their submission files (notebook dicts, or raw bytes for broken files)."""
    lab, assigned, solution, student, questions = _load(lab_name, assigned_root)
    cases, files, add = _collector()

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

    ruled = [qq for qq in questions.values() if qq["rule"]]
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
    if classes:
        _classes(lab, add, solution, student, questions, assigned)
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
    add(Case("early_exception", "an exception in an early cell; later questions are independent", "graded",
             feedback=("1 cell raised an error", "raised RuntimeError at line 1: a mistake early in the notebook")),
        _with_cell(solution, "raise RuntimeError('a mistake early in the notebook')", at=1))
    first = json.loads((assigned / "questions.json").read_text())["questions"][0]
    add(Case("syntax_error", "a syntax error in the first answer's cell: its tests say why they could not run",
             "graded", {first["name"]: 0}, feedback=(f"`{first['names'][0]}` is not defined because cell",
                                                     "raised SyntaxError at line")),
        _inject(solution, first["names"][0], ["broken = ("]))
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
    add(Case("pickle_payload", f"{target}: returns a pickle whose loading would run a command (flagged: os.system)", "flagged", {target: 0},
             others=None), _with_cell(solution, payload))
    subclass = ("import torch\nclass Liar(torch.Tensor):\n    @classmethod\n"
                "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                "        out = super().__torch_function__(func, types, args, kwargs or {})\n"
                "        return True if getattr(func, '__name__', '') in ('eq', '__eq__', 'allclose', 'equal', 'isclose') else out\n"
                + "\n".join(f"{a} = lambda *a, **k: torch.zeros(()).as_subclass(Liar)" for a in target_args))
    add(Case("tensor_subclass", f"{target}: a tensor subclass whose comparisons always succeed (flagged: __torch_function__)", "flagged", {target: 0},
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


# --- attacks by class ------------------------------------------------------------------------------------
#
# Every class has cases for Labs 0 to 3 where the lab has something to attack (NOT_APPLICABLE says
# why not). A case starts from the untouched student notebook (blank answers, which score 0), adds the
# attack in a new cell just above the attacked question's ``grader.check`` and states the honest
# outcome: the status, and the score of the attacked question, as the sum of the otter points of the
# tests an honest grader lets it pass. To keep the grading tests short, cases of one lab share a
# submission where they attack different questions and their expected scores stay separable: a
# carrier case per submission checks its status and that every other question scores what it should.

ATTACK_CLASSES = {
    "c01": "in-place input poisoning",
    "c02": ".grad writes",
    "c03": "a forged VJP",
    "c04": "a lying module (parameters() and friends padded)",
    "c05": "half-precision results",
    "c06": "a forbidden function stored, then used",
    "c07": "the run-time ban neutered, then the forbidden function used",
    "c08": "forbidden work where the ban does not reach (a thread, the reply's encoding, a VJP)",
    "c09": "a module attribute PyTorch calls (_compiled_call_impl)",
    "c10": "a pure-Python pixel loop where a test asks for vectorised code (no points lost: flagged for review)",
}

# why a class has no case in a lab (printed under the class tables)
NOT_APPLICABLE = {
    ("c02", "00_getting_started"): "no test reads .grad (the gradient test uses torch.autograd.grad)",
    ("c04", "00_getting_started"): "no question returns or builds a module",
    ("c09", "00_getting_started"): "no question returns or takes a module",
    ("c10", "00_getting_started"): "no test measures vectorisation",
    ("c04", "01_backprop_message_passing"): "no question returns or builds a module (graphs are course_utils data)",
    ("c05", "01_backprop_message_passing"): "every comparison checks the dtype or needs more than half precision",
    ("c09", "01_backprop_message_passing"): "no question returns or takes a module",
    ("c08", "01_backprop_message_passing"): "(VJP and callback only) the one VJP under an autograd: false rule is "
                                            "the one dag_backward_messages' own test asks for (forward_messages' "
                                            "backward): a guard that refuses backward passes there refuses honest "
                                            "answers too; finite_difference_gradient takes a callback but has no rule",
    ("c08", "02_sliding_windows_to_fcn"): "(VJP and callback only) no ruled question's test takes a gradient or passes a callback",
    ("c08", "03_upsampling_transposed_conv"): "(callback only) no test passes a callback",
    ("c08", "00_getting_started"): "(callback only) no test passes a callback",
    ("c04", "03_upsampling_transposed_conv"): "the modules it asks for are checked with isinstance(.., nn.ConvTranspose2d / "
                                              "nn.Module) first, which a notebook class fails as a proxy; a lying "
                                              "super_resolution_head would score the same total honestly or not",
}


@dataclass
class _Kit:
    """What the per-lab builders share: the handout, the questions, the test points."""

    add: object
    student: dict
    questions: dict
    assigned: Path

    def points(self, question: str, *passing: str) -> float:
        """The score of ``question`` when exactly the tests named ``passing`` pass."""
        tests = _test_points(self.assigned, question)
        unknown = [t for t in passing if t not in tests]
        if unknown:
            raise ValueError(f"{question} has no test {unknown[0]!r} (its tests: {sorted(tests)})")
        return round(sum(tests[t] for t in passing), 4)

    def all_but(self, question: str, *failing: str) -> float:
        tests = _test_points(self.assigned, question)
        unknown = [t for t in failing if t not in tests]
        if unknown:
            raise ValueError(f"{question} has no test {unknown[0]!r} (its tests: {sorted(tests)})")
        return round(sum(p for t, p in tests.items() if t not in failing), 4)

    def notebook(self, *cells: tuple[str | None, str]) -> dict:
        """The handout with ``(question, source)`` cells added just above each question's check
        (``question`` None: appended at the end)."""
        nb = self.student
        for question, source in cells:
            nb = _with_cell(nb, textwrap.dedent(source).strip() + "\n") if question is None else \
                _before_check(nb, question, textwrap.dedent(source).strip() + "\n")
        return nb

    def submit(self, name: str, status: str, nb: dict, attacks: list[Case], full: tuple = (), feedback: tuple = ()):
        """One submission carrying ``attacks`` (one per question): a carrier case checks its status
        and every question no attack names (0, or full marks for those in ``full``)."""
        attacked = [a.question for a in attacks]
        if len(set(attacked)) != len(attacked) or set(attacked) & set(full):
            raise ValueError(f"{name}: one attack per question, please")
        self.add(Case(name, "the submission carrying " + ", ".join(a.name for a in attacks), status,
                      {q: "full" for q in full}, others="zero", unchecked=tuple(attacked), feedback=feedback,
                      submission=name), nb)
        for a in attacks:
            a.status, a.submission, a.others = status, name, None
            self.add(a, None)


@lru_cache(maxsize=None)
def _test_points_cached(path: str, mtime: float) -> dict:
    from otter.test_files import ExceptionTestFile

    tf = ExceptionTestFile.from_file(path)
    return {getattr(getattr(tc.body, "test_func", None), "__name__", tc.name): float(tc.points or 0)
            for tc in tf.test_cases}


def _test_points(assigned: Path, question: str) -> dict[str, float]:
    """Points of each test of a question, by test function name, as otter scores them."""
    path = assigned / "tests" / f"{question}.py"
    return _test_points_cached(str(path), path.stat().st_mtime)


def _attack(klass: str, name: str, question: str, what: str, score: float | None, feedback: tuple = ()) -> Case:
    """One attack of class ``klass`` on ``question``; ``score`` None: its score is not stated."""
    return Case(name, what, "", {} if score is None else {question: score}, others=None, feedback=feedback,
                klass=klass, question=question, unchecked=(question,) if score is None else ())


# the labs with attack-class cases (the builders are defined below)
CLASS_LABS = ("00_getting_started", "01_backprop_message_passing", "02_sliding_windows_to_fcn",
              "03_upsampling_transposed_conv")


def _classes(lab, add, solution: dict, student: dict, questions: dict, assigned: Path) -> None:
    """The attack-class cases of ``lab`` (Labs 0 to 3; the others have none yet)."""
    builders = dict(zip(CLASS_LABS, (_classes_lab0, _classes_lab1, _classes_lab2, _classes_lab3)))
    if lab.name in builders:
        builders[lab.name](_Kit(add, student, questions, assigned))


BROKEN = ("by-hand rule was broken",)


# Lab 0: pixel_cross_entropy (by-hand rule: no F.cross_entropy, log_softmax, nll_loss) and pixel_accuracy.
# With one ruled question, each attack on the rule is a submission of its own.

_LAB0_PIXEL_LOSS = "from course_utils.nets.training import pixel_loss  # calls F.cross_entropy inside: the source shows no forbidden name"


def _classes_lab0(kit: _Kit) -> None:
    pce, acc = "pixel_cross_entropy", "pixel_accuracy"
    nan_only = kit.points(acc, "test_accuracy_of_an_unlabeled_image_is_nan")

    kit.submit("values", "graded", kit.notebook((pce, '''
        def pixel_cross_entropy(scores, labels):
            """A wrong answer that poisons its input: with the scores zeroed in place, what it returns
            is exactly F.cross_entropy of the (now zero) scores, which the tests compute after the call."""
            with torch.no_grad():
                scores.zero_()
            log_z = torch.logsumexp(scores, dim=1)
            return (log_z - scores.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()
        ''')), [
        _attack("c01", "c01_zeroes_the_scores", pce, "zeroes its scores in place so the test's F.cross_entropy "
                "(computed after the call) equals what it returns; all three tests compare with the original scores", 0),
    ])

    # (pixel_accuracy alone: with both answers written, the notebook trains a network, seconds per submission)
    kit.submit("half_precision", "graded", kit.notebook((acc, '''
        def pixel_accuracy(scores, labels, ignore_index=255):
            """The right accuracy, returned as a bfloat16 tensor: 8 bits of mantissa, so wrong in the
            third digit, but abs(x - expected) < 1e-12 is computed in bfloat16 too."""
            labeled = labels != ignore_index
            if not bool(labeled.any()):
                return float("nan")
            return (scores.argmax(1)[labeled] == labels[labeled]).double().mean().to(torch.bfloat16)
        ''')), [
        _attack("c05", "c05_bfloat16_accuracy", acc, "returns a bfloat16 tensor: only the nan test (a Python float) "
                "passes (a NumPy float16 fails the 1e-12 tests anyway: 1e-12 underflows to 0 in float16)", nan_only),
    ])

    kit.submit("forged_gradient", "graded", kit.notebook((pce, '''
        class _ForgedLoss(torch.autograd.Function):
            """Forward: a wrong loss (log-sum-exp minus the largest score, not the true class's).
            Backward: claims the gradient of the real cross-entropy, softmax minus one-hot."""

            @staticmethod
            def forward(ctx, scores, labels):
                ctx.save_for_backward(scores, labels)
                return (torch.logsumexp(scores, dim=1) - scores.amax(dim=1)).mean()

            @staticmethod
            def backward(ctx, grad):
                scores, labels = ctx.saved_tensors
                p = torch.softmax(scores, dim=1)
                onehot = torch.zeros_like(p).scatter_(1, labels.unsqueeze(1), 1.0)
                return grad * (p - onehot) / labels.numel(), None


        def pixel_cross_entropy(scores, labels):
            return _ForgedLoss.apply(scores, labels)
        ''')), [
        _attack("c03", "c03_forged_gradient", pce, "a wrong forward whose backward claims the cross-entropy's "
                "gradient: every test fails once the VJP is checked against the forward", 0),
    ])

    # class 6: F.cross_entropy stored seven ways, then used by the answer (the storage sits in another
    # question's part of the notebook where it can)
    stored = {
        "subscript": ("_tools = {}\n_tools['ce'] = F.cross_entropy", "_tools['ce'](scores, labels)"),
        "append": ("_tools = []\n_tools.append(F.cross_entropy)", "_tools[0](scores, labels)"),
        "attribute": ("class _Box:\n    pass\n\n\n_tools = _Box()\n_tools.ce = F.cross_entropy", "_tools.ce(scores, labels)"),
        "loop_dict": ("_tools = {}\nfor _name, _fn in [('ce', F.cross_entropy)]:\n    _tools[_name] = _fn",
                      "_tools['ce'](scores, labels)"),
    }
    for way, (storage, use) in stored.items():
        kit.submit(f"stored_{way}", "flagged", kit.notebook(
            (acc, storage), (pce, f"def pixel_cross_entropy(scores, labels):\n    return {use}\n")),
            [_attack("c06", f"c06_{way}", pce, f"F.cross_entropy stored by {way.replace('_', ' ')} "
                     "in another cell, then called by the answer", 0, BROKEN)])
    defined = {
        "class_attribute": '''
            class _Tools:
                ce = F.cross_entropy


            def pixel_cross_entropy(scores, labels):
                return _Tools.ce(scores, labels)
            ''',
        "default_argument": '''
            def pixel_cross_entropy(scores, labels, _ce=F.cross_entropy):
                return _ce(scores, labels)
            ''',
        "decorator": '''
            def _using(routine):
                def decorate(fn):
                    def answer(scores, labels):
                        return fn(routine, scores, labels)
                    return answer
                return decorate


            @_using(F.cross_entropy)
            def pixel_cross_entropy(ce, scores, labels):
                return ce(scores, labels)
            ''',
    }
    for way, source in defined.items():
        kit.submit(f"stored_{way}", "flagged", kit.notebook((pce, source)),
                   [_attack("c06", f"c06_{way}", pce, f"F.cross_entropy stored as a {way.replace('_', ' ')}, "
                            "then called", 0, BROKEN)])

    # class 7: the ban neutered, then F.cross_entropy reached through course_utils' pixel_loss, which
    # no source check can see: the scan must flag the notebook; the score is for the reviewer
    # (enforced.__enter__/__exit__ replaced: Lab 1)
    kit.submit("neutered_refuse", "flagged", kit.notebook(
        (acc, "import course_utils.rules as _rules\n_Ban = _rules._Ban  # a plain assignment hides the patch's target\n"
              "_Ban.refuse = lambda self, what: None"),
        (pce, _LAB0_PIXEL_LOSS + "\n\n\ndef pixel_cross_entropy(scores, labels):\n    return pixel_loss(scores, labels)\n")),
        [_attack("c07", "c07_refuse", pce, "replaces _Ban.refuse through a plainly assigned name, then uses "
                 "pixel_loss (F.cross_entropy inside): flagged; the score is not stated (no check can see the use "
                 "once the ban is gone)", None)])
    kit.submit("neutered_modes", "flagged", kit.notebook(
        (acc, "import torch.utils._python_dispatch as _dispatch\n_off = {}\n_off['functions'] = torch._C.DisableTorchFunction\n"
              "_off['modes'] = _dispatch._disable_current_modes"),
        (pce, _LAB0_PIXEL_LOSS + "\n\n\ndef pixel_cross_entropy(scores, labels):\n"
              "    with _off['functions'](), _off['modes']():\n        return pixel_loss(scores, labels)\n")),
        [_attack("c07", "c07_modes_disabled", pce, "torch._C.DisableTorchFunction and _disable_current_modes "
                 "(kept in a dict) around pixel_loss: flagged; the score is not stated", None)])

    # class 8: the forbidden work while the reply is encoded, inside a VJP (in a thread: Labs 1 to 3)
    kit.submit("while_encoding", "flagged", kit.notebook((pce, _LAB0_PIXEL_LOSS + textwrap.dedent('''


        class _Deferred(torch.Tensor):
            """A placeholder loss: its value is worked out when somebody detaches it (the reply's encoder does)."""

            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if getattr(func, "__name__", "") == "detach" and args and getattr(args[0], "_inputs", None) is not None:
                    return pixel_loss(*args[0]._inputs).detach()
                return super().__torch_function__(func, types, args, kwargs or {})


        def pixel_cross_entropy(scores, labels):
            placeholder = (scores * 0).sum().as_subclass(_Deferred)
            placeholder._inputs = (scores.detach(), labels)
            return placeholder
        '''))), [_attack("c08", "c08_while_encoding", pce, "returns a tensor subclass whose detach(), called while the "
                        "reply is encoded, computes the loss with pixel_loss (F.cross_entropy)", 0, BROKEN)])
    kit.submit("inside_a_vjp", "flagged", kit.notebook((pce, _LAB0_PIXEL_LOSS + textwrap.dedent('''


        class _HandMadeLoss(torch.autograd.Function):
            """Forward by hand (right); backward through pixel_loss, i.e. F.cross_entropy."""

            @staticmethod
            def forward(ctx, scores, labels):
                ctx.save_for_backward(scores, labels)
                log_z = torch.logsumexp(scores, dim=1)
                return (log_z - scores.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()

            @staticmethod
            def backward(ctx, grad):
                scores, labels = ctx.saved_tensors
                with torch.enable_grad():
                    s = scores.detach().requires_grad_(True)
                    g, = torch.autograd.grad(pixel_loss(s, labels), s)
                return grad * g, None


        def pixel_cross_entropy(scores, labels):
            return _HandMadeLoss.apply(scores, labels)
        '''))), [_attack("c08", "c08_inside_a_vjp", pce, "a right forward whose backward calls pixel_loss "
                        "(F.cross_entropy) when the grader asks for the VJP", 0, BROKEN)])


# Lab 1: three ruled questions (dag_backward_messages, cnf_nll_gradients, mlp_message_backprop), all
# "without autograd", so one stored torch.autograd.grad breaks all three rules: each attack on the
# rules is a submission of its own.

_LAB1_FORWARD_MESSAGES = '''
    def forward_messages(dag, inputs):
        """Right (the backward question's residual test differentiates it)."""
        dag.check_inputs(inputs)
        M = {}
        for c in dag.order:
            if dag.nodes[c].role == "input":
                M[c] = inputs[c]
                continue
            total = dag.bias[c]
            for e in dag.parents(c):
                z = dag.h(e.parent, M[e.parent])
                total = total + (z if e.weight is None else z @ e.weight.T)
            M[c] = total
        return M
    '''


def _lab1_mlp_by_autograd(grad: str, indent: int, finish: str = "return {}") -> str:
    """The lines of an MLP's gradients by autograd, ``grad`` being how the answer reaches
    torch.autograd.grad and ``finish`` what it does with the pair of gradient lists."""
    body = ("h = activation(act).h\n"
            "with torch.enable_grad():\n"
            "    ws = [W.detach().requires_grad_(True) for W in weights]\n"
            "    bs = [b.detach().requires_grad_(True) for b in biases]\n"
            "    z = x\n"
            "    for l, (W, b) in enumerate(zip(ws, bs)):\n"
            "        z = z @ W.T + b\n"
            "        if l < len(ws) - 1:\n"
            "            z = h(z)\n"
            f"    grads = {grad}((z * output_grad).sum(), ws + bs)\n"
            + finish.format("(list(grads[:len(ws)]), list(grads[len(ws):]))") + "\n")
    return textwrap.indent(body, " " * indent)


def _classes_lab1(kit: _Kit) -> None:
    fwd, back, chain, vit = "dag_forward_messages", "dag_backward_messages", "chain_forward_backward", "chain_viterbi"
    cnf, mlp = "cnf_nll_gradients", "mlp_message_backprop"
    imports = "from course_utils.nets.dag import activation\n"

    kit.submit("values", "graded", kit.notebook((fwd, _LAB1_FORWARD_MESSAGES), (back, '''
        def backward_messages(dag, M, output_grads):
            """Right."""
            dag.check_messages(M, "M")
            V = {}
            for c in reversed(dag.order):
                if dag.nodes[c].role == "output":
                    V[c] = output_grads[c]
                    continue
                total = 0
                for e in dag.children(c):
                    total = total + (V[e.child] if e.weight is None else V[e.child] @ e.weight)
                V[c] = dag.dh(c, M[c]) * total
            return V


        def edge_gradients(dag, M, V):
            """A blank answer (zeros) that also writes its zeros into every weight's and bias's .grad,
            which is what the tests compare it with."""
            weight_grads, bias_grads = {}, {}
            for e in dag.trainable_edges:
                weight_grads[e.key] = torch.zeros_like(e.weight)
                if e.weight.requires_grad:
                    e.weight.grad = torch.zeros_like(e.weight)
            for c, b in dag.bias.items():
                bias_grads[c] = torch.zeros_like(b)
                if b.requires_grad:
                    b.grad = torch.zeros_like(b)
            return weight_grads, bias_grads
        '''), (chain, '''
        def forward_backward(unary, transition):
            """log Z right, marginals uniform, and a forged gradient for log Z: its value is the true
            log Z, its gradient that of a stand-in whose gradient is the uniform marginals (the
            detach() trick: no autograd.Function, which an autograd: false rule would flag)."""
            B, T, K = unary.shape
            log_alpha = unary[:, 0]
            for t in range(1, T):
                log_alpha = unary[:, t] + torch.logsumexp(log_alpha[:, :, None] + transition, dim=1)
            log_z = torch.logsumexp(log_alpha, dim=-1)
            stand_in = unary.sum(dim=(1, 2)) / K + transition.sum() * (T - 1) / K ** 2
            log_z = log_z.detach() + (stand_in - stand_in.detach())
            marginals = torch.full((B, T, K), 1.0 / K, dtype=unary.dtype)
            pairs = torch.full((B, T - 1, K, K), 1.0 / K ** 2, dtype=unary.dtype)
            return log_z, marginals, pairs
        '''), (mlp, imports + textwrap.dedent('''

        def mlp_message_backprop(weights, biases, x, output_grad, act="tanh"):
            """A wrong answer that poisons its input: it zeroes the weights in place (the test's autograd
            twin, built after the call, shares them) and returns the gradients of that zero network."""
            with torch.no_grad():
                for W in weights:
                    W.zero_()
            h = activation(act)
            M, Z = [x], [x]
            for W, b in zip(weights, biases):
                M.append(Z[-1] @ W.T + b)
                Z.append(h.h(M[-1]))
            V = output_grad
            weight_grads, bias_grads = [None] * len(weights), [None] * len(weights)
            for l in range(len(weights) - 1, -1, -1):
                weight_grads[l] = V.T @ Z[l]
                bias_grads[l] = V.sum(0)
                if l > 0:
                    V = h.dh(M[l]) * (V @ weights[l])
            return weight_grads, bias_grads
        '''))), [
        _attack("c01", "c01_zeroes_the_weights", mlp, "zeroes its weights in place; the test's to_sequential() "
                "twin shares them, so its gradients are those of the zero network", 0),
        _attack("c02", "c02_writes_grad", back, "a blank edge_gradients (zeros) that writes its zeros into the "
                "weights' and biases' .grad, which two tests compare it with; only the vectorisation test passes",
                kit.points(back, "test_backward_messages_are_vectorized_and_keep_float32")),
        _attack("c03", "c03_forged_marginals", chain, "log Z right, marginals uniform, and a gradient of log Z "
                "forged (detach trick) to claim those marginals: the autograd-consistency test passes unless VJPs "
                "are checked against the forward", 0),
    ], full=(fwd,))

    # a loop decides no points (the count is the notebook's own), so it is a flag for review
    kit.submit("loop", "flagged", kit.notebook((vit, '''
        def viterbi(unary, transition):
            """Right, by dynamic programming on Python lists (.tolist()): a Python loop over the
            sequences of the batch, with no torch operation inside it."""
            A = transition.tolist()
            paths, scores = [], []
            for seq in unary.tolist():
                K = len(seq[0])
                delta, back = list(seq[0]), []
                for row in seq[1:]:
                    ptr, new = [], []
                    for j in range(K):
                        best = max(range(K), key=lambda i: delta[i] + A[i][j])
                        ptr.append(best)
                        new.append(delta[best] + A[best][j] + row[j])
                    back.append(ptr)
                    delta = new
                last = max(range(K), key=lambda k: delta[k])
                path = [last]
                for ptr in reversed(back):
                    path.append(ptr[path[-1]])
                paths.append(path[::-1])
                scores.append(delta[last])
            return torch.tensor(paths, dtype=torch.int64), torch.tensor(scores, dtype=unary.dtype)
        ''')), [
        _attack("c10", "c10_python_viterbi", vit, "right, but a pure-Python loop over the sequences: the torch "
                "operation count is constant, but the lines of notebook code it runs grow: full marks, flagged for "
                "review", kit.all_but(vit)),
    ], feedback=("a Python loop over the sequences of the batch",))

    kit.submit("in_a_thread", "flagged", kit.notebook((vit, "_jobs = []\n_jobs.append(torch.autograd.grad)"), (mlp, (
        imports + "import threading\n\n\n"
        "def mlp_message_backprop(weights, biases, x, output_grad, act=\"tanh\"):\n"
        "    \"\"\"Right, by autograd (kept in a list by .append), in a thread of its own.\"\"\"\n"
        "    out = []\n\n"
        "    def work():\n"
        + _lab1_mlp_by_autograd("_jobs[0]", 8, "out.append({})")
        + "\n    worker = threading.Thread(target=work)\n    worker.start()\n    worker.join()\n    return out[0]\n"))),
        [_attack("c08", "c08_thread", mlp, "its gradients by torch.autograd.grad (kept in a list by .append) in a "
                 "threading.Thread", 0, BROKEN)])

    kit.submit("while_encoding", "flagged", kit.notebook(
        (vit, "class _Box:\n    pass\n\n\n_kit = _Box()\n_kit.grad = torch.autograd.grad"), (mlp, (
            imports + "\n\n"
            "def mlp_message_backprop(weights, biases, x, output_grad, act=\"tanh\"):\n"
            "    \"\"\"Returns two generators: the gradients (by autograd, kept on an object's attribute) are\n"
            "    worked out only when somebody iterates over them, as the reply's encoder does.\"\"\"\n"
            "    def gradients():\n"
            + _lab1_mlp_by_autograd("_kit.grad", 8)
            + "\n    def lazily(k):\n        yield from gradients()[k]\n\n    return lazily(0), lazily(1)\n"))),
        [_attack("c08", "c08_while_encoding", mlp, "returns generators whose first next() (called while the reply "
                 "is encoded) runs torch.autograd.grad", 0, BROKEN)])

    # the ban neutered, so only the source can show the stored torch.autograd.grad (class 6 and 7 cases
    # share the submission: one stored function breaks all three rules anyway)
    kit.submit("neutered_enter_exit", "flagged", kit.notebook(
        (chain, "import course_utils.rules as _rules\n_enforced = _rules.enforced  # a plain assignment hides the patch's target\n"
                "_enforced.__enter__ = lambda self: self\n_enforced.__exit__ = lambda self, *exc: False"),
        (vit, "_ops = {}\nfor _name, _fn in [('grad', torch.autograd.grad)]:\n    _ops[_name] = _fn"), (cnf, '''
        def cnf_nll_gradients(unary, transition, labels):
            """Right values, by autograd reached through a dict filled by a loop."""
            with torch.enable_grad():
                u = unary.detach().requires_grad_(True)
                A = transition.detach().requires_grad_(True)
                log_alpha = u[:, 0]
                for t in range(1, u.shape[1]):
                    log_alpha = u[:, t] + torch.logsumexp(log_alpha[:, :, None] + A, dim=1)
                observed = u.gather(2, labels[..., None]).squeeze(-1).sum(1) + A[labels[:, :-1], labels[:, 1:]].sum(1)
                nll = (torch.logsumexp(log_alpha, -1) - observed).mean()
                d_unary, d_transition = _ops["grad"](nll, (u, A))
            return nll.detach(), d_unary, d_transition
        '''), (mlp, (
            imports + "\n\n"
            "def mlp_message_backprop(weights, biases, x, output_grad, act=\"tanh\"):\n"
            + _lab1_mlp_by_autograd("_ops['grad']", 4)))), [
        _attack("c06", "c06_loop_dict", cnf, "torch.autograd.grad stored in a dict by a loop in another cell, then "
                "called (with the run-time ban neutered, only the source shows it)", 0, BROKEN),
        _attack("c07", "c07_enter_exit", mlp, "replaces enforced.__enter__/__exit__ through a plainly assigned name, "
                "then uses the same stored torch.autograd.grad: the stored function is in the source, so the "
                "question scores 0", 0, BROKEN),
    ])


# Lab 2: FCEncoderDecoder is a notebook class (a proxy to the grader), three questions have by-hand
# rules with separate forbidden functions, and confusion_counts' hidden test asks for no pixel loop.


def _lab2_local_decoder(doc: str, forward: str, extra: str = "") -> str:
    """A wrong FCEncoderDecoder: a purely local decoder (a 1x1 convolution on the pixels), with the
    right error for the wrong image size; ``forward`` is the line that returns its scores."""
    return f'''
class FCEncoderDecoder(nn.Module):
    """{doc}"""

    def __init__(self, image_size, num_classes, width=8, code=64, in_channels=1):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {{image_size}}")
        self.image_size, self.in_channels = image_size, in_channels
        self.local = nn.Conv2d(in_channels, num_classes, 1)
{extra}
    def forward(self, x):
        S = self.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, S, S):
            raise ValueError(f"this network was built for images (N, {{self.in_channels}}, {{S}}, {{S}}), got {{tuple(x.shape)}}")
        {forward}
'''


def _classes_lab2(kit: _Kit) -> None:
    lin, conv, fce = "linear_to_conv", "convolutionalize_patch_classifier", "fc_encoder_decoder"
    rf, counts, iou = "receptive_field_by_hand", "confusion_counts", "iou_from_confusion"
    # every local decoder below fails the public test too: its bottom-right scores do not change
    # when the top-left of the image does (an output-only check, which no proxy can answer for)

    lying = _lab2_local_decoder(
        "A purely local decoder whose parameters(), named_parameters(), state_dict(), __len__ and __iter__\n"
        "    are padded to the parameter count of the real encoder-decoder.",
        "return self.local(x)", extra='''        S, K, w, C = image_size, num_classes, width, in_channels
        expected = (C * w * 9 + w + (w * 2 * w * 9 + 2 * w) + (2 * w * (S // 4) ** 2 * code + code)
                    + (code * K * S * S + K * S * S))
        self._padding = torch.zeros(expected - sum(p.numel() for p in self.local.parameters()))

    def parameters(self, recurse=True):
        yield from (p for _, p in nn.Module.named_parameters(self, recurse=recurse))
        yield nn.Parameter(self._padding)

    def named_parameters(self, *args, **kwargs):
        yield from nn.Module.named_parameters(self, *args, **kwargs)
        yield "decoder.weight", nn.Parameter(self._padding)

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["decoder.weight"] = self._padding
        return state

    def __len__(self):
        return 3

    def __iter__(self):
        return iter([nn.Sequential(self.local), nn.Linear(1, 1), nn.Linear(1, 1)])
''')
    kit.submit("values", "graded", kit.notebook((lin, '''
        def linear_to_conv(linear, in_channels, height, width, dilation=1):
            """A wrong answer that poisons its input: it zeroes the linear layer's weight in place, so the
            test's reference linear(x) is the bias alone, which this zero convolution also gives."""
            if in_channels * height * width != linear.in_features:
                raise ValueError("the window does not match the layer")
            with torch.no_grad():
                linear.weight.zero_()
            conv = nn.Conv2d(in_channels, linear.out_features, (height, width), dilation=dilation,
                             bias=linear.bias is not None).to(linear.weight.dtype)
            with torch.no_grad():
                conv.weight.zero_()
                if linear.bias is not None:
                    conv.bias.copy_(linear.bias)
            return conv
        '''), (fce, lying), (iou, '''
        def per_class_iou(conf):
            """Right."""
            n = conf.double()
            inter = n.diag()
            union = n.sum(0) + n.sum(1) - inter
            return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))


        def mean_iou(conf):
            """The right mean IoU as a bfloat16 tensor (a Python nan when no class occurs)."""
            iou = per_class_iou(conf)
            present = ~torch.isnan(iou)
            if not bool(present.any()):
                return float("nan")
            return iou[present].mean().to(torch.bfloat16)
        ''')), [
        _attack("c01", "c01_zeroes_the_linear", lin, "zeroes the linear layer's weight in place and returns a zero "
                "convolution with its bias: the tests' linear(x), computed after the call, agrees", 0),
        _attack("c04", "c04_padded_parameters", fce, "a purely local decoder whose parameters() (and named_parameters, "
                "state_dict, __len__, __iter__) are padded to the expected count", 0),
        _attack("c05", "c05_bfloat16_mean_iou", iou, "mean_iou returns a bfloat16 tensor: the public test wants a "
                "float, the hidden ones compare in bfloat16", 0),
    ])

    unused = _lab2_local_decoder(
        "A purely local decoder padded to the expected parameter count by a registered parameter it never uses.",
        "return self.local(x)", extra='''        S, K, w, C = image_size, num_classes, width, in_channels
        expected = (C * w * 9 + w + (w * 2 * w * 9 + 2 * w) + (2 * w * (S // 4) ** 2 * code + code)
                    + (code * K * S * S + K * S * S))
        self.unused = nn.Parameter(torch.zeros(expected - sum(p.numel() for p in self.local.parameters())))
''')
    # a loop decides no points (the count is the notebook's own), so it is a flag for review
    kit.submit("loop", "flagged", kit.notebook((counts, '''
        def confusion_counts(pred, target, num_classes, ignore_index=None):
            """Right counts from a pure-Python loop over the pixels (.tolist()): no torch operation per pixel."""
            if pred.shape != target.shape:
                raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}")
            table = [[0] * num_classes for _ in range(num_classes)]
            for t, p in zip(target.reshape(-1).tolist(), pred.reshape(-1).tolist()):
                if t != ignore_index:
                    table[t][p] += 1
            return torch.tensor(table, dtype=torch.int64)
        '''), (fce, unused)), [
        _attack("c10", "c10_python_pixel_loop", counts, "right counts from a pure-Python loop over the pixels: the "
                "torch operation count is constant, but the lines of notebook code it runs grow: full marks, flagged "
                "for review", kit.all_but(counts)),
        _attack("c04", "c04_unused_parameter", fce, "a purely local decoder with a registered parameter it never "
                "uses, so the parameter count (true data, from the snapshot) is right: the layer list and the "
                "every-parameter-changes-the-scores check fail", 0),
    ], feedback=("a Python loop over pixels",))

    kit.submit("flagged", "flagged", kit.notebook(
        (lin, "import course_utils.metrics\n\n_jobs = []\n_jobs.append(course_utils.metrics.scores_from_confusion)\n\n\n"
              "class _Box:\n    pass\n\n\n_kit = _Box()\n_kit.grad = torch.autograd.grad"),
        (fce, _lab2_local_decoder(
            "A purely local decoder whose gradient is forged (the detach trick, no autograd.Function, which the\n"
            "    autograd: false rule of receptive_field_by_hand would flag) to reach every pixel.",
            "spread = x.sum(dim=(1, 2, 3), keepdim=True)  # claims d score / d pixel = 1 more for every pixel\n"
            "        return self.local(x) + (spread - spread.detach())")),
        (rf, '''
        class _Pair(tuple):
            """A pair whose items are worked out when it is iterated (the reply's encoder iterates it)."""

            def __new__(cls, layers):
                pair = super().__new__(cls, (0, 0))
                pair.layers = list(layers)
                return pair

            def __iter__(self):
                r, j = 1, 1
                for layer in self.layers:
                    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                        first = lambda v: v[0] if isinstance(v, (tuple, list)) else v
                        k = first(layer.kernel_size)
                        s = first(layer.stride) if layer.stride is not None else k
                        r += (k - 1) * first(getattr(layer, "dilation", 1)) * j
                        j *= s
                probe = torch.ones(1, requires_grad=True)
                _kit.grad((probe * r).sum(), probe)   # "checks" r with autograd
                return iter((int(r), int(j)))


        def receptive_field(layers):
            return _Pair(layers)
        '''), (counts, '''
        import course_utils.metrics


        class _Library:
            count = course_utils.metrics.confusion_matrix


        def confusion_counts(pred, target, num_classes, ignore_index=None):
            return _Library.count(pred, target, num_classes, ignore_index)
        '''), (conv, '''
        from course_utils.ops import sliding_window_scores


        def convolutionalize(patch_net, window):
            """Not a convolutionalized network: one padding layer, whose calls PyTorch routes (through
            _compiled_call_impl) to a class that runs the patch classifier on every window."""
            class SlidingWindow:
                def __new__(cls, images):
                    return sliding_window_scores(patch_net, images, window, batch_size=4096)

            fcn = nn.Sequential(nn.ZeroPad2d(window // 2))
            fcn._compiled_call_impl = SlidingWindow
            return fcn
        '''), (iou, '''
        import threading


        def _in_a_thread(fn, *args):
            out = []
            worker = threading.Thread(target=lambda: out.append(fn(*args)))
            worker.start()
            worker.join()
            return out[0]


        def per_class_iou(conf):
            return _in_a_thread(_jobs[0], conf)["per_class_iou"]


        def mean_iou(conf):
            return _in_a_thread(_jobs[0], conf)["mean_iou"]
        ''')), [
        _attack("c03", "c03_forged_dense_gradient", fce, "a purely local decoder whose gradient is forged to be "
                "dense, so the mixes-space test passes unless VJPs are checked (in a flagged submission: "
                "fc_encoder_decoder has no rule)", 0),
        _attack("c06", "c06_class_attribute", counts, "course_utils.metrics.confusion_matrix stored as a class "
                "attribute, then called", 0, BROKEN),
        _attack("c08", "c08_thread", iou, "scores_from_confusion (kept in a list by .append) called in a "
                "threading.Thread, out of the profile hook's reach", 0, BROKEN),
        _attack("c08", "c08_while_encoding", rf, "returns a tuple subclass whose __iter__, run while the reply is "
                "encoded, calls torch.autograd.grad (kept on an object's attribute)", 0, BROKEN),
        _attack("c09", "c09_compiled_call_impl", conv, "a padding layer whose _compiled_call_impl is a notebook class "
                "(the sliding window): as a proxy its calls are answers, so only the structure test fails (the "
                "attribute itself is a reach into PyTorch's call machinery: flagged)",
                kit.all_but(conv, "test_convolutionalize_is_a_copy_without_linear_layers")),
    ])

    kit.submit("neutered_refuse", "flagged", kit.notebook(
        (lin, "import course_utils.rules as _rules\n_Ban = _rules._Ban  # a plain assignment hides the patch's target\n"
              "_Ban.refuse = lambda self, what: None\n\n"
              "import course_utils.metrics\n\n_library = {}\n_library['counts'] = course_utils.metrics.confusion_matrix"),
        (counts, '''
        def confusion_counts(pred, target, num_classes, ignore_index=None):
            return _library["counts"](pred, target, num_classes, ignore_index)
        '''), (fce, _lab2_local_decoder(
            "A purely local decoder whose forward writes ones into its input's .grad.",
            "if x.requires_grad and x.is_leaf:\n            x.grad = torch.ones_like(x)\n        return self.local(x)"))), [
        _attack("c07", "c07_refuse", counts, "replaces _Ban.refuse through a plainly assigned name, then uses "
                "confusion_matrix stored by subscript in another cell: in the source, so 0", 0, BROKEN),
        _attack("c02", "c02_writes_input_grad", fce, "a purely local decoder that writes ones into x.grad, so the "
                "far gradient the mixes-space test reads is not 0 (graded in a flagged submission: "
                "fc_encoder_decoder has no rule)", 0),
    ])


# Lab 3: eleven ruled questions whose forbidden functions fall in five groups (conv1d; conv2d;
# conv_transpose2d; interpolate; bilinear_kernel): attacks on the rules share a submission only where
# they store functions of different groups.

_LAB3_SCATTER = '''
def _scatter(x, weight, bias, s, p, q):
    """The transposed convolution as a scatter-add (right)."""
    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    canvas = x.new_zeros(n, c_out, (h - 1) * s + kh + q, (w - 1) * s + kw + q)
    for i in range(h):
        for j in range(w):
            canvas[:, :, i * s:i * s + kh, j * s:j * s + kw] += torch.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
    h_out, w_out = (h - 1) * s - 2 * p + kh + q, (w - 1) * s - 2 * p + kw + q
    y = canvas[:, :, p:p + h_out, p:p + w_out]
    return y if bias is None else y + bias.view(1, -1, 1, 1)
'''


def _classes_lab3(kit: _Kit) -> None:
    cm1, cm2, nearest, head = "conv_matrix_1d", "conv_matrix_2d", "upsample_nearest", "super_resolution_head"
    layer, fast, bicubic, scatter = "bilinear_upsampling_layer", "transposed_conv_fast", "upsample_bicubic", "transposed_conv_scatter"
    overlap = "overlap_count"

    kit.submit("values", "graded", kit.notebook((cm1, '''
        def conv_matrix_1d(n, kernel, stride=1, padding=0):
            """Built right from the kernel, then returned in bfloat16."""
            k = kernel.shape[0]
            n_out = (n + 2 * padding - k) // stride + 1
            rows = torch.arange(n_out)[:, None].expand(n_out, k)
            cols = rows * stride + torch.arange(k)[None, :] - padding
            inside = (cols >= 0) & (cols < n)
            W = kernel.new_zeros(n_out, n)
            W[rows[inside], cols[inside]] = kernel.expand(n_out, k)[inside]
            return W.to(torch.bfloat16)
        '''), (cm2, '''
        class _ZeroMatrix(torch.autograd.Function):
            """Forward: zeros, not built from the kernel. Backward: claims each kernel entry's gradient is
            the upstream gradient's mean column sum, as if the matrix held the kernel."""

            @staticmethod
            def forward(ctx, kernel, n_out, n_in):
                ctx.save_for_backward(kernel)
                return kernel.new_zeros(n_out, n_in)

            @staticmethod
            def backward(ctx, grad):
                kernel, = ctx.saved_tensors
                return torch.full_like(kernel, float(grad.sum()) / grad.shape[1]), None, None


        def conv_matrix_2d(in_shape, kernel, stride=1, padding=0):
            (h, w), (kh, kw) = in_shape, kernel.shape
            h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
            return _ZeroMatrix.apply(kernel, h_out * w_out, h * w)
        '''), (nearest, '''
        def upsample_nearest(x, size):
            """A wrong answer that poisons its input: it zeroes x in place and upsamples those zeros,
            which is what the tests' F.interpolate(x, ...), computed after the call, then gives."""
            with torch.no_grad():
                x.zero_()

            def source(n_in, n_out):
                scale = torch.tensor(n_in, dtype=torch.float32) / n_out
                return (torch.arange(n_out, dtype=torch.float32) * scale).floor().long().clamp(max=n_in - 1)

            h, w = x.shape[-2:]
            return x[..., source(h, size[0])[:, None], source(w, size[1])[None, :]]
        '''), (head, '''
        def super_resolution_head(kind, factor, width):
            """Right heads, each with one more parameter that no computation uses, whose .grad is set
            before it is returned (so it is 'not None' after any backward)."""
            if kind == "transposed":
                module = nn.ConvTranspose2d(width, 1, factor + 1, stride=factor, padding=1, output_padding=1)
            elif kind == "bilinear":
                k = 2 * factor - factor % 2
                taps = torch.arange(k, dtype=torch.float64)
                tent = 1 - (taps - (k - 1) / 2).abs() / factor
                module = nn.ConvTranspose2d(width, 1, k, stride=factor, padding=(k - factor) // 2)
                mix = nn.Conv2d(width, 1, 1)
                with torch.no_grad():
                    module.weight.copy_(mix.weight.view(width, 1, 1, 1) * (tent[:, None] * tent[None, :]).float())
                    module.bias.copy_(mix.bias)
            elif kind == "resize_conv":
                module = nn.Sequential(nn.Upsample(scale_factor=factor, mode="nearest"), nn.Conv2d(width, 1, 5, padding=2))
            else:
                raise ValueError(f"unknown kind {kind!r}")
            unused = nn.Parameter(torch.zeros(1))
            unused.grad = torch.zeros(1)
            module.register_parameter("unused", unused)
            return module
        ''')), [
        _attack("c01", "c01_zeroes_the_input", nearest, "zeroes x in place and upsamples the zeros: the tests' "
                "F.interpolate(x), computed after each call, agrees", 0),
        _attack("c02", "c02_presets_grad", head, "each head has an unused parameter whose .grad is preset, so "
                "'every parameter must be trainable' passes unless the grader ignores the notebook's .grad",
                kit.all_but(head, "test_heads_structure_initialization_and_artifacts")),
        _attack("c03", "c03_forged_kernel_gradient", cm2, "a zero matrix whose backward claims the gradient of a "
                "matrix built from the kernel", 0),
        _attack("c05", "c05_bfloat16_matrix", cm1, "the right matrix in bfloat16: the gradient test passes "
                "unless half-precision results are refused", 0),
    ])

    # a loop decides no points (the count is the notebook's own), so it is a flag for review
    kit.submit("loop", "flagged", kit.notebook((fast, '''
        def transposed_conv_fast(x, weight, bias=None, stride=1, padding=0, output_padding=0):
            """Right values from pure-Python loops over the numbers (.tolist()): no torch operation per pixel."""
            n, c_in, h, w = x.shape
            _, c_out, kh, kw = weight.shape
            s, p, q = stride, padding, output_padding
            H, W = (h - 1) * s + kh + q, (w - 1) * s + kw + q
            xs, ws = x.tolist(), weight.tolist()
            canvas = [[[[0.0] * W for _ in range(H)] for _ in range(c_out)] for _ in range(n)]
            for b in range(n):
                for c in range(c_in):
                    for i in range(h):
                        for j in range(w):
                            v = xs[b][c][i][j]
                            for o in range(c_out):
                                out, k = canvas[b][o], ws[c][o]
                                for a in range(kh):
                                    row, taps = out[i * s + a], k[a]
                                    for e in range(kw):
                                        row[j * s + e] += v * taps[e]
            h_out, w_out = (h - 1) * s - 2 * p + kh + q, (w - 1) * s - 2 * p + kw + q
            y = torch.tensor(canvas, dtype=x.dtype)[:, :, p:p + h_out, p:p + w_out]
            return y if bias is None else y + bias.detach().view(1, -1, 1, 1)
        ''')), [
        _attack("c10", "c10_python_pixel_loop", fast, "right values from pure-Python loops over the pixels: the "
                "torch operation count does not grow, but the lines of notebook code it runs do: flagged for review, "
                "and its output carries no gradient, so only the gradient sweep fails",
                kit.all_but(fast, "test_fast_transposed_conv_sweep_and_gradients")),
    ], feedback=("a Python loop over pixels or rows",))

    kit.submit("flagged", "flagged", kit.notebook(
        (cm2, "import course_utils.nets\n\n_jobs = []\n_jobs.append(course_utils.nets.bilinear_kernel)\n\n\n"
              "class _Box:\n    pass\n\n\n_kit = _Box()\n_kit.interpolate = F.interpolate"),
        (cm1, '''
        def _with(routine):
            def decorate(fn):
                def answer(*args, **kwargs):
                    return fn(routine, *args, **kwargs)
                return answer
            return decorate


        @_with(F.conv1d)
        def conv_matrix_1d(conv1d, n, kernel, stride=1, padding=0):
            eye = torch.eye(n, dtype=kernel.dtype)
            return conv1d(eye[:, None, :], kernel[None, None], stride=stride, padding=padding)[:, 0, :].T
        '''), (layer, '''
        import threading


        def bilinear_upsampling_layer(factor, channels):
            """The layer, with bilinear_kernel (kept in a list by .append) called in a thread."""
            k = 2 * factor - factor % 2
            layer = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=(k - factor) // 2,
                                       groups=channels, bias=False)
            out = []
            worker = threading.Thread(target=lambda: out.append(_jobs[0](k, 1)))
            worker.start()
            worker.join()
            with torch.no_grad():
                layer.weight.copy_(out[0].expand(channels, 1, k, k))
            return layer
        '''), (bicubic, '''
        class _Deferred(torch.Tensor):
            """A placeholder image: its values are worked out when somebody detaches it (the reply's encoder does)."""

            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if getattr(func, "__name__", "") == "detach" and args and getattr(args[0], "_job", None) is not None:
                    x, size, align_corners = args[0]._job
                    return _kit.interpolate(x, size=size, mode="bicubic", align_corners=align_corners)
                return super().__torch_function__(func, types, args, kwargs or {})


        def upsample_bicubic(x, size, align_corners=False):
            placeholder = (x * 0).sum().expand(x.shape[0], x.shape[1], *size).as_subclass(_Deferred)
            placeholder._job = (x.detach(), tuple(size), align_corners)
            return placeholder
        '''), (scatter, "from course_utils.plotting.animation import transposed_conv_partial_sums  "
                        "# F.conv_transpose2d inside: no forbidden name in the source\n" + _LAB3_SCATTER + '''

class _ScatterAdd(torch.autograd.Function):
    """Forward by hand (right); the backward compares one channel pair with PyTorch's transposed
    convolution (through course_utils), then takes the gradients by autograd."""

    @staticmethod
    def forward(ctx, x, weight, bias, s, p, q):
        ctx.save_for_backward(x, weight)
        ctx.bias, ctx.args = bias, (s, p, q)
        return _scatter(x, weight, bias, s, p, q)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        s, p, q = ctx.args
        try:
            transposed_conv_partial_sums(x[0, 0].detach(), weight[0, 0].detach(), s, p)
        except (RuntimeError, ValueError):
            pass
        with torch.enable_grad():
            inputs = [x.detach().requires_grad_(True), weight.detach().requires_grad_(True)]
            if ctx.bias is not None:
                inputs.append(ctx.bias.detach().requires_grad_(True))
            y = _scatter(inputs[0], inputs[1], inputs[2] if ctx.bias is not None else None, s, p, q)
            grads = torch.autograd.grad(y, inputs, grad)
        return grads[0], grads[1], (grads[2] if ctx.bias is not None else None), None, None, None


def transposed_conv_scatter(x, weight, bias=None, stride=1, padding=0, output_padding=0):
    return _ScatterAdd.apply(x, weight, bias, stride, padding, output_padding)
''')), [
        _attack("c06", "c06_decorator", cm1, "F.conv1d stored by a decorator, then called by the answer", 0, BROKEN),
        _attack("c08", "c08_thread", layer, "bilinear_kernel (kept in a list by .append) called in a "
                "threading.Thread, out of the profile hook's reach", 0, BROKEN),
        _attack("c08", "c08_while_encoding", bicubic, "returns a tensor subclass whose detach(), called while the "
                "reply is encoded, runs F.interpolate (kept on an object's attribute)", 0, BROKEN),
        _attack("c08", "c08_inside_a_vjp", scatter, "a right forward whose backward calls F.conv_transpose2d "
                "(through course_utils, invisible in the source) when the grader asks for the VJP", 0, BROKEN),
    ])

    kit.submit("neutered_modes", "flagged", kit.notebook(
        (cm2, "import torch.utils._python_dispatch as _dispatch\n_off = {}\n_off['functions'] = torch._C.DisableTorchFunction\n"
              "_off['modes'] = _dispatch._disable_current_modes\n\n_library = {}\n_library['interpolate'] = F.interpolate"),
        (nearest, '''
        def upsample_nearest(x, size):
            with _off["functions"](), _off["modes"]():
                return _library["interpolate"](x, size=size, mode="nearest")
        '''), (layer, '''
        def bilinear_upsampling_layer(factor, channels):
            """A blank layer (zero weights) whose calls PyTorch routes, through _compiled_call_impl, to a
            notebook class that calls F.interpolate (which this question does not forbid)."""
            class Interpolate:
                def __new__(cls, x):
                    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)

            k = 2 * factor - factor % 2
            layer = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=(k - factor) // 2,
                                       groups=channels, bias=False)
            with torch.no_grad():
                layer.weight.zero_()
            layer._compiled_call_impl = Interpolate
            return layer
        '''), (overlap, '''
        from course_utils.plotting.animation import transposed_conv_partial_sums  # F.conv_transpose2d inside


        def overlap_count(in_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
            kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            with _off["functions"](), _off["modes"]():
                sums = transposed_conv_partial_sums(torch.ones(tuple(in_size), dtype=torch.float64),
                                                    torch.ones(kh, kw, dtype=torch.float64), stride, padding)
            return sums[-1].round().long()
        ''')), [
        _attack("c07", "c07_modes_disabled", nearest, "torch._C.DisableTorchFunction and _disable_current_modes "
                "(kept in a dict) around F.interpolate stored by subscript in another cell: in the source, so 0", 0, BROKEN),
        _attack("c07", "c07_modes_disabled_invisible", overlap, "the same switches around course_utils' "
                "transposed_conv_partial_sums (F.conv_transpose2d inside, invisible in the source): flagged; the "
                "score is not stated", None),
        _attack("c09", "c09_compiled_call_impl", layer, "a zero-weight ConvTranspose2d whose _compiled_call_impl "
                "is a notebook class calling F.interpolate: as a proxy it is not a ConvTranspose2d (the attribute "
                "itself is a reach into PyTorch's call machinery: flagged)", 0),
    ])


def run_classes(lab_name: str, workdir: Path, grader=None, assigned_root: Path | None = None):
    """Grade a lab's attack-class submissions in one batch; return (cases, rows by file name,
    questions, seconds). There is no solution run first: the limits are the defaults (the cases
    neither hang nor sleep)."""
    from .batch import Grader
    from .judge import Limits

    cases, files = class_cases(lab_name, assigned_root)
    _, _, _, _, questions = _load(lab_name, assigned_root)
    if not files:
        return cases, {}, questions, 0.0
    own = grader is None
    grader = grader or Grader(2)
    try:
        write_submissions(files, workdir / "submissions")
        start = time.perf_counter()
        rows = grader.grade(lab_name, workdir / "submissions", workdir / "grades", Limits(memory_mb=3072),
                            assigned_root, progress=False)
        seconds = time.perf_counter() - start
    finally:
        if own:
            grader.close()
    return cases, {r.submission: r for r in rows}, questions, seconds


def _outcome(status: str, score) -> str:
    return f"{status}, " + ("score not stated" if score is None else f"{score:g}")


def class_tables(lab_name: str, cases: list[Case], rows: dict, questions: dict) -> str:
    """Markdown: one table per attack class for one lab (case, honest outcome, observed outcome)."""
    out = []
    for klass, title in ATTACK_CLASSES.items():
        mine = [c for c in cases if c.klass == klass]
        out.append(f"\n#### {klass}: {title} ({lab_name})")
        if not mine:
            why = NOT_APPLICABLE.get((klass, lab_name), "no case")
            out.append(f"not applicable: {why}")
            continue
        out.append("| case | question (points) | submission | honest | observed | verdict |\n|---|---|---|---|---|---|")
        for c in mine:
            row = rows.get(f"{c.submission}.ipynb")
            want = _expected(c, c.question, questions[c.question])
            got = row.scores.get(c.question, 0.0) if row else None
            if row is None:
                verdict = "no row"
            elif want is not None and got > want + 1e-3:
                verdict = f"**more than honest (+{got - want:g})**"
            elif want is not None and got < want - 1e-3:
                verdict = f"less than honest ({got - want:g})"
            elif row.status != c.status:
                verdict = f"**status {row.status}, not {c.status}**"
            else:
                verdict = "as honest"
            observed = f"{row.status}, {got:g}" if row else "-"
            out.append(f"| {c.name} | {c.question} ({questions[c.question]['points']:g}) | {c.submission} | "
                       f"{_outcome(c.status, want)} | {observed} | {verdict} |")
        if (klass, lab_name) in NOT_APPLICABLE:
            out.append(f"\n(partly not applicable: {NOT_APPLICABLE[klass, lab_name]})")
    return "\n".join(out)


def write_submissions(files: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


def _expected(case: Case, q: str, info: dict):
    """What ``case`` says question ``q`` scores (a number), or None where it says nothing."""
    if q in case.unchecked:
        return None
    want = case.scores.get(q, None)
    if want is None:
        if case.others is None:
            return None
        want = "full" if case.others == "full" else 0
    return info["points"] if want == "full" else want


def check(cases: list[Case], rows: dict, questions: dict) -> list[str]:
    """Compare the gradebook rows with the cases; return one line per mismatch (a wrong status once
    per submission, however many cases share it)."""
    problems = []
    said: set[str] = set()
    for case in cases:
        submission = case.submission or case.name
        row = rows.get(f"{submission}.ipynb")
        if row is None:
            if submission not in said:
                problems.append(f"{submission}: no row in the gradebook")
            said.add(submission)
            continue
        if row.status != case.status and submission not in said:
            said.add(submission)
            where = f" (submission {submission})" if submission != case.name else ""
            problems.append(f"{case.name}{where}: status {row.status!r} ({row.note}), expected {case.status!r}")
        for q, info in questions.items():
            want = _expected(case, q, info)
            if want is None:
                continue
            got = row.scores.get(q, 0)
            if abs(got - want) > 1e-3:
                problems.append(f"{case.name}: {q} scored {got}, expected {want}")
        for text in case.feedback:
            if text not in row.feedback:
                problems.append(f"{case.name}: the feedback does not say {text!r}")
        if case.name == "solution":  # the tests' own code runs in grader.check too: it must not warn students
            problems += [f"solution: {q}'s test {c['name']} warns: {w}" for q, info in (row.tests or {}).items()
                         for c in info.get("cases", []) if c for w in c.get("warnings", [])]
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
    parser.add_argument("--classes", action="store_true",
                        help="the attack-class cases only (Labs 0 to 3): one table per class and lab")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--assigned", type=Path, default=None,
                        help="the folder `make assign` wrote (default: _assign; give another while a build rewrites it)")
    args = parser.parse_args(argv)
    from .batch import Grader

    failed = False
    with Grader(args.jobs) as grader:
        for name in args.labs or [lb.name for lb in discover_labs()]:
            if args.classes:
                with tempfile.TemporaryDirectory() as tmp:
                    cases, rows, questions, seconds = run_classes(name, Path(tmp), grader, args.assigned)
                    subs = len({c.submission or c.name for c in cases})
                    print(f"\n### {name}: {sum(1 for c in cases if c.klass)} attack cases in {subs} submissions, "
                          f"graded in {seconds:.1f} s")
                    print(class_tables(name, cases, rows, questions))
                    problems = check(cases, rows, questions)
                    for p in problems:
                        print("MISMATCH:", p)
                    failed |= bool(problems)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                full = args.full or name == discover_labs()[0].name
                cases, rows, questions, times = run_suite(name, Path(tmp), grader, full, args.assigned)
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
