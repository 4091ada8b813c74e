"""Recorded runs: what a lab measured under the ``cpu`` or ``gpu`` profile, with where it came from.

Taught in {ref}`sec-race` (chapter 4), whose numbers come from such a run. A lab run under a
profile other than ``ci`` writes ``labs/NN_slug/results_<profile>.json``: its numbers and their
**provenance** (the commit, a hash of the lab's code, the profile, the device, torch's version, the
seed, the sizes and the date), one run per seed (``make record`` runs a lab for several). A chapter
reads the best run recorded (``gpu``, else ``cpu``) with :func:`read`, says which one it quotes,
and reports mean and spread over the seeds with :func:`across_seeds`; a test fails when the lab's
code has changed since the run (:func:`staleness`), and says how to record it again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
from pathlib import Path

import torch

PROFILES_BEST_FIRST = ("gpu", "cpu")


def code_hash(master: Path) -> str:
    """A hash of a lab's code: the sources of its master notebook's code cells, in order."""
    nb = json.loads(Path(master).read_text())
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in nb["cells"] if c["cell_type"] == "code"]
    return hashlib.sha256("\n\x00\n".join(sources).encode()).hexdigest()[:16]


def _commit(folder: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dumps(record: dict, compact: tuple) -> str:
    """JSON with one entry per line, except the entries named in ``compact`` (large arrays), which
    go on one line each, so the file stays small and readable."""
    inline = []

    def mark(value):
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            if key in compact:
                inline.append(json.dumps(item, separators=(",", ":")))
                out[key] = f"@@inline {len(inline) - 1}@@"
            else:
                out[key] = mark(item)
        return out

    text = json.dumps(mark(record), indent=1)
    for i, value in enumerate(inline):
        text = text.replace(json.dumps(f"@@inline {i}@@"), value, 1)
    return text


def write(folder, profile: str, device, sizes, seed: int, numbers: dict, compact: tuple = ()) -> Path:
    """Record one run of a lab in ``results_<profile>.json`` in the lab's ``folder`` (the one holding
    its master notebook): ``numbers`` and their provenance. Returns the path.

    The file holds one run per seed. A run of the same code, profile, torch version and sizes with
    another seed joins the runs already there (``make record`` runs a lab once per seed, with
    ``COURSE_SEED``); a run with the same seed replaces its earlier run; anything else starts the
    file afresh. The entries named in ``compact`` (large arrays) go on one line each."""
    folder = Path(folder).resolve()
    masters = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if len(masters) != 1:
        raise FileNotFoundError(f"results are written next to the lab's master notebook; {folder} holds {len(masters)}")
    common = {
        "lab": masters[0].stem, "code_hash": code_hash(masters[0]), "profile": profile, "torch": torch.__version__,
        "sizes": sizes if isinstance(sizes, dict) else vars(sizes),
    }
    common = json.loads(json.dumps(common))  # tuples as lists, as they read back
    this_run = {
        "seed": int(seed), "commit": _commit(folder), "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else str(device),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path = folder / f"results_{profile}.json"
    runs = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if {k: old.get("provenance", {}).get(k) for k in common} == common:
            runs = old.get("runs", {})
    runs[str(int(seed))] = {"provenance": this_run, **numbers}
    runs = dict(sorted(runs.items(), key=lambda kv: int(kv[0])))
    record = {"provenance": {**common, "seeds": [int(k) for k in runs]}, "runs": runs}
    path.write_text(_dumps(record, tuple(compact)) + "\n")
    return path


def lab_folder(lab: str) -> Path | None:
    """``labs/<lab>`` of this repository, found from the working directory or from the package."""
    import course_utils

    for root in [Path.cwd(), *Path.cwd().parents, Path(course_utils.__file__).resolve().parents[1]]:
        if (root / "labs" / lab).is_dir():
            return root / "labs" / lab
    return None


def read(lab: str) -> dict | None:
    """The best recorded run of ``lab`` (``gpu``, else ``cpu``), or ``None`` if none was recorded.

    The numbers of the run with the smallest seed (the lab's own ``setup(seed=0)``) are at the top
    level, with its provenance; ``runs`` holds every seed's numbers, ``{seed: numbers}``, for what
    a chapter reports as mean and spread over seeds."""
    folder = lab_folder(lab)
    for profile in PROFILES_BEST_FIRST:
        path = folder / f"results_{profile}.json" if folder else None
        if path is not None and path.is_file():
            record = json.loads(path.read_text())
            runs = {int(k): v for k, v in record["runs"].items()}
            first = runs[min(runs)]
            return {**{k: v for k, v in first.items() if k != "provenance"},
                    "provenance": {**record["provenance"], **first["provenance"]}, "runs": runs}
    return None


def across_seeds(values):
    """Mean and sample standard deviation over the seeds. ``values`` holds one number per seed, or
    one array per seed (the first axis is the seeds, as in ``[[...seed 0...], [...seed 1...]]``);
    numbers give two floats, arrays two arrays. A single seed has a spread of 0."""
    import numpy as np

    values = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    mean = values.mean(0)
    sd = values.std(0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    return (float(mean), float(sd)) if np.ndim(mean) == 0 else (mean, sd)


def describe(run: dict) -> str:
    """``cpu profile, cpu, torch 2.13.0, commit 1a2b3c4, 2026-12-01, seeds 0, 1, 2``: which runs
    produced the numbers."""
    p = run["provenance"]
    seeds = ", ".join(str(s) for s in p["seeds"])
    return (f"{p['profile']} profile, {p['device_name']}, torch {p['torch']}, commit {p['commit']}, {p['date'][:10]}, "
            f"seed{'s' if len(p['seeds']) > 1 else ''} {seeds}")


def staleness(path: Path) -> str | None:
    """Why a recorded run no longer matches its lab's code (``None`` if it does)."""
    path = Path(path)
    run = json.loads(path.read_text())
    p = run.get("provenance")
    if not p:
        return f"{path.name} records no provenance"
    master = path.parent / f"{p['lab']}.ipynb"
    now = code_hash(master)
    if now != p["code_hash"]:
        seeds = " ".join(str(s) for s in p["seeds"])
        return (f"labs/{path.parent.name}/{path.name}: the lab's code changed since this run (hash {p['code_hash']} "
                f"then, {now} now); record it again: make record LAB={p['lab']} PROFILE={p['profile']} SEEDS=\"{seeds}\"")
    return None
