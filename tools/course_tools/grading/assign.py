"""``make assign``: turn every lab's master notebook into a student notebook and an autograder.

Taught nowhere (instructor tooling); the README's "For instructors" section documents it.

For each lab folder ``labs/NN_slug/`` holding the master ``NN_slug.ipynb``, this module

1. copies the master into a scratch folder and prepends otter-grader's assignment configuration
   (``labs/assignment.yml`` plus the lab's name), so masters stay free of configuration;
2. runs ``otter assign``, which strips solutions and hidden tests from the student notebook (and
   names the assignment in its metadata, which the grader checks);
3. states, for every question with a by-hand rule in ``labs/NN_slug/grading.yml``, that rule in the
   question's text (a line ``**By-hand rule:** <the rule>.`` at the end of its last markdown cell
   before the answer, :func:`state_rules`), and adds a public test that checks it
   (:func:`course_utils.rules.check_rule`), so the question and ``grader.check`` show students, in the
   same words, the rule the grader enforces;
4. writes into ``_assign/NN_slug/``: ``student/`` (the notebook students get, plus the lab's data
   files), ``autograder/`` (the solution notebook), ``tests/`` (every test file, hidden ones
   included), ``questions.json`` (the autograded questions in lab order: points, the names their tests
   take, their rules; and, under ``manual``, the written questions a person grades: points, prompt and
   rubric) and ``NN_slug-autograder.zip`` for Gradescope, whose ``run_autograder`` runs this course's
   grader (:mod:`course_tools.grading.gradescope`), not otter's in-process runner;
5. with ``--book``, copies each student notebook to ``labs/NN_slug/student/`` where the website
   picks it up, refusing to replace files it did not write there (:func:`copy_for_book`).

Written questions (reflection) are otter's manually graded questions: a ``# BEGIN QUESTION`` cell with
``manual: true`` and ``points``, the prompt in markdown, and the rubric as a markdown cell between
``# BEGIN SOLUTION`` and ``# END SOLUTION``. Otter replaces the rubric with an answer cell in the student
notebook; they have no tests, so the grader never scores them (:mod:`course_tools.grading.written`
lists them, with every student's answer, for the person who does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from .. import REPO

LAB_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
# files of a lab folder that never go to students
INSTRUCTOR_ONLY = {"grading.yml"}
GENERATED_DIRS = {"student", "dist", "__pycache__", ".ipynb_checkpoints"}
# what the autograder's environment installs (exact versions from constraints.txt)
GRADING_PACKAGES = {"torch", "numpy", "scipy", "matplotlib", "ipywidgets", "tqdm", "scikit-learn", "scikit-image",
                    "pyyaml", "nbformat", "ipython", "otter-grader", "safetensors"}
PYTHON = "3.11"  # the version the course is tested on


@dataclass(frozen=True)
class Lab:
    """One lab: its folder ``labs/NN_slug`` and master notebook ``NN_slug.ipynb``."""

    name: str
    folder: Path

    @property
    def master(self) -> Path:
        return self.folder / f"{self.name}.ipynb"

    def data_files(self) -> list[Path]:
        """Files next to the master that students need (not the master, not instructor files)."""
        out = []
        for p in sorted(self.folder.iterdir()):
            if p.name in INSTRUCTOR_ONLY or p.name in GENERATED_DIRS or p == self.master or p.name.startswith("."):
                continue
            if p.suffix == ".ipynb":
                continue
            out.append(p)
        return out

    def grading_spec(self) -> dict:
        path = self.folder / "grading.yml"
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def discover_labs(labs_dir: Path | None = None) -> list[Lab]:
    """Every ``labs/NN_slug`` folder that holds ``NN_slug.ipynb``, in course order."""
    labs_dir = labs_dir or REPO / "labs"
    labs = []
    for folder in sorted(labs_dir.iterdir()):
        if folder.is_dir() and LAB_NAME.match(folder.name) and (folder / f"{folder.name}.ipynb").exists():
            labs.append(Lab(folder.name, folder))
    return labs


def find_lab(name: str, labs_dir: Path | None = None) -> Lab:
    labs = {lab.name: lab for lab in discover_labs(labs_dir)}
    if name not in labs:
        raise SystemExit(f"no lab named {name!r}; the labs are: {', '.join(labs) or '(none)'}")
    return labs[name]


def assignment_config(lab: Lab, data_files: list[str]) -> dict:
    config = yaml.safe_load((REPO / "labs" / "assignment.yml").read_text())
    config["name"] = lab.name
    config["files"] = list(data_files)
    return config


def lab_title(master: Path) -> str:
    nb = json.loads(master.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _is_marker(cell, marker: str) -> bool:
    return cell.cell_type == "raw" and cell.source.strip().splitlines()[:1] == [marker]


def question_specs(master: Path) -> list[dict]:
    """The ``# BEGIN QUESTION`` configurations of a master notebook (``name``, ``points``, ``manual``, ...),
    in the order students meet them."""
    nb = nbformat.read(master, as_version=4)
    specs = []
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("# BEGIN QUESTION"):
            specs.append(yaml.safe_load(cell.source.split("\n", 1)[1]) or {})
    return specs


def question_order(master: Path) -> list[str]:
    """The autograded questions of a master notebook in the order students meet them (the written
    questions a person grades, ``manual: true``, are not among them)."""
    return [spec["name"] for spec in question_specs(master) if not spec.get("manual")]


def manual_questions(master: Path) -> list[dict]:
    """The written questions of a master notebook, in lab order: ``name``, ``points``, ``manual: True``,
    ``title`` (the first line of the prompt), ``prompt`` (its markdown) and ``rubric`` (the markdown of
    its solution, which otter keeps out of the student notebook). Raises ``ValueError`` for a written
    question without points, prompt or rubric, or with tests."""
    nb = nbformat.read(master, as_version=4)
    out, current, block = [], None, None
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("# BEGIN QUESTION"):
            spec = yaml.safe_load(cell.source.split("\n", 1)[1]) or {}
            current, block = (spec if spec.get("manual") else None), None
            if current is not None:
                current.update(prompt=[], rubric=[], tests=False)
                out.append(current)
            continue
        if current is None:
            continue
        if _is_marker(cell, "# END QUESTION"):
            current = None
        elif cell.cell_type == "raw":
            marker = cell.source.strip()
            block = {"# BEGIN SOLUTION": "solution", "# BEGIN TESTS": "tests", "# BEGIN PROMPT": "prompt"}.get(marker)
            current["tests"] |= block == "tests"
        elif cell.cell_type == "markdown":
            (current["rubric"] if block == "solution" else current["prompt"]).append(cell.source.strip())
    written = []
    for q in out:
        prompt, rubric = "\n\n".join(q.pop("prompt")), "\n\n".join(q.pop("rubric"))
        points = q.get("points")
        if q.pop("tests") or not prompt or not rubric or not isinstance(points, (int, float)) or points <= 0:
            raise ValueError(f"{master.name}: the written question {q.get('name')!r} needs points, a markdown prompt and "
                             "a markdown rubric between # BEGIN SOLUTION and # END SOLUTION, and no tests")
        title = prompt.splitlines()[0].lstrip("#").strip()
        written.append({"name": q["name"], "points": points, "manual": True, "title": title, "prompt": prompt,
                        "rubric": rubric})
    return written


def rule_line(text: str, forbid: list[str] | tuple[str, ...] = ()) -> str:
    """How a question's text states its by-hand rule: ``**By-hand rule:** <text>.``, with the names of
    code in backticks (dotted names, calls, names with an underscore, and the bare names of classes
    and methods in the ``forbid`` list, such as ``unfold`` for ``torch.Tensor.unfold``). The words are
    the ``rule:`` of grading.yml, the ones ``grader.check`` shows: without the backticks and the bold,
    the line reads ``By-hand rule: <text>.``"""
    parts = [name.split(".") for name in forbid]
    bare = sorted({p[-1] for p in parts if len(p) > 1 and (p[-1][:1].isupper() or p[-2][:1].isupper())},
                  key=len, reverse=True)
    code = re.compile(r"(?<![\w.`])(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*(?:\(\))?(?![\w`])|(?<![\w.`])[A-Za-z_]\w*\(\)"
                      r"|(?<![\w.`])[A-Za-z]\w*_\w+" + "".join(rf"|(?<![\w.`]){re.escape(b)}(?![\w.`])" for b in bare))
    return f"**By-hand rule:** {code.sub(lambda m: f'`{m.group(0)}`', text)}."


def plain_text(markdown: str) -> str:
    """Markdown as its words: without backticks and bold (what a reader of the rendered text sees)."""
    return markdown.replace("`", "").replace("**", "")


def state_rules(nb, rules: dict[str, dict], where: str = "") -> None:
    """Append each by-hand rule's :func:`rule_line` to its question's text: the last markdown cell
    before the question's answer (its ``# BEGIN SOLUTION``), in ``nb`` (a copy of a master). A cell
    that already holds the line is left as it is, so running it twice changes nothing."""
    cells = nb.cells
    stated = set()
    for i, cell in enumerate(cells):
        if not (cell.cell_type == "raw" and cell.source.lstrip().startswith("# BEGIN QUESTION")):
            continue
        name = (yaml.safe_load(cell.source.split("\n", 1)[1]) or {}).get("name")
        if name not in rules:
            continue
        answer = next((j for j in range(i + 1, len(cells)) if _is_marker(cells[j], "# BEGIN SOLUTION")), None)
        text = None
        for j in range(answer - 1 if answer is not None else -1, -1, -1):
            if cells[j].cell_type == "markdown":
                text = cells[j]
                break
            if cells[j].cell_type == "code" or _is_marker(cells[j], "# END QUESTION"):
                break
        if text is None:
            raise ValueError(f"{where}: question {name!r} has a by-hand rule but no markdown text before its answer "
                             "to state it in")
        line = rule_line(rules[name]["rule"], rules[name].get("forbid") or ())
        if line not in text.source:
            text.source = text.source.rstrip() + "\n\n" + line
        stated.add(name)
    missing = set(rules) - stated
    if missing:
        raise ValueError(f"{where}: grading.yml gives by-hand rules for questions the notebook does not ask: {sorted(missing)}")


def _public_cases(source: str) -> list[str]:
    """Names of the public test functions of an otter exception test file."""
    return [name for args, name in re.findall(r"@test_case\(([^)]*)\)\s*\ndef (\w+)\(", source) if "hidden=True" not in args]


def _test_names(source: str) -> list[str]:
    """The names a question's tests take from the notebook (the answers they check)."""
    names = []
    for params in re.findall(r"@test_case\([^)]*\)\s*\ndef \w+\(([^)]*)\)", source):
        for p in params.split(","):
            p = p.strip().split(":")[0].split("=")[0].strip()
            if p and p != "env" and p not in names:
                names.append(p)
    return names


