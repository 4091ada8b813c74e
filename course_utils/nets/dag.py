"""A network as a directed acyclic graph (DAG) of layers, for message-passing backpropagation.

Taught in {ref}`sec-dag-messages` (chapter 1). This module holds only the
*graph*: its nodes, its weighted edges, builders for chains, residual, dense and random graphs,
an autograd twin for chains, and a drawing. The messages themselves are what lab 1 asks you to
write.

The conventions are the chapter's. Every node ``c`` is a layer of ``size`` units. Its forward
message is the vector of pre-activations

.. math:: M_c = b_c + \\sum_{p \\in \\mathrm{pa}(c)} W_{cp}\\, h_p(M_p),

where ``h_p`` is the parent's elementwise activation (the identity for input and output nodes, so
``h`` is never applied to the inputs), ``W_{cp}`` is the weight matrix of the edge ``p -> c``, of
shape ``(size_c, size_p)``, and ``b_c`` the bias of ``c``. An edge whose weight is ``None`` is a
fixed *identity* edge: it adds ``h_p(M_p)`` unchanged. A residual addition is an identity edge
between two *sum nodes*, nodes whose activation is the identity, so that neither ``h`` nor its slope
acts on the residual stream (see :func:`residual_dag`).
With a batch, messages are ``(B, size)`` tensors and a matrix acts on rows: ``h_p(M_p) @ W_cp.T``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import checks

ROLES = ("input", "hidden", "output")


@dataclass(frozen=True)
class Activation:
    """An elementwise non-linearity ``h`` with its derivative ``dh`` (both tensor -> tensor)."""

    name: str
    h: object = field(repr=False)
    dh: object = field(repr=False)

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return self.h(m)


def _sigmoid_dh(m):
    s = torch.sigmoid(m)
    return s * (1 - s)


ACTIVATIONS = {
    "identity": Activation("identity", lambda m: m, lambda m: torch.ones_like(m)),
    "tanh": Activation("tanh", torch.tanh, lambda m: 1 - torch.tanh(m) ** 2),
    "sigmoid": Activation("sigmoid", torch.sigmoid, _sigmoid_dh),
    "softplus": Activation("softplus", torch.nn.functional.softplus, torch.sigmoid),
    # the derivative at exactly 0 is taken as 0, as torch.relu's backward does
    "relu": Activation("relu", torch.relu, lambda m: (m > 0).to(m.dtype)),
}


def activation(name: str) -> Activation:
    """The :class:`Activation` called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@dataclass(frozen=True)
class Node:
    """A layer: ``size`` units, the activation ``h`` it applies when it sends its message on, and its role."""

    name: str
    size: int
    act: str = "identity"
    role: str = "hidden"

    @property
    def h(self) -> Activation:
        return activation(self.act)


@dataclass
class Edge:
    """The edge ``parent -> child``; ``weight`` is ``(child size, parent size)``, or ``None`` for an identity edge."""

    parent: str
    child: str
    weight: torch.Tensor | None = None

    @property
    def trainable(self) -> bool:
        return self.weight is not None

    @property
    def key(self) -> tuple[str, str]:
        return (self.parent, self.child)


