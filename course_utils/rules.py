"""By-hand rules: what a lab question forbids, checked the same way by ``grader.check`` and by the grader.

Taught in {ref}`sec-grading` (the home page), as students meet it; the README's "For instructors"
section documents it for instructors. A lab
declares each rule once, in ``labs/NN_slug/grading.yml``::

    by_hand:
      pixel_cross_entropy:
        rule: build it from torch.logsumexp and indexing, not F.cross_entropy, F.log_softmax or F.nll_loss
        forbid: [torch.nn.functional.cross_entropy, torch.Tensor.log_softmax, ...]   # Python API
        ops: [aten._log_softmax, aten.nll_loss2d_forward]    # the operators underneath them
        autograd: false                                      # (optional) no backward pass may run

Two independent checks enforce a rule, and breaking either scores the question 0:

* **the source** (:func:`source_findings`): the code reachable from the question's answers (its
  functions, what they call, the values they read), resolved through the notebook's imports, must
  not name a forbidden function, look names up dynamically (a computed ``getattr``,
  ``__import__``, ``importlib``, ``eval``/``exec``, ``torch.ops``, ...) or patch a library;
* **the run** (:class:`enforced`): while the answer runs, a torch function mode and a dispatch mode
  refuse the forbidden functions and operators (however they were reached: a name bound before,
  ``torch.ops.aten``, a layer's ``forward``) and, for ``autograd: false``, any backward pass.

``grader.check`` runs both on your notebook (``make assign`` adds the check to the question's public
tests); the autograder runs the same two checks on the submitted notebook.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Rule", "BannedCall", "Finding", "enforced", "guard", "source_findings", "check_rule"]

# implied by ``autograd: false``
AUTOGRAD_API = ("torch.autograd", "torch.Tensor.backward", "torch.func", "functorch")
# names whose use means "looked up by a computed name or ran code from a string"
DYNAMIC_NAMES = {
    "__import__": "__import__", "eval": "eval", "exec": "exec", "compile": "compile", "globals": "globals()",
    "vars": "vars()", "get_ipython": "get_ipython()", "breakpoint": "breakpoint()",
}
DYNAMIC_PATHS = (
    "importlib", "builtins", "operator.attrgetter", "operator.methodcaller", "inspect", "gc", "ctypes",
    "sys.modules", "sys._getframe", "torch.ops", "torch._C", "torch._ops", "torch.overrides",
    "torch.utils._python_dispatch", "types.FunctionType", "types.CodeType",
)
DYNAMIC_ATTRS = {"__dict__", "__getattribute__", "__globals__", "__code__", "__builtins__", "__closure__",
                 "f_globals", "f_locals", "f_back", "__subclasses__"}
# what the notebooks conventionally call these modules when no import is in view
DEFAULT_ALIASES = {"torch": "torch", "F": "torch.nn.functional", "nn": "torch.nn", "np": "numpy"}
LIBRARIES = ("torch", "numpy", "scipy", "builtins", "course_utils", "math")


@dataclass(frozen=True)
class Rule:
    """One question's by-hand rule (see the module docstring)."""

    question: str
    text: str
    names: tuple[str, ...] = ()          # the names its tests take from the notebook
    forbid: tuple[str, ...] = ()         # dotted Python names (``torch.Tensor.x`` means the method x)
    ops: tuple[str, ...] = ()            # aten operators, globs allowed, e.g. ``aten.upsample_*``,
    autograd: bool = True                # ``aten.convolution(transposed=True)``
    example: str = ""                    # one forbidden call (the grading suite uses it)

    def __post_init__(self):
        if not self.text:
            raise ValueError(f"the by-hand rule of {self.question!r} needs a 'rule:' sentence for students")
        for op in self.ops:
            _parse_op(op)

    @classmethod
    def from_dict(cls, d: dict) -> "Rule":
        return cls(question=d["question"], text=d.get("rule") or d.get("text", ""), names=tuple(d.get("names", ())),
                   forbid=tuple(d.get("forbid", ())), ops=tuple(d.get("ops", ())),
                   autograd=bool(d.get("autograd", True)), example=d.get("example", ""))

    def to_dict(self) -> dict:
        return {"question": self.question, "rule": self.text, "names": list(self.names), "forbid": list(self.forbid),
                "ops": list(self.ops), "autograd": self.autograd, "example": self.example}

    @property
    def forbidden_api(self) -> tuple[str, ...]:
        return self.forbid + (() if self.autograd else AUTOGRAD_API)

    def message(self, problems: Iterable[str]) -> str:
        problems = list(dict.fromkeys(problems))
        return (f"{self.question} must follow its by-hand rule: {self.text}. Found: " + "; ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))


class BannedCall(Exception):
    """Raised inside an answer that calls what its question forbids."""


# --- the source --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    cell: int      # index of the cell among the cells given
    line: int
    what: str
    start: str = ""  # the cell's first line, so a reader can find it

    def __str__(self) -> str:
        where = f'line {self.line} of the cell that starts "{self.start}"' if self.start else f"line {self.line}"
        return f"{self.what} ({where})"


def _parse_cell(source: str) -> ast.Module | None:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)  # magics become plain calls
    except Exception:  # noqa: BLE001 - without IPython, parse the cell as it is
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Module-level names a top-level statement binds (compound statements: every name inside)."""
    names = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    for node in ast.walk(stmt):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def _free_names(stmt: ast.stmt) -> set[str]:
    """Names a statement reads from the module: every name it loads, less the ones bound inside it
    (arguments, locals, loop and comprehension variables), so a function's ``x`` does not lead to
    an unrelated top-level ``x``."""
    loads, bound = set(), set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not stmt:
            bound.add(node.name)
        elif isinstance(node, ast.alias) and node is not stmt:
            bound.add((node.asname or node.name).split(".")[0])
    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        bound -= _bound_names(stmt)  # a top-level assignment binds module names: keep what it reads
    return loads - bound


class _Source:
    """The parsed cells of a notebook: import aliases and the top-level statements binding each name."""

    def __init__(self, cells: list[str]):
        self.statements: list[tuple[int, ast.stmt]] = []
        self.aliases: dict[str, set[str]] = {}
        self.first_lines = {i: next((line.strip() for line in src.splitlines() if line.strip()), "")[:70]
                            for i, src in enumerate(cells)}
        for i, src in enumerate(cells):
            tree = _parse_cell(src)
            if tree is None:
                continue
            for stmt in tree.body:
                self.statements.append((i, stmt))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        if a.asname:
                            self.aliases.setdefault(a.asname, set()).add(a.name)
                        else:
                            root = a.name.split(".")[0]
                            self.aliases.setdefault(root, set()).add(root)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for a in node.names:
                        self.aliases.setdefault(a.asname or a.name, set()).add(f"{node.module}.{a.name}")
        self.defines: dict[str, list[int]] = {}
        for k, (_, stmt) in enumerate(self.statements):
            for name in _bound_names(stmt):
                self.defines.setdefault(name, []).append(k)

    def reachable(self, names: Iterable[str], cells: Iterable[int]) -> list[int]:
        """Statements defining ``names`` or sitting in ``cells``, and everything they refer to."""
        cells = set(cells)
        # a statement that patches a library changes every answer, wherever it sits
        todo = [k for k, (i, stmt) in enumerate(self.statements) if i in cells or _patches(self, stmt)]
        for name in names:
            todo += self.defines.get(name, [])
        seen: set[int] = set()
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            for name in _free_names(self.statements[k][1]):
                todo += self.defines.get(name, [])
        return sorted(seen)

    def resolve(self, node: ast.AST) -> set[str]:
        """The dotted library paths an expression may stand for (empty when it is not a library name)."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return set(self.aliases[node.id])
            if node.id in self.defines:
                return set()
            return {DEFAULT_ALIASES[node.id]} if node.id in DEFAULT_ALIASES else set()
        if isinstance(node, ast.Attribute):
            return {f"{base}.{node.attr}" for base in self.resolve(node.value)}
        if _is_call_to(node, "getattr") and len(node.args) >= 2 and _constant_str(node.args[1]) is not None:
            return {f"{base}.{node.args[1].value}" for base in self.resolve(node.args[0])}
        return set()


