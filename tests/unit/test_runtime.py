"""The setup cell's machinery: device choice, run profiles, seeds and sizes."""

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from course_utils import runtime


def test_device_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")


def test_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.get_device().type == "mps"


def test_forcing_a_missing_cuda_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        runtime.get_device("cuda")


def test_profile_follows_device_unless_overridden(monkeypatch):
    monkeypatch.delenv(runtime.PROFILE_ENV, raising=False)
    assert runtime.get_profile(torch.device("cpu")) == "cpu"
    assert runtime.get_profile(torch.device("cuda")) == "gpu"
    assert runtime.get_profile(torch.device("mps")) == "gpu"
    monkeypatch.setenv(runtime.PROFILE_ENV, "ci")
    assert runtime.get_profile(torch.device("cuda")) == "ci"
    monkeypatch.setenv(runtime.PROFILE_ENV, " GPU ")
    assert runtime.get_profile(torch.device("cpu")) == "gpu"


def test_unknown_profile_is_rejected(monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_ENV, "laptop")
    with pytest.raises(ValueError, match="not a run profile"):
        runtime.get_profile()


def test_seed_everything_makes_python_numpy_and_torch_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    runtime.seed_everything(7)
    a = draw()
    runtime.seed_everything(7)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1]
    torch.testing.assert_close(a[2], b[2], rtol=0, atol=0)


def test_sizes_for_picks_the_profile_and_checks_every_profile_has_the_same_keys():
    sizes = runtime.sizes_for("cpu", ci=dict(n=1), cpu=dict(n=10), gpu=dict(n=100))
    assert sizes.n == 10
    with pytest.raises(ValueError, match="missing"):
        runtime.sizes_for("cpu", ci=dict(n=1), cpu=dict(n=10))
    with pytest.raises(ValueError, match="same sizes"):
        runtime.sizes_for("cpu", ci=dict(n=1), cpu=dict(n=10, m=2), gpu=dict(n=100))
    with pytest.raises(ValueError, match="unknown profile"):
        runtime.sizes_for("tpu", ci=dict(n=1), cpu=dict(n=10), gpu=dict(n=100))


def test_setup_prints_profile_device_and_versions(capsys, monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_ENV, "ci")
    info = runtime.setup(seed=3)
    out = capsys.readouterr().out
    assert info.profile == "ci" and info.seed == 3
    assert "profile : ci" in out and f"torch {torch.__version__}" in out and "device" in out


def test_best_time_returns_the_shortest_of_several_calls():
    calls = []
    t = runtime.best_time(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and 0 <= t < 1


def test_threads_ci_uses_one_and_the_environment_overrides(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert runtime.choose_threads("ci") == 1
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.choose_threads("ci") == 3
    assert runtime.choose_threads("cpu") == 3
    monkeypatch.setenv(runtime.THREADS_ENV, "two")
    with pytest.raises(ValueError, match="whole number of threads"):
        runtime.choose_threads("cpu")


def test_threads_leave_out_the_cores_other_programs_keep_busy(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores to keep one busy")
    # pin a busy loop on the first core this process may use; that core must not get a thread
    spin = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cores[0]}}})\nwhile True: pass"])
    try:
        time.sleep(0.5)
        assert runtime._busy_cores(cores) >= 1
        assert 1 <= runtime.choose_threads("cpu") <= len(cores) - 1
    finally:
        spin.kill()
        spin.wait()


def test_setup_sets_and_reports_the_thread_count(capsys, monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_ENV, "cpu")
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    before = torch.get_num_threads()
    try:
        info = runtime.setup(seed=0)
        assert info.threads == 1 and torch.get_num_threads() == 1
        assert "threads : 1" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)


def test_seeding_asks_for_deterministic_kernels_without_importing_the_compiler():
    """A fresh process, as a kernel is: torch's flags are those use_deterministic_algorithms sets,
    and inductor, imported afterwards, is deterministic too."""
    code = ("import sys, torch\n"
            "from course_utils.runtime import seed_everything\n"
            "seed_everything(3)\n"
            "print('compiler imported:', 'torch._inductor.config' in sys.modules)\n"
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())\n"
            "import torch._inductor.config as c\n"
            "print('inductor:', c.deterministic)\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_DETERMINISTIC"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split("\n")[:3] == ["compiler imported: False", "True True", "inductor: True"], out
