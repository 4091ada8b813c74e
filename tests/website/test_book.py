"""The website builds with zero warnings, and never shows a solution or a hidden test."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from helpers import PYTHON, REPO, run
from course_tools.grading.assign import discover_labs
from course_tools.grading.leaks import find_leaks, readable_text

pytestmark = pytest.mark.book


def test_book_builds_without_warnings(built_book):
    proc = built_book["process"]
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}"
    # Sphinx reports "path: WARNING: message" (the kernel's own "WARNING |" log lines are not the book's)
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING: " in line]
    assert not warnings, "\n".join(warnings[:20])
    # nor the kernel's warning at every start that 127.0.0.1 is unencrypted (make install quiets it)
    assert "without encryption" not in proc.stdout + proc.stderr


def test_every_toc_page_is_built(built_book):
    from helpers import toc_files

    html = built_book["html"]
    missing = [f for f in sorted(toc_files()) if not (html / f"{f}.html").is_file()]
    assert not missing, f"pages in _toc.yml that the build did not produce: {missing}"


def test_chapter_pages_carry_their_figures(built_book):
    from course_tools.notebooks import all_notebooks

    html = built_book["html"]
    for page in (p for p in all_notebooks() if p.suffix == ".md"):
        text = (html / "chapters" / f"{page.stem}.html").read_text()
        if "plt." in page.read_text() or "show_scenes" in page.read_text():
            assert "<img" in text, f"{page.name} draws figures but its page shows none"


def test_lab_pages_show_the_student_notebook_for_download(built_book):
    html = built_book["html"]
    for lab in discover_labs():
        page = html / "labs" / lab.name / "student" / f"{lab.name}.html"
        download = html / "_sources" / "labs" / lab.name / "student" / f"{lab.name}.ipynb"
        assert page.is_file() and download.is_file()
        assert f"{lab.name}.ipynb" in page.read_text()


def test_no_solution_or_hidden_test_anywhere_in_the_website(built_book, assigned):
    from course_tools.grading.leaks import hidden_test_lines, public_test_lines, solution_lines, visible_lines

    labs = discover_labs()
    tests = {lab.name: {p.stem: p.read_text() for p in (assigned / lab.name / "tests").glob("*.py")} for lab in labs}
    # generic scaffolding is not a leak: lines some lab shows students openly (its code, its public
    # tests) and single lines of the chapters ("elif isinstance(layer, nn.Linear):"); solutions
    # copied into a chapter are caught by the next test, which counts them
    open_lines = set().union(*(visible_lines(lab.master) | public_test_lines(tests[lab.name]) for lab in labs))
    chapter_lines = {line.strip() for p in (REPO / "chapters").glob("*.md") for line in p.read_text().splitlines()}
    secret = set()
    for lab in labs:
        secret |= solution_lines(lab.master) | hidden_test_lines(tests[lab.name])
    secret -= open_lines | chapter_lines
    leaks = {}
    for path in built_book["html"].rglob("*"):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".txt", ".md", ".js", ".json"}:
            found = find_leaks(readable_text(path), secret)
            if found:
                leaks[str(path.relative_to(REPO))] = found[:3]
    assert not leaks, f"solutions or hidden tests on the website: {leaks}"


def test_no_chapter_page_gives_away_a_lab_solution():
    from course_tools.grading.leaks import solution_lines, visible_lines

    for lab in discover_labs():
        solution = solution_lines(lab.master) - visible_lines(lab.master)
        for page in (REPO / "chapters").glob("*.md"):
            shared = solution & {line.strip() for line in page.read_text().splitlines()}
            assert len(shared) < 3, f"{page.name} repeats {len(shared)} solution lines of {lab.name}: {sorted(shared)[:5]}"


def test_the_text_names_chapters_by_cross_reference():
    """"chapter 4" typed as text keeps pointing at chapter 4 when the chapters move; a {numref} to the
    chapter's label is numbered by the build and checked by it (-W -n fails on a missing label)."""
    pages = [REPO / "intro.md", *sorted((REPO / "chapters").glob("*.md"))]
    typed = []
    for page in pages:
        text = page.read_text()
        text = re.sub(r"^```\{code-cell\}.*?^```", "", text, flags=re.S | re.M)  # code and its metadata
        text = re.sub(r"\{[\w:-]+\}`[^`]*`", "", text)                         # roles: {numref}`chapter %s <...>`
        for line in text.splitlines():
            typed += [f"{page.relative_to(REPO)}: {found[0]!r} in {line.strip()[:90]!r}"
                      for found in re.finditer(r"\b[Cc]hapters? \d", line)]
    assert not typed, "chapter numbers typed as text (use {numref}`chapter %s <ch-label>`):\n" + "\n".join(typed)


