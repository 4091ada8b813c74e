"""What crosses between the judge and the student process, and how: the trust boundary, in one place.

The judge (trusted: it holds the tests and decides the score) and the student process (untrusted: it
ran the notebook) talk over one socket. Every message is a frame::

    b"CRS1" | JSON length (4 bytes) | blob length (8 bytes) | JSON (UTF-8) | blob

The JSON is one object: a request (``{"op": ..., "id": n, ...}``), a reply (``{"re": n, ...}``) or a
notice (``{"op": ...}`` without an id). The blob, when there is one, is a `safetensors` file with
every tensor the message carries. Neither format can run code while it is read: ``json.loads``
builds dicts, lists, strings and numbers, and safetensors holds a dtype, a shape and raw bytes.
Nothing is pickled (not pickle, not dill, not ``torch.load``) in either direction, and frames are
capped in size before they are read.

Values inside a message (:class:`Encoder`, :class:`Decoder`):

=================================================  ================================================
``null``, booleans, numbers, strings                themselves (``{"$float": "nan"}`` for nan/inf)
``{"$list"|"$tuple"|"$set": [...]}``                 containers; ``{"$dict": [[key, value], ...]}``
``{"$t": "t0", "rg": .., "fn": .., "grad": ..}``     a tensor of the blob: a subclass arrives as a
                                                    plain tensor; ``fn`` says it has a gradient
                                                    function (the sender can give its VJP)
``{"$np": "t0"}``, ``{"$npscalar": "int64", ..}``    NumPy arrays and scalars
``{"$dtype"|"$device"|"$size"|"$slice"|..}``         torch dtypes, devices, sizes; slices
``{"$module": "torch.nn.modules.conv.Conv2d", ..}``  an ``nn.Module`` as data: its class from a fixed
                                                    list (``torch.nn`` and ``course_utils``), plain
                                                    attributes, weights, children
``{"$object": "course_utils.nets.dag.Node", ..}``   a ``course_utils`` object (or a
                                                    ``TensorDataset``) as data: class, attributes
``{"$ref": 7, "type": "UpBlock"}``                   an object that stays in its own process: the
                                                    other side gets a proxy and can only send
                                                    requests about it (call it, read an attribute)
``{"$fn": "torch.tanh"}``                            a library function by name: judge to student only
``{"$same": 3}``                                     the 3rd object of the request being answered
=================================================  ================================================

Everything the judge decodes is one of these, checked as it is read; anything else is a
:class:`WireError` for that request ("return a tensor, not MyObject" comes from the tests, which see
the proxy's type name).
"""

from __future__ import annotations

import importlib
import json
import math
import select
import socket
import struct
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

MAGIC = b"CRS1"
HEADER = struct.Struct(">4sIQ")
MAX_JSON = 16 * 2**20       # bytes of JSON per frame
MAX_BLOB = 512 * 2**20      # bytes of tensors per frame
MAX_DEPTH = 64              # nesting of containers
MAX_ITEMS = 200_000         # items of one iterator turned into a list

# classes whose instances cross as data (the receiving side builds them from plain attributes)
MODULE_PREFIXES = ("torch.nn.modules.", "course_utils.")
OBJECT_CLASSES = ("torch.utils.data.dataset.TensorDataset",)
OBJECT_PREFIXES = ("course_utils.",)
FUNCTION_PREFIXES = ("torch", "numpy", "math", "course_utils", "scipy")
MODULE_INTERNALS = frozenset(vars(nn.Module()))
NUMPY_KINDS = "biuf"        # bool, int, unsigned, float


class WireError(Exception):
    """A frame or a value that breaks the format: the request it belongs to fails with this."""


class PeerClosed(WireError):
    """The other process closed the socket (it exited or was killed)."""


class Timeout(WireError):
    """No frame arrived before the deadline."""


# --- frames --------------------------------------------------------------------------------------------


