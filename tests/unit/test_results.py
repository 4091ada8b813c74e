"""Recorded runs (course_utils/results.py): written with their provenance, read best first, and
found stale when the lab's code changes."""

from __future__ import annotations

import json
import statistics

import pytest
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
    cpu = results.write(folder, "cpu", torch.device("cpu"), {"epochs": 2}, 0, {"score": 0.5})
    record = json.loads(cpu.read_text())
    assert record["runs"]["0"]["score"] == 0.5
    assert set(record["provenance"]) >= {"code_hash", "profile", "torch", "seeds", "sizes", "lab"}
    assert set(record["runs"]["0"]["provenance"]) >= {"seed", "commit", "device", "date"}
    assert record["provenance"]["sizes"] == {"epochs": 2} and record["provenance"]["lab"] == "09_demo"
    monkeypatch.chdir(tmp_path)
    assert results.read("09_demo")["score"] == 0.5
    results.write(folder, "gpu", torch.device("cpu"), {"epochs": 9}, 0, {"score": 0.9})
    assert results.read("09_demo")["score"] == 0.9, "a gpu run is quoted before a cpu run"
    assert "cpu profile" not in results.describe(results.read("09_demo")) and "gpu profile" in results.describe(results.read("09_demo"))


def test_a_run_goes_stale_when_the_labs_code_changes(tmp_path):
    folder = make_lab(tmp_path)
    path = results.write(folder, "cpu", "cpu", {}, 0, {"score": 1})
    results.write(folder, "cpu", "cpu", {}, 4, {"score": 2})
    assert results.staleness(path) is None
    nb = json.loads((folder / "09_demo.ipynb").read_text())
    nb["cells"][1]["source"] = "markdown changes do not matter"
    (folder / "09_demo.ipynb").write_text(json.dumps(nb))
    assert results.staleness(path) is None
    nb["cells"][0]["source"] = "x = 2"
    (folder / "09_demo.ipynb").write_text(json.dumps(nb))
    why = results.staleness(path)
    assert "the lab's code changed" in why and 'make record LAB=09_demo PROFILE=cpu SEEDS="0 4"' in why, why


def test_large_entries_go_on_one_line(tmp_path):
    folder = make_lab(tmp_path)
    path = results.write(folder, "cpu", "cpu", {}, 0, {"rows": {"a": 1}, "examples": [[1, 2], [3, 4]]}, compact=("examples",))
    text = path.read_text()
    assert '"examples": [[1,2],[3,4]]' in text and json.loads(text)["runs"]["0"]["examples"] == [[1, 2], [3, 4]]
    assert '"a": 1' in text, "other entries keep one line each"


def test_runs_of_other_seeds_join_the_file_and_other_sizes_start_it_afresh(tmp_path, monkeypatch):
    folder = make_lab(tmp_path)
    monkeypatch.chdir(tmp_path)
    for seed, score in [(2, 0.7), (0, 0.5), (1, 0.6), (2, 0.8)]:  # seed 2 twice: the second replaces the first
        path = results.write(folder, "cpu", "cpu", {"epochs": 2}, seed, {"score": score})
    run = results.read("09_demo")
    assert json.loads(path.read_text())["provenance"]["seeds"] == [0, 1, 2]
    assert run["score"] == 0.5 and run["provenance"]["seed"] == 0, "the top level is the run of the smallest seed"
    assert {s: r["score"] for s, r in run["runs"].items()} == {0: 0.5, 1: 0.6, 2: 0.8}
    assert "seeds 0, 1, 2" in results.describe(run)
    results.write(folder, "cpu", "cpu", {"epochs": 3}, 1, {"score": 0.9})
    assert set(results.read("09_demo")["runs"]) == {1}, "a run with other sizes does not mix with the old runs"


def test_mean_and_spread_across_seeds():
    values = [0.51, 0.55, 0.62]
    assert results.across_seeds(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)), rel=1e-12)
    assert results.across_seeds([0.4]) == (0.4, 0.0)
    curves = [[0.1, 0.5], [0.3, 0.6], [0.2, 0.9]]  # one curve per seed
    mean, sd = results.across_seeds(curves)
    columns = list(zip(*curves))
    assert mean == pytest.approx([statistics.mean(c) for c in columns]) and sd == pytest.approx([statistics.stdev(c) for c in columns])
    assert results.across_seeds([[0.1, 0.5]])[1].tolist() == [0.0, 0.0], "one seed: no spread"
