"""Requests between the judge and the student process: calls, attributes, gradients, callbacks.

One :class:`Link` sits at each end of the socket. A side sends a request and waits for its reply;
while it waits it serves the other side's requests, so calls can nest (the judge calls the
notebook's ``fine_tune``, which calls the judge's ``loss_fn``, whose result the notebook
differentiates). The two ends are not equal:

* the **student process** serves everything the tests need about its objects: ``lookup`` a name of
  the notebook, ``call`` an object (a function, a class, a method, a module), ``getattr`` /
  ``setattr``, ``iter``, ``len``, ``getitem``, ``bool``, a vector-Jacobian product (``vjp``) of a
  call's outputs, ``seed``, ``release``, ``bye``. Each ``call`` may carry the question's by-hand rule
  (run under :class:`course_utils.rules.enforced`) and a request to count torch operations;
* the **judge** serves only ``call`` of the callbacks it passed (a test's ``lambda``) and ``vjp`` of
  their results. It never lets the student process read an attribute, list an object or name
  anything of the judge's.

What crosses is defined in :mod:`course_tools.grading.wire`. An object that cannot cross as data
stays where it is and the other side gets a :class:`Proxy`: calling it or reading an attribute is a
request. A proxy is never asked whether it equals something: comparisons happen on plain data.

Gradients cross too. A tensor that the callee computed with a gradient function arrives wrapped in
:class:`_RemoteGrad`, an autograd function whose backward asks the callee for the VJP, so
``torch.autograd.grad(pixel_cross_entropy(scores, labels), scores)`` works in the judge as it does
in the notebook. The judge does not take that VJP on trust: it checks it against central finite
differences of the notebook's own forward along random directions (:func:`_check_vjp`), and a
backward that disagrees with its forward fails the test.

What the notebook does to its arguments is **reported, never applied**: the judge's own tensors and
modules stay as they were before the call, so every reference a test computes afterwards comes from
pristine data (a notebook cannot choose its reference by changing its input in place, or write
``.grad`` on a judge tensor). The changes arrive as data: a test asks for them with
:func:`course_utils.testing.assert_inputs_unchanged`, and a returned argument (``return net``) arrives
as a copy that carries the notebook's changes. While the notebook calls one of the judge's callbacks,
the judge's objects show the notebook's in-place changes so far (``w[i] += eps; f()``), and they are
put back as they were when the call returns. The notebook student process serves the structure of a
module that stays behind (its parameters, buffers and children) as data (``snapshot``), so
``net.parameters()`` is computed by the judge, never answered by a method the notebook defines.
"""

from __future__ import annotations

import builtins
import itertools
import re
import socket
import time
import traceback
from contextlib import ExitStack, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from .wire import Decoder, Encoder, PeerClosed, Timeout, WireError, recv_frame, send_frame

# exception types a reply may re-raise as themselves in the caller (a mix-in keeps them apart)
SAFE_ERRORS = {e.__name__: e for e in (
    ValueError, TypeError, IndexError, KeyError, RuntimeError, AssertionError, ZeroDivisionError,
    NotImplementedError, AttributeError, ArithmeticError, LookupError, OverflowError, FloatingPointError)}
STUDENT_OPS = ("lookup", "call", "getattr", "setattr", "iter", "len", "getitem", "bool", "vjp", "snapshot", "seed",
               "release", "bye")
# what the judge computes from a data snapshot of a module that stays in the notebook (never asked of it)
STRUCTURE = ("parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules",
             "named_modules", "state_dict")
LOW_PRECISION = (torch.float16, torch.bfloat16)
JUDGE_OPS = ("call", "vjp")


class NotebookError(Exception):
    """An exception raised by code on the other side; ``str()`` is its message."""

    remote_type = "Exception"
    remote_traceback = ""


_ERROR_CLASSES: dict[str, type] = {}


def remote_error(info: dict) -> NotebookError:
    name = info.get("type") if isinstance(info, dict) else None
    name = name if isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w{0,60}", name) else "Exception"
    message = info.get("message", "") if isinstance(info, dict) else ""
    message = message if isinstance(message, str) else repr(message)
    if name not in _ERROR_CLASSES:
        bases = (NotebookError, SAFE_ERRORS[name]) if name in SAFE_ERRORS else (NotebookError,)
        _ERROR_CLASSES[name] = type(name, bases, {"remote_type": name, "__module__": "notebook"})
    exc = _ERROR_CLASSES[name](message[:4000])
    trace = info.get("traceback", "") if isinstance(info, dict) else ""
    exc.remote_traceback = trace[-3000:] if isinstance(trace, str) else ""
    return exc


def describe_error(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc)[:4000],
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]}


def judge_error(exc: BaseException) -> dict:
    """What the student process learns when one of the judge's callbacks raises: the exception's type
    (a standard one, else ``Exception``) and a fixed sentence. No message, traceback, name or path of
    the judge's crosses: a hidden test's callback cannot leak its name, its source or its inputs."""
    name = type(exc).__name__ if type(exc).__name__ in SAFE_ERRORS else "Exception"
    return {"type": name, "message": f"the grader's function raised {name} when your code called it", "traceback": ""}


class LinkBroken(Exception):
    """The other process died, hung past the deadline or broke the protocol: nothing more can be
    asked of it (the judge may start it again)."""


# --- proxies -------------------------------------------------------------------------------------------


