"""The checks students meet: every helper of the course validates its inputs here, so that every
error reads the same way: what was expected, what came (type, shape and dtype), and the likely cause.

Taught in {ref}`sec-setup` (chapter 0): "read the error: it says which shape it expected".
"""

from __future__ import annotations

import dis

import numpy as np
import torch

from .runtime import _mps_available

KINDS = {  # kind: (its name, whether a dtype is of that kind)
    "float": ("floating-point", lambda dt: dt.is_floating_point),
    "integer": ("integer", lambda dt: not dt.is_floating_point and not dt.is_complex and dt != torch.bool),
    "index": ("integer or boolean", lambda dt: not dt.is_floating_point and not dt.is_complex),
}


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def describe(x) -> str:
    """``a float32 tensor of shape (2, 3)``, ``a NumPy int64 array of shape (4,)``, ``a list``, ``None``."""
    if isinstance(x, torch.Tensor):
        return f"{_a(str(x.dtype).removeprefix('torch.'))} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"a NumPy {x.dtype} array of shape {x.shape}"
    if x is None:
        return "None"
    return f"a {type(x).__name__}"


def tensor(x, name: str, *, ndim: int | None = None, layout: str = "", kind: str | None = None, hint: str = "") -> torch.Tensor:
    """``x`` if it is a tensor with ``ndim`` dimensions (``layout`` names them, e.g. ``"(N, C, H, W)"``)
    of the dtype ``kind`` (``"float"``, ``"integer"`` or ``"index"``); otherwise a ``TypeError`` or
    ``ValueError`` that says what was expected, what came, and (``hint``) the likely cause."""
    layout = layout or (f"{ndim}-D" if ndim is not None else "")
    if not isinstance(x, torch.Tensor):
        cause = " (convert it with torch.from_numpy)" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{name} expects a torch tensor {layout}".rstrip() + f", got {describe(x)}{cause}")
    if ndim is not None and x.dim() != ndim:
        if x.dim() == ndim - 1:
            cause = f"; a single one? add the batch dimension with x[None] (shape {(1, *x.shape)})"
        elif x.dim() == ndim + 1 and x.shape[0] == 1:
            cause = "; drop the extra dimension with x[0]"
        else:
            cause = ""
        wrong_kind = kind is not None and not KINDS[kind][1](x.dtype)
        raise ValueError(f"{name} expects a tensor of shape {layout}, got {describe(x)}{cause}"
                         + (f"; {hint}" if hint and wrong_kind else ""))
    if kind is not None:
        word, ok = KINDS[kind]
        if not ok(x.dtype):
            cause = f"; {hint}" if hint else ""
            raise TypeError(f"{name} expects {_a(word)} tensor {layout}".rstrip() + f", got {describe(x)}{cause}")
    return x


def images(x, name: str, channels: int | None = None, multiple: int | None = None) -> torch.Tensor:
    """A batch of float images ``(N, C, H, W)``, with ``channels`` channels and sides that are
    multiples of ``multiple`` when those are given."""
    layout = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
    x = tensor(x, name, ndim=4, layout=layout, kind="float", hint="images are float tensors: use .float()")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} expects images of shape {layout} ({channels} channels), got {describe(x)}")
    if multiple:
        h, w = x.shape[-2:]
        if h % multiple or w % multiple:
            raise ValueError(f"{name} needs image sides that are multiples of {multiple} (its deepest stride), "
                             f"got {h}x{w}; crop or pad the images")
    return x


def labels(x, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Integer class labels ``(N, H, W)``; with ``like`` (scores ``(N, C, H, W)``) their shapes must match."""
    x = tensor(x, name, ndim=3, layout="(N, H, W)", kind="integer",
               hint="labels are class indices: scores.argmax(dim=1) turns scores (N, C, H, W) into labels")
    if like is not None and (like.dim() != 4 or tuple(x.shape) != (like.shape[0], *like.shape[2:])):
        raise ValueError(f"{name}: scores of shape {tuple(like.shape)} need labels of shape "
                         f"({like.shape[0]}, {', '.join(map(str, like.shape[2:]))}), got {describe(x)}")
    return x


def pair(a, b, name: str, kind: str, what: tuple[str, str] = ("predictions", "targets")) -> None:
    """Two tensors of the same shape and of dtype ``kind``; the error says how to fix the usual mixes."""
    tensor(a, f"{name} ({what[0]})")
    tensor(b, f"{name} ({what[1]})")
    if a.shape != b.shape:
        cause = ""
        if kind == "integer" and a.dim() == b.dim() + 1:
            cause = f"; pass class indices ({what[0]}.argmax(dim=1) for a batch of scores), not scores"
        elif kind == "float":
            cause = "; upsample to the target's size first"
        raise ValueError(f"{name}: {what[0]} are {describe(a)} but {what[1]} are {describe(b)}{cause}")
    word, ok = KINDS[kind]
    if not (ok(a.dtype) and ok(b.dtype)):
        cause = " (class indices: use .argmax(dim=1) on scores, .long() on labels)" if kind == "integer" else ""
        raise TypeError(f"{name} expects {word} tensors, got {describe(a)} and {describe(b)}{cause}")


def numpy_mask(mask, name: str, ndim: int = 2) -> np.ndarray:
    """A boolean NumPy mask from a boolean or integer mask (array or tensor; nonzero = foreground)."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    layout = "(H, W)" if ndim == 2 else "(N, H, W)"
    if m.ndim != ndim:
        cause = "; for a batch of masks use the batched function" if m.ndim == ndim + 1 else ""
        raise ValueError(f"{name} expects a mask of shape {layout}, got {describe(mask)}{cause}")
    if m.dtype.kind == "f":
        raise TypeError(f"{name} expects a boolean or integer mask {layout}, got {describe(mask)}; threshold the scores "
                        "first (for a batch of two-class scores (N, 2, H, W): scores.argmax(dim=1) == 1)")
    return m != 0


def numpy(x) -> np.ndarray:
    """A NumPy view of a tensor or array-like (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def integer(value, name: str, low: int | None = None) -> int:
    """A Python int (a NumPy or tensor integer is fine), at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
            isinstance(value, torch.Tensor) and value.dim() == 0 and not value.dtype.is_floating_point):
        raise TypeError(f"{name} must be a whole number, got {describe(value)}" + (f" ({value!r})" if isinstance(value, float) else ""))
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def module(net, name: str) -> None:
    """A ``torch.nn.Module``."""
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"{name} expects a network (a torch.nn.Module), got {describe(net)}")


