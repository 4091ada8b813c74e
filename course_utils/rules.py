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
  functions, what they call, the values they read, what fills the containers they read), resolved
  through the notebook's imports and plain assignments (``G = torch.nn.functional``), must not name
  a forbidden function, look names up dynamically (a computed ``getattr``, ``__import__``,
  ``importlib``, ``eval``/``exec``, ``torch.ops``, ...) or patch a library; and no cell may store a
  forbidden function where that analysis cannot follow it (:func:`stored_findings`:
  ``d['f'] = F.cross_entropy``, ``.append(F.cross_entropy)``, a default argument, ...);
* **the run** (:class:`enforced`): while the answer runs, a torch function mode and a dispatch mode
  refuse the forbidden functions and operators (however they were reached: a name bound before,
  ``torch.ops.aten``, a layer's ``forward``) and, for ``autograd: false``, any backward pass.

``grader.check`` runs both on your notebook (``make assign`` adds the check to the question's public
tests); the autograder runs the same two checks on the submitted notebook.

In-process enforcement can always be switched off by the code it watches, so the autograder also
scans every cell a student wrote for code that reaches into the grader, torch's mode machinery or
the interpreter (:func:`tamper_findings`: ``course_utils.rules``, ``torch._C``,
``_disable_current_modes``, threads and processes, ``sys.modules``, frames, ...) and flags the
notebook for a person to review, quoting the line.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import functools
import importlib
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Rule", "BannedCall", "Finding", "enforced", "guard", "source_findings", "stored_findings", "tamper_findings",
           "check_rule"]

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
    code: str = ""   # the line itself, stripped (at most about 100 characters)

    def __str__(self) -> str:
        where = f'line {self.line} of the cell that starts "{self.start}"' if self.start else f"line {self.line}"
        return f"{self.what} ({where})" + (f": {self.code}" if self.code else "")


# IPython magics that run the code they are given (it is analysed as if it stood in the cell), and
# magics that only change a setting or show help; any other magic or shell escape (``!ls``,
# ``%%bash``, ``%run``, ``%%writefile``) stays a call of ``get_ipython()``, which the scans report
CODE_MAGICS = {"time", "timeit", "capture"}
QUIET_MAGICS = {"matplotlib", "config", "precision", "xmode", "who", "whos", "pinfo", "pinfo2", "pdoc", "pdef"}
_TIMEIT_OPTIONS = re.compile(r"\s*(?:-[nrp]\s*\d+\s+|-[tcqo]\s+)*")


def _magic(node: ast.AST) -> tuple[str, str, str | None] | None:
    """``(name, line, body)`` of ``get_ipython().run_line_magic(name, line)`` or
    ``get_ipython().run_cell_magic(name, line, body)`` with constant arguments (what IPython makes of a magic)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run_line_magic", "run_cell_magic") and _is_call_to(node.func.value, "get_ipython")
            and not node.func.value.args and not node.keywords):
        return None
    args = [_constant_str(a) for a in node.args]
    if None in args or len(args) != (2 if node.func.attr == "run_line_magic" else 3):
        return None
    return args[0], args[1], (args[2] if len(args) == 3 else None)


def _magic_code(name: str, line: str, body: str | None, lineno: int) -> list[ast.stmt] | None:
    """The statements a code magic runs, numbered as the lines of the cell (``None``: not Python)."""
    statements = []
    setup = line[_TIMEIT_OPTIONS.match(line).end():] if name == "timeit" else ("" if body is not None else line)
    try:
        if setup.strip():
            tree = ast.parse(setup.strip())
            ast.increment_lineno(tree, lineno - 1)
            statements += tree.body
    except SyntaxError:
        return None
    if body is not None:
        tree = _parse_cell(body)
        if tree is None:
            return None
        ast.increment_lineno(tree, lineno)
        statements += tree.body
    return statements


class _Magics(ast.NodeTransformer):
    def visit_Expr(self, node):
        magic = _magic(node.value)
        if magic is not None and magic[0] in QUIET_MAGICS:
            return ast.copy_location(ast.Pass(), node)
        if magic is not None and magic[0] in CODE_MAGICS:
            statements = _magic_code(*magic, node.lineno)
            if statements is not None:
                return statements or ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node):  # ``x = %time f(x)``: the expression it times
        magic = _magic(node)
        if magic is not None and magic[0] in ("time", "timeit") and magic[2] is None:
            code = magic[1][_TIMEIT_OPTIONS.match(magic[1]).end():] if magic[0] == "timeit" else magic[1]
            try:
                expr = ast.parse(code.strip(), mode="eval").body
            except SyntaxError:
                return self.generic_visit(node)
            ast.increment_lineno(expr, node.lineno - 1)
            return expr
        return self.generic_visit(node)


class _TooDeep(Exception):
    """Code nested too deeply for the analysis (Python itself may still run it)."""


def _parse_cell(source: str) -> ast.Module | None:
    """The cell's code (``None``: not Python); raises :class:`_TooDeep`."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)  # magics become plain calls
    except Exception:  # noqa: BLE001 - without IPython, parse the cell as it is
        pass
    try:
        tree = ast.parse(source)
        return ast.fix_missing_locations(_Magics().visit(tree))
    except (SyntaxError, ValueError):
        return None
    except (RecursionError, MemoryError):
        raise _TooDeep from None


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


# --- scopes and plain aliases ---

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DISPLAYS = (ast.Tuple, ast.List, ast.Set)
# methods that change their object in place: a statement calling one on a module name helps define it
_MUTATORS = {"append", "extend", "insert", "update", "setdefault", "add", "appendleft", "extendleft",
             "add_module", "register_module", "register_buffer", "register_parameter", "__setitem__"}


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return list(args.defaults) + [d for d in args.kw_defaults if d is not None]


def _scope_nodes(roots: Iterable[ast.AST]):
    """Every node of the scope ``roots`` stand in, without the bodies of nested functions, lambdas
    and classes (their decorators, defaults and bases belong to it)."""
    todo = list(roots)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += node.decorator_list + _defaults(node.args)
        elif isinstance(node, ast.Lambda):
            todo += _defaults(node.args)
        elif isinstance(node, ast.ClassDef):
            todo += node.decorator_list + node.bases + [k.value for k in node.keywords]
        else:
            todo += ast.iter_child_nodes(node)