class Proxy:
    """Stands for an object of the other process. Calls, attribute reads and writes, ``len``,
    iteration, indexing and truth become requests; nothing else is forwarded (in particular not
    ``==``: a notebook object cannot claim to equal the expected answer)."""

    __slots__ = ("_link", "_ref", "__weakref__")

    def __call__(self, *args, **kwargs):
        return self._link.remote("call", self._ref, args=args, kwargs=kwargs)

    def _count_torch_calls(self, *args, **kwargs):
        """(torch operations the call performed in its own process, result): see
        :func:`course_utils.testing.count_torch_calls`."""
        return self._link.remote("call", self._ref, args=args, kwargs=kwargs, count=True)

    def _flag_for_review(self, text: str) -> None:
        """A test saw something for a person to judge (a loop where the question asks for vectorised
        code, counted in the notebook's own process): recorded on the judge's side, it flags the
        submission and decides no points. See :func:`course_utils.testing.expect_vectorized`."""
        if self._link.role == "judge" and isinstance(text, str):
            self._link.review.append(text[:300])

    def _call_reporting_changes(self, *args, **kwargs):
        """(result, the arguments the call changed in place): see
        :func:`course_utils.testing.assert_inputs_unchanged`."""
        value = self._link.remote("call", self._ref, args=args, kwargs=kwargs)
        return value, list(self._link.last_changed)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in STRUCTURE and self._link.role == "judge":
            module = self._link.snapshot(self._ref)
            if module is not None:  # a module: its structure is data the judge reads itself
                return getattr(module, name)
        return self._link.remote("getattr", self._ref, name=name)

    def __setattr__(self, name, value):
        if name in Proxy.__slots__:
            object.__setattr__(self, name, value)
        else:
            self._link.remote("setattr", self._ref, name=name, value=value)

    def __iter__(self):
        module = self._link.snapshot(self._ref) if self._link.role == "judge" else None
        if module is not None and getattr(module, "_container", False):
            return iter(list(module._modules.values()))
        return iter(self._link.remote("iter", self._ref))

    def __len__(self):
        module = self._link.snapshot(self._ref) if self._link.role == "judge" else None
        if module is not None and getattr(module, "_container", False):
            return len(module._modules)
        return self._link.remote("len", self._ref)

    def __getitem__(self, key):
        return self._link.remote("getitem", self._ref, key=key)

    def __bool__(self):
        if self._link.role == "student":  # the judge passes only callables, and shares nothing else
            return True
        return self._link.remote("bool", self._ref)

    def __repr__(self):
        return f"<{type(self).__name__} object in the notebook>"


_PROXY_CLASSES: dict[str, type] = {}


def _proxy_class(type_name) -> type:
    """A Proxy subclass named after the remote type, so ``type(x).__name__`` reads ``AlwaysEqual``."""
    name = type_name if isinstance(type_name, str) and re.fullmatch(r"[A-Za-z_]\w{0,60}", type_name) else "NotebookObject"
    if name not in _PROXY_CLASSES:
        _PROXY_CLASSES[name] = type(name, (Proxy,), {"__slots__": (), "__module__": "notebook"})
    return _PROXY_CLASSES[name]


# --- remote gradients ------------------------------------------------------------------------------------


class _Pending:
    """What the backward of a remotely computed tensor needs (kept out of autograd's inputs)."""

    def __init__(self, link: "Link", call: int, k: int, value: torch.Tensor, inputs: list, redo=None):
        self.link, self.call, self.k, self.value = link, call, k, value
        self.specs = [(t.shape, t.dtype) for t in inputs]
        self.inputs = [t.detach() for t in inputs]
        self.input_ids = [id(t) for t in inputs]
        self.redo = redo  # (target, args, kwargs, objects): enough to call the forward again


class GradientMismatch(AssertionError):
    """The notebook's backward disagrees with its own forward."""


FD_DIRECTIONS = 2


def _check_vjp(p: _Pending, grad_out: torch.Tensor, grads: list) -> None:
    """Check the VJP ``grads`` the notebook sent for ``grad_out`` against central finite differences
    of the notebook's own forward, along ``FD_DIRECTIONS`` random directions of all the inputs: the
    directional derivative <(f(x + h v) - f(x - h v)) / 2h, grad_out> must equal sum_i <grads_i, v_i>.
    A direction that disagrees is tried again with smaller steps (a step may cross a kink of ReLU or
    max pooling); only a disagreement at every step fails."""
    if p.redo is None or not p.inputs:
        return
    target, args, kwargs, objects = p.redo
    floating = [t for t in p.inputs if t.is_floating_point()]
    if not floating:
        return
    double = all(t.dtype == torch.float64 for t in floating)
    eps = torch.finfo(torch.float64 if double else torch.float32).eps
    g = torch.Generator().manual_seed(1234 + p.call * 31 + p.k)
    scale = max([1.0] + [float(t.abs().max()) for t in floating if t.numel()])
    steps = [1e-6, 1e-7, 1e-5] if double else [1e-2, 1e-3, 3e-2]
    g_out = grad_out.detach().to(torch.float64)
    for _ in range(FD_DIRECTIONS):
        vs = [torch.randn(t.shape, generator=g, dtype=torch.float64) if t.is_floating_point() else None for t in p.inputs]
        norm = sum(float((v ** 2).sum()) for v in vs if v is not None) ** 0.5 or 1.0
        vs = [None if v is None else v / norm for v in vs]
        claimed = sum(float((gr.detach().to(torch.float64) * v).sum()) for gr, v in zip(grads, vs)
                      if gr is not None and v is not None)
        worst = None
        for rel in steps:
            h = rel * scale
            outs = []
            for sign in (1.0, -1.0):
                moved = [None if v is None else (t.to(torch.float64) + sign * h * v).to(t.dtype) for t, v in zip(p.inputs, vs)]
                outs.append(p.link.probe(target, args, kwargs, objects, p.input_ids, moved, p.k))
            if outs[0] is None or outs[1] is None or outs[0].shape != g_out.shape:
                return  # the forward cannot be called again here (it raised, or changed its outputs): no verdict
            up, down = (o.detach().to(torch.float64) for o in outs)
            measured = float(((up - down) / (2 * h) * g_out).sum())
            noise = 50 * eps * float(g_out.abs().sum()) * (float(up.abs().max()) + 1.0) / h
            tol = (1e-4 if double else 3e-2) * (abs(measured) + abs(claimed)) + noise + 1e-9
            if abs(measured - claimed) <= tol:
                worst = None
                break
            worst = (measured, claimed)
        if worst is not None:
            raise GradientMismatch(
                "the gradient your code returned does not match its own forward: along a random direction the "
                f"forward changes at a rate of {worst[0]:.6g}, the gradient says {worst[1]:.6g} (a backward that "
                "does not match the forward, e.g. a custom autograd.Function, is not accepted)")