def questions_meta(lab: Lab, tests_dir: Path) -> dict:
    """``questions.json``: the lab, its title and its autograded questions in lab order, each with its
    points (public and hidden), the names its tests take, its by-hand rule, and whether the grader checks
    the gradients its answers return against finite differences (``torch_gradients:`` in grading.yml turns
    that off for a question, with the reason); and, under ``manual``, its written questions
    (:func:`manual_questions`), which the grader lists for a person and never scores."""
    from otter.test_files import ExceptionTestFile

    from course_utils.rules import Rule

    rules = (lab.grading_spec().get("by_hand") or {})
    questions = []
    order = question_order(lab.master)
    unknown = set(rules) - set(order)
    if unknown:
        raise ValueError(f"{lab.folder}/grading.yml gives by-hand rules for unknown (or written) questions {sorted(unknown)}")
    conventions = lab.grading_spec().get("torch_gradients") or {}
    if set(conventions) - set(order) or not all(isinstance(v, str) and v.strip() for v in conventions.values()):
        raise ValueError(f"{lab.folder}/grading.yml: torch_gradients maps questions of the lab to the reason their "
                         "gradients are not derivatives of their forward")
    for name in order:
        path = tests_dir / f"{name}.py"
        tf = ExceptionTestFile.from_file(str(path))
        public = sum(tc.points for tc in tf.test_cases if not tc.hidden)
        hidden = sum(tc.points for tc in tf.test_cases if tc.hidden)
        names = _test_names(path.read_text())
        rule = None
        if name in rules:
            rule = Rule.from_dict({**rules[name], "question": name, "names": names}).to_dict()
        questions.append({"name": name, "points": round(public + hidden, 6), "public": round(public, 6),
                          "hidden": round(hidden, 6), "names": names, "rule": rule,
                          "check_gradients": name not in conventions})
    return {"lab": lab.name, "title": lab_title(lab.master), "questions": questions, "manual": manual_questions(lab.master)}


