"""Recorded runs (course_utils/results.py): written with their provenance, read best first, and
found stale when the lab's code changes."""

from __future__ import annotations

import json

import torch

from course_utils import results


def make_lab(tmp_path, code="x = 1"):
    folder = tmp_path / "labs" / "09_demo"
    folder.mkdir(parents=True)
    nb = {"cells": [{"cell_type": "code", "source": code, "metadata": {}, "outputs": []},
                    {"cell_type": "markdown", "source": "text", "metadata": {}}], "metadata": {}}
    (folder / "09_demo.ipynb").write_text(json.dumps(nb))
    return folder


def test_a_run_records_its_provenance_and_is_read_best_first(tmp_path, monkeypatch):
    folder = make_lab(tmp_path)
    cpu = results.write(folder, "cpu", torch.device("cpu"), {"epochs": 2}, {"setup": 0}, {"score": 0.5})
    record = json.loads(cpu.read_text())
    assert record["score"] == 0.5
    assert set(record["provenance"]) >= {"commit", "code_hash", "profile", "device", "torch", "seeds", "sizes", "date"}
    assert record["provenance"]["sizes"] == {"epochs": 2} and record["provenance"]["lab"] == "09_demo"
    monkeypatch.chdir(tmp_path)
    assert results.read("09_demo")["score"] == 0.5
    results.write(folder, "gpu", torch.device("cpu"), {"epochs": 9}, {"setup": 0}, {"score": 0.9})
    assert results.read("09_demo")["score"] == 0.9, "a gpu run is quoted before a cpu run"
    assert "cpu profile" not in results.describe(results.read("09_demo")) and "gpu profile" in results.describe(results.read("09_demo"))


def test_a_run_goes_stale_when_the_labs_code_changes(tmp_path):
    folder = make_lab(tmp_path)
    path = results.write(folder, "cpu", "cpu", {}, {}, {"score": 1})
    assert results.staleness(path) is None
    nb = json.loads((folder / "09_demo.ipynb").read_text())
    nb["cells"][1]["source"] = "markdown changes do not matter"
    (folder / "09_demo.ipynb").write_text(json.dumps(nb))
    assert results.staleness(path) is None
    nb["cells"][0]["source"] = "x = 2"
    (folder / "09_demo.ipynb").write_text(json.dumps(nb))
    assert "the lab's code changed" in results.staleness(path) and "COURSE_PROFILE=cpu" in results.staleness(path)


def test_large_entries_go_on_one_line(tmp_path):
    folder = make_lab(tmp_path)
    path = results.write(folder, "cpu", "cpu", {}, {}, {"rows": {"a": 1}, "examples": [[1, 2], [3, 4]]}, compact=("examples",))
    text = path.read_text()
    assert '"examples": [[1,2],[3,4]]' in text and json.loads(text)["examples"] == [[1, 2], [3, 4]]