class _RemoteGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pending: _Pending, anchor, *inputs):
        ctx.pending = pending
        return pending.value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        p = ctx.pending
        grads = p.link.vjp(p.call, p.k, grad)
        if not isinstance(grads, list) or len(grads) != len(p.specs):
            raise RuntimeError("the other process sent gradients for the wrong number of inputs")
        out = []
        for g, (shape, dtype) in zip(grads, p.specs):
            if g is not None and (not isinstance(g, torch.Tensor) or g.shape != shape or not g.is_floating_point()):
                raise RuntimeError(f"the other process sent a gradient of shape {tuple(getattr(g, 'shape', ()))} "
                                   f"for an input of shape {tuple(shape)}")
            out.append(None if g is None else g.to(dtype))
        if p.link.role == "judge":
            _check_vjp(p, grad, out)
        return (None, None, *out)


class _Saved:
    def __init__(self, inputs: list, outputs: list):
        self.inputs, self.outputs = inputs, outputs


# --- the link ----------------------------------------------------------------------------------------------


class Link:
    """One end of the socket. ``role`` is ``"judge"`` or ``"student"``; ``namespace`` is what
    ``lookup`` reads (the notebook's globals, student side only); ``audit``, when a list, receives
    every frame this side sends (the grading tests check that no hidden test ever crosses)."""

    def __init__(self, sock: socket.socket, role: str, namespace: dict | None = None, audit: list | None = None):
        if role not in ("judge", "student"):
            raise ValueError(role)
        self.sock, self.role, self.namespace, self.audit = sock, role, namespace, audit
        self.deadline: float | None = None
        self.rule: dict | None = None          # judge: the by-hand rule of the question being tested
        self.violations: list[str] = []        # judge: banned calls the student process reported
        self.review: list[str] = []            # judge: what the tests flagged for a person to review
        self.exports: dict[int, Any] = {}
        self._export_ids: dict[int, int] = {}
        self.proxies: dict[int, Proxy] = {}
        self.saved: dict[int, _Saved] = {}
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._serving: list[Decoder] = []      # decoders of the calls being served, innermost last
        self._calling: list[Encoder] = []      # encoders of the calls waiting for a reply, innermost last
        self.broken: str | None = None
        self.last_changed: list[str] = []       # judge: the arguments the last call changed in place
        self.check_gradients = True            # judge: check every VJP against the forward
        self.handlers = {op: getattr(self, f"_serve_{op}") for op in (STUDENT_OPS if role == "student" else JUDGE_OPS)}

    # -- frames

    def _send(self, message: dict, tensors: dict | None = None) -> None:
        try:
            if self.audit is not None:
                import json

                self.audit.append(json.dumps(message, allow_nan=True))
            # the judge never waits for ever on a process that does not read its socket
            deadline = self.deadline if self.deadline is not None or self.role == "student" else time.monotonic() + 30
            send_frame(self.sock, message, tensors, deadline)
        except (OSError, WireError) as exc:
            raise self._break(f"could not send to the other process ({exc})") from None

    def _break(self, why: str) -> LinkBroken:
        self.broken = self.broken or why
        return LinkBroken(self.broken)

    def notify(self, op: str, **fields) -> None:
        self._send({"op": op, **fields})

    def receive(self, deadline: float | None = None) -> tuple[dict, dict]:
        if self.broken:
            raise LinkBroken(self.broken)
        try:
            message, tensors, _ = recv_frame(self.sock, deadline)
        except Timeout:
            raise self._break("it ran past its time limit") from None
        except PeerClosed:
            raise self._break("its process ended") from None
        except (WireError, OSError) as exc:
            raise self._break(f"it broke the grading protocol ({exc})") from None
        return message, tensors

    def request(self, message: dict, tensors: dict | None = None) -> tuple[dict, dict]:
        rid = next(self._ids)
        self._send({**message, "id": rid}, tensors)
        while True:
            reply, reply_tensors = self.receive(self.deadline)
            if reply.get("re") == rid:
                return reply, reply_tensors
            if "op" in reply and "id" in reply:
                self.handle(reply, reply_tensors)
            elif "op" in reply:
                self.on_notice(reply)
            else:
                raise self._break("it sent a reply nobody asked for")

    def on_notice(self, message: dict) -> None:
        raise self._break(f"it sent an unexpected {message.get('op')!r} message")

    def serve_forever(self) -> None:
        while True:
            message, tensors = self.receive()
            if message.get("op") == "bye":
                return
            if "op" not in message or "id" not in message:
                raise self._break("a message that is not a request")
            self.handle(message, tensors)

    def handle(self, message: dict, tensors: dict) -> None:
        op, rid = message.get("op"), message.get("id")
        handler = self.handlers.get(op)
        if handler is None or not isinstance(rid, int):
            self._send({"re": rid, "error": {"type": "RuntimeError", "message": f"{self.role} does not serve {op!r}"}})
            return
        violations: list[str] = []
        try:
            # the rule covers the whole request: the call, every callback and VJP it triggers, and the
            # encoding of the reply (an iterator's __next__ runs notebook code while it is encoded)
            with self._rule(message, violations, op):
                reply, reply_tensors = handler(message, tensors)
        except LinkBroken:
            raise
        except BaseException as exc:  # noqa: BLE001 - everything a served request raises goes back as data
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and self.role == "judge":
                raise
            reply = {"error": judge_error(exc) if self.role == "judge" else describe_error(exc)}
            reply_tensors = {}
        if violations:
            reply["violations"] = reply.get("violations", []) + violations
        self._send({**reply, "re": rid}, reply_tensors)

    def _rule(self, message: dict, violations: list, op: str):
        """The by-hand rule of the question being tested, around whatever runs notebook code."""
        rule = message.get("rule")
        if self.role != "student" or not isinstance(rule, dict) or op in ("release", "bye"):
            return nullcontext()
        from course_utils.rules import Rule, enforced

        if op == "vjp":  # the judge asked for this backward pass: its forbidden functions stay forbidden
            rule = {**rule, "autograd": True}
        return enforced(Rule.from_dict(rule), violations)

    # -- objects

    def export(self, obj) -> dict:
        """Keep ``obj`` on this side and return its reference record."""
        if self.role == "judge" and not callable(obj):
            raise WireError(f"the grader cannot pass a {type(obj).__name__} to the notebook")
        ref = self._export_ids.get(id(obj))
        if ref is None or self.exports.get(ref) is not obj:
            ref = next(self._refs)
            self.exports[ref] = obj
            self._export_ids[id(obj)] = ref
        return {"$ref": ref, "type": type(obj).__name__}

    def proxy(self, record: dict) -> Proxy:
        ref = record.get("$ref")
        if not isinstance(ref, int):
            raise WireError("bad reference")
        p = self.proxies.get(ref)
        if p is None:
            p = _proxy_class(record.get("type")).__new__(_proxy_class(record.get("type")))
            object.__setattr__(p, "_link", self)
            object.__setattr__(p, "_ref", ref)
            self.proxies[ref] = p
        return p

    def _encoder(self, same: dict | None = None) -> Encoder:
        return Encoder(self.export, same=same, by_name=self.role == "judge")

    def _decoder(self, tensors: dict, same: list | None = None) -> Decoder:
        return Decoder(tensors, self.proxy, same=same, trusted=self.role == "student")

    # -- the caller's side

    def remote(self, op: str, ref: int | None, count: bool = False, **fields):
        """Send one request about the other side's object ``ref`` and return the decoded result."""
        enc = self._encoder()
        message: dict = {"op": op, "target": ref}
        grad = torch.is_grad_enabled()
        if op == "call":
            message["value"] = enc.encode([tuple(fields.get("args", ())), dict(fields.get("kwargs", {}))])
            message.update(grad=grad, count=count)
        elif op == "setattr":
            message.update(name=fields["name"], value=enc.encode(fields["value"]))
        elif op == "getitem":
            message["key"] = enc.encode(fields["key"])
        elif op == "getattr":
            message["name"] = fields["name"]
        if self.role == "judge" and self.rule:
            message["rule"] = self.rule
        if self.role == "student" and self._serving:
            # a callback: the judge's code must see what the notebook changed so far (w[i] += eps)
            message["sync"] = self._mutations(self._serving[-1], enc)
        enc.restore = []
        self._calling.append(enc)
        try:
            reply, tensors = self.request(message, enc.tensors)
        finally:
            self._calling.pop()
            self._restore(enc)
        violations = reply.get("violations", [])
        self.violations += [v[:300] for v in (violations if isinstance(violations, list) else []) if isinstance(v, str)][:20]
        if self.role == "judge":
            changes = self._changes(reply.get("mutations"), tensors, enc)
            self.last_changed = _changed_arguments(fields.get("args", ()), fields.get("kwargs", {}), enc, changes)
            same = _Views(enc, changes)
        else:
            self._apply_mutations(reply.get("mutations"), tensors, enc)
            same = enc.objects
        if "error" in reply:
            raise remote_error(reply["error"])
        inputs = [o for o in enc.objects if isinstance(o, torch.Tensor) and o.requires_grad] if grad else []
        dec = self._decoder(tensors, same=same)
        # what a call returns is data the judge computes gradients of itself: a .grad it carries is
        # dropped (reading a notebook object's state, getattr or a snapshot, keeps the notebook's)
        dec.keep_grads = not (self.role == "judge" and op == "call")
        call = reply.get("call")
        redo = None
        if op == "call" and self.role == "judge" and self.check_gradients:
            redo = (ref, tuple(fields.get("args", ())), dict(fields.get("kwargs", {})), list(enc.objects))
        dec.wrap = (lambda t, k: self._wrap(t, call, k, inputs, redo)) if grad and isinstance(call, int) else None
        value = self._decode(dec, reply.get("value"))
        if self.role == "judge":
            _refuse_low_precision(value, enc.objects)
        if count:
            calls = reply.get("count")
            if not isinstance(calls, int):
                raise WireError("no operation count in the reply")
            return calls, value
        return value

    def lookup(self, name: str):
        """The value of ``name`` in the notebook: data, or a proxy for a function, class or module;
        raises ``KeyError`` when the notebook does not define it."""
        enc = self._encoder()
        reply, tensors = self.request({"op": "lookup", "name": name}, {})
        if "error" in reply:
            raise remote_error(reply["error"])
        if reply.get("missing") is True:
            raise KeyError(name)
        return self._decode(self._decoder(tensors, same=enc.objects), reply.get("value"))

    def _decode(self, dec: Decoder, data):
        value = dec.decode(data)
        if getattr(dec, "wrap", None) is not None and dec.grad_outputs:
            mapping = {}
            for record, t in dec.grad_outputs:
                if isinstance(record.get("vjp"), int):
                    mapping[id(t)] = dec.wrap(t, record["vjp"])
            value = _substitute(value, mapping)
        return value

    def _wrap(self, t: torch.Tensor, call: int, k: int, inputs: list, redo=None) -> torch.Tensor:
        t.requires_grad_(False)
        anchor = torch.zeros((), requires_grad=True)
        return _RemoteGrad.apply(_Pending(self, call, k, t, inputs, redo), anchor, *inputs)

    def probe(self, ref, args, kwargs, objects: list, input_ids: list, moved: list, k: int) -> torch.Tensor | None:
        """The ``k``-th differentiable output of calling ``ref`` again on copies of ``args`` in which the
        inputs ``input_ids`` are replaced by ``moved`` (finite differences); ``None`` when the call fails."""
        import copy

        memo = {id(o): o.detach() for o in objects if isinstance(o, torch.Tensor)}
        by_id = {id(o): o for o in objects}
        for i, m in zip(input_ids, moved):  # the inputs require a gradient, as they did: the outputs keep their order
            if m is not None and i in by_id:
                m = m.detach().requires_grad_(True)
                memo[i] = nn.Parameter(m) if isinstance(by_id[i], nn.Parameter) else m
        try:
            args, kwargs = copy.deepcopy((args, kwargs), memo)
        except Exception:  # noqa: BLE001 - something that cannot be copied: no verdict
            return None
        enc = self._encoder()
        message = {"op": "call", "target": ref, "value": enc.encode([tuple(args), dict(kwargs)]), "grad": True, "count": False}
        if self.rule:
            message["rule"] = self.rule
        reply, tensors = self.request(message, enc.tensors)
        if "error" in reply:
            return None
        dec = self._decoder(tensors, same=_Views(enc, {}))
        dec.decode(reply.get("value"))
        outputs = [t for _, t in dec.grad_outputs]
        return outputs[k] if 0 <= k < len(outputs) else None

    def snapshot(self, ref: int):
        """The structure of the notebook's module ``ref`` (parameters, buffers, children) as a module the
        judge builds from data, or ``None`` when the object is not a module."""
        reply, tensors = self.request({"op": "snapshot", "target": ref}, {})
        if "error" in reply:
            raise remote_error(reply["error"])
        record = reply.get("value")
        if record is None:
            return None
        return _build_snapshot(self._decoder(tensors), record, 0)

    def vjp(self, call: int, k: int, grad: torch.Tensor) -> list:
        enc = self._encoder()
        message = {"op": "vjp", "call": call, "k": k, "grad": enc.encode(grad)}
        if self.role == "judge" and self.rule:
            message["rule"] = self.rule
        with torch.no_grad():
            reply, tensors = self.request(message, enc.tensors)
        violations = reply.get("violations", [])  # a forbidden call inside the notebook's backward
        self.violations += [v[:300] for v in (violations if isinstance(violations, list) else []) if isinstance(v, str)][:20]
        if "error" in reply:
            raise remote_error(reply["error"])
        grads = self._decoder(tensors).decode(reply.get("value"))
        return list(grads) if isinstance(grads, (list, tuple)) else grads

    def _changes(self, changes, tensors: dict, enc: Encoder) -> dict:
        """The judge's reading of what the notebook says it changed in place: ``{index: {"value": tensor,
        "training": bool}}`` for the objects the request carried, checked, never applied."""
        if changes is None:
            return {}
        if not isinstance(changes, list):
            raise WireError("bad mutations")
        dec = self._decoder(tensors)
        out: dict = {}
        for change in changes:
            idx = change.get("idx") if isinstance(change, dict) else None
            if not isinstance(idx, int) or not 0 <= idx < len(enc.objects):
                raise WireError("a change to an object the request did not carry")
            target, entry = enc.objects[idx], {}
            if isinstance(target, torch.Tensor) and "value" in change:
                new = dec.decode(change["value"])
                if not isinstance(new, torch.Tensor) or new.shape != target.shape:
                    raise WireError(f"the notebook changed the shape of a tensor argument in place "
                                    f"(from {tuple(target.shape)} to {tuple(getattr(new, 'shape', ()))})")
                entry["value"] = new.detach().to(target.dtype)
            if isinstance(target, torch.Tensor) and "grad" in change:
                entry["grad"] = True  # reported (a test may ask), never written on the judge's tensor
            if isinstance(target, nn.Module) and isinstance(change.get("training"), bool):
                entry["training"] = change["training"]
            if entry:
                out.setdefault(idx, {}).update(entry)
        return out

    def _restore(self, enc: Encoder) -> None:
        """Put back the judge's objects that a callback saw with the notebook's changes."""
        for target, value in reversed(getattr(enc, "restore", [])):
            if isinstance(target, torch.Tensor):
                with torch.no_grad():
                    target.copy_(value)
            else:
                target.training = value
        enc.restore = []

    def _apply_mutations(self, changes, tensors: dict, enc: Encoder) -> None:
        """Copy back what the other side changed in place in the objects this request carried (the
        student process, for the judge's changes; the judge, only for the time of a callback)."""
        changes = changes or []
        if not isinstance(changes, list):
            raise WireError("bad mutations")
        dec = self._decoder(tensors)
        for change in changes:
            idx = change.get("idx") if isinstance(change, dict) else None
            if not isinstance(idx, int) or not 0 <= idx < len(enc.objects):
                raise WireError("a change to an object the request did not carry")
            target = enc.objects[idx]
            if isinstance(target, torch.Tensor) and "value" in change:
                new = dec.decode(change["value"])
                if not isinstance(new, torch.Tensor) or new.shape != target.shape:
                    raise WireError(f"the notebook changed the shape of a tensor argument in place "
                                    f"(from {tuple(target.shape)} to {tuple(getattr(new, 'shape', ()))})")
                with torch.no_grad():
                    if self.role == "judge":
                        enc.restore.append((target, target.detach().clone()))
                    target.copy_(new.to(target.dtype))
            if isinstance(target, torch.Tensor) and "grad" in change and self.role == "student":
                g = dec.decode(change["grad"])
                if isinstance(g, torch.Tensor) and g.shape == target.shape and target.is_leaf:
                    target.grad = g.to(target.dtype)
            if isinstance(target, nn.Module) and isinstance(change.get("training"), bool):
                if self.role == "judge":
                    enc.restore.append((target, target.training))
                target.training = change["training"]

    # -- the callee's side

    def _serve_call(self, message: dict, tensors: dict):
        target = self._target(message)
        if message.get("sync") and self._calling:  # the notebook's changes so far, before our callback runs
            self._apply_mutations(message["sync"], tensors, self._calling[-1])
        dec = self._decoder(tensors)
        value = dec.decode(message.get("value"))
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], tuple) and isinstance(value[1], dict)):
            raise WireError("a call needs [args, kwargs]")
        args, kwargs = value
        if not all(isinstance(k, str) for k in kwargs):
            raise WireError("keyword arguments need string names")
        grad = bool(message.get("grad"))
        count = bool(message.get("count")) and self.role == "student"
        violations: list[str] = []  # (the rule's guard is around the whole request: see handle)
        inputs = [dec.objects[i] for i in sorted(dec.objects)
                  if isinstance(dec.objects[i], torch.Tensor) and dec.objects[i].requires_grad]
        dec.grads_before = {i: id(o.grad) for i, o in dec.objects.items() if isinstance(o, torch.Tensor)}
        dec.training_before = {i: o.training for i, o in dec.objects.items() if isinstance(o, nn.Module)}
        counter, error, result = None, None, None
        self._serving.append(dec)
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.set_grad_enabled(grad))
                if count:
                    from course_utils.testing import _CountTorchCalls

                    counter = stack.enter_context(_CountTorchCalls())
                try:
                    result = target(*args, **kwargs)
                except LinkBroken:
                    raise
                except BaseException as exc:  # noqa: BLE001 - goes back to the caller as data
                    error = exc
        finally:
            self._serving.pop()
        enc = self._encoder(same={id(o): i for i, o in dec.objects.items()})
        reply: dict = {"mutations": self._mutations(dec, enc), "violations": violations}
        if error is not None:
            if isinstance(error, (KeyboardInterrupt, SystemExit)) and self.role == "judge":
                raise error
            reply["error"] = judge_error(error) if self.role == "judge" else describe_error(error)
            return reply, enc.tensors
        reply["value"] = enc.encode(result)
        if counter is not None:
            reply["count"] = counter.calls
        outputs = []
        for obj in enc.objects:
            if isinstance(obj, torch.Tensor) and obj.grad_fn is not None:
                enc._seen[id(obj)]["vjp"] = len(outputs)
                outputs.append(obj)
        if outputs and grad:
            self.saved[message["id"]] = _Saved(inputs, outputs)
            reply["call"] = message["id"]
        return reply, enc.tensors

    def _mutations(self, dec: Decoder, enc: Encoder) -> list:
        """What the call being served changed in place in its arguments since the last report."""
        out = []
        grads_before = getattr(dec, "grads_before", {})
        training_before = getattr(dec, "training_before", {})
        for i, obj in sorted(dec.objects.items()):
            change = {}
            if isinstance(obj, torch.Tensor):
                if obj._version != dec.versions.get(i, obj._version):
                    change["value"] = enc.encode(obj.detach().clone())
                    dec.versions[i] = obj._version
                if obj.is_leaf and obj.grad is not None and id(obj.grad) != grads_before.get(i):
                    change["grad"] = enc.encode(obj.grad.detach().clone())
                    grads_before[i] = id(obj.grad)
            elif isinstance(obj, nn.Module) and obj.training != training_before.get(i, obj.training):
                change["training"] = obj.training
                training_before[i] = obj.training
            if change:
                out.append({"idx": i, **change})
        return out

    def _target(self, message: dict):
        ref = message.get("target")
        if not isinstance(ref, int) or ref not in self.exports:
            raise LookupError("a stale or unknown reference (objects from earlier tests are released)")
        return self.exports[ref]

    def _serve_vjp(self, message: dict, tensors: dict):
        saved = self.saved.get(message.get("call"))
        k = message.get("k")
        if saved is None or not isinstance(k, int) or not 0 <= k < len(saved.outputs):
            raise LookupError("no saved call for this gradient (the notebook's process was restarted?)")
        grad = self._decoder(tensors).decode(message.get("grad"))
        out = saved.outputs[k]
        if not isinstance(grad, torch.Tensor) or grad.shape != out.shape:
            raise WireError("a gradient of the wrong shape")
        for t in saved.inputs:
            t.grad = None
        with torch.enable_grad():
            torch.autograd.backward([out], [grad.to(out.dtype)], retain_graph=True)
        grads = [None if t.grad is None else t.grad.detach().clone() for t in saved.inputs]
        for t in saved.inputs:
            t.grad = None
        enc = self._encoder()
        return {"value": enc.encode(grads)}, enc.tensors

    def _serve_snapshot(self, message: dict, tensors: dict):
        target = self._target(message)
        if not isinstance(target, nn.Module):
            return {"value": None}, {}
        enc = self._encoder()
        return {"value": _snapshot_record(enc, target, 0)}, enc.tensors

    def _serve_lookup(self, message: dict, tensors: dict):
        name = message.get("name")
        if not isinstance(name, str) or self.namespace is None:
            raise WireError("lookup needs a name")
        if name not in self.namespace:
            return {"missing": True}, {}
        value = self.namespace[name]
        enc = self._encoder()
        # what the tests take by name runs here: functions, classes and modules stay behind
        return {"value": self.export(value) if callable(value) else enc.encode(value)}, enc.tensors

    def _serve_getattr(self, message: dict, tensors: dict):
        name = message.get("name")
        if not isinstance(name, str):
            raise WireError("getattr needs a name")
        enc = self._encoder()
        return {"value": enc.encode(getattr(self._target(message), name))}, enc.tensors

    def _serve_setattr(self, message: dict, tensors: dict):
        name = message.get("name")
        if not isinstance(name, str):
            raise WireError("setattr needs a name")
        setattr(self._target(message), name, self._decoder(tensors).decode(message.get("value")))
        return {"value": None}, {}

    def _serve_iter(self, message: dict, tensors: dict):
        enc = self._encoder()
        return {"value": enc.encode(list(self._target(message)))}, enc.tensors

    def _serve_len(self, message: dict, tensors: dict):
        return {"value": int(len(self._target(message)))}, {}

    def _serve_getitem(self, message: dict, tensors: dict):
        key = self._decoder(tensors).decode(message.get("key"))
        enc = self._encoder()
        return {"value": enc.encode(self._target(message)[key])}, enc.tensors

    def _serve_bool(self, message: dict, tensors: dict):
        return {"value": builtins.bool(self._target(message))}, {}

    def _serve_seed(self, message: dict, tensors: dict):
        from course_utils.runtime import seed_everything

        seed_everything(int(message.get("seed", 0)))
        return {"value": None}, {}

    def _serve_release(self, message: dict, tensors: dict):
        self.release()
        return {"value": None}, {}

    def _serve_bye(self, message: dict, tensors: dict):  # pragma: no cover - handled by serve_forever
        return {"value": None}, {}

    def release(self) -> None:
        """Forget every exported object, saved call and proxy (between two tests)."""
        self.exports.clear()
        self._export_ids.clear()
        self.saved.clear()
        self.proxies.clear()