def test_hidden_and_generated_folders_are_not_pages(tmp_path):
    """A test run leaves `.pytest_cache/README.md` behind; the book must not try to build it (with
    `-W` the "not in any toctree" warning would fail the next `make book`). Sphinx's own file
    discovery runs on a tree with such strays and the book's real pages."""
    import yaml
    from sphinx.util.matching import get_matching_files

    strays = [".pytest_cache/README.md", ".venv/lib/pkg/README.md", "_build/html/x.md",
              "labs/00_getting_started/.ipynb_checkpoints/00_getting_started-checkpoint.ipynb",
              "_assign/00_getting_started/student/00_getting_started.ipynb", "_grades/x/feedback/a.md"]
    pages = ["intro.md", "chapters/01_backprop_message_passing.md",
             "labs/00_getting_started/student/00_getting_started.ipynb"]
    for path in strays + pages:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("# a page\n")
    excluded = yaml.safe_load((REPO / "_config.yml").read_text())["exclude_patterns"]
    found = set(get_matching_files(tmp_path, include_patterns=["**"], exclude_patterns=excluded))
    assert not found & set(strays), f"these would be read as pages of the book: {sorted(found & set(strays))}"
    assert set(pages) <= found, f"_config.yml excludes pages of the book: {sorted(set(pages) - found)}"


CLAIM_PAGE = """---
jupytext:
  text_representation: {{format_name: myst}}
kernelspec: {{name: python3, display_name: Python 3}}
---
# A page

```{{code-cell}} ipython3
from course_utils.claims import claim

claim("FCN-8s beats FCN-32s", {holds}, miu_8=0.66, miu_32=0.07)
```

FCN-8s reaches {{glue:text}}`miu_8:.2f`.
"""


def test_a_contradicted_claim_fails_the_book_build(tmp_path):
    """The build the book uses (jupyter-book -W, with the book's execution settings) stops on a claim
    its values contradict, and shows the glued value of one that holds (one build of two pages)."""

    config = yaml.safe_load((REPO / "_config.yml").read_text())
    mini = {"title": "claims", "execute": config["execute"] | {"execute_notebooks": "force"}, "sphinx": {"config": {"nb_merge_streams": True}}}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(mini))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: holds\nchapters:\n- file: contradicted\n")
    (tmp_path / "holds.md").write_text(CLAIM_PAGE.format(holds="0.66 > 0.07"))
    (tmp_path / "contradicted.md").write_text(CLAIM_PAGE.format(holds="0.66 < 0.07"))
    env = dict(os.environ, COURSE_PROFILE="ci")
    env.pop("MPLBACKEND", None)
    proc = run([Path(PYTHON).with_name("jupyter-book"), "build", str(tmp_path), "-W", "-n", "--keep-going"], env=env)
    assert proc.returncode != 0
    assert "Executing notebook failed" in proc.stderr
    reports = tmp_path / "_build" / "html" / "reports"
    assert sorted(p.name for p in reports.glob("*.err.log")) == ["contradicted.err.log"], "only the contradicted page fails"
    said = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    warned = set(re.findall(r"/(\w+)\.md[:0-9]*: (?:WARNING|ERROR)", said))
    assert warned == {"contradicted"}, f"only the contradicted page warns (the one whose claim holds builds cleanly): {warned}"
    report = re.sub(r"\x1b\[[0-9;]*m", "", (reports / "contradicted.err.log").read_text())
    assert "ClaimError: the book says 'FCN-8s beats FCN-32s', but its computed values disagree" in report
    html = (tmp_path / "_build" / "html" / "holds.html").read_text()
    assert re.search(r"FCN-8s reaches (<[^>]+>)?0\.66<", html), "the glued value of the claim that holds is on its page"


def test_the_extension_names_the_sidebar_arrows_and_makes_citations_list_items():
    """What tools/course_tools/book.py changes in the theme's and docutils' markup, on the markup
    they write (the browser tests' axe-core audit checks the built pages)."""
    from bs4 import BeautifulSoup

    from course_tools.book import _BIBLIOENTRY, label_sidebar_toggles

    soup = BeautifulSoup(
        '<ul><li class="toctree-l1 has-children"><a class="reference internal" href="ch.html">3. Upsampling</a>'
        '<details><summary><span class="toctree-toggle" role="presentation"><i class="fa-solid"></i></span></summary>'
        '<ul><li><a href="lab.html">Lab 3</a></li></ul></details></li>'
        '<li class="has-children"><details><summary><p class="caption">Chapters</p></summary><ul></ul></details></li></ul>',
        "html.parser")
    label_sidebar_toggles(soup)
    label_sidebar_toggles(soup)  # the theme caches the sidebar: a second pass changes nothing
    summaries = soup.find_all("summary")
    assert summaries[0]["aria-label"] == "Sections of 3. Upsampling"
    assert "aria-label" not in summaries[1].attrs, "a summary with text has a name already"
    body = '<div role="list" class="citation-list">\n<div class="citation" id="id35" role="doc-biblioentry">\n'
    assert _BIBLIOENTRY.sub(r'\1 role="listitem"', body) == body.replace("doc-biblioentry", "listitem")