def _pairs(target: ast.AST, value: ast.AST):
    """``(name, value)`` for each plain name an assignment binds to a known expression
    (``a = b``, ``a, b = c, d``); an unpacking of anything else binds nothing known."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
          and len(target.elts) == len(value.elts) and not any(isinstance(x, ast.Starred) for x in target.elts + value.elts)):
        for t, v in zip(target.elts, value.elts):
            yield from _pairs(t, v)


def _assignments(nodes: Iterable[ast.AST]):
    """``(name, value)`` of the plain assignments among ``nodes``, the loops over a display included
    (``for f in (a, b)`` binds ``f`` to ``a`` and to ``b``)."""
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _pairs(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            yield from _pairs(node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.iter, _DISPLAYS):
            for element in node.iter.elts:
                yield from _pairs(node.target, element)


def _declared(nodes: list[ast.AST]) -> set[str]:
    return {n for node in nodes if isinstance(node, (ast.Global, ast.Nonlocal)) for n in node.names}


def _local_scope(fn: ast.AST) -> dict[str, list[ast.expr]]:
    """The names local to a function or lambda, each with the expressions plainly assigned to it."""
    args = fn.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs} | {a.arg for a in (args.vararg, args.kwarg) if a}
    own = list(_scope_nodes(fn.body if isinstance(fn.body, list) else [fn.body]))
    for node in own:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    scope: dict[str, list[ast.expr]] = {n: [] for n in names - _declared(own)}
    for name, value in _assignments(own):
        if name in scope:
            scope[name].append(value)
    return scope


def _module_bindings(tree: ast.Module):
    """``(name, value)`` of the plain assignments that bind module names: at the top level, and in
    a function for the names it declares ``global``."""
    yield from _assignments(_scope_nodes(tree.body))
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            own = list(_scope_nodes(fn.body))
            declared = {n for node in own if isinstance(node, ast.Global) for n in node.names}
            yield from ((n, v) for n, v in _assignments(own) if n in declared)


def _root(node: ast.AST) -> str | None:
    """The name an attribute or item chain starts from (``d`` for ``d['k'].x``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _code_like(node: ast.AST | None) -> bool:
    """May ``node`` evaluate to code (a function, a method, a module) rather than to data? Names,
    attributes, lambdas, ``partial(...)`` and containers of them may; a call's result, a number, a
    string may not (``losses.append(loss.item())`` stores data)."""
    if isinstance(node, (ast.Name, ast.Attribute, ast.Lambda, ast.Subscript)):
        return True
    if isinstance(node, (ast.Starred, ast.NamedExpr)):
        return _code_like(node.value)
    if isinstance(node, ast.IfExp):
        return _code_like(node.body) or _code_like(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(map(_code_like, node.values))
    if isinstance(node, _DISPLAYS):
        return any(map(_code_like, node.elts))
    if isinstance(node, ast.Dict):
        return any(map(_code_like, node.values))
    if isinstance(node, ast.Call):
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return callee in ("partial", "partialmethod", "staticmethod", "classmethod", "property", "getattr", "MethodType")
    return False


def _changed(nodes: Iterable[ast.AST]) -> set[str]:
    """Names whose object ``nodes`` change in place, storing code in it (``d[k] = f``, ``o.a = f``,
    ``lst.append(f)``, ``setattr(o, 'a', f)``)."""
    names = set()
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and _code_like(node.value):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for leaf in ast.walk(target):
                    if isinstance(leaf, (ast.Attribute, ast.Subscript)) and not isinstance(leaf.ctx, ast.Load):
                        names.add(_root(leaf))
        if isinstance(node, ast.Call) and any(_code_like(v) for v in node.args + [k.value for k in node.keywords]):
            if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
                names.add(_root(node.func.value))
            elif isinstance(node.func, ast.Name) and node.func.id == "setattr" and len(node.args) == 3 and _code_like(node.args[2]):
                names.add(_root(node.args[0]))
    return names - {None}


def _mutated_names(stmt: ast.stmt) -> set[str]:
    """Module names whose object a top-level statement changes in place, in its own code or in a
    function it defines (less the names that function binds itself)."""
    names = _changed(_scope_nodes([stmt]))
    for fn in ast.walk(stmt):
        if isinstance(fn, _FUNCTIONS):
            local = _local_scope(fn)
            names |= _changed(_scope_nodes(fn.body if isinstance(fn.body, list) else [fn.body])) - set(local)
    return names


def _declared_global(stmt: ast.stmt) -> set[str]:
    return {n for node in ast.walk(stmt) if isinstance(node, ast.Global) for n in node.names}


@dataclass(frozen=True)
class _Cell:
    """What one cell's source gives, computed once per distinct source (the trees are never changed)."""

    tree: ast.Module
    imports: tuple        # (name, dotted path) of every import
    bindings: tuple       # (name, value) of the plain assignments binding module names
    statements: tuple     # (statement, names it binds, names whose object it changes, names it reads)
    writes: frozenset     # indexes of the statements that write an attribute (they may patch a library)


_DEEP = "too deep"  # what _cell gives for a cell nested too deeply to analyse


@functools.lru_cache(maxsize=2048)
def _cell(source: str) -> _Cell | str | None:
    try:
        return _analyse_cell(source)
    except (_TooDeep, RecursionError):
        return _DEEP


def _analyse_cell(source: str) -> _Cell | None:
    tree = _parse_cell(source)
    if tree is None:
        return None
    imports = []
    # code kept in strings (for timeit, exec, a file to import) counts too
    texts = [t for t in (_text_tree(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                         and len(n.value) < 100_000) if t is not None]
    for node in (n for t in [tree, *texts] for n in ast.walk(t)):
        if isinstance(node, ast.Import):
            for a in node.names:
                imports.append((a.asname, a.name) if a.asname else (a.name.split(".")[0],) * 2)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports += [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names]
    statements = tuple((stmt, frozenset(_bound_names(stmt) | _declared_global(stmt)), frozenset(_mutated_names(stmt)),
                        frozenset(_free_names(stmt))) for stmt in tree.body)
    writes = frozenset(k for k, stmt in enumerate(tree.body) if any(
        isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) or _is_call_to(n, "setattr") or _is_call_to(n, "delattr")
        for n in ast.walk(stmt)))
    return _Cell(tree, tuple(imports), tuple(_module_bindings(tree)), statements, writes)


class _Source:
    """The parsed cells of a notebook: import aliases, plain assignment aliases (``G = F``), and the
    top-level statements binding or changing each name."""

    def __init__(self, cells: list[str]):
        self.statements: list[tuple[int, ast.stmt]] = []
        self.trees: dict[int, ast.Module] = {}
        self.aliases: dict[str, set[str]] = {}
        self.assigned: dict[str, list[ast.expr]] = {}
        self.defines: dict[str, list[int]] = {}
        self.changes: dict[str, list[int]] = {}
        self.reads: list[frozenset] = []
        self.writes: set[int] = set()  # statements that write an attribute
        self.deep: set[int] = set()    # cells nested too deeply to analyse
        self.lines = {i: src.splitlines() for i, src in enumerate(cells)}
        self.first_lines = {i: next((line.strip() for line in src.splitlines() if line.strip()), "")[:70]
                            for i, src in enumerate(cells)}
        for i, src in enumerate(cells):
            cell = _cell(src) if src.strip() else None
            if cell is _DEEP:
                self.deep.add(i)
            if not isinstance(cell, _Cell):
                continue
            self.trees[i] = cell.tree
            for name, path in cell.imports:
                self.aliases.setdefault(name, set()).add(_canonical(path))
            for name, value in cell.bindings:
                self.assigned.setdefault(name, []).append(value)
            for j, (stmt, binds, changes, reads) in enumerate(cell.statements):
                k = len(self.statements)
                if j in cell.writes:
                    self.writes.add(k)
                self.statements.append((i, stmt))
                self.reads.append(reads)
                for name in binds:
                    self.defines.setdefault(name, []).append(k)
                for name in changes:
                    self.changes.setdefault(name, []).append(k)
        self._following: set = set()

    def code_line(self, cell: int, line: int) -> str:
        lines = self.lines.get(cell, [])
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return text if len(text) <= 100 else text[:97] + "..."

    def finding(self, cell: int, line: int, what: str) -> Finding:
        return Finding(cell, line, what, self.first_lines.get(cell, ""), self.code_line(cell, line))

    def current(self, name: str) -> list[int]:
        """The statements that give ``name`` the value it has once every cell has run: from its last
        complete definition (a ``def``, a ``class``, an import, or an assignment that does not read the
        name) on, and every statement that changes its object in place. An earlier definition that a
        later one replaced (a first attempt left in the notebook) is not part of the answer."""
        binds = self.defines.get(name, [])
        start = 0
        for n, k in enumerate(binds):
            if _replaces(self.statements[k][1], name, self.reads[k]):
                start = n
        return binds[start:] + self.changes.get(name, [])

    def reachable(self, names: Iterable[str], cells: Iterable[int]) -> list[int]:
        """Statements defining ``names`` (as they stand at the end: :meth:`current`) or sitting in
        ``cells``, and everything they refer to (a name leads to the statements that give it its final
        value and to those that change its object in place)."""
        cells = set(cells)
        # a statement that patches a library changes every answer, wherever it sits
        todo = [k for k, (i, stmt) in enumerate(self.statements) if i in cells or k in self.writes and _patches(self, stmt)]
        for name in names:
            todo += self.current(name)
        seen: set[int] = set()
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            for name in self.reads[k]:
                todo += self.current(name)
        return sorted(seen)

    def resolve(self, node: ast.AST, scopes: tuple = ()) -> set[str]:
        """The dotted library paths an expression may stand for (empty when it is not a library name),
        through imports and plain assignments (``G = torch.nn.functional``, ``ce = G.cross_entropy``).
        ``scopes``: the local names of the functions the expression sits in, innermost last."""
        if isinstance(node, ast.Name):
            for depth in range(len(scopes) - 1, -1, -1):
                if node.id in scopes[depth]:
                    return self._follow((id(scopes[depth]), node.id), scopes[depth][node.id], scopes[:depth + 1])
            paths = set(self.aliases.get(node.id, ()))
            if node.id in self.assigned:
                paths |= self._follow((None, node.id), self.assigned[node.id], ())
            if paths or node.id in self.defines or node.id in self.assigned:
                return paths
            return {DEFAULT_ALIASES[node.id]} if node.id in DEFAULT_ALIASES else set()
        if isinstance(node, ast.Attribute):
            return {_canonical(f"{base}.{node.attr}") for base in self.resolve(node.value, scopes)}
        if _is_call_to(node, "getattr") and len(node.args) >= 2 and _constant_str(node.args[1]) is not None:
            return {_canonical(f"{base}.{node.args[1].value}") for base in self.resolve(node.args[0], scopes)}
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body, scopes) | self.resolve(node.orelse, scopes)
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.resolve(v, scopes) for v in node.values))
        if isinstance(node, ast.NamedExpr):
            return self.resolve(node.value, scopes)
        return set()

    def _follow(self, key, values: list, scopes: tuple) -> set[str]:
        if key in self._following:  # a = b; b = a
            return set()
        self._following.add(key)
        try:
            return set().union(*(self.resolve(v, scopes) for v in values))
        finally:
            self._following.discard(key)

    def rebound(self, name: str, scopes: tuple = ()) -> bool:
        """Is ``name`` bound by anything but an import (so it may not be what was imported)?"""
        return (name in self.assigned or any(name in scope for scope in scopes)
                or any(not isinstance(self.statements[k][1], (ast.Import, ast.ImportFrom)) for k in self.defines.get(name, ())))

    def builtin(self, name: str, scopes: tuple = ()) -> bool:
        """May ``name`` here be the builtin of that name? Not when it is a local name (a parameter, a
        local function), a function or class of the notebook, an import from elsewhere or a variable
        holding data; a name assigned a name (``exec = exec``, ``g = G``) may still be it."""
        if any(name in scope for scope in scopes):
            return False
        if name in self.aliases:
            return any(_matches(p, "builtins") for p in self.aliases[name])
        if any(_code_like(v) for v in self.assigned.get(name, ())):
            return True
        return name not in self.defines