def _substitute(value, mapping: dict):
    """``value`` with every tensor whose id is in ``mapping`` replaced (containers and objects)."""
    if not mapping:
        return value
    if isinstance(value, torch.Tensor):
        return mapping.get(id(value), value)
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, tuple) and not isinstance(value, torch.Size):
        return tuple(_substitute(v, mapping) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, (nn.Module, type, Proxy)):
        for k, v in list(vars(value).items()):
            new = _substitute(v, mapping)
            if new is not v:
                value.__dict__[k] = new
    return value


# --- what the judge reads of a reply ----------------------------------------------------------------------


class _Views:
    """What ``{"$same": i}`` in a reply stands for, on the judge's side: the judge's own object when the
    notebook did not change it, else a copy of it carrying the notebook's changes (the original stays
    as it was, so references computed from it are pristine)."""

    def __init__(self, enc: Encoder, changes: dict):
        self.enc, self.changes, self.cache = enc, changes, {}

    def __len__(self):
        return len(self.enc.objects)

    def __getitem__(self, i: int):
        if i not in self.cache:
            self.cache[i] = self._view(i)
        return self.cache[i]

    def _view(self, i: int):
        import copy

        original = self.enc.objects[i]
        inside = _members(original)
        touched = [j for j, o in enumerate(self.enc.objects) if id(o) in inside and j in self.changes]
        if not touched:
            return original
        memo: dict = {}
        for o in self.enc.objects:  # tensors that cannot be deep-copied (non-leaves) are copied by hand
            if isinstance(o, torch.Tensor) and not o.is_leaf:
                memo[id(o)] = o.detach().clone()
        view = copy.deepcopy(original, memo)
        for j in touched:
            target = memo.get(id(self.enc.objects[j]), view if self.enc.objects[j] is original else None)
            change = self.changes[j]
            if isinstance(target, torch.Tensor) and "value" in change:
                with torch.no_grad():
                    target.copy_(change["value"])
            if isinstance(target, nn.Module) and "training" in change:
                target.training = change["training"]
        return view


