"""Helpers the labs' tests use. They work the same on your functions in the notebook (when
``grader.check`` runs the public tests) and on the grader's proxies for them (when the autograder
runs every test in its own process and calls your code in another one).

Taught in {ref}`sec-counting-work` (chapter 1): the work a computation does is counted, and a
vectorized function performs the same number of torch operations (and runs the same lines of notebook
code) whatever the batch size.

That count is made inside the process that runs your code, so code could fake it: the autograder
therefore takes no points off for a loop it counts. :func:`expect_vectorized` warns you when you run
``grader.check`` and flags the notebook for a person to review when it is graded.
"""

from __future__ import annotations

from typing import Any, Callable

from torch.overrides import TorchFunctionMode

__all__ = ["count_torch_calls", "expect_vectorized", "assert_inputs_unchanged", "LoopWarning"]


class _CountTorchCalls(TorchFunctionMode):
    """Counts every torch function and tensor method called while it is active, and every line of
    notebook code that runs (code whose module is ``__main__``: the cells), so a Python loop over
    pixels (``for v in x.tolist()``) counts as the work it is."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))

    def _trace(self, frame, event, arg):
        if event == "call" and frame.f_globals.get("__name__") == "__main__":
            return self._line
        return None

    def _line(self, frame, event, arg):
        if event == "line":
            self.calls += 1
        return self._line

    def __enter__(self):
        import sys

        self._previous_trace = sys.gettrace()
        sys.settrace(self._trace)
        return super().__enter__()

    def __exit__(self, *exc):
        import sys

        sys.settrace(self._previous_trace)
        return super().__exit__(*exc)


def count_torch_calls(fn: Callable, /, *args, **kwargs) -> tuple[int, Any]:
    """Call ``fn(*args, **kwargs)`` and return ``(number of torch operations it performed plus lines of
    notebook code it ran, result)``.

    A loop over the examples of a batch, or over pixels in Python, shows up as a count that grows with
    the input; a vectorized function does the same work for a batch of 2 and a batch of 200.
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


class LoopWarning(UserWarning):
    """The work of a function grew with its input where the question asks for vectorised code."""


def expect_vectorized(fn: Callable, counts, /, *, over: str = "pixels", slack: int = 0) -> bool:
    """Say whether ``counts`` (from :func:`count_torch_calls`, smallest input first) stay within
    ``slack`` of the first one, as vectorised code's do; if they grow, say so without failing.

    A loop over ``over`` (pixels, examples, rows) decides no points: the count comes from the process
    that ran the code, which a notebook can fool. So a growing count is a :class:`LoopWarning` when
    you check your notebook, and a flag for a person to review when the autograder grades it (``fn``
    is then the grader's proxy, which records the flag on the grader's side).
    """
    if not callable(fn):
        raise TypeError(f"expect_vectorized needs the function that was counted, got {type(fn).__name__}")
    counts = [int(c) for c in counts]
    if len(counts) < 2:
        raise ValueError(f"expect_vectorized needs the counts of at least two input sizes, got {len(counts)}")
    if max(counts) <= counts[0] + slack:
        return True
    name = getattr(fn, "__name__", None) or "the function"
    text = (f"the work grows with the input ({' -> '.join(map(str, counts))} torch operations and lines of "
            f"notebook code): a Python loop over {over} where the question asks for vectorised code")
    flag = getattr(type(fn), "_flag_for_review", None)
    if flag is not None:
        flag(fn, text)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("always", LoopWarning)
            warnings.warn(f"{name}: {text}. The autograder takes no points off for this by itself, but flags "
                          "the notebook for your instructor to review.", LoopWarning, stacklevel=2)
    return False


def _tensors_in(value, path: str, out: list, depth: int = 0) -> None:
    """(where, tensor) for every tensor in ``value``: itself, a module's weights and buffers, a container's items."""
    import torch
    from torch import nn

    if depth > 16:
        return
    if isinstance(value, torch.Tensor):
        out.append((path, value))
    elif isinstance(value, nn.Module):
        out.extend((path, t) for t in list(value.parameters()) + list(value.buffers()))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensors_in(v, path, out, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors_in(v, path, out, depth + 1)


def _describe(value) -> str:
    import torch
    from torch import nn

    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}" + (" (its weights or buffers)" if isinstance(value, nn.Module) else "")


def assert_inputs_unchanged(fn: Callable, /, *args, **kwargs) -> Any:
    """Call ``fn(*args, **kwargs)``, fail if it changed any of its tensor arguments (or a module's
    weights and buffers) in place, and return its result.

    A question that says "do not modify the input" is tested with this. In the autograder your
    function runs in another process and never changes the grader's own tensors (every reference is
    computed from untouched data); what it did to its arguments is reported back and checked here.
    A tensor changed and then put back exactly (finite differences) counts as unchanged.
    """
    if not callable(fn):
        raise TypeError(f"assert_inputs_unchanged needs a function to call, got {type(fn).__name__}")
    name = getattr(fn, "__name__", None) or type(fn).__name__
    remote = getattr(type(fn), "_call_reporting_changes", None)
    if remote is not None:
        result, changed = remote(fn, *args, **kwargs)
    else:
        named = [(f"argument {k + 1}", v) for k, v in enumerate(args)] + [(f"argument {k!r}", v) for k, v in kwargs.items()]
        from torch import nn

        before = []
        for where, value in named:
            found: list = []
            _tensors_in(value, where, found)
            before += [(where, value, t, t.detach().clone(), t.grad) for _, t in found]
        result = fn(*args, **kwargs)
        changed = []
        for where, value, t, old, grad in before:
            if t.shape != old.shape or not bool(((t.detach() == old) | (t.detach().isnan() & old.isnan())).all()):
                changed.append(f"{where} ({_describe(value)})")
            elif t.grad is not grad and not isinstance(t, nn.Parameter):
                changed.append(f"{where} ({_describe(value)}, its .grad was written)")
        changed = list(dict.fromkeys(changed))
    if changed:
        raise AssertionError(f"{name} changed its input in place: {'; '.join(changed)}. Leave the caller's data "
                             "as it was: work on a copy (x.clone(), copy.deepcopy(net)), or put back exactly what you changed")
    return result