def _is_call_to(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _constant_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _matches(path: str, entry: str) -> bool:
    return path == entry or path.startswith(entry + ".")


def _statement_findings(rule: Rule, src: _Source, cell: int, stmt: ast.stmt) -> list[Finding]:
    found = []
    forbid = rule.forbidden_api
    methods = {e.rsplit(".", 1)[1] for e in forbid if e.startswith("torch.Tensor.")}
    op_names = [_parse_op(op)[0].split(".", 1)[1] for op in rule.ops]

    def add(node, what):
        found.append(Finding(cell, getattr(node, "lineno", stmt.lineno), what, src.first_lines.get(cell, "")))

    for node in ast.walk(stmt):
        if isinstance(node, (ast.Name, ast.Attribute)) or _is_call_to(node, "getattr"):
            paths = src.resolve(node)
            hits = sorted({p for p in paths for e in forbid if _matches(p, e)})
            if hits:
                add(node, f"uses {hits[0]}")
            dynamic = sorted(d for d in DYNAMIC_PATHS for p in paths if _matches(p, d))
            if dynamic and not hits:
                add(node, f"reaches code dynamically through {dynamic[0]}")
        if isinstance(node, ast.Attribute):
            if node.attr in methods and not src.resolve(node.value):
                add(node, f"calls the tensor method .{node.attr}()")
            elif any(fnmatch.fnmatchcase(node.attr, name) for name in op_names):
                add(node, f"names the operator {node.attr}")
            if node.attr in DYNAMIC_ATTRS:
                add(node, f"reaches code dynamically through .{node.attr}")
        if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES and node.id not in src.defines:
            add(node, f"runs or looks up code dynamically ({DYNAMIC_NAMES[node.id]})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr"):
            if len(node.args) >= 2 and _constant_str(node.args[1]) is None:
                add(node, f"looks an attribute up by a computed name ({node.func.id})")
            if node.func.id != "getattr" and node.args and _library_paths(src.resolve(node.args[0])):
                add(node, f"patches {sorted(src.resolve(node.args[0]))[0]} ({node.func.id})")
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and _library_paths(src.resolve(target.value)):
                add(node, f"patches {sorted(src.resolve(target))[0]}")
    return found


def _library_paths(paths: set[str]) -> set[str]:
    """The paths among ``paths`` that name a library module or object (``torch``, ``F``, ``builtins``)."""
    return {p for p in paths if p.split(".")[0] in LIBRARIES}


def _patches(src: "_Source", stmt: ast.stmt) -> bool:
    """Does a statement rebind something inside a library (``torch.logsumexp = ...``, ``setattr(F, ...)``)?"""
    for node in ast.walk(stmt):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if any(isinstance(t, ast.Attribute) and _library_paths(src.resolve(t.value)) for t in targets):
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                and node.args and _library_paths(src.resolve(node.args[0]))):
            return True
    return False