RULE_TEST = '''

BY_HAND_RULE = {rule!r}


@test_case(name={name!r}, points=0, hidden=False)
def test_follows_the_by_hand_rule(env):
    """{text}"""
    from course_utils.rules import check_rule
    check_rule(BY_HAND_RULE, env, [{cases}])
'''


def rule_test_name(rule: dict) -> str:
    """What ``grader.check`` calls a question's by-hand rule test: ``by-hand rule: no F.cross_entropy``."""
    example = (rule.get("example") or "").split("(", 1)[0].strip()
    return f"by-hand rule: no {example}" if example else "by-hand rule"


def add_rule_tests(notebook: Path, meta: dict) -> None:
    """Append the by-hand rule's check to each ruled question's public tests in the student notebook."""
    nb = nbformat.read(notebook, as_version=4)
    tests = nb.metadata.get("otter", {}).get("tests", {})
    for q in meta["questions"]:
        if q["rule"] and q["name"] in tests:
            source = tests[q["name"]]
            cases = ", ".join(_public_cases(source))
            tests[q["name"]] = source.rstrip() + "\n" + RULE_TEST.format(text=q["rule"]["rule"].replace('"""', "'''"),
                                                                         rule=q["rule"], cases=cases,
                                                                         name=rule_test_name(q["rule"]))
    nbformat.write(nb, notebook)


