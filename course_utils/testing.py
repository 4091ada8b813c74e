"""Helpers the labs' tests use. They work the same on your functions in the notebook (when
``grader.check`` runs the public tests) and on the grader's proxies for them (when the autograder
runs every test in its own process and calls your code in another one).

Taught in {ref}`sec-counting-work` (chapter 1): the work a computation does is counted, and a
vectorized function performs the same number of torch operations whatever the batch size.
"""

from __future__ import annotations

from typing import Any, Callable

from torch.overrides import TorchFunctionMode

__all__ = ["count_torch_calls"]


class _CountTorchCalls(TorchFunctionMode):
    """Counts every torch function and tensor method called while it is active."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def count_torch_calls(fn: Callable, /, *args, **kwargs) -> tuple[int, Any]:
    """Call ``fn(*args, **kwargs)`` and return ``(number of torch operations it performed, result)``.

    A loop over the examples of a batch shows up as a count that grows with the batch; a vectorized
    function performs the same number of operations for a batch of 2 and a batch of 200.
    """
    if not callable(fn):
        raise TypeError(f"count_torch_calls needs a function to call, got {type(fn).__name__}")
    # the autograder's proxy for a notebook function counts inside the notebook's own process
    remote = getattr(type(fn), "_count_torch_calls", None)
    if remote is not None:
        return remote(fn, *args, **kwargs)
    with _CountTorchCalls() as counter:
        result = fn(*args, **kwargs)
    return counter.calls, result