def source_findings(rule: Rule, cells: list[str], always: Iterable[int] = ()) -> list[Finding]:
    """What breaks ``rule`` in the code reachable from its answers.

    ``cells`` are the notebook's cells in order (anything but code as ""); the statements that define the rule's
    ``names``, everything they refer to, and every statement of the cells in ``always`` (code the
    grader counts as part of this answer wherever it sits) are checked.
    """
    src = _Source(cells)
    found: list[Finding] = []
    for k in src.reachable(rule.names, always):
        cell, stmt = src.statements[k]
        found += _statement_findings(rule, src, cell, stmt)
    return sorted(set(found), key=lambda f: (f.cell, f.line, f.what))


# --- the run -------------------------------------------------------------------------------------------

# module namespaces as they were before any notebook code ran: a rule resolves its names here, so a
# notebook that rebinds ``F.conv2d`` does not change what the rule forbids
_PRISTINE: dict[str, dict] = {}
for _name in ("torch", "torch.nn", "torch.nn.functional", "torch.autograd", "torch.special", "torch.linalg",
              "torch.fft", "torch.distributions", "numpy", "numpy.random"):
    try:
        _PRISTINE[_name] = dict(vars(importlib.import_module(_name)))
    except ImportError:  # pragma: no cover - numpy and torch are dependencies
        pass