def _requirements() -> str:
    pins = []
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() in GRADING_PACKAGES:
            pins.append(line.strip())
    return "\n".join(pins) + "\n"


def _copy_package(dest: Path, project: Path, package: str) -> None:
    """A package and its pyproject, for ``pip install`` inside the autograder's image."""
    dest.mkdir(parents=True)
    shutil.copy2(project / "pyproject.toml", dest / "pyproject.toml")
    if (project / "README.md").exists():
        shutil.copy2(project / "README.md", dest / "README.md")
    shutil.copytree(project / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


SETUP_SH = f"""#!/usr/bin/env bash
# Builds the grading image: Python {PYTHON} (the version the course is tested on) in /opt, readable by the
# unprivileged user the notebooks run as, with the pinned packages (torch's CPU build) and the course's code.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq wget ca-certificates >/dev/null
arch=$(uname -m)
wget -nv "https://github.com/conda-forge/miniforge/releases/download/25.3.1-0/Miniforge3-Linux-$arch.sh" -O /tmp/miniforge.sh
bash /tmp/miniforge.sh -b -p /opt/miniforge3
/opt/miniforge3/bin/conda create -y -q -p /opt/course-env python={PYTHON} pip
/opt/course-env/bin/pip install -q --extra-index-url https://download.pytorch.org/whl/cpu -r /autograder/source/requirements.txt
/opt/course-env/bin/pip install -q /autograder/source/files/course_utils_src /autograder/source/files/course_tools_src
chmod -R a+rX /opt/miniforge3 /opt/course-env
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this as root for every submission: the course's grader (not otter's in-process
# runner) under the ci profile, the notebook in an unprivileged, isolated process.
exec /opt/course-env/bin/python -I -m course_tools.grading.gradescope /autograder
"""


def build_zip(lab: Lab, otter_zip: Path, out: Path, meta: dict) -> None:
    """Gradescope's autograder zip: otter's test files, this course's runner and environment."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(otter_zip) as z:
            for member in z.namelist():
                if member.startswith("tests/") and member.endswith(".py") or member == "otter_config.json":
                    (tmp / member).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / member).write_bytes(z.read(member))
        _copy_package(tmp / "files" / "course_utils_src", REPO, "course_utils")
        _copy_package(tmp / "files" / "course_tools_src", REPO / "tools", "course_tools")
        (tmp / "requirements.txt").write_text(_requirements())
        (tmp / "questions.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.copytree(out / "student", tmp / "student")
        (tmp / "setup.sh").write_text(SETUP_SH)
        (tmp / "run_autograder").write_text(RUN_AUTOGRADER)
        zip_path = out / f"{lab.name}-autograder.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(tmp.rglob("*")):
                if p.is_file():
                    info = zipfile.ZipInfo(str(p.relative_to(tmp)), date_time=(2020, 1, 1, 0, 0, 0))
                    info.external_attr = (0o755 if p.name in ("setup.sh", "run_autograder") else 0o644) << 16
                    z.writestr(info, p.read_bytes(), zipfile.ZIP_DEFLATED)


def _setup_first(nb_path: Path) -> None:
    """otter puts its initialisation cell above everything: put the lab's title and the setup cell
    back on top, as in every lab, and otter's cell right after them."""
    nb = nbformat.read(nb_path, as_version=4)
    if len(nb.cells) > 2 and "otter.Notebook(" in nb.cells[0].source and nb.cells[1].cell_type == "markdown":
        nb.cells[0], nb.cells[1], nb.cells[2] = nb.cells[1], nb.cells[2], nb.cells[0]
    nbformat.write(nb, nb_path)


def assign(lab: Lab, out_root: Path | None = None, quiet: bool = True) -> Path:
    """Run otter assign on one lab; return ``_assign/NN_slug``."""
    out_root = out_root or REPO / "_assign"
    out = out_root / lab.name
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix=f"assign-{lab.name}-") as tmp:
        tmp = Path(tmp)
        data = lab.data_files()
        for p in data:
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp / p.name)
        nb = nbformat.read(lab.master, as_version=4)
        state_rules(nb, lab.grading_spec().get("by_hand") or {}, f"{lab.folder.name}/{lab.master.name}")
        config = yaml.safe_dump(assignment_config(lab, [p.name for p in data]), sort_keys=False)
        nb.cells.insert(0, nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\n" + config))
        master = tmp / f"{lab.name}.ipynb"
        nbformat.write(nb, master)
        proc = subprocess.run([sys.executable, "-m", "otter", "assign", master.name, "dist"],
                              cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"otter assign failed for {lab.name}:\n{proc.stdout}\n{proc.stderr}")
        dist = tmp / "dist"
        out.mkdir(parents=True)
        shutil.copytree(dist / "student", out / "student")
        (out / "autograder").mkdir()
        shutil.copy2(dist / "autograder" / f"{lab.name}.ipynb", out / "autograder" / f"{lab.name}.ipynb")
        zips = sorted((dist / "autograder").glob("*.zip"))
        if len(zips) != 1:
            raise RuntimeError(f"otter assign made {len(zips)} autograder zips for {lab.name}")
        with zipfile.ZipFile(zips[0]) as z:
            for member in z.namelist():
                if member.startswith("tests/") and member.endswith(".py"):
                    (out / "tests").mkdir(exist_ok=True)
                    (out / "tests" / Path(member).name).write_bytes(z.read(member))
        meta = questions_meta(lab, out / "tests")
        (out / "questions.json").write_text(json.dumps(meta, indent=2) + "\n")
        student = out / "student" / f"{lab.name}.ipynb"
        for nb_path in (student, out / "autograder" / f"{lab.name}.ipynb"):
            _setup_first(nb_path)
        add_rule_tests(student, meta)
        build_zip(lab, zips[0], out, meta)
    if not quiet:
        print(f"{lab.name}: student notebook, solution and autograder zip in {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return out


MANIFEST = ".generated.json"  # in labs/NN_slug/student/: what copy_for_book wrote there, file by file


# what tools write while a notebook runs or is open (otter's log, Jupyter's checkpoints, bytecode):
# nobody's work, so they never stop a build
TOOL_FILES = {".OTTER_LOG"}
TOOL_DIRS = {".ipynb_checkpoints", "__pycache__"}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST and p.name not in TOOL_FILES
            and not TOOL_DIRS & set(p.relative_to(folder).parts[:-1])}


class WouldLoseWork(RuntimeError):
    """The book's copy of a student notebook holds files this tool did not write."""


def remove_book_copy(lab: Lab) -> None:
    """Remove ``labs/NN_slug/student/`` if everything in it is what :func:`copy_for_book` wrote
    (its manifest says so); otherwise raise :class:`WouldLoseWork` with the files that differ."""
    dest = lab.folder / "student"
    if not dest.exists():
        return
    manifest = dest / MANIFEST
    written = json.loads(manifest.read_text()) if manifest.is_file() else {}
    changed = [name for name, digest in _digests(dest).items() if written.get(name) != digest]
    if changed:
        raise WouldLoseWork(
            f"{dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest} holds files that `make assign --book` did "
            f"not write or that changed since: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}. "
            "They may be someone's work: move them (students work in work/, see `make lab`), then run again.")
    shutil.rmtree(dest)


def copy_for_book(lab: Lab, out_root: Path | None = None) -> Path:
    """Put the student notebook (and its data files) where ``_toc.yml`` expects it,
    ``labs/NN_slug/student/``. The folder is replaced only if everything in it is what this
    function wrote last time: a notebook someone edited or saved there, or any file added, stops
    the build with the list (:func:`remove_book_copy`), so no work is lost. Students work in
    ``work/`` (``make lab``), which no build touches."""
    out_root = out_root or REPO / "_assign"
    dest = lab.folder / "student"
    remove_book_copy(lab)
    shutil.copytree(out_root / lab.name / "student", dest)
    (dest / MANIFEST).write_text(json.dumps(_digests(dest), indent=1) + "\n")
    return dest / f"{lab.name}.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate student notebooks and autograders from the lab masters.")
    parser.add_argument("labs", nargs="*", help="lab names (default: every lab)")
    parser.add_argument("--out", type=Path, default=REPO / "_assign", help="output folder (default: _assign)")
    parser.add_argument("--book", action="store_true", help="also copy student notebooks into labs/*/student for the website")
    parser.add_argument("--remove-book-copies", action="store_true",
                        help="only remove labs/*/student (make clean), refusing where a file there was not written by --book")
    args = parser.parse_args(argv)
    labs = [find_lab(n) for n in args.labs] if args.labs else discover_labs()
    if args.remove_book_copies:
        try:
            for lab in labs:
                remove_book_copy(lab)
        except WouldLoseWork as stop:
            print(f"stopped: {stop}", file=sys.stderr)
            return 1
        return 0
    for lab in labs:
        assign(lab, args.out, quiet=False)
        if args.book:
            try:
                copy_for_book(lab, args.out)
            except WouldLoseWork as stop:
                print(f"stopped: {stop}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
