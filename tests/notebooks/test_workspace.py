"""`make lab`'s work/ folder and the book's copies of the hand-outs: no build loses a student's work."""

from __future__ import annotations

import io
import shutil

import nbformat
import pytest

from course_tools import workspace
from course_tools.grading import assign as assign_module
from course_tools.grading.assign import Lab, WouldLoseWork, copy_for_book, discover_labs, remove_book_copy

LABS = discover_labs()


def handouts(root, text="hand-out"):
    """A stand-in for _assign/: each lab's student folder with a notebook and a data file."""
    for lab in LABS:
        folder = root / lab.name / "student"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"{lab.name}: {text}")])
        nbformat.write(nb, folder / f"{lab.name}.ipynb")
        (folder / "data" / "glyphs.txt").write_text("data")
    return root


def test_work_copies_are_made_once_and_never_overwritten(tmp_path):
    assigned, work = handouts(tmp_path / "_assign"), tmp_path / "work"
    first = workspace.prepare(work, assigned, log=io.StringIO())
    lab = LABS[0].name
    mine = work / lab / f"{lab}.ipynb"
    assert mine.is_file() and len(first) == len(LABS)
    mine.write_text("my answers")
    (work / lab / "scratch.ipynb").write_text("my own notebook")
    (work / lab / "data" / "glyphs.txt").unlink()

    again = workspace.prepare(work, assigned, log=io.StringIO())
    assert mine.read_text() == "my answers" and (work / lab / "scratch.ipynb").read_text() == "my own notebook"
    assert again == [f"{lab}: added {lab}/data/glyphs.txt"]  # a missing data file comes back; nothing is replaced


def test_an_updated_hand_out_lands_next_to_the_students_notebook(tmp_path):
    assigned, work = handouts(tmp_path / "_assign"), tmp_path / "work"
    workspace.prepare(work, assigned, log=io.StringIO())
    lab = LABS[1].name
    (work / lab / f"{lab}.ipynb").write_text("my answers")
    handouts(assigned, text="corrected hand-out")

    lines = workspace.prepare(work, assigned, log=io.StringIO())
    updates = sorted((work / lab).glob(f"{lab}.update-*.ipynb"))
    assert len(updates) == 1 and "corrected hand-out" in updates[0].read_text()
    assert (work / lab / f"{lab}.ipynb").read_text() == "my answers"
    assert any(f"the new hand-out is work/{lab}/{updates[0].name}" in line and "untouched" in line for line in lines)
    assert workspace.prepare(work, assigned, log=io.StringIO()) == [], "said once, not at every start"


@pytest.fixture
def book_lab(tmp_path):
    """A lab whose folder is a temporary copy, so the book's copy is made there and not in labs/."""
    lab = LABS[0]
    folder = tmp_path / "labs" / lab.name
    folder.mkdir(parents=True)
    return Lab(lab.name, folder), handouts(tmp_path / "_assign")


def test_the_book_copy_is_replaced_only_while_it_holds_what_the_build_wrote(book_lab):
    lab, assigned = book_lab
    notebook = copy_for_book(lab, assigned)
    assert copy_for_book(lab, assigned) == notebook, "an untouched copy is simply regenerated"

    notebook.write_text("answers saved in the book's copy")
    (notebook.parent / "extra.ipynb").write_text("a notebook of my own")
    with pytest.raises(WouldLoseWork, match=rf"{lab.name}.ipynb, extra.ipynb.*move them"):
        copy_for_book(lab, assigned)
    with pytest.raises(WouldLoseWork):
        remove_book_copy(lab)
    assert notebook.read_text() == "answers saved in the book's copy" and (notebook.parent / "extra.ipynb").is_file()


def test_make_clean_and_make_book_stop_with_one_line_instead_of_deleting(book_lab, monkeypatch, capsys):
    lab, assigned = book_lab
    notebook = copy_for_book(lab, assigned)
    notebook.write_text("my answers")
    monkeypatch.setattr(assign_module, "find_lab", lambda name: lab)
    assert assign_module.main([lab.name, "--remove-book-copies"]) == 1
    assert capsys.readouterr().err.startswith("stopped: ") and notebook.read_text() == "my answers"
    shutil.rmtree(notebook.parent)
    assert assign_module.main([lab.name, "--remove-book-copies"]) == 0