class LayerDAG:
    """A network as a DAG of layers.

    ``nodes`` must be listed in a topological order (every edge goes from an earlier node to a
    later one). Input nodes have no parents, no bias and the identity activation; output nodes have
    no children and the identity activation; every other node has at least one parent. ``biases``
    maps every non-input node to a ``(size,)`` tensor.

    Useful attributes: ``order`` (names, topological), ``inputs``, ``outputs``, ``nodes`` (name ->
    :class:`Node`), ``edges`` (list of :class:`Edge`), ``bias`` (name -> tensor), and the methods
    :meth:`parents`, :meth:`children`, :meth:`h`, :meth:`dh`.
    """

    def __init__(self, nodes: list[Node], edges: list[Edge], biases: dict[str, torch.Tensor]):
        self.nodes = self._check_nodes(nodes)
        self.order = [n.name for n in nodes]
        self.edges = list(edges)
        self._parents = {name: [] for name in self.order}
        self._children = {name: [] for name in self.order}
        for e in self._check_edges(self.edges):
            self._parents[e.child].append(e)
            self._children[e.parent].append(e)
        self.bias = dict(biases)
        self._check_roles_and_biases()

    @staticmethod
    def _check_nodes(nodes: list[Node]) -> dict[str, Node]:
        checked = {}
        for node in nodes:
            if node.name in checked:
                raise ValueError(f"two nodes are called {node.name!r}")
            if node.role not in ROLES:
                raise ValueError(f"node {node.name!r} has role {node.role!r}; expected one of {ROLES}")
            if node.size < 1:
                raise ValueError(f"node {node.name!r} must have at least one unit, got size {node.size}")
            activation(node.act)
            checked[node.name] = node
        return checked

    def _check_edges(self, edges: list[Edge]) -> list[Edge]:
        position = {name: i for i, name in enumerate(self.order)}
        seen = set()
        for e in edges:
            for end in (e.parent, e.child):
                if end not in self.nodes:
                    raise ValueError(f"edge {e.parent!r} -> {e.child!r} names an unknown node {end!r}")
            if position[e.parent] >= position[e.child]:
                raise ValueError(
                    f"edge {e.parent!r} -> {e.child!r} goes backwards: list the nodes in a topological order"
                )
            if e.key in seen:
                raise ValueError(f"two edges {e.parent!r} -> {e.child!r}; merge them into one weight")
            seen.add(e.key)
            p, c = self.nodes[e.parent], self.nodes[e.child]
            if e.weight is None:
                if p.size != c.size:
                    raise ValueError(
                        f"identity edge {e.parent!r} -> {e.child!r} needs equal sizes, got {p.size} and {c.size}"
                    )
            elif tuple(e.weight.shape) != (c.size, p.size):
                raise ValueError(
                    f"the weight of {e.parent!r} -> {e.child!r} must have shape (child size, parent size) = "
                    f"({c.size}, {p.size}), got {tuple(e.weight.shape)}"
                )
        return edges

    def _check_roles_and_biases(self) -> None:
        for name, node in self.nodes.items():
            if node.role == "input":
                if self._parents[name]:
                    raise ValueError(f"input node {name!r} cannot have parents")
                if name in self.bias:
                    raise ValueError(f"input node {name!r} cannot have a bias")
            else:
                if not self._parents[name]:
                    raise ValueError(f"node {name!r} has no parents; only input nodes may have none")
                if name not in self.bias or tuple(self.bias[name].shape) != (node.size,):
                    got = None if name not in self.bias else tuple(self.bias[name].shape)
                    raise ValueError(f"node {name!r} needs a bias of shape ({node.size},), got {got}")
            if node.role in ("input", "output") and node.act != "identity":
                raise ValueError(f"{node.role} node {name!r} must use the identity activation, got {node.act!r}")
            if node.role == "output" and self._children[name]:
                raise ValueError(f"output node {name!r} cannot have children")
        extra = set(self.bias) - set(self.nodes)
        if extra:
            raise ValueError(f"biases given for unknown nodes {sorted(extra)}")
        if not self.inputs or not self.outputs:
            raise ValueError("a network needs at least one input node and one output node")
        for what, values in (("dtype", {t.dtype for t in self.tensors()}), ("device", {t.device for t in self.tensors()})):
            if len(values) > 1:
                where = "share one dtype" if what == "dtype" else "live on one device"
                raise ValueError(f"all weights and biases must {where}, got {sorted(map(str, values))}")

    # -- structure -------------------------------------------------------------------------------
    @property
    def inputs(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].role == "input"]

    @property
    def outputs(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].role == "output"]

    def parents(self, name: str) -> list[Edge]:
        """The edges into ``name`` (each has ``.parent`` and ``.weight``)."""
        return self._parents[name]

    def children(self, name: str) -> list[Edge]:
        """The edges out of ``name`` (each has ``.child`` and ``.weight``)."""
        return self._children[name]

    def edge(self, parent: str, child: str) -> Edge:
        for e in self._children[parent]:
            if e.child == child:
                return e
        raise KeyError(f"no edge {parent!r} -> {child!r}")

    def h(self, name: str, m: torch.Tensor) -> torch.Tensor:
        """The activation of node ``name`` applied to its message ``m``."""
        return self.nodes[name].h.h(m)

    def dh(self, name: str, m: torch.Tensor) -> torch.Tensor:
        """The derivative of node ``name``'s activation at its message ``m``, elementwise."""
        return self.nodes[name].h.dh(m)

    @property
    def trainable_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.trainable]

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors()[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors()[0].device

    def tensors(self) -> list[torch.Tensor]:
        """Every weight (trainable edges, in edge order) then every bias (in node order)."""
        return [e.weight for e in self.trainable_edges] + [self.bias[n] for n in self.order if n in self.bias]

    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def num_unit_edges(self) -> int:
        """Connections between single units: ``size_c * size_p`` for a weighted edge, ``size`` for an identity one."""
        total = 0
        for e in self.edges:
            p, c = self.nodes[e.parent], self.nodes[e.child]
            total += c.size * p.size if e.trainable else c.size
        return total

    def requires_grad_(self, flag: bool = True) -> "LayerDAG":
        """Ask autograd to track every weight and bias (for autograd twins in tests and demos)."""
        for t in self.tensors():
            t.requires_grad_(flag)
        return self

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "LayerDAG":
        """A copy with every weight and bias moved to ``dtype`` and ``device`` (detached from any graph)."""
        def move(t):
            return t.detach().to(device=device, dtype=dtype).clone()

        edges = [Edge(e.parent, e.child, None if e.weight is None else move(e.weight)) for e in self.edges]
        biases = {k: move(v) for k, v in self.bias.items()}
        return LayerDAG(list(self.nodes.values()), edges, biases)

    # -- student-facing checks -------------------------------------------------------------------
    def check_inputs(self, inputs: dict) -> int:
        """Check a dict ``{input name: (B, size) tensor}`` against the graph and return ``B``."""
        if not isinstance(inputs, dict):
            raise TypeError(
                f"inputs must be a dict {{input name: tensor of shape (B, size)}}, got {type(inputs).__name__}; "
                f"this network's inputs are {[(n, self.nodes[n].size) for n in self.inputs]}"
            )
        return self._batch_size(inputs, self.inputs, "inputs", "input {!r}", weights_like=True)

    def check_messages(self, messages: dict, what: str = "messages") -> int:
        """Check a dict ``{node name: (B, size) tensor}`` that holds every node; return ``B``."""
        if not isinstance(messages, dict):
            raise TypeError(f"{what} must be a dict {{node name: tensor (B, size)}}, got {type(messages).__name__}")
        return self._batch_size(messages, self.order, what, what + "[{!r}]")

    def _batch_size(self, tensors: dict, names: list[str], whole: str, label: str, weights_like: bool = False) -> int:
        """The batch size ``B`` shared by ``tensors[n]`` of shape ``(B, size of n)`` for each of ``names``;
        with ``weights_like`` they must also have the weights' dtype and device."""
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"{whole} is missing node(s) {missing}")
        batch = None
        for n in names:
            x, what = tensors[n], label.format(n)
            if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.nodes[n].size:
                raise ValueError(f"{what} must be a tensor of shape (B, {self.nodes[n].size}), got {checks.describe(x)}")
            if weights_like and x.dtype != self.dtype:
                raise TypeError(f"{what} has dtype {x.dtype} but the weights are {self.dtype}")
            if weights_like and x.device != self.device:
                raise ValueError(f"{what} is on {x.device} but the weights are on {self.device}; use .to(device)")
            if batch is not None and x.shape[0] != batch:
                raise ValueError(f"all of them must share one batch size: {batch}, then {x.shape[0]} for {what}")
            batch = x.shape[0]
        return batch

    # -- twins and pictures ----------------------------------------------------------------------
    def is_chain(self) -> bool:
        """True for a plain multi-layer perceptron: one input, one output, each node feeding the next by a weighted edge."""
        if len(self.inputs) != 1 or len(self.outputs) != 1 or len(self.edges) != len(self.order) - 1:
            return False
        return all(
            e.trainable and (e.parent, e.child) == (a, b)
            for e, (a, b) in zip(self.edges, zip(self.order, self.order[1:]))
        )

    def chain_parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
        """For a chain: the weights ``[W_1, ..., W_L]``, biases ``[b_1, ..., b_L]`` and the hidden activations' names."""
        if not self.is_chain():
            raise ValueError("chain_parameters needs a chain (an MLP); this graph has skips or several inputs/outputs")
        weights = [e.weight for e in self.edges]
        biases = [self.bias[n] for n in self.order[1:]]
        acts = [self.nodes[n].act for n in self.order[1:-1]]
        return weights, biases, acts

    def to_sequential(self) -> torch.nn.Sequential:
        """The autograd twin of a chain: ``nn.Sequential`` of ``nn.Linear`` and activation modules whose
        parameters share storage with this graph's weights and biases (the same values; gradients
        land in the module's parameters)."""
        weights, biases, acts = self.chain_parameters()
        modules = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "softplus": torch.nn.Softplus,
                   "relu": torch.nn.ReLU, "identity": torch.nn.Identity}
        layers = []
        for i, (W, b) in enumerate(zip(weights, biases)):
            lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
            lin.weight = torch.nn.Parameter(W.detach())  # detach() shares storage, so no copy is made
            lin.bias = torch.nn.Parameter(b.detach())
            layers.append(lin)
            if i < len(acts):
                layers.append(modules[acts[i]]())
        return torch.nn.Sequential(*layers)

    def depths(self) -> dict[str, int]:
        """Longest-path distance from an input, per node (for drawing)."""
        depth = {}
        for n in self.order:
            ps = self._parents[n]
            depth[n] = 0 if not ps else 1 + max(depth[e.parent] for e in ps)
        return depth

    def describe(self) -> str:
        lines = [f"{'node':>8} {'role':>7} {'size':>5} {'h':>9}   parents (W = weighted, I = identity)"]
        for n in self.order:
            node = self.nodes[n]
            ps = ", ".join(f"{e.parent}({'W' if e.trainable else 'I'})" for e in self._parents[n]) or "-"
            lines.append(f"{n:>8} {node.role:>7} {node.size:>5} {node.act:>9}   {ps}")
        lines.append(f"{self.num_parameters()} parameters, {len(self.edges)} layer edges, "
                     f"{self.num_unit_edges()} unit-to-unit connections")
        return "\n".join(lines)

    def draw(self, ax=None, title: str | None = None):
        """Draw the graph (see :func:`course_utils.plotting.draw_dag`)."""
        from ..plotting.graphs import draw_dag

        return draw_dag(self, ax=ax, title=title)


