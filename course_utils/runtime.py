"""Device, seeds and run profiles: the first cell of every notebook.

Taught in {ref}`sec-setup` (chapter 0). Every notebook runs unchanged on
three kinds of machine, and this module decides which one it is on:

``ci``
    tiny sizes, seconds per notebook; the test suite and the autograder force it.
``cpu``
    a laptop: a lab finishes in a few minutes and still shows its effect.
``gpu``
    full sizes on a CUDA device or Apple MPS; the numbers the chapters quote come from it.

The profile follows the device unless the environment variable ``COURSE_PROFILE`` names one.
The sizes themselves are *not* here: each notebook states them in one visible cell with
:func:`sizes_for`.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

PROFILES = ("ci", "cpu", "gpu")
PROFILE_ENV = "COURSE_PROFILE"
DEVICE_ENV = "COURSE_DEVICE"
THREADS_ENV = "COURSE_THREADS"
SEED_ENV = "COURSE_SEED"
DEFAULT_SEED = 0


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    ``prefer`` (or the environment variable ``COURSE_DEVICE``) forces one, for example ``"cpu"``
    to compare timings. It never returns an empty list or raises on a CPU-only machine.
    """
    prefer = prefer or os.environ.get(DEVICE_ENV)
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={prefer!r} asks for CUDA, but no CUDA device is visible")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"{DEVICE_ENV}={prefer!r} asks for MPS, but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_profile(device: torch.device | None = None) -> str:
    """The run profile: ``COURSE_PROFILE`` if set, else ``gpu`` on an accelerator and ``cpu`` otherwise."""
    forced = os.environ.get(PROFILE_ENV, "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(f"{PROFILE_ENV}={forced!r} is not a run profile; expected one of {PROFILES}")
        return forced
    device = device if device is not None else get_device()
    return "gpu" if device.type in ("cuda", "mps") else "cpu"


def choose_threads(profile: str) -> int:
    """How many CPU threads torch should use for this profile's small networks.

    The course's networks are small: a batch of 48-pixel scenes is a few milliseconds of work
    per layer, so threads that wait for a busy core cost more than they add. On an idle two-core
    machine two threads train Lab 0's net 1.7x faster than one; with one core busy they are
    1.3-2x *slower* (measured for the chapter-0 and chapter-4 nets, see the README). So:

    * ``ci`` uses one thread (tiny sizes, machines shared with other tests);
    * ``cpu`` and ``gpu`` use the cores this process may run on, less those other programs keep
      busy while :func:`setup` runs, and at least one;
    * ``COURSE_THREADS`` overrides both.
    """
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise ValueError(f"{THREADS_ENV}={forced!r} must be a whole number of threads, 1 or more")
        return int(forced)
    if profile == "ci":
        return 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return max(1, len(cores) - _busy_cores(cores))


def _busy_cores(cores: list[int], seconds: float = 0.2) -> int:
    """How many of ``cores`` other programs keep busy: sampled from ``/proc/stat`` for a moment
    while this process sleeps (Linux), else the one-minute load average, else none."""

    def sample() -> dict[int, tuple[int, int]]:
        times = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                    ticks = [int(x) for x in fields]
                    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
                    times[int(name[3:])] = (sum(ticks), idle)
        return times

    try:
        before = sample()
        time.sleep(seconds)
        after = sample()
    except OSError:
        return int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    busy = 0.0
    for core, (total, idle) in after.items():
        spent = total - before[core][0]
        if spent > 0:
            busy += 1 - (idle - before[core][1]) / spent
    return round(busy)


def seed_everything(seed: int = DEFAULT_SEED, deterministic: bool = True) -> None:
    """Seed python's ``random``, numpy and torch (every device), so reruns give the same numbers.

    With ``deterministic`` torch is asked for deterministic kernels where they exist (with a
    warning, not an error, where they do not: some CUDA kernels have no deterministic version).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        if "torch._inductor.config" in sys.modules:
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            # the same switch without importing the compiler (1.7 s at every kernel start; the course
            # never compiles): torch's deterministic flag, and inductor's flag for when it is imported
            os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
            torch._C._set_deterministic_algorithms(True, warn_only=True)
        if hasattr(torch.backends, "cudnn"):
            torch.backends.cudnn.benchmark = False


def sizes_for(profile: str, **by_profile: dict) -> SimpleNamespace:
    """Pick this profile's sizes from a table written in the notebook, e.g.

    ``sizes_for(profile, ci=dict(epochs=1), cpu=dict(epochs=5), gpu=dict(epochs=30))``

    Every profile must name the same keys, so a notebook cannot silently miss a size on one kind
    of machine.
    """
    missing = [p for p in PROFILES if p not in by_profile]
    if missing:
        raise ValueError(f"sizes_for needs a table for every profile; missing {missing}")
    unknown = [p for p in by_profile if p not in PROFILES]
    if unknown:
        raise ValueError(f"sizes_for got unknown profiles {unknown}; expected {PROFILES}")
    keys = {p: set(v) for p, v in by_profile.items()}
    reference = keys["gpu"]
    for p, k in keys.items():
        if k != reference:
            raise ValueError(
                f"profile {p!r} names sizes {sorted(k)} but 'gpu' names {sorted(reference)}; "
                "every profile must name the same sizes"
            )
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    return SimpleNamespace(**by_profile[profile])


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` decided; notebooks use ``setup.device`` and ``setup.profile``."""

    device: torch.device
    profile: str
    seed: int
    threads: int = 1

    def describe(self) -> str:
        from importlib.metadata import version  # not the imports themselves: scikit-learn alone takes a second

        lines = [
            f"profile : {self.profile}  (set {PROFILE_ENV}=ci|cpu|gpu to override)",
            f"device  : {self.device}" + (f" ({torch.cuda.get_device_name(0)})" if self.device.type == "cuda" else ""),
            f"seed    : {self.seed}  (set {SEED_ENV} to override)",
            f"threads : {self.threads}  (CPU threads for torch; set {THREADS_ENV} to override)",
            f"python  : {platform.python_version()}   torch {torch.__version__}   numpy {np.__version__}",
            f"          matplotlib {version('matplotlib')}   scikit-learn {version('scikit-learn')}   "
            f"scikit-image {version('scikit-image')}",
        ]
        return "\n".join(lines)


def setup(seed: int = DEFAULT_SEED, quiet: bool = False) -> Setup:
    """The first code cell of every notebook: seed everything, pick the device and the run profile,
    and print them with the library versions.

    The environment variable ``COURSE_SEED`` replaces ``seed``, so that the same notebook can be run
    with several seeds (``make record``); a lab draws its data and initial weights from ``run.seed``."""
    if os.environ.get(SEED_ENV, "").strip():
        text = os.environ[SEED_ENV].strip()
        if not text.isdigit():
            raise ValueError(f"{SEED_ENV}={text!r}: expected a whole number such as 0, 1 or 2")
        seed = int(text)
    seed_everything(seed)
    device = get_device()
    profile = get_profile(device)
    threads = choose_threads(profile)
    torch.set_num_threads(threads)
    info = Setup(device=device, profile=profile, seed=seed, threads=threads)
    if not quiet:
        print(info.describe(), file=sys.stdout)
    return info


def best_time(fn: Callable[[], object], device: torch.device | str = "cpu", repeats: int = 3, warmup: int = 1) -> float:
    """The shortest wall time of ``repeats`` calls of ``fn`` in seconds, after ``warmup`` calls.

    The minimum is the least noisy estimate on a shared machine. On a GPU the device is
    synchronised before and after each call, since kernels run asynchronously.
    """
    device = torch.device(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best