def send_frame(sock: socket.socket, message: dict, tensors: dict[str, torch.Tensor] | None = None,
               deadline: float | None = None) -> int:
    """Send one frame; return its size. With a ``deadline`` (``time.monotonic()``), raise
    :class:`Timeout` when the other process has not taken the whole frame by then (it does not read
    its socket): the frame may then be cut short, so the connection is unusable afterwards."""
    from safetensors.torch import save

    body = json.dumps(message, allow_nan=True, separators=(",", ":")).encode("utf-8")
    blob = save(tensors) if tensors else b""
    if len(body) > MAX_JSON or len(blob) > MAX_BLOB:
        raise WireError(f"message too large ({len(body)} bytes of JSON, {len(blob)} bytes of tensors)")
    frame = HEADER.pack(MAGIC, len(body), len(blob)) + body + blob
    if deadline is None:
        sock.sendall(frame)
    else:
        _send_exactly(sock, memoryview(frame), deadline)
    return len(frame)


def _send_exactly(sock: socket.socket, data: memoryview, deadline: float) -> None:
    """``sock.sendall(data)`` that gives up at ``deadline``: each chunk waits for the socket to be
    writable (select) and is sent without blocking, whatever the socket's own mode."""
    sent = 0
    while sent < len(data):
        if sock.fileno() < 0:
            raise OSError(9, "Bad file descriptor (the socket is closed)")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the other process did not read what was sent before the time limit")
        _, ready, _ = select.select([], [sock], [], left)
        if not ready:
            continue
        try:
            sent += sock.send(data[sent:sent + 4 * 2**20], socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            continue


def _read_exactly(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no reply before the time limit")
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                raise Timeout("no reply before the time limit")
        chunk = sock.recv(min(n - got, 4 * 2**20))
        if not chunk:
            raise PeerClosed("the other process closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, deadline: float | None = None) -> tuple[dict, dict[str, torch.Tensor], int]:
    """One frame: (message, tensors, size in bytes). Raises :class:`WireError` on anything malformed."""
    from safetensors.torch import load

    magic, n_json, n_blob = HEADER.unpack(_read_exactly(sock, HEADER.size, deadline))
    if magic != MAGIC:
        raise WireError("not a frame of the grading protocol")
    if n_json > MAX_JSON or n_blob > MAX_BLOB:
        raise WireError(f"frame too large ({n_json} bytes of JSON, {n_blob} bytes of tensors)")
    body = _read_exactly(sock, n_json, deadline)
    blob = _read_exactly(sock, n_blob, deadline) if n_blob else b""
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"malformed JSON ({type(exc).__name__})") from None
    if not isinstance(message, dict):
        raise WireError("a message must be a JSON object")
    try:
        tensors = load(blob) if blob else {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise WireError(f"malformed tensor blob ({type(exc).__name__})") from None
    return message, tensors, HEADER.size + n_json + n_blob


# --- values --------------------------------------------------------------------------------------------


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_by_name(path: str, base: type | None, prefixes: tuple[str, ...], exact: tuple[str, ...] = ()) -> type:
    """The class ``path`` names, if it is on the list of classes that may cross as data."""
    if not isinstance(path, str) or not (path in exact or path.startswith(prefixes)):
        raise WireError(f"{path!r} is not a class that can cross as data")
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        raise WireError(f"unknown class {path!r}") from None
    if not isinstance(cls, type) or qualified_name(cls) != path or (base is not None and not issubclass(cls, base)):
        raise WireError(f"{path!r} is not a class that can cross as data")
    if cls.__new__ is not object.__new__ and not (base is nn.Module):
        raise WireError(f"{path!r} builds itself in __new__ and cannot cross as data")
    return cls


def module_is_data(m: nn.Module) -> bool:
    """Can this module cross as data? Its class and every child's are from the list, no hook is
    attached, and every other attribute is plain data (no class, function or other object whose code
    would run where the module is used: PyTorch itself calls some, such as ``_compiled_call_impl``)."""
    for sub in m.modules():
        name = qualified_name(type(sub))
        if not name.startswith(MODULE_PREFIXES):
            return False
        if any(getattr(sub, hooks, None) for hooks in HOOKS):
            return False
        if any(not _plain_attribute(type(sub), k) or not is_plain(v) for k, v in vars(sub).items() if k not in MODULE_INTERNALS):
            return False
    return True


HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
         "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
         "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


def _plain_attribute(cls: type, name) -> bool:
    """May an instance of ``cls`` that crosses as data carry the attribute ``name``? Not a name that
    ``nn.Module`` or the class itself defines (``forward``, ``_compiled_call_impl``, ``_call_impl``, a
    property): only the instance's own data (``in_channels``, ``stride``)."""
    return (isinstance(name, str) and name.isidentifier() and not name.startswith("__")
            and name not in MODULE_INTERNALS and not hasattr(nn.Module, name)
            and (not hasattr(cls, name) or _plain_class_default(getattr(cls, name, None))))


def _plain_class_default(value) -> bool:
    """A class-level default that an instance may shadow with data (``bias = True``, ``__constants__``)."""
    return value is None or isinstance(value, (bool, int, float, str, tuple, list))


def is_plain(value, depth: int = 0) -> bool:
    """Plain data: numbers, strings, tensors, arrays, dtypes, sizes and containers of those, and modules
    and objects that themselves cross as data. No class, function, proxy or other object with code."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, np.ndarray, np.generic, torch.dtype,
                                           torch.device, torch.Size, slice, torch.Generator)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, nn.Module):
        return qualified_name(type(value)).startswith(MODULE_PREFIXES)
    if isinstance(value, type) or callable(value):
        return False
    return Encoder._is_data_object(value)


class Encoder:
    """Turns a value into JSON plus a table of tensors.

    ``export(obj)`` returns the reference id of an object that stays behind (the side's own object
    table); ``same`` maps ``id(obj)`` of objects received in the request being answered to their
    index, so a reply can say "that very object" instead of a copy; ``by_name`` lets library
    functions travel by name (judge to student only).
    """

    def __init__(self, export: Callable[[Any], dict], same: dict[int, int] | None = None, by_name: bool = False):
        self.export, self.same, self.by_name = export, same or {}, by_name
        self.tensors: dict[str, torch.Tensor] = {}
        self.objects: list = []          # tensors, modules and objects encoded, by index
        self._seen: dict[int, dict] = {}
        self._keep: list = []            # keeps encoded objects alive so their ids stay unique

    def encode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError(f"a value nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, np.generic) and value.dtype.kind in NUMPY_KINDS:  # before float: np.float64 is one
            return {"$npscalar": value.dtype.name, "v": value.item()}
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if id(value) in self.same:
            return {"$same": self.same[id(value)]}
        if id(value) in self._seen:
            return self._seen[id(value)]
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in NUMPY_KINDS:
                raise WireError(f"a NumPy array of dtype {value.dtype} cannot cross (numbers and booleans only)")
            name = f"t{len(self.tensors)}"
            self.tensors[name] = torch.from_numpy(np.ascontiguousarray(value)).clone()
            return {"$np": name}
        if isinstance(value, torch.Size):
            return {"$size": [int(v) for v in value]}
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return {"$list": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, (set, frozenset)):
            return {"$set": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            return {"$dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, slice):
            return {"$slice": [self.encode(v, depth + 1) for v in (value.start, value.stop, value.step)]}
        if isinstance(value, torch.Generator):
            return {"$generator": self._tensor(value.get_state())}
        if isinstance(value, nn.Module) and module_is_data(value):
            return self._module(value, depth)
        if self._is_data_object(value) and all(is_plain(v) for v in vars(value).values()):
            return self._object(value, depth)
        if self.by_name and callable(value) and self._library_function(value):
            return {"$fn": self._library_function(value)}
        if hasattr(value, "__next__") and hasattr(value, "__iter__") and not isinstance(value, nn.Module):
            items = []
            for item in value:
                items.append(item)
                if len(items) > MAX_ITEMS:
                    raise WireError(f"an iterator of more than {MAX_ITEMS} items")
            return {"$list": [self.encode(v, depth + 1) for v in items]}
        return self.export(value)

    def _remember(self, value, record: dict) -> dict:
        record["idx"] = len(self.objects)
        self.objects.append(value)
        self._keep.append(value)
        self._seen[id(value)] = record
        return record

    def _tensor(self, t: torch.Tensor) -> dict:
        plain = t.detach()
        if plain.is_complex() or plain.is_sparse or plain.is_quantized or plain.device.type == "meta":
            raise WireError(f"a {plain.dtype} {plain.layout} tensor cannot cross (dense real tensors only)")
        if type(plain) is not torch.Tensor:
            plain = plain.as_subclass(torch.Tensor)
        name = f"t{len(self.tensors)}"
        self.tensors[name] = plain.to("cpu").contiguous().clone()
        record = {"$t": name, "rg": bool(t.requires_grad), "fn": t.grad_fn is not None}
        if t.is_leaf and t.grad is not None and isinstance(t.grad, torch.Tensor):
            gname = f"t{len(self.tensors)}"
            self.tensors[gname] = t.grad.detach().as_subclass(torch.Tensor).to("cpu").contiguous().clone()
            record["grad"] = gname
        if isinstance(t, nn.Parameter):
            record["param"] = True
        return self._remember(t, record)

    def _module(self, m: nn.Module, depth: int) -> dict:
        record = self._remember(m, {"$module": qualified_name(type(m)), "training": bool(m.training)})
        record["attrs"] = {k: self.encode(v, depth + 1) for k, v in vars(m).items() if k not in MODULE_INTERNALS}
        record["params"] = {k: (None if v is None else self.encode(v, depth + 1)) for k, v in m._parameters.items()}
        record["buffers"] = {k: (None if v is None else self.encode(v, depth + 1)) for k, v in m._buffers.items()}
        record["transient"] = sorted(m._non_persistent_buffers_set)
        record["children"] = {k: (None if v is None else self.encode(v, depth + 1)) for k, v in m._modules.items()}
        return record

    @staticmethod
    def _is_data_object(value) -> bool:
        """A course_utils object (a LayerDAG, a Node, a data set) or a TensorDataset: plain attributes."""
        cls = type(value)
        if isinstance(value, (type, nn.Module)) or not hasattr(value, "__dict__") or cls.__new__ is not object.__new__:
            return False
        name = qualified_name(cls)
        return name in OBJECT_CLASSES or name.startswith(OBJECT_PREFIXES)

    def _object(self, value, depth: int) -> dict:
        record = self._remember(value, {"$object": qualified_name(type(value))})
        record["vars"] = {k: self.encode(v, depth + 1) for k, v in vars(value).items()}
        return record

    @staticmethod
    def _library_function(fn) -> str | None:
        module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
        if isinstance(fn, type) and qualified_name(fn).startswith(MODULE_PREFIXES + OBJECT_PREFIXES):
            return qualified_name(fn)
        if not module or not name or "<" in name or not module.startswith(FUNCTION_PREFIXES):
            return None
        if name.startswith("_VariableFunctionsClass."):
            return "torch." + name.split(".", 1)[1]
        return f"{module}.{name}"


class Decoder:
    """Builds values back from JSON and a table of tensors, refusing everything not listed above.

    ``proxy(record)`` makes the stand-in for an object of the other side; ``same`` is the list of
    objects the request being answered carried (for ``$same``); ``trusted`` says the sender is the
    judge (only then may a library function arrive by name).
    """

    def __init__(self, tensors: dict[str, torch.Tensor], proxy: Callable[[dict], Any], same: list | None = None,
                 trusted: bool = False):
        self.tensors, self.proxy, self.same, self.trusted = tensors, proxy, same or [], trusted
        self.objects: dict[int, Any] = {}     # index -> decoded tensor, module or object
        self.versions: dict[int, int] = {}   # index -> tensor version counter right after decoding
        self.grad_outputs: list[tuple[dict, torch.Tensor]] = []   # tensors that carry "fn"
        self.keep_grads = True               # set a tensor's .grad from the message
        self._done: dict[int, Any] = {}

    def decode(self, data, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError(f"a value nested more than {MAX_DEPTH} levels deep")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if isinstance(data, list):  # a bare JSON list never occurs: containers are tagged
            raise WireError("untagged list in a message")
        if not isinstance(data, dict) or len(data) < 1:
            raise WireError(f"unexpected value in a message: {type(data).__name__}")
        tag = next((k for k in data if k.startswith("$")), None)
        if tag is None:
            raise WireError("untagged object in a message")
        if "idx" in data and isinstance(data["idx"], int) and data["idx"] in self._done and tag in ("$t", "$module", "$object"):
            return self._done[data["idx"]]
        body = data[tag]
        if tag in ("$list", "$tuple", "$set", "$dict"):
            return self._container(tag, body, depth)
        if tag in ("$float", "$npscalar", "$size", "$dtype", "$device", "$slice", "$generator"):
            return self._small(tag, data, depth)
        if tag == "$t":
            return self._tensor(data)
        if tag == "$np":
            return self._table(body).numpy().copy()
        if tag == "$module":
            return self._module(data, depth)
        if tag == "$object":
            return self._object(data, depth)
        if tag == "$ref":
            return self.proxy(data)
        if tag == "$same":
            if not isinstance(body, int) or not 0 <= body < len(self.same):
                raise WireError("a reference to an object the request did not carry")
            return self.same[body]
        if tag == "$fn" and self.trusted:
            return self._function(body)
        raise WireError(f"{tag!r} cannot cross in this direction")

    def _container(self, tag: str, body, depth: int):
        if tag != "$dict":
            items = [self.decode(v, depth + 1) for v in self._array(body)]
            return items if tag == "$list" else tuple(items) if tag == "$tuple" else set(items)
        out = {}
        for pair in self._array(body):
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("a dict entry must be a [key, value] pair")
            key = self.decode(pair[0], depth + 1)
            try:
                out[key] = self.decode(pair[1], depth + 1)
            except TypeError:
                raise WireError("a dict key that cannot be hashed") from None
        return out

    def _small(self, tag: str, data: dict, depth: int):
        """A float that JSON cannot hold, a NumPy scalar, a size, dtype, device, slice or generator."""
        body = data[tag]
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise WireError(f"bad float {body!r}")
            return float(body)
        if tag == "$npscalar":
            dtype = np.dtype(body) if isinstance(body, str) else None
            if dtype is None or dtype.kind not in NUMPY_KINDS or not isinstance(data.get("v"), (bool, int, float)):
                raise WireError(f"bad NumPy scalar {body!r}")
            return dtype.type(data["v"])
        if tag == "$size":
            return torch.Size([self._int(v) for v in self._array(body)])
        if tag == "$dtype":
            dtype = getattr(torch, body, None) if isinstance(body, str) else None
            if not isinstance(dtype, torch.dtype):
                raise WireError(f"unknown dtype {body!r}")
            return dtype
        if tag == "$device":
            try:
                return torch.device(body)
            except (RuntimeError, TypeError):
                raise WireError(f"bad device {body!r}") from None
        if tag == "$slice":
            parts = [self.decode(v, depth + 1) for v in self._array(body)]
            if len(parts) != 3 or not all(p is None or isinstance(p, int) for p in parts):
                raise WireError("bad slice")
            return slice(*parts)
        g = torch.Generator()  # "$generator"
        state = self.decode(body, depth + 1)
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
            raise WireError("bad generator state")
        g.set_state(state)
        return g

    @staticmethod
    def _function(body):
        """A library function the judge names (only the judge may send one)."""
        if not isinstance(body, str) or not body.startswith(FUNCTION_PREFIXES + MODULE_PREFIXES):
            raise WireError(f"not a library function: {body!r}")
        module, _, name = body.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            obj = importlib.import_module(module.rpartition(".")[0])
            for part in (module.rpartition(".")[2], name):
                obj = getattr(obj, part)
            return obj

    @staticmethod
    def _array(body) -> list:
        if not isinstance(body, list):
            raise WireError("expected a list")
        return body

    @staticmethod
    def _int(v) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise WireError("expected an integer")
        return v

    def _table(self, name) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise WireError(f"a tensor that is not in the blob: {name!r}")
        return self.tensors[name]

    def _store(self, data: dict, value):
        idx = data.get("idx")
        if idx is not None:
            if not isinstance(idx, int) or idx in self.objects:
                raise WireError("bad object index")
            self.objects[idx] = value
            self._done[idx] = value
        return value

    def _tensor(self, data: dict, parameter: bool = False) -> torch.Tensor:
        t = self._table(data["$t"])
        if data.get("rg") and (t.is_floating_point() or t.is_complex()):
            t = nn.Parameter(t, requires_grad=True) if parameter or data.get("param") else t.requires_grad_(True)
        elif parameter or data.get("param"):
            t = nn.Parameter(t, requires_grad=False)
        if "grad" in data and self.keep_grads:
            grad = self._table(data["grad"])
            if grad.shape != t.shape:
                raise WireError("a gradient whose shape differs from its tensor's")
            t.grad = grad.to(t.dtype)
        self._store(data, t)
        if isinstance(data.get("idx"), int):
            self.versions[data["idx"]] = t._version
        if data.get("fn"):
            self.grad_outputs.append((data, t))
        return t

    def _module(self, data: dict, depth: int) -> nn.Module:
        cls = _class_by_name(data["$module"], nn.Module, MODULE_PREFIXES)
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        self._store(data, m)
        m.training = bool(data.get("training", True))
        for k, v in self._mapping(data.get("attrs")).items():
            if not _plain_attribute(cls, k):
                raise WireError(f"a {cls.__name__} cannot carry the attribute {k!r}")
            value = self.decode(v, depth + 1)
            if not is_plain(value):  # a class, a function or a proxy: code that would run where the module is used
                raise WireError(f"a {cls.__name__} that crosses as data cannot carry a {type(value).__name__} in {k!r}")
            m.__dict__[k] = value
        for k, v in self._mapping(data.get("params")).items():
            m._parameters[self._name(k)] = None if v is None else self._tensor_entry(v, parameter=True)
        for k, v in self._mapping(data.get("buffers")).items():
            m._buffers[self._name(k)] = None if v is None else self._tensor_entry(v)
        m._non_persistent_buffers_set.update(self._name(k) for k in data.get("transient", []))
        for k, v in self._mapping(data.get("children")).items():
            child = None if v is None else self.decode(v, depth + 1)
            if child is not None and not isinstance(child, nn.Module):
                raise WireError("a module's child must be a module")
            m._modules[self._name(k)] = child
        return m

    def _tensor_entry(self, data, parameter: bool = False) -> torch.Tensor:
        if not isinstance(data, dict) or ("$t" not in data and "$same" not in data):
            raise WireError("a module's weight must be a tensor")
        if "$same" in data:
            value = self.decode(data)
            if not isinstance(value, torch.Tensor):
                raise WireError("a module's weight must be a tensor")
            return value
        idx = data.get("idx")
        if isinstance(idx, int) and idx in self._done:
            return self._done[idx]
        return self._tensor(data, parameter=parameter)

    def _object(self, data: dict, depth: int):
        cls = _class_by_name(data["$object"], None, OBJECT_PREFIXES, OBJECT_CLASSES)
        if issubclass(cls, nn.Module):
            raise WireError("a module crosses as $module")
        obj = cls.__new__(cls)
        self._store(data, obj)
        for k, v in self._mapping(data.get("vars")).items():
            if not isinstance(k, str) or not k.isidentifier() or k.startswith("__") or callable(getattr(cls, k, None)) \
                    or isinstance(getattr(cls, k, None), property):
                raise WireError(f"a {cls.__name__} cannot carry the attribute {k!r}")
            value = self.decode(v, depth + 1)
            if not is_plain(value):
                raise WireError(f"a {cls.__name__} that crosses as data cannot carry a {type(value).__name__} in {k!r}")
            obj.__dict__[k] = value
        return obj

    @staticmethod
    def _mapping(value) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise WireError("expected a mapping")
        return value

    @staticmethod
    def _name(k) -> str:
        if not isinstance(k, str) or not k or "." in k:
            raise WireError(f"bad name {k!r}")
        return k