def _members(obj) -> set[int]:
    """``id``s of ``obj`` and of the tensors and modules it holds (a module's weights, a container's items)."""
    out = {id(obj)}
    if isinstance(obj, nn.Module):
        for m in obj.modules():
            out.add(id(m))
            out.update(id(t) for t in m._parameters.values() if t is not None)
            out.update(id(t) for t in m._buffers.values() if t is not None)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            out |= _members(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            out |= _members(v)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, Proxy, torch.Tensor)) and not callable(obj):
        for v in vars(obj).values():
            out |= _members(v)
    return out


def _changed_arguments(args, kwargs, enc: Encoder, changes: dict) -> list[str]:
    """The arguments whose values the call changed in place, described for a test's message. A tensor
    the notebook changed and then put back exactly (finite differences) counts as unchanged."""
    changed_ids, graded_ids = set(), set()
    for j, change in changes.items():
        obj = enc.objects[j]
        if "value" in change and isinstance(obj, torch.Tensor):
            record = enc._seen.get(id(obj), {})
            before = enc.tensors.get(record.get("$t"))
            if before is None or not torch.equal(before.to(change["value"].dtype), change["value"]):
                changed_ids.add(id(obj))
        if change.get("grad") and isinstance(obj, torch.Tensor) and not isinstance(obj, nn.Parameter):
            graded_ids.add(id(obj))  # a gradient written into an argument (a module's weights may get theirs)
    if not changed_ids and not graded_ids:
        return []
    out = []
    named = [(f"argument {k + 1}", v) for k, v in enumerate(args)] + [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for name, value in named:
        members = _members(value)
        if members & (changed_ids | graded_ids):
            kind = ("a tensor of shape " + str(tuple(value.shape))) if isinstance(value, torch.Tensor) else \
                f"a {type(value).__name__}" + (" (its weights or buffers)" if isinstance(value, nn.Module) else "")
            grad = ", its .grad was written" if members & graded_ids and not members & changed_ids else ""
            out.append(f"{name} ({kind}{grad})")
    return out


def _refuse_low_precision(value, objects: list) -> None:
    """A half or bfloat16 result of a call none of whose inputs were: never an answer the course asks
    for, and a comparison with a tolerance would run in that precision (``abs(x - 0.75) < 1e-12``
    holds for a wrong bfloat16 ``x``)."""
    if any(isinstance(o, torch.Tensor) and o.dtype in LOW_PRECISION for o in objects):
        return
    found = _low_precision(value, 0)
    if found is not None:
        raise TypeError(f"expected a float (or a float32/float64 tensor), got {found}: compute in the precision of "
                        "the inputs")


def _low_precision(value, depth: int):
    if depth > 64:
        return None
    if isinstance(value, torch.Tensor):
        return str(value.dtype).removeprefix("torch.") + " tensor" if value.dtype in LOW_PRECISION else None
    if isinstance(value, (np.ndarray, np.generic)):
        return f"NumPy {value.dtype}" if value.dtype == np.float16 else None
    if isinstance(value, (list, tuple, set, frozenset)):
        return next((f for f in (_low_precision(v, depth + 1) for v in value) if f), None)
    if isinstance(value, dict):
        return next((f for f in (_low_precision(v, depth + 1) for v in value.values()) if f), None)
    return None  # a module's weights are checked by the tests that use it


def _snapshot_record(enc: Encoder, m: nn.Module, depth: int) -> dict:
    """A module's registry as data: its parameters, buffers and children (a child the judge can rebuild
    crosses as a module; another is described the same way), whatever methods its class defines."""
    from .wire import module_is_data

    if depth > 32:
        raise WireError("modules nested too deeply")
    # read from the instance's own registry, not through methods or properties its class may define
    params, buffers, children = (vars(m).get(k, {}) for k in ("_parameters", "_buffers", "_modules"))
    return {"type": type(m).__name__, "training": bool(vars(m).get("training", True)),
            "container": isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)),
            "params": {str(k): (None if v is None else enc.encode(v)) for k, v in params.items()},
            "buffers": {str(k): (None if v is None else enc.encode(v.detach())) for k, v in buffers.items()},
            "children": {str(k): (None if v is None else ({"data": enc.encode(v)} if module_is_data(v)
                                                         else {"snapshot": _snapshot_record(enc, v, depth + 1)}))
                         for k, v in children.items()}}