def dataset(data, name: str) -> None:
    """A data set of ``(input, target)`` pairs: it has a length and can be indexed."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        raise TypeError(f"{name} expects a Dataset of (input, target) pairs, got a {type(data).__name__} of two tensors; "
                        "wrap them: torch.utils.data.TensorDataset(images, labels)")
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")) or isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} expects a Dataset of (input, target) pairs (for example digit_scenes(...) or "
                        f"torch.utils.data.TensorDataset(images, labels)), got {describe(data)}")


def loss(value, name: str) -> torch.Tensor:
    """A differentiable scalar tensor, as a loss function must return."""
    if value is None:
        raise TypeError(f"{name} returned None instead of a loss: is it written yet (is its body still `...`)?")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must return a scalar tensor, got {describe(value)}")
    if value.numel() != 1:
        raise ValueError(f"{name} must return one number (a tensor of shape ()), got {describe(value)}; "
                         "average over the pixels with .mean()")
    if not value.requires_grad:
        raise ValueError(f"{name} returned a loss that is not connected to the network's scores "
                         "(it has no gradient): did it detach the scores or return a constant?")
    return value



def returned(value, expected: tuple, what: str) -> torch.Tensor:
    """What a function handed to a course helper returned: a tensor of shape ``expected``."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(expected):
        cause = ": is it written yet (is its body still `...`)?" if value is None else ""
        raise ValueError(f"{what} should return a tensor of shape {tuple(expected)}, got {describe(value)}{cause}")
    return value


def device(value, name: str) -> torch.device:
    """A device this machine has: ``"cuda"`` without a CUDA GPU (or ``"mps"`` without Apple's) is an
    error that points at the device the setup cell chose."""
    try:
        d = torch.device(value)
    except (RuntimeError, TypeError):
        raise TypeError(f"{name} expects a device (the `device` the setup cell chose), got {describe(value)}"
                        + (f" ({value!r})" if isinstance(value, str) else "")) from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: device {str(value)!r} needs a CUDA GPU, and this machine has none that torch "
                         f"{torch.__version__} can use; pass the `device` the setup cell chose")
    if d.type == "mps" and not _mps_available():
        raise ValueError(f"{name}: device {str(value)!r} needs Apple's GPU (MPS), which this machine does not have; "
                         "pass the `device` the setup cell chose")
    return d


def _unwritten(answer) -> bool:
    """Whether an answer is still the hand-out's placeholder: ``...`` itself, a function whose body
    is only ``...`` (or a docstring, or ``pass``), or a class with such a method."""
    if answer is Ellipsis:
        return True
    if isinstance(answer, type):
        own = [v for v in vars(answer).values() if callable(v) and getattr(v, "__module__", None) == answer.__module__]
        return any(_unwritten(v) for v in own)
    code = getattr(getattr(answer, "__func__", answer), "__code__", None)
    if code is None:
        return False
    for ins in dis.get_instructions(code):
        if ins.opname in ("RESUME", "NOP", "RETURN_VALUE") or (ins.opname in ("LOAD_CONST", "RETURN_CONST") and ins.argval is None):
            continue
        return False
    return True


def answered(question: str, *answers) -> bool:
    """``True`` when every one of ``answers`` (functions, classes or values) is written; otherwise
    print one line saying which question to finish first and return ``False``.

    A lab's demo cells run only ``if answered("Question 2", pixel_accuracy):``, so that *Run All*
    on an unfinished notebook reaches the end: each cell that needs a missing answer says so and
    the next one runs. A written answer that is wrong still runs, and its error is shown.
    """
    missing = [f"`{a.__name__}`" if hasattr(a, "__name__") else "an answer" for a in answers if _unwritten(a)]
    if missing:
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        one = len(missing) == 1
        print(f"skipped: this cell needs {names} from {question}, which {'is' if one else 'are'} not written yet; "
              f"finish {'it' if one else 'them'} first, then run this cell again")
    return not missing