_PRISTINE["torch.Tensor"] = dict(vars(torch.Tensor))
_PRISTINE["torch.Tensor"].update({k: v for k, v in vars(torch._C.TensorBase).items() if k not in _PRISTINE["torch.Tensor"]})


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    if module in _PRISTINE and name in _PRISTINE[module]:
        return _PRISTINE[module][name]
    try:
        return importlib.import_module(path)
    except ImportError:
        pass
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def canonical_name(func) -> str:
    """The dotted name of a torch function, tensor method or operator, however it was reached."""
    if isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        qualified = func._schema.name if isinstance(func, torch._ops.OpOverload) else func._qualified_op_name
        return qualified.replace("::", ".")
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    owner = getattr(func, "__objclass__", None)
    if owner is torch._C.TensorBase or owner is torch.Tensor or qualname.startswith(("TensorBase.", "Tensor.")):
        return "torch.Tensor." + qualname.split(".", 1)[-1]
    if qualname.startswith("_VariableFunctionsClass."):
        return "torch." + qualname.split(".", 1)[1]
    module = getattr(func, "__module__", None) or ""
    return f"{module}.{qualname}" if module else qualname


def _parse_op(op: str) -> tuple[str, dict]:
    """``"aten.convolution(transposed=True)"`` -> ``("aten.convolution", {"transposed": True})``."""
    name, _, rest = op.partition("(")
    if not name.startswith("aten."):
        raise ValueError(f"an operator of a by-hand rule is written aten.<name>, got {op!r}")
    conditions = {}
    for part in filter(None, (p.strip() for p in rest.rstrip(")").split(","))):
        key, _, value = part.partition("=")
        conditions[key.strip()] = ast.literal_eval(value.strip())
    return name.strip(), conditions


def _argument(func, args, kwargs, name):
    for i, a in enumerate(func._schema.arguments):
        if a.name == name:
            return args[i] if i < len(args) else kwargs.get(name, a.default_value)
    return None


class _Ban:
    def __init__(self, rule: Rule):
        self.rule = rule
        self.violations: list[str] = []
        self.names = set()
        for entry in rule.forbidden_api:
            self.names.add(entry)
            obj = _resolve(entry)
            if obj is not None and callable(obj):
                self.names.add(canonical_name(obj))
        self.prefixes = tuple(e + "." for e in rule.forbidden_api)
        self.ops = [_parse_op(op) for op in rule.ops]
        self._cache: dict = {}

    def banned_api(self, func) -> str | None:
        try:
            name = self._cache[func]
        except (KeyError, TypeError):
            name = canonical_name(func)
            try:
                self._cache[func] = name
            except TypeError:
                pass
        if name in self.names or name.startswith(self.prefixes):
            return name
        return self.banned_op_name(name)

    def banned_op_name(self, name: str) -> str | None:
        for pattern, _ in self.ops:
            if fnmatch.fnmatchcase(name, pattern):
                return name
        return None

    def banned_op(self, func, args, kwargs) -> str | None:
        name = canonical_name(func)
        for pattern, conditions in self.ops:
            if fnmatch.fnmatchcase(name, pattern) and all(
                    _argument(func, args, kwargs, k) == v for k, v in conditions.items()):
                return name + "".join(f" with {k}={v!r}" for k, v in conditions.items())
        return None

    def refuse(self, what: str):
        self.violations.append(what)
        raise BannedCall(f"{self.rule.question}: {what} is not allowed here ({self.rule.text})")


class _BanFunctions(TorchFunctionMode):
    def __init__(self, ban: _Ban):
        super().__init__()
        self.ban = ban

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = self.ban.banned_api(func)
        if name is not None:
            self.ban.refuse(f"calling {name}")
        return func(*args, **(kwargs or {}))


class _BanOps(TorchDispatchMode):
    def __init__(self, ban: _Ban):
        super().__init__()
        self.ban = ban

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = self.ban.banned_op(func, args, kwargs)
        if name is not None:
            self.ban.refuse(f"the operator {name}")
        if not self.ban.rule.autograd and torch._C._current_graph_task_id() != -1:
            self.ban.refuse("running autograd's backward pass")
        return func(*args, **kwargs)


