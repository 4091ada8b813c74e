"""`make lab`'s work/ folder and the book's copies of the hand-outs: no build loses a student's work."""

from __future__ import annotations

import io
import json
import shutil
from datetime import date

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
    updates = sorted((work / lab).glob("update-*.ipynb"))
    assert len(updates) == 1 and "corrected hand-out" in updates[0].read_text()
    assert updates[0].name == f"update-{date.today().isoformat()}.ipynb", "a short name that says when"
    assert (work / lab / f"{lab}.ipynb").read_text() == "my answers"
    assert any(f"the new hand-out is work/{lab}/{updates[0].name}" in line and "untouched" in line for line in lines)
    assert workspace.prepare(work, assigned, log=io.StringIO()) == [], "said once, not at every start"

    handouts(assigned, text="corrected again")  # a second change the same day: a second, distinct file
    assert len(workspace.prepare(work, assigned, log=io.StringIO())) == len(LABS)
    assert "corrected again" in (work / lab / f"update-{date.today().isoformat()}-2.ipynb").read_text()


def test_a_regenerated_hand_out_with_new_cell_ids_is_no_update(tmp_path):
    """make book and make clean regenerate the hand-outs, and nbformat gives every cell a new random
    id: the content did not change, so make lab says nothing and writes nothing."""
    assigned, work = handouts(tmp_path / "_assign"), tmp_path / "work"
    workspace.prepare(work, assigned, log=io.StringIO())
    handouts(assigned)  # same text, new random cell ids
    lab = LABS[0].name
    first = nbformat.read(work / lab / f"{lab}.ipynb", as_version=4).cells[0].id
    assert nbformat.read(assigned / lab / "student" / f"{lab}.ipynb", as_version=4).cells[0].id != first
    assert workspace.prepare(work, assigned, log=io.StringIO()) == []
    assert not list((work / lab).glob("update-*"))


def test_an_old_record_of_file_hashes_is_read_without_a_false_update(tmp_path):
    assigned, work = handouts(tmp_path / "_assign"), tmp_path / "work"
    workspace.prepare(work, assigned, log=io.StringIO())
    old = {lab.name: workspace._file_hash(assigned / lab.name / "student" / f"{lab.name}.ipynb") for lab in LABS}
    (work / workspace.RECORD).write_text(json.dumps(old))
    assert workspace.prepare(work, assigned, log=io.StringIO()) == []


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


def test_files_tools_write_while_the_copy_runs_never_stop_a_build(book_lab):
    """Running the book's copy top to bottom leaves otter's .OTTER_LOG (and Jupyter may leave
    checkpoints): nobody's work, so the next build replaces the folder; an edit still stops it."""
    lab, assigned = book_lab
    notebook = copy_for_book(lab, assigned)
    (notebook.parent / ".OTTER_LOG").write_bytes(b"otter's log")
    (notebook.parent / ".ipynb_checkpoints").mkdir()
    (notebook.parent / ".ipynb_checkpoints" / f"{lab.name}-checkpoint.ipynb").write_text("a checkpoint")
    assert copy_for_book(lab, assigned) == notebook
    assert not (notebook.parent / ".OTTER_LOG").exists()
    (notebook.parent / ".OTTER_LOG").write_bytes(b"otter's log")
    notebook.write_text("answers")
    with pytest.raises(WouldLoseWork, match=rf"{lab.name}.ipynb\. They may be"):
        copy_for_book(lab, assigned)


def test_make_clean_and_make_book_stop_with_one_line_instead_of_deleting(book_lab, monkeypatch, capsys):
    lab, assigned = book_lab
    notebook = copy_for_book(lab, assigned)
    notebook.write_text("my answers")
    monkeypatch.setattr(assign_module, "find_lab", lambda name: lab)
    assert assign_module.main([lab.name, "--remove-book-copies"]) == 1
    assert capsys.readouterr().err.startswith("stopped: ") and notebook.read_text() == "my answers"
    shutil.rmtree(notebook.parent)
    assert assign_module.main([lab.name, "--remove-book-copies"]) == 0