class _Snapshot(nn.Module):
    """The structure of a module that stays in the notebook, rebuilt by the judge from data."""

    def forward(self, *args, **kwargs):
        raise TypeError("this is the structure of a network that runs in your notebook; call the network itself")


def _build_snapshot(dec: Decoder, record, depth: int) -> nn.Module:
    if not isinstance(record, dict) or depth > 32:
        raise WireError("a malformed module snapshot")
    m = _Snapshot()
    m.training = bool(record.get("training", True))
    m._container = bool(record.get("container", False))
    name = record.get("type")
    m._remote_type = name if isinstance(name, str) else "Module"
    for part, store in (("params", m._parameters), ("buffers", m._buffers)):
        entries = record.get(part) or {}
        if not isinstance(entries, dict):
            raise WireError("a malformed module snapshot")
        for k, v in entries.items():
            if not isinstance(k, str) or not k or "." in k:
                raise WireError(f"bad name {k!r}")
            t = None if v is None else dec.decode(v)
            if t is not None and not isinstance(t, torch.Tensor):
                raise WireError("a module's weight must be a tensor")
            if part == "params" and t is not None:
                grad = t.grad
                t = nn.Parameter(t.detach(), requires_grad=t.requires_grad)
                t.grad = grad
            store[k] = t
    children = record.get("children") or {}
    if not isinstance(children, dict):
        raise WireError("a malformed module snapshot")
    for k, v in children.items():
        if not isinstance(k, str) or not k or "." in k:
            raise WireError(f"bad name {k!r}")
        if v is None:
            m._modules[k] = None
        elif isinstance(v, dict) and "data" in v:
            child = dec.decode(v["data"])
            if not isinstance(child, nn.Module):
                raise WireError("a module's child must be a module")
            m._modules[k] = child
        elif isinstance(v, dict) and "snapshot" in v:
            m._modules[k] = _build_snapshot(dec, v["snapshot"], depth + 1)
        else:
            raise WireError("a malformed module snapshot")
    return m