# -- builders ------------------------------------------------------------------------------------
def _init(rng: torch.Generator, rows: int, cols: int, dtype, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(rows, cols, generator=rng, dtype=dtype) / np.sqrt(cols)


def mlp_dag(sizes: list[int], act: str = "tanh", seed: int = 0, dtype=torch.float64) -> LayerDAG:
    """A chain ``x -> h1 -> ... -> out`` with layer sizes ``sizes`` (input first, output last)."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
    g = torch.Generator().manual_seed(seed)
    names = ["x"] + [f"h{i}" for i in range(1, len(sizes) - 1)] + ["out"]
    nodes = [Node(n, s, "identity" if i in (0, len(sizes) - 1) else act,
                  "input" if i == 0 else "output" if i == len(sizes) - 1 else "hidden")
             for i, (n, s) in enumerate(zip(names, sizes))]
    edges = [Edge(a, b, _init(g, sb, sa, dtype)) for (a, sa), (b, sb) in zip(zip(names, sizes), zip(names[1:], sizes[1:]))]
    biases = {n: 0.1 * torch.randn(s, generator=g, dtype=dtype) for n, s in zip(names[1:], sizes[1:])}
    return LayerDAG(nodes, edges, biases)


def residual_dag(input_size: int, width: int, blocks: int, output_size: int, act: str = "tanh",
                 seed: int = 0, dtype=torch.float64) -> LayerDAG:
    """``blocks`` residual blocks on a *stream* of sum nodes ``r0, r1, ...``.

    The stream's nodes use the identity activation, so a block adds a correction to the stream and
    nothing else touches it: ``r0 = W x + b``, and block ``i`` computes ``a_i = W'_i r_{i-1} + b'_i``
    (activation ``act``) and ``r_i = r_{i-1} + W_i act(a_i) + b_i``, the edge ``r_{i-1} -> r_i``
    being the identity (the residual addition). In the backward pass ``V_{r_{i-1}} = V_{r_i} +
    W'_i^T V_{a_i}``: the stream's message reaches every block unchanged, plus what the block adds.
    This is the identity-mapping form of He et al. (2016); with ``act`` on the stream instead, its
    slope would multiply the stream's message at every block.
    """
    g = torch.Generator().manual_seed(seed)
    nodes = [Node("x", input_size, "identity", "input"), Node("r0", width, "identity")]
    edges = [Edge("x", "r0", _init(g, width, input_size, dtype))]
    for i in range(1, blocks + 1):
        nodes += [Node(f"a{i}", width, act), Node(f"r{i}", width, "identity")]
        edges += [Edge(f"r{i-1}", f"a{i}", _init(g, width, width, dtype)),
                  Edge(f"a{i}", f"r{i}", _init(g, width, width, dtype, 0.5)),
                  Edge(f"r{i-1}", f"r{i}", None)]
    nodes.append(Node("out", output_size, "identity", "output"))
    edges.append(Edge(f"r{blocks}", "out", _init(g, output_size, width, dtype)))
    biases = {n.name: 0.1 * torch.randn(n.size, generator=g, dtype=dtype) for n in nodes if n.role != "input"}
    return LayerDAG(nodes, edges, biases)


def dense_dag(input_size: int, width: int, layers: int, output_size: int, act: str = "tanh",
              seed: int = 0, dtype=torch.float64) -> LayerDAG:
    """Dense connectivity: every hidden layer and the output read every earlier layer (the input included)."""
    g = torch.Generator().manual_seed(seed)
    nodes = [Node("x", input_size, "identity", "input")]
    edges = []
    for i in range(1, layers + 1):
        nodes.append(Node(f"d{i}", width, act))
    nodes.append(Node("out", output_size, "identity", "output"))
    for j, child in enumerate(nodes[1:], start=1):
        for parent in nodes[:j]:
            edges.append(Edge(parent.name, child.name, _init(g, child.size, parent.size, dtype, 1 / np.sqrt(j))))
    biases = {n.name: 0.1 * torch.randn(n.size, generator=g, dtype=dtype) for n in nodes if n.role != "input"}
    return LayerDAG(nodes, edges, biases)


def random_dag(seed: int = 0, hidden: int = 5, inputs: int = 1, outputs: int = 2, sizes: tuple[int, int] = (2, 5),
               skip: float = 0.4, acts: tuple[str, ...] = ("tanh", "sigmoid", "softplus"), dtype=torch.float64) -> LayerDAG:
    """A random DAG: ``hidden`` hidden layers, each reading the previous one and, with probability
    ``skip``, any earlier layer (through an identity edge when the sizes agree, half of the time);
    several inputs and outputs, each output reading the last hidden layer and random earlier ones."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    nodes = [Node(f"x{i}", int(rng.integers(sizes[0], sizes[1] + 1)), "identity", "input") for i in range(inputs)]
    edges = []
    for j in range(hidden):
        node = Node(f"h{j}", int(rng.integers(sizes[0], sizes[1] + 1)), str(rng.choice(acts)))
        earlier = nodes[:]
        chosen = {earlier[-1].name} | {n.name for n in earlier[:-1] if rng.random() < skip}
        if j == 0:
            chosen |= {n.name for n in nodes if n.role == "input"}  # every input is used
        for p in earlier:
            if p.name in chosen:
                identity = p.size == node.size and p.role != "input" and rng.random() < 0.5
                edges.append(Edge(p.name, node.name, None if identity else _init(g, node.size, p.size, dtype)))
        nodes.append(node)
    readable = nodes[:]  # outputs read inputs and hidden layers, never another output
    for k in range(outputs):
        node = Node(f"y{k}", int(rng.integers(1, sizes[1] + 1)), "identity", "output")
        chosen = {readable[-1].name} | {n.name for n in readable if rng.random() < skip / 2}
        for p in readable:
            if p.name in chosen:
                edges.append(Edge(p.name, node.name, _init(g, node.size, p.size, dtype)))
        nodes.append(node)
    biases = {n.name: 0.1 * torch.randn(n.size, generator=g, dtype=dtype) for n in nodes if n.role != "input"}
    return LayerDAG(nodes, edges, biases)


def random_inputs(dag: LayerDAG, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A dict of standard-normal inputs ``{input name: (batch, size)}`` in the graph's dtype."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, dag.nodes[n].size, generator=g, dtype=dag.dtype) for n in dag.inputs}