def _replaces(stmt: ast.stmt, name: str, reads) -> bool:
    """Does a top-level statement give ``name`` a whole new value, whatever it held before?"""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name == name and not any(name in _free_names(d) for d in stmt.decorator_list)
    if name in reads:
        return False  # ``f = wrap(f)`` builds on the definition before it
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    if isinstance(stmt, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        return isinstance(stmt.target, ast.Name) and stmt.target.id == name and stmt.value is not None
    return False


def _canonical(path: str) -> str:
    """A library path as the library exports it: a module's own import of another module is that
    module (``torch.nn.functional.torch.log_softmax`` is ``torch.log_softmax``,
    ``torch.nn.modules.loss.F`` is ``torch.nn.functional``), and a layer of ``torch.nn.modules.*`` is ``torch.nn``'s."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in ("torch", "numpy"):
            return _canonical(".".join(parts[i:]))
        if parts[i] == "np" or (parts[i] == "F" and parts[0] == "torch"):
            return _canonical(".".join(["numpy" if parts[i] == "np" else "torch.nn.functional"] + parts[i + 1:]))
    if parts[:3] == ["torch", "nn", "modules"] and len(parts) >= 5 and parts[4][:1].isupper():
        return ".".join(["torch", "nn"] + parts[4:])
    return path


def _is_call(parent: ast.AST | None, node: ast.AST) -> bool:
    """Is ``node`` what ``parent`` calls?"""
    return isinstance(parent, ast.Call) and parent.func is node


def _is_call_to(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _constant_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _matches(path: str, entry: str) -> bool:
    return path == entry or path.startswith(entry + ".")


def _statement_findings(rule: Rule, src: _Source, cell: int, stmt: ast.stmt) -> list[Finding]:
    walk = _Uses(src, cell, rule)
    walk.visit(stmt)
    return walk.items


def _library_paths(paths: set[str]) -> set[str]:
    """The paths among ``paths`` that name a library module or object (``torch``, ``F``, ``builtins``)."""
    return {p for p in paths if p.split(".")[0] in LIBRARIES}


def _patches(src: "_Source", stmt: ast.stmt) -> bool:
    """Does a statement rebind something inside a library (``torch.logsumexp = ...``, ``setattr(F, ...)``)?"""
    walk = _Uses(src, -1, None)
    try:
        walk.visit(stmt)
    except RecursionError:  # nested too deeply to analyse: tamper_findings flags it
        pass
    return walk.patched


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
        try:
            found += _statement_findings(rule, src, cell, stmt)
        except RecursionError:  # nested too deeply to analyse: tamper_findings flags it
            pass
    return _sorted(found)


def _sorted(found: Iterable[Finding]) -> list[Finding]:
    return sorted(set(found), key=lambda f: (f.cell, f.line, f.what))


# --- a walk of one cell that knows the local names of the functions it is in ---

# libraries that run code given as text (``timeit.timeit("f(x)")``): the walks read that code too
CODE_RUNNERS = ("timeit", "torch.utils.benchmark")


@functools.lru_cache(maxsize=4096)
def _text_tree(text: str) -> ast.Module | None:
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    # only code that does something: a lone name or attribute (``"eval"``, ``"sys.modules"``) is just text
    if all(isinstance(s, ast.Expr) and isinstance(s.value, (ast.Name, ast.Attribute, ast.Constant)) for s in tree.body):
        return None
    return tree


def _code_in_text(text: str, line: int = 0) -> ast.Module | None:
    """A string's text parsed as code, every node numbered ``line`` (``None``: not code)."""
    tree = _text_tree(text) if len(text) < 100_000 else None
    if tree is None:
        return None
    try:
        tree = copy.deepcopy(tree)
    except RecursionError:
        return None
    for child in ast.walk(tree):
        if "lineno" in child._attributes:
            child.lineno = child.end_lineno = line
    return tree


class _Walk(ast.NodeVisitor):
    def __init__(self, src: _Source, cell: int):
        self.src, self.cell = src, cell
        self.scopes: tuple = ()
        self.in_class = False  # directly in a class body (not in one of its methods)
        self.found: dict = {}

    def paths(self, node: ast.AST) -> set[str]:
        return self.src.resolve(node, self.scopes)

    def add(self, node: ast.AST, what: str, key: str | None = None) -> None:
        line = getattr(node, "lineno", 0)
        self.found.setdefault((line, key or what), self.src.finding(self.cell, line, what))

    # hooks: a function, lambda or class seen from outside (its defaults, decorators, bases), and a
    # function, lambda or comprehension from inside (its own names in scope)
    def enter(self, node) -> None:
        pass

    def inside(self, node) -> None:
        pass

    def _function(self, node, body: list) -> None:
        self.enter(node)
        for d in getattr(node, "decorator_list", []):
            self.visit(d)
        self.visit(node.args)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        outer = (self.scopes, self.in_class)
        self.scopes, self.in_class = self.scopes + (_local_scope(node),), False
        self.inside(node)
        for stmt in body:
            self.visit(stmt)
        self.scopes, self.in_class = outer

    def visit_FunctionDef(self, node):
        self._function(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._function(node, [node.body])

    def code_arguments(self, node: ast.Call) -> list[ast.expr]:
        """The arguments of a call of :data:`CODE_RUNNERS` that may hold code as text."""
        if not any(_matches(p, r) for p in self.paths(node.func) for r in CODE_RUNNERS):
            return []
        return node.args[:2] + [k.value for k in node.keywords if k.arg in ("stmt", "setup", "global_setup")]

    def visit_code(self, node: ast.Call) -> None:
        """Walks the code a call runs from text, numbered as the call's line."""
        for arg in self.code_arguments(node):
            texts = ([arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                     else [v.value for v in self.src.assigned.get(arg.id, ()) if isinstance(v, ast.Constant) and isinstance(v.value, str)]
                     if isinstance(arg, ast.Name) else None)
            for text in texts or ():
                self.visit_text(text, arg.lineno)

    def visit_text(self, text: str, line: int) -> None:
        """Walks code held in a string, numbered as the string's line."""
        tree = _code_in_text(text, line)
        if tree is not None:
            self.adopt(tree)
            for stmt in tree.body:
                self.visit(stmt)

    def adopt(self, tree: ast.Module) -> None:
        pass

    def visit_ClassDef(self, node):
        self.enter(node)
        for child in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(child)
        outer, self.in_class = self.in_class, True
        for stmt in node.body:
            self.visit(stmt)
        self.in_class = outer

    def _comprehension(self, node):
        scope: dict[str, list] = {}
        for gen in node.generators:
            for leaf in ast.walk(gen.target):
                if isinstance(leaf, ast.Name):
                    scope.setdefault(leaf.id, [])
            if isinstance(gen.iter, _DISPLAYS):
                for element in gen.iter.elts:
                    for name, value in _pairs(gen.target, element):
                        scope[name].append(value)
        outer = self.scopes
        self.scopes = self.scopes + (scope,)
        self.inside(node)
        self.generic_visit(node)
        self.scopes = outer

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def result(self) -> list[Finding]:
        return list(self.found.values())


class _Uses(_Walk):
    """The source check of one statement (see :func:`source_findings`); without a rule, it only
    notes whether the statement patches a library."""

    def __init__(self, src: _Source, cell: int, rule: Rule | None):
        super().__init__(src, cell)
        self.forbid = rule.forbidden_api if rule else ()
        self.methods = {e.rsplit(".", 1)[1] for e in self.forbid if e.startswith("torch.Tensor.")}
        self.op_names = [_parse_op(op)[0].split(".", 1)[1] for op in rule.ops] if rule else []
        self.items: list[Finding] = []
        self.patched = False
        self.called: set[ast.AST] = set()  # the functions of the calls seen

    def visit(self, node):
        self.check(node)
        return super().visit(node)

    def add(self, node, what, key=None):
        self.items.append(self.src.finding(self.cell, getattr(node, "lineno", 0), what))

    def patch(self, node, path: str) -> None:
        self.patched = True
        if self.cell >= 0:
            self.add(node, f"patches {path}")

    def check(self, node) -> None:
        if self.forbid or self.op_names:
            self.uses(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "delattr"):
            if len(node.args) >= 2 and _constant_str(node.args[1]) is None and self.cell >= 0:
                self.add(node, f"looks an attribute up by a computed name ({node.func.id})")
            if node.func.id != "getattr" and node.args and _library_paths(self.paths(node.args[0])):
                self.patch(node, f"{sorted(self.paths(node.args[0]))[0]} ({node.func.id})")
        if isinstance(node, ast.Call):
            self.called.add(node.func)
        elif (isinstance(node, ast.Name) and node.id in ATTRIBUTE_BUILTINS and isinstance(node.ctx, ast.Load)
              and node not in self.called and self.cell >= 0 and self.src.builtin(node.id, self.scopes)):
            self.add(node, f"looks attributes up by computed names ({node.id} used as a value)")
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and _library_paths(self.paths(target.value)):
                self.patch(node, sorted(self.paths(target))[0])

    def uses(self, node) -> None:
        if isinstance(node, (ast.Name, ast.Attribute)) or _is_call_to(node, "getattr"):
            paths = self.paths(node)
            hits = sorted({p for p in paths for e in self.forbid if _matches(p, e)})
            if hits:
                self.add(node, f"uses {hits[0]}")
            dynamic = sorted(d for d in DYNAMIC_PATHS for p in paths if _matches(p, d))
            if dynamic and not hits:
                self.add(node, f"reaches code dynamically through {dynamic[0]}")
        if isinstance(node, ast.Attribute):
            if node.attr in self.methods and not self.paths(node.value):
                self.add(node, f"calls the tensor method .{node.attr}()")
            elif any(fnmatch.fnmatchcase(node.attr, name) for name in self.op_names):
                self.add(node, f"names the operator {node.attr}")
            if node.attr in DYNAMIC_ATTRS:
                self.add(node, f"reaches code dynamically through .{node.attr}")
        if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES and self.src.builtin(node.id, self.scopes):
            self.add(node, f"runs or looks up code dynamically ({DYNAMIC_NAMES[node.id]})")


# --- stored forbidden functions --------------------------------------------------------------------------


class _Stored(_Walk):
    """Finds where a forbidden function, or the module holding it, is put somewhere the source
    check cannot follow (see :func:`stored_findings`)."""

    # calls that only look at a value: passing the forbidden function to them stores nothing
    LOOKS = {"print", "repr", "str", "id", "type", "isinstance", "issubclass", "callable", "hasattr", "help", "len", "bool"}

    def __init__(self, src: _Source, cell: int, rule: Rule):
        super().__init__(src, cell)
        self.forbid = rule.forbidden_api
        self.methods = {e.rsplit(".", 1)[1] for e in self.forbid if e.startswith("torch.Tensor.")}
        # the module (or class) that directly holds a forbidden function; any tensor holds the tensor
        # methods, so their class is not one
        self.holders: dict[str, str] = {}
        for e in self.forbid:
            if "." in e and not e.startswith("torch.Tensor."):
                self.holders.setdefault(e.rsplit(".", 1)[0], e)
        self.followed: set[ast.AST] = set()  # displays unpacked into plain names (aliases, followed)

    def held(self, node: ast.AST):
        """``(node, description)`` when evaluating ``node`` may give a forbidden function or its module."""
        if isinstance(node, ast.IfExp):
            return self.held(node.body) or self.held(node.orelse)
        if isinstance(node, (ast.NamedExpr, ast.Starred, ast.Await)):
            return self.held(node.value)
        parts = (node.values if isinstance(node, ast.BoolOp) else node.elts if isinstance(node, _DISPLAYS)
                 else [k for k in node.keys if k is not None] + node.values if isinstance(node, ast.Dict)
                 else [node.elt] if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp))
                 else [node.key, node.value] if isinstance(node, ast.DictComp)
                 else [node.body] if isinstance(node, ast.Lambda) else None)
        if parts is not None:
            return next(filter(None, (self.held(p) for p in parts)), None)
        if isinstance(node, (ast.Name, ast.Attribute)) or _is_call_to(node, "getattr"):
            for path in sorted(self.paths(node)):
                if any(_matches(path, e) for e in self.forbid):
                    return node, path
                if path in self.holders:
                    return node, f"{path} (which holds {self.holders[path]})"
            if isinstance(node, ast.Attribute) and node.attr in self.methods and not self.paths(node.value):
                return node, f"the tensor method .{node.attr}"
        return None

    def store(self, value: ast.AST | None, how: str) -> None:
        hit = self.held(value) if value is not None else None
        if hit is not None:
            node, what = hit
            self.add(node, f"stores {what} {how}", key=what)

    def _unpack(self, target: ast.AST, value: ast.AST) -> None:
        """An assignment of ``value`` to ``target``: plain names follow it (class attributes excepted),
        items and attributes store it."""
        if (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                and len(target.elts) == len(value.elts) and not any(isinstance(x, ast.Starred) for x in target.elts + value.elts)):
            self.followed.add(value)
            for t, v in zip(target.elts, value.elts):
                self._unpack(t, v)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self._unpack(t.value if isinstance(t, ast.Starred) else t, value)
        elif isinstance(target, ast.Name):  # a plain name: an alias the source check follows
            if self.in_class:
                self.store(value, "as a class attribute")
        elif isinstance(target, ast.Subscript):
            self.store(value, "in an item (x[...] = ...)")
            self.store(target.slice, "as an item's key")
        elif isinstance(target, ast.Attribute):
            self.store(value, f"in an attribute (.{target.attr} = ...)")
        elif isinstance(target, ast.Starred):
            self._unpack(target.value, value)

    def visit_Assign(self, node):
        for target in node.targets:
            self._unpack(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self._unpack(node.target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self.store(node.value, "by augmented assignment")
        self.generic_visit(node)

    def visit_NamedExpr(self, node):
        self.store(node.value, "with := (a walrus)")
        self.generic_visit(node)

    def _loop(self, target: ast.AST, iterable: ast.AST) -> None:
        if isinstance(iterable, _DISPLAYS):  # ``for f in (a, b)``: f is a plain alias of a and b
            self.followed.add(iterable)
            for element in iterable.elts:
                self._unpack(target, element)
        else:
            self.store(iterable, "in a loop's iterable")

    def visit_For(self, node):
        self._loop(node.target, node.iter)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def visit_comprehension(self, node):
        self._loop(node.target, node.iter)
        self.generic_visit(node)

    def _display(self, node):
        if node not in self.followed and not isinstance(getattr(node, "ctx", ast.Load()), ast.Store):
            for element in (node.elts if isinstance(node, _DISPLAYS) else [k for k in node.keys if k is not None] + node.values):
                self.store(element, "as a container element")
        self.generic_visit(node)

    visit_Tuple = visit_List = visit_Set = visit_Dict = _display

    def _consumes(self, func: ast.AST) -> bool:
        """Does calling ``func`` only use its arguments: a builtin that looks at a value, or one of
        the course's own helpers (``fit(net, data, loss_fn=F.cross_entropy)``), as imported?"""
        root = _root(func) if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if root is None or self.src.rebound(root, self.scopes):
            return False
        if isinstance(func, ast.Name) and func.id in self.LOOKS and self.src.builtin(func.id, self.scopes):
            return True
        paths = self.paths(func)
        return bool(paths) and all(p.startswith("course_utils.") and _tamper_path(p) is None for p in paths)

    def visit_Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        attribute = name in ("getattr", "hasattr") and len(node.args) >= 2 and _constant_str(node.args[1]) is not None
        if not self._consumes(node.func):
            callee = ast.unparse(node.func)
            callee = callee if len(callee) <= 40 else "..." + callee[-37:]
            for k, arg in enumerate(node.args):
                if not (attribute and k == 0):
                    self.store(arg, f"as an argument of {callee}()")
            for keyword in node.keywords:
                self.store(keyword.value, f"as an argument of {callee}()")
        self.generic_visit(node)
        self.visit_code(node)

    def visit_Return(self, node):
        self.store(node.value, "as a return value")
        self.generic_visit(node)

    def visit_Yield(self, node):
        self.store(node.value, "as a yielded value")
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield

    def enter(self, node):
        # a class's bases are not stores: a class the answer uses is followed by the source check (a
        # subclass of a forbidden class counts there), and one it does not use costs nothing
        if not isinstance(node, ast.ClassDef):
            for default in _defaults(node.args):
                self.store(default, "as a default argument")
        for decorator in getattr(node, "decorator_list", []):
            self.store(decorator, "as a decorator")

    def inside(self, node):
        if isinstance(node, ast.Lambda):
            self.store(node.body, "as a lambda's return value")
        elif isinstance(node, ast.DictComp):
            self.store(node.key, "in a dict comprehension")
            self.store(node.value, "in a dict comprehension")
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            self.store(node.elt, "in a comprehension")


def stored_findings(rule: Rule, cells: list[str]) -> list[Finding]:
    """Every place, in any cell, that stores a function ``rule`` forbids (or the module or class
    that directly holds one: ``torch.nn.functional`` for ``F.cross_entropy``, ``torch`` for
    ``torch.log_softmax``) where the source check cannot follow it: a container element, an item or
    attribute assignment, an argument of a call (``.append(F.cross_entropy)``, ``setattr(o, 'f', F)``,
    ``functools.partial(...)``, ``map(...)``), a default argument, a decorator, a class attribute, a
    loop's iterable, a lambda's or a function's return value, a walrus, an augmented assignment.

    Not findings: imports and plain assignments to names (``G = F``, ``ce = F.cross_entropy``,
    ``for f in (a, F.cross_entropy)``), which the source check follows, and calls
    (``F.cross_entropy(x, y)``), wherever they stand: a first attempt left in the notebook is no evasion.
    """
    src = _Source(cells)
    found: list[Finding] = []
    for cell, tree in src.trees.items():
        walk = _Stored(src, cell, rule)
        try:
            walk.visit(tree)
        except RecursionError:  # nested too deeply to analyse: tamper_findings flags it
            pass
        found += walk.result()
    return _sorted(found)


# --- tampering: code that reaches into the grader, torch's mode machinery or the interpreter ---------------

GRADER = "reaches into the grader"
MODES = "reaches into torch's mode machinery"
HOOKS = "reaches into PyTorch's call hooks"
TORCH_PRIVATE = "uses torch's private internals"
INTERPRETER = "reaches into the interpreter"
DYNAMIC = "looks code up or runs it dynamically"
THREADS = "runs code in another thread or process"
SIGNALS = "sends signals or uses raw file descriptors"
SOCKETS = "opens sockets"
IPYTHON = "runs an IPython magic or changes IPython"
PATCH = "replaces a library attribute"
PROCESS = "reads process internals"

# what a notebook may name although a prefix below covers it
ALLOWED_PATHS = ("otter", "otter.Notebook", "IPython", "IPython.display")
# library paths (a path matches itself and what it holds; * is a wildcard), first match wins
TAMPER_PATHS = (
    ("course_utils.rules", GRADER), ("course_utils.testing", GRADER), ("course_tools", GRADER), ("otter", GRADER),
    ("torch._C", MODES), ("torch.overrides", MODES), ("torch.utils._python_dispatch", MODES), ("torch.ops", MODES),
    ("torch.library", MODES), ("torch.nn.modules.module", HOOKS), ("torch.utils.hooks", HOOKS),
    ("builtins", INTERPRETER), ("inspect", INTERPRETER), ("gc", INTERPRETER), ("ctypes", INTERPRETER),
    ("cffi", INTERPRETER), ("sys.modules", INTERPRETER), ("sys._*", INTERPRETER), ("sys.settrace", INTERPRETER),
    ("sys.setprofile", INTERPRETER), ("sys.addaudithook", INTERPRETER), ("sys.monitoring", INTERPRETER),
    ("sys.meta_path", INTERPRETER), ("sys.path_hooks", INTERPRETER), ("sys.path_importer_cache", INTERPRETER),
    ("types.FunctionType", INTERPRETER), ("types.CodeType", INTERPRETER), ("types.FrameType", INTERPRETER),
    ("cProfile", INTERPRETER), ("profile", INTERPRETER), ("trace", INTERPRETER), ("pdb", INTERPRETER),
    ("bdb", INTERPRETER), ("traceback.walk_*", INTERPRETER), ("__main__", INTERPRETER),
    ("importlib", DYNAMIC), ("runpy", DYNAMIC), ("code", DYNAMIC), ("codeop", DYNAMIC), ("zipimport", DYNAMIC),
    ("operator.attrgetter", DYNAMIC), ("operator.methodcaller", DYNAMIC), ("pickle.load", DYNAMIC),
    ("pickle.loads", DYNAMIC), ("pickle.Unpickler", DYNAMIC), ("_pickle", DYNAMIC), ("marshal", DYNAMIC),
    ("dill", DYNAMIC), ("cloudpickle", DYNAMIC), ("shelve", DYNAMIC), ("copyreg", DYNAMIC), ("torch.jit", DYNAMIC),
    ("torch.compile", DYNAMIC), ("torch.package", DYNAMIC), ("torch.utils.cpp_extension", DYNAMIC), ("doctest", DYNAMIC),
    ("numba", DYNAMIC), ("pyximport", DYNAMIC), ("Cython", DYNAMIC), ("pip", DYNAMIC), ("ensurepip", DYNAMIC),
    ("threading", THREADS), ("_thread", THREADS), ("concurrent", THREADS), ("multiprocessing", THREADS),
    ("subprocess", THREADS), ("pty", THREADS), ("asyncio", THREADS), ("joblib", THREADS),
    ("torch.multiprocessing", THREADS), ("torch.distributed", THREADS), ("nbclient", THREADS),
    ("jupyter_client", THREADS), ("papermill", THREADS), ("os.fork", THREADS), ("os.forkpty", THREADS),
    ("os.posix_spawn*", THREADS), ("os.system", THREADS), ("os.popen", THREADS), ("os.exec*", THREADS),
    ("os.spawn*", THREADS), ("os.register_at_fork", THREADS),
    ("signal", SIGNALS), ("os.kill", SIGNALS), ("os.killpg", SIGNALS), ("os.write", SIGNALS), ("os.read", SIGNALS),
    ("os.pread", SIGNALS), ("os.pwrite", SIGNALS), ("os.readv", SIGNALS), ("os.writev", SIGNALS),
    ("os.dup", SIGNALS), ("os.dup2", SIGNALS), ("os.fdopen", SIGNALS), ("os.open", SIGNALS), ("os.openpty", SIGNALS),
    ("os.pipe", SIGNALS), ("os.pipe2", SIGNALS), ("os.sendfile", SIGNALS), ("os.pidfd_open", SIGNALS),
    ("os.memfd_create", SIGNALS), ("fcntl", SIGNALS),
    ("socket", SOCKETS), ("socketserver", SOCKETS), ("select", SOCKETS), ("selectors", SOCKETS),
    ("IPython", IPYTHON), ("ipykernel", IPYTHON),
)
# attribute names that mean the same whatever object they are read from
MODE_ATTRS = {"DisableTorchFunction", "DisableTorchFunctionSubclass", "_disable_current_modes", "_push_mode",
              "_pop_mode", "_pop_mode_temporarily", "_set_torch_function_mode", "_C", "_python_dispatch",
              "TorchFunctionMode", "TorchDispatchMode", "BaseTorchFunctionMode", "__torch_function__", "__torch_dispatch__"}
_MODE_ATTR = re.compile(r"_\w*(torch_function|torch_dispatch|dispatch_mode|dispatch_stack|function_mode|mode_stack|current_modes)\w*")
HOOK_ATTRS = {"_compiled_call_impl", "_call_impl", "_wrapped_call_impl", "_slow_forward", "_forward_hooks",
              "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
              "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "register_forward_hook",
              "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook",
              "register_backward_hook"}
_HOOK_ATTR = re.compile(r"_global_\w+|register_module_\w+")
FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "f_code", "f_builtins", "f_trace", "tb_frame", "tb_next", "gi_frame",
               "cr_frame", "ag_frame", "gi_code", "cr_code", "_getframe", "_current_frames", "settrace", "setprofile",
               "addaudithook"}
IPYTHON_ATTRS = {"input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                 "ast_transformers", "user_ns", "user_global_ns"}
# dunder attributes honest code reads (nothing else: ``x.__dict__``, ``f.__code__``, ``obj.__class__ = ...``,
# ``type(x).__call__``); ``super().__init__`` and ``x.__class__.__name__`` are allowed where they stand
DUNDERS_READ = {"__name__", "__qualname__", "__doc__", "__version__"}
DUNDER_NAMES = {"__name__", "__doc__", "__file__", "__debug__"}
# builtins that run code from a string or look names up
DYNAMIC_BUILTINS = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars", "breakpoint", "get_ipython"}
# library settings honest code sets by assignment (``torch.backends.cudnn.benchmark = True``)
SETTINGS = ("torch.backends", "pandas.options")
# text in a string constant that only tampering needs
TAMPER_TEXT = {"/proc": PROCESS, "/dev/fd": PROCESS, "/dev/mem": PROCESS, "ptrace": SIGNALS,
               "course_tools": GRADER, "course_utils.rules": GRADER, "course_utils.testing": GRADER,
               "_python_dispatch": MODES, "DisableTorchFunction": MODES, "_disable_current_modes": MODES}
GRADER_METHODS = ("check", "check_all", "export")
ATTRIBUTE_BUILTINS = {"getattr", "setattr", "delattr"}
STRING_METHODS = {"join", "format", "replace", "decode", "encode", "strip", "lower", "upper", "translate", "format_map"}


def _tamper_path(path: str) -> str | None:
    if path in ALLOWED_PATHS or _matches(path, "IPython.display"):
        return None
    for prefix, what in TAMPER_PATHS:
        if fnmatch.fnmatchcase(path, prefix) or fnmatch.fnmatchcase(path, prefix + ".*"):
            return what
    parts = path.split(".")
    if parts[0] == "torch" and any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts[1:]):
        return TORCH_PRIVATE
    return None


def _tamper_attr(attr: str) -> str | None:
    if attr in MODE_ATTRS or _MODE_ATTR.fullmatch(attr):
        return MODES
    if attr in HOOK_ATTRS or _HOOK_ATTR.fullmatch(attr):
        return HOOKS
    if attr in FRAME_ATTRS:
        return INTERPRETER
    if attr in IPYTHON_ATTRS:
        return IPYTHON
    if attr == "ptrace":
        return SIGNALS
    return None


@functools.lru_cache(maxsize=None)
def _installed(name: str) -> bool:
    """Is ``name`` a module of the standard library or an installed package (found without running any of its code)?"""
    if name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return True
    try:
        import importlib.util

        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Tamper(_Walk):
    """Finds code that reaches into the grader, torch's mode machinery or the interpreter (see :func:`tamper_findings`)."""

    def __init__(self, src: _Source, cell: int, graders: set[str]):
        super().__init__(src, cell)
        self.graders = graders
        self.parents = {child: parent for parent in ast.walk(src.trees[cell]) for child in ast.iter_child_nodes(parent)}

    def add(self, node, what, key=None):
        super().add(node, what, key=what.split(" (")[0])  # one finding per line and kind

    def _chain_top(self, node) -> bool:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return False
        return not (_is_call_to(parent, "getattr") and parent.args and parent.args[0] is node
                    and len(parent.args) >= 2 and _constant_str(parent.args[1]) is not None)

    def _paths(self, node) -> None:
        for path in sorted(self.paths(node)):
            what = _tamper_path(path)
            if what is not None:
                self.add(node, f"{what} ({path})")
                return

    def _attribute(self, node, attr: str, store: bool, base: ast.AST | None) -> None:
        """Checks for an attribute ``attr`` read (or, ``store``, written) on ``base``."""
        what = _tamper_attr(attr)
        if what is not None:
            self.add(node, f"{what} (.{attr})")
        if _is_dunder(attr) and attr not in MODE_ATTRS and not self._dunder_allowed(node, attr, store, base):
            self.add(node, f"{INTERPRETER} (.{attr})")
        if isinstance(base, ast.Name) and base.id in self.graders and not attr.startswith(GRADER_METHODS):
            self.add(node, f"{GRADER} ({base.id}.{attr})")

    def _dunder_allowed(self, node, attr: str, store: bool, base) -> bool:
        if store:
            return False
        if attr in DUNDERS_READ:
            return True
        if attr == "__init__":  # super().__init__(...), nn.Module.__init__(self)
            parent = self.parents.get(node)
            return _is_call_to(base, "super") or (isinstance(parent, ast.Call) and parent.func is node)
        if attr == "__class__":  # x.__class__.__name__
            parent = self.parents.get(node)
            return isinstance(parent, ast.Attribute) and parent.value is node and parent.attr in ("__name__", "__qualname__")
        return False

    def _patch(self, node, base: ast.AST, attr: str) -> None:
        """``base.attr`` is written or deleted."""
        if _is_call_to(base, "type"):
            self.add(node, f"{PATCH} (type(...).{attr})")
            return
        for path in sorted(self.paths(base)):
            if not any(_matches(path, s) for s in SETTINGS):
                self.add(node, f"{PATCH} ({path}.{attr})")
                return

    def _targets(self, targets) -> None:
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and not isinstance(leaf.ctx, ast.Load):
                    self._patch(leaf, leaf.value, leaf.attr)

    def visit_Assign(self, node):
        self._targets(node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._targets([node.target])
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign

    def visit_Delete(self, node):
        self._targets(node.targets)
        self.generic_visit(node)

    def _installed(self, node, module: str) -> None:
        top = module.split(".")[0]
        if not _installed(top):
            self.add(node, f"{DYNAMIC} (imports {top}, which is not installed: a module the notebook wrote?)")

    def visit_Import(self, node):
        for a in node.names:
            what = _tamper_path(a.name)
            if what is not None:
                self.add(node, f"{what} (import {a.name})")
            self._installed(node, a.name)

    def visit_ImportFrom(self, node):
        if node.level or not node.module:
            self.add(node, f"{DYNAMIC} (a relative import)")
        else:
            self._installed(node, node.module)
        for a in node.names:
            path = f"{node.module}.{a.name}" if node.module and not node.level else a.name
            what = _tamper_path(path) or _tamper_path(node.module or "") or _tamper_attr(a.name)
            if what is not None:
                self.add(node, f"{what} (from {'.' * node.level}{node.module or ''} import {a.name})")

    def visit_Attribute(self, node):
        if self._chain_top(node):
            self._paths(node)
        self._attribute(node, node.attr, not isinstance(node.ctx, ast.Load), node.value)
        self.generic_visit(node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            if self._chain_top(node):
                self._paths(node)
            if node.id in DYNAMIC_BUILTINS and self.src.builtin(node.id, self.scopes):
                self.add(node, f"{IPYTHON if node.id == 'get_ipython' else DYNAMIC} ({self._dynamic(node)})")
            elif node.id in ATTRIBUTE_BUILTINS and not _is_call(self.parents.get(node), node) and self.src.builtin(node.id, self.scopes):
                self.add(node, f"{DYNAMIC} ({node.id} used as a value)")
        if _is_dunder(node.id) and node.id not in DUNDER_NAMES and node.id not in DYNAMIC_BUILTINS:
            if isinstance(node.ctx, ast.Load) or not self.in_class or node.id in MODE_ATTRS:
                self.add(node, f"{MODES if node.id in MODE_ATTRS else INTERPRETER} ({node.id})")
        elif node.id in MODE_ATTRS:
            self.add(node, f"{MODES} ({node.id})")

    def _dynamic(self, node: ast.Name) -> str:
        """What a call of a dynamic builtin does, in words (a magic: its name)."""
        call = self.parents.get(node)
        if node.id != "get_ipython" or not (isinstance(call, ast.Call) and call.func is node):
            return f"{node.id}()" if isinstance(call, ast.Call) and call.func is node else node.id
        method = self.parents.get(call)
        outer = self.parents.get(method)
        if isinstance(method, ast.Attribute) and isinstance(outer, ast.Call) and outer.func is method:
            magic = _magic(outer)
            if magic is not None:
                return ("%%" if magic[2] is not None else "%") + magic[0]
            if method.attr in ("system", "getoutput"):
                return "a shell command (!)"
            return f"get_ipython().{method.attr}"
        return "get_ipython()"

    def visit_Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in ATTRIBUTE_BUILTINS and self.src.builtin(name, self.scopes) and len(node.args) >= 2:
            attr = _constant_str(node.args[1])
            if attr is None:
                self.add(node, f"{DYNAMIC} (a computed name in {name})")
            else:
                self._attribute(node, attr, name in ("setattr", "delattr"), node.args[0])
                if name in ("setattr", "delattr"):
                    self._patch(node, node.args[0], attr)
        for keyword in node.keywords:
            value = keyword.value
            if keyword.arg == "num_workers" and not (isinstance(value, ast.Constant) and value.value in (0, None)):
                self.add(node, f"{THREADS} (num_workers)")
            elif keyword.arg == "weights_only" and isinstance(value, ast.Constant) and value.value is False:
                self.add(node, f"{DYNAMIC} (unpickling with weights_only=False)")
            elif keyword.arg == "allow_pickle" and not (isinstance(value, ast.Constant) and not value.value):
                self.add(node, f"{DYNAMIC} (unpickling with allow_pickle)")
        self.generic_visit(node)
        self.visit_code(node)

    def visit_code(self, node):
        """Code given as text to :data:`CODE_RUNNERS`: a string constant is read wherever it stands
        (:meth:`visit_Constant`); text built at run time cannot be read."""
        for arg in self.code_arguments(node):
            built = isinstance(arg, (ast.JoinedStr, ast.BinOp)) or (isinstance(arg, ast.Call) and (
                getattr(arg.func, "attr", None) in STRING_METHODS or getattr(arg.func, "id", None) in ("str", "chr", "bytes", "format")))
            if built:
                self.add(node, f"{DYNAMIC} (code built as text for {ast.unparse(node.func)[:40]})")

    def adopt(self, tree):
        self.parents.update((child, parent) for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent))

    def visit_Constant(self, node):
        if isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            for needle, what in TAMPER_TEXT.items():
                if needle in text:
                    self.add(node, f"{what} (a string holding {needle!r})")
            if isinstance(node.value, str):  # code kept as text (for timeit, exec, a file to import): read it too
                self.visit_text(text, node.lineno)

    def enter(self, node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in MODE_ATTRS:
            self.add(node, f"{MODES} (def {node.name})")


def tamper_findings(cells: list[str], scan: Iterable[int] | None = None,
                    fallback: dict[str, str] | None = None) -> list[Finding]:
    """Code that reaches into the grader, torch's mode machinery or the interpreter, anywhere in the
    cells ``scan`` (default: all): the course's grading code (``course_utils.rules``,
    ``course_utils.testing``, ``course_tools``, otter beyond ``otter.Notebook`` and ``grader.check``/
    ``grader.export``); torch's mode stacks and their switches (``torch._C``, ``torch.overrides``,
    ``torch.utils._python_dispatch``, ``DisableTorchFunction``, ``_push_mode``, ``__torch_function__``,
    ...); PyTorch's call hooks and private internals; dynamic lookup and code from strings (a computed
    ``getattr``/``setattr``/``delattr``, ``__import__``, ``importlib``, ``eval``/``exec``/``compile``,
    ``globals()``/``vars()``/``locals()``, unpickling, ``torch.jit``/``torch.compile``); the interpreter
    (``sys.modules``, ``gc``, ``ctypes``, ``inspect``, trace and profile hooks, frames, dunder
    attributes but ``__name__``, ``__qualname__``, ``__doc__``, ``__version__``, ``super().__init__`` and
    ``x.__class__.__name__``); threads and processes; signals, raw descriptors and sockets; IPython
    magics other than ``%time``, ``%timeit``, ``%%capture`` (whose code is scanned) and a few settings;
    any write to an attribute of a library object, through any alias (``x = torch; x.logsumexp = ...``,
    ``setattr(F, ...)``, ``type(t).log_softmax = ...``); imports of modules that are not installed (a
    file the notebook wrote) and relative imports; strings naming ``/proc`` and the like. Code kept in
    a string constant (for ``timeit``, ``exec``, a file to write) is read as code too, and code nested
    too deeply to be read is a finding itself.

    All the cells are read for imports and aliases. One finding per kind and line, each quoting the
    line. A cell that does not parse is searched line by line for the regular expressions of
    ``fallback`` (``{pattern: what}``), if given.
    """
    src = _Source(cells)
    scan = range(len(cells)) if scan is None else scan
    graders = {"grader"}  # otter.Notebook objects
    for name, values in src.assigned.items():
        try:
            graders |= {name for v in values if isinstance(v, ast.Call) and "otter.Notebook" in src.resolve(v.func)}
        except RecursionError:
            pass
    found: list[Finding] = []
    for cell in scan:
        if cell in src.trees:
            walk = _Tamper(src, cell, graders)
            try:
                walk.visit(src.trees[cell])
            except RecursionError:
                src.deep.add(cell)
            found += walk.result()
        if cell in src.deep:
            found.append(src.finding(cell, 1, f"{INTERPRETER} (code nested too deeply to be checked)"))
        if (cell not in src.trees or cell in src.deep) and fallback and cells[cell].strip():
            for n, line in enumerate(cells[cell].splitlines(), 1):
                for pattern, what in fallback.items():
                    if re.search(pattern, line):
                        found.append(src.finding(cell, n, f"{what} (the cell could not be parsed: its text was searched)"))
    return _sorted(found)


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
    from .checks import _unwritten

    rule = Rule.from_dict(rule)
    unwritten = [name for name in rule.names if name in env and _unwritten(env[name])]
    if unwritten or not any(name in env for name in rule.names):
        raise AssertionError(f"{rule.question}: not answered yet ({', '.join(unwritten or rule.names)} is not written); "
                             f"its by-hand rule: {rule.text}")
    cells = _kernel_history()
    problems = [str(f) for f in source_findings(rule, cells) + stored_findings(rule, cells)]
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
