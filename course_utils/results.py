"""Recorded runs: what a lab measured under the ``cpu`` or ``gpu`` profile, with where it came from.

Taught in {ref}`sec-race` (chapter 4), whose numbers come from such a run. A lab run under a
profile other than ``ci`` writes ``labs/NN_slug/results_<profile>.json``: its numbers and their
**provenance** (the commit, a hash of the lab's code, the profile, the device, torch's version, the
seeds, the sizes and the date). A chapter reads the best run recorded (``gpu``, else ``cpu``) with
:func:`read` and says which one it quotes; a test fails when the lab's code has changed since the
run (:func:`staleness`), and says how to record it again.
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


def write(folder, profile: str, device, sizes, seeds: dict, numbers: dict, compact: tuple = ()) -> Path:
    """Write ``results_<profile>.json`` into the lab's ``folder`` (the one holding its master
    notebook): ``numbers`` and their provenance; the entries named in ``compact`` (large arrays)
    go on one line each, so the file stays small and readable. Returns the path."""
    folder = Path(folder).resolve()
    masters = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if len(masters) != 1:
        raise FileNotFoundError(f"results are written next to the lab's master notebook; {folder} holds {len(masters)}")
    provenance = {
        "lab": masters[0].stem, "commit": _commit(folder), "code_hash": code_hash(masters[0]), "profile": profile,
        "device": str(device), "device_name": torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else str(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "seeds": seeds,
        "sizes": sizes if isinstance(sizes, dict) else vars(sizes),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path = folder / f"results_{profile}.json"
    record = {"provenance": provenance, **{k: v for k, v in numbers.items() if k not in compact}}
    text = json.dumps(record, indent=1)
    for key in compact:
        text = text[:-2] + f',\n {json.dumps(key)}: ' + json.dumps(numbers[key], separators=(",", ":")) + "\n}"
    path.write_text(text + "\n")
    return path


def lab_folder(lab: str) -> Path | None:
    """``labs/<lab>`` of this repository, found from the working directory or from the package."""
    import course_utils

    for root in [Path.cwd(), *Path.cwd().parents, Path(course_utils.__file__).resolve().parents[1]]:
        if (root / "labs" / lab).is_dir():
            return root / "labs" / lab
    return None


def read(lab: str) -> dict | None:
    """The best recorded run of ``lab`` (``gpu``, else ``cpu``), or ``None`` if none was recorded."""
    folder = lab_folder(lab)
    for profile in PROFILES_BEST_FIRST:
        path = folder / f"results_{profile}.json" if folder else None
        if path is not None and path.is_file():
            return json.loads(path.read_text())
    return None


def describe(run: dict) -> str:
    """``cpu profile, cpu, torch 2.13.0, commit 1a2b3c4, 2026-12-01``: which run produced the numbers."""
    p = run["provenance"]
    return f"{p['profile']} profile, {p['device_name']}, torch {p['torch']}, commit {p['commit']}, {p['date'][:10]}"


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
        return (f"labs/{path.parent.name}/{path.name}: the lab's code changed since this run (hash {p['code_hash']} "
                f"then, {now} now); record it again: cd labs/{path.parent.name} && COURSE_PROFILE={p['profile']} "
                f"../../.venv/bin/jupyter nbconvert --to notebook --execute {master.name} --output /tmp/{master.stem}.ipynb")
    return None
