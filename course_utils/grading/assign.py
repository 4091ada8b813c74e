"""``make assign``: turn every lab's master notebook into a student notebook and an autograder.

Taught nowhere (instructor tooling); the README's "For instructors" section documents it.

For each lab folder ``labs/NN_slug/`` holding the master ``NN_slug.ipynb``, this module

1. copies the master into a scratch folder and prepends otter-grader's assignment configuration
   (``labs/assignment.yml`` plus the lab's name), so masters stay free of configuration;
2. runs ``otter assign``, which strips solutions and hidden tests from the student notebook and
   writes a Gradescope-compatible autograder zip (with ``course_utils`` inside, installed by its
   ``environment.yml``);
3. writes into ``_assign/NN_slug/``: ``student/`` (the notebook students get, plus the lab's data
   files), ``autograder/`` (the solution notebook: the round-trip tests submit it),
   ``NN_slug-autograder.zip``, ``tests/`` (every test file, hidden ones included, for
   :mod:`course_utils.grading.batch`) and ``questions.json`` (points per question);
4. with ``--book``, copies each student notebook to ``labs/NN_slug/student/`` where the website
   picks it up.
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parents[2]
LAB_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
# files of a lab folder that never go to students
INSTRUCTOR_ONLY = {"grading.yml"}
GENERATED_DIRS = {"student", "dist", "__pycache__", ".ipynb_checkpoints"}
METADATA_KEY = "course"


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
    config["requirements"] = "requirements.txt"
    config["files"] = list(data_files) + ["course_utils_src"]
    return config


def _requirements() -> str:
    """Exact versions of the grading dependencies, from the constraints file, plus course_utils."""
    wanted = {"torch", "numpy", "scipy", "matplotlib", "ipywidgets", "tqdm", "scikit-learn", "scikit-image", "pyyaml", "nbformat"}
    pins = []
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in wanted:
            pins.append(line.strip())
    return "\n".join(pins + ["/autograder/source/files/course_utils_src"]) + "\n"


def _copy_package(dest: Path) -> None:
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    shutil.copy2(REPO / "README.md", dest / "README.md")
    shutil.copytree(REPO / "course_utils", dest / "course_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _tag(nb_path: Path, lab: Lab, role: str) -> None:
    """Name the lab in the notebook's metadata (the grader checks it) and put the title first:
    otter puts its initialisation cell above everything."""
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata[METADATA_KEY] = {"lab": lab.name, "role": role}
    if len(nb.cells) > 1 and "otter.Notebook(" in nb.cells[0].source and nb.cells[1].cell_type == "markdown":
        nb.cells[0], nb.cells[1] = nb.cells[1], nb.cells[0]
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
        _copy_package(tmp / "course_utils_src")
        (tmp / "requirements.txt").write_text(_requirements())
        nb = nbformat.read(lab.master, as_version=4)
        config = yaml.safe_dump(assignment_config(lab, [p.name for p in data]), sort_keys=False)
        nb.cells.insert(0, nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\n" + config))
        master = tmp / f"{lab.name}.ipynb"
        nbformat.write(nb, master)
        proc = subprocess.run(
            [sys.executable, "-m", "otter", "assign", master.name, "dist"],
            cwd=tmp, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"otter assign failed for {lab.name}:\n{proc.stdout}\n{proc.stderr}")
        dist = tmp / "dist"
        out.mkdir(parents=True)
        shutil.copytree(dist / "student", out / "student", ignore=shutil.ignore_patterns("course_utils_src"))
        (out / "autograder").mkdir()
        shutil.copy2(dist / "autograder" / f"{lab.name}.ipynb", out / "autograder" / f"{lab.name}.ipynb")
        zips = sorted((dist / "autograder").glob("*.zip"))
        if len(zips) != 1:
            raise RuntimeError(f"otter assign made {len(zips)} autograder zips for {lab.name}")
        zip_path = out / f"{lab.name}-autograder.zip"
        shutil.copy2(zips[0], zip_path)
    _tag(out / "student" / f"{lab.name}.ipynb", lab, "student")
    _tag(out / "autograder" / f"{lab.name}.ipynb", lab, "solution")
    with zipfile.ZipFile(zip_path) as z:
        for member in z.namelist():
            if member.startswith("tests/") and member.endswith(".py"):
                (out / "tests").mkdir(exist_ok=True)
                (out / "tests" / Path(member).name).write_bytes(z.read(member))
    (out / "questions.json").write_text(json.dumps(question_points(out / "tests"), indent=2) + "\n")
    if not quiet:
        print(f"{lab.name}: student notebook, solution and autograder zip in {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return out


def question_points(tests_dir: Path) -> dict:
    """``{question: {"points": p, "public": p_public, "hidden": p_hidden}}`` from otter's test files."""
    from otter.test_files import ExceptionTestFile

    result = {}
    for path in sorted(tests_dir.glob("*.py")):
        tf = ExceptionTestFile.from_file(str(path))
        public = sum(tc.points for tc in tf.test_cases if not tc.hidden)
        hidden = sum(tc.points for tc in tf.test_cases if tc.hidden)
        result[tf.name] = {"points": round(public + hidden, 6), "public": round(public, 6), "hidden": round(hidden, 6)}
    return result


def copy_for_book(lab: Lab, out_root: Path | None = None) -> Path:
    """Put the student notebook (and its data files) where ``_toc.yml`` expects it."""
    out_root = out_root or REPO / "_assign"
    dest = lab.folder / "student"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(out_root / lab.name / "student", dest)
    return dest / f"{lab.name}.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate student notebooks and autograders from the lab masters.")
    parser.add_argument("labs", nargs="*", help="lab names (default: every lab)")
    parser.add_argument("--out", type=Path, default=REPO / "_assign", help="output folder (default: _assign)")
    parser.add_argument("--book", action="store_true", help="also copy student notebooks into labs/*/student for the website")
    args = parser.parse_args(argv)
    labs = [find_lab(n) for n in args.labs] if args.labs else discover_labs()
    for lab in labs:
        assign(lab, args.out, quiet=False)
        if args.book:
            copy_for_book(lab, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