class _BanPython:
    """A profile hook for what no torch mode sees: forbidden Python functions, classes and modules
    outside torch (``course_utils.metrics``, ``sklearn.metrics``, ``torch.distributions``). C
    extension functions outside torch (NumPy's samplers) are caught in the source only."""

    def __init__(self, ban: _Ban):
        self.ban = ban
        self.codes: dict = {}
        self.prefixes: list[str] = []
        for entry in ban.rule.forbidden_api:
            if entry.startswith("torch.") and not entry.startswith("torch.distributions"):
                continue  # torch's functions, layers and operators: the two torch modes see them
            obj = _resolve(entry)
            if isinstance(obj, type(importlib)) or isinstance(obj, type):
                self.prefixes.append(obj.__name__ if isinstance(obj, type(importlib)) else f"{obj.__module__}.{obj.__qualname__}")
            elif hasattr(obj, "__code__"):
                self.codes[obj.__code__] = entry
            elif obj is None:
                self.prefixes.append(entry)

    @property
    def needed(self) -> bool:
        return bool(self.codes or self.prefixes)

    def __call__(self, frame, event, arg):
        hit = None
        if event == "call":
            code = frame.f_code
            hit = self.codes.get(code)
            if hit is None and self.prefixes:
                module = frame.f_globals.get("__name__", "")
                name = f"{module}.{code.co_qualname}"
                hit = next((p for p in self.prefixes if _matches(name, p) or _matches(module, p)), None)
        elif event == "c_call" and self.prefixes:
            owner = getattr(arg, "__self__", None)
            module = type(owner).__module__ if owner is not None and not isinstance(owner, type(importlib)) else getattr(arg, "__module__", None)
            name = f"{module}.{getattr(arg, '__qualname__', '')}"
            hit = next((p for p in self.prefixes if _matches(name, p)), None)
        if hit is not None:
            sys.setprofile(None)  # the refusal itself must not be profiled
            try:
                self.ban.refuse(f"calling {hit}")
            finally:
                sys.setprofile(self)


@dataclass
class enforced:
    """``with enforced(rule) as ban:`` refuses, while active, every call the rule forbids (raising
    :class:`BannedCall`) and records it in ``ban.violations``, even if the caller catches the error."""

    rule: Rule
    violations: list = field(default_factory=list)

    def __enter__(self):
        self._ban = _Ban(self.rule)
        self._ban.violations = self.violations
        self._modes = [_BanFunctions(self._ban), _BanOps(self._ban)]
        for mode in self._modes:
            mode.__enter__()
        self._python = _BanPython(self._ban)
        self._previous = sys.getprofile()
        if self._python.needed:
            sys.setprofile(self._python)
        return self

    def __exit__(self, *exc):
        if self._python.needed:
            sys.setprofile(self._previous)
        for mode in reversed(self._modes):
            mode.__exit__(None, None, None)
        return False


def guard(rule: Rule, fn: Callable, violations: list) -> Callable:
    """``fn`` wrapped so that each call runs under :class:`enforced`, collecting into ``violations``."""
    def guarded(*args, **kwargs):
        with enforced(rule, violations):
            return fn(*args, **kwargs)

    guarded.__wrapped__ = fn
    return guarded


def _kernel_history() -> list[str]:
    try:
        shell = get_ipython()  # noqa: F821 - defined inside IPython and Jupyter
    except NameError:
        return []
    return [s for s in shell.history_manager.input_hist_raw if s.strip()]


def check_rule(rule: dict, env: dict, public_tests: list) -> None:
    """The public test that ``grader.check`` runs for a by-hand question (``make assign`` adds it):
    the source check on the cells you ran, then the question's public tests with your answers
    running under :class:`enforced`."""
    rule = Rule.from_dict(rule)
    problems = [str(f) for f in source_findings(rule, _kernel_history())]
    violations: list[str] = []
    guarded = dict(env)
    for name in rule.names:
        if callable(env.get(name)) and not isinstance(env.get(name), type):
            guarded[name] = guard(rule, env[name], violations)
    for test in public_tests:
        try:
            test.call_func(guarded)
        except Exception:  # noqa: BLE001 - the public tests report their own failures
            pass
    problems += [f"{v} while the public tests ran" for v in violations]
    if problems:
        raise AssertionError(rule.message(problems))
