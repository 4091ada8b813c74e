"""The package's layout: every module says, as a MyST label that resolves, which section of the book
teaches it; the student package holds nothing of the tooling; one definition of the repository root."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers import REPO

MODULES = sorted(p for p in (REPO / "course_utils").rglob("*.py") if p.name != "__init__.py")
LABELS = {m for page in [*(REPO / "chapters").glob("*.md"), REPO / "intro.md"]
          for m in re.findall(r"^\(([\w-]+)\)=$", page.read_text(), re.M)}


@pytest.mark.parametrize("module", MODULES, ids=[str(p.relative_to(REPO)) for p in MODULES])
def test_every_module_names_the_section_that_teaches_it(module):
    doc = ast.get_docstring(ast.parse(module.read_text())) or ""
    refs = re.findall(r"\{ref\}`([\w-]+)`", doc)
    assert refs, f"{module.name}: its docstring should say where the book teaches it: Taught in {{ref}}`label`"
    missing = [r for r in refs if r not in LABELS]
    assert not missing, f"{module.name} points at sections that do not exist: {missing} (labels are `(label)=` lines)"


def test_the_student_package_holds_no_tooling():
    tooling = [p for p in (REPO / "course_utils").rglob("*.py")
               if re.search(r"^\s*(from|import) (course_tools|otter\.(assign|run|grade))", p.read_text(), re.M)]
    assert not tooling, f"course_utils must not import the instructors' tooling: {tooling}"
    assert not (REPO / "course_utils" / "grading").exists() and not (REPO / "course_utils" / "book.py").exists()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'include = ["course_utils*"]' in pyproject, "`pip install .` installs course_utils only"


def test_one_definition_of_the_repository_root():
    roots = [f"{p.relative_to(REPO)}:{i + 1}" for tree in ("course_utils", "tools", "tests") for p in (REPO / tree).rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines()) if re.match(r"\s*REPO\s*=", line)]
    assert roots == ["tools/course_tools/__init__.py:9"], roots
