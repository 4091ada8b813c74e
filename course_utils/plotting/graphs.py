"""Drawing a network as a graph: of layers (a :class:`~course_utils.nets.dag.LayerDAG`), or of
scalar units with their forward or backward messages.

Taught in {ref}`sec-dag-messages` (chapter 1): weighted edges solid grey, identity (residual) edges
dashed orange; inputs blue, hidden layers yellow, outputs green, and sum nodes (hidden nodes whose
activation is the identity, as on a residual stream) white.
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt

from .masks import PALETTE


def draw_dag(dag, ax=None, title: str | None = None):
    """Draw the graph left to right: weighted edges solid grey, identity (residual) edges dashed orange;
    inputs blue, hidden layers yellow, outputs green, sum nodes (hidden, identity activation) white,
    each labelled with its name and size."""
    depth = dag.depths()
    columns: dict[int, list[str]] = {}
    for n in dag.order:
        columns.setdefault(depth[n], []).append(n)
    if ax is None:
        rows = max(len(v) for v in columns.values())
        _, ax = plt.subplots(figsize=(1.1 * len(columns) + 0.4, 0.9 * rows + 1.4))
    pos = {}
    for d, names in columns.items():
        for i, n in enumerate(names):
            pos[n] = (1.6 * d, (len(names) - 1) / 2 - i)
    colour = {"input": PALETTE[2], "hidden": PALETTE[1], "output": PALETTE[3]}
    for k, e in enumerate(dag.edges):
        (x0, y0), (x1, y1) = pos[e.parent], pos[e.child]
        span = depth[e.child] - depth[e.parent]
        # long edges bow out, alternately above and below, so they do not run through the nodes
        bend = 0.0 if span == 1 else (0.3 + 0.04 * span) * (1 if k % 2 else -1)
        ax.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops=dict(arrowstyle="-|>", color="0.3" if e.trainable else PALETTE[6], lw=1.1,
                            shrinkA=11, shrinkB=11, linestyle="-" if e.trainable else "--",
                            connectionstyle=f"arc3,rad={bend}"),
        )
    fills = {n: "white" if node.role == "hidden" and node.act == "identity" else colour[node.role]
             for n, node in dag.nodes.items()}
    labels = {n: f"{n}\n{dag.nodes[n].size}" for n in dag.order}
    return _nodes_and_frame(ax, pos, fills, labels, area=520, fontsize=7, pad=(0.6, 1.2), title=title)


def _nodes_and_frame(ax, pos: dict, fills: dict, labels: dict, area: float, fontsize: float, pad: tuple, title):
    """Draw every node as a labelled disc at ``pos``, fit the axes around them, and title them."""
    for n, (x, y) in pos.items():
        ax.scatter([x], [y], s=area, color=fills[n], edgecolor="0.2", zorder=3)
        ax.text(x, y, labels[n], ha="center", va="center", fontsize=fontsize, zorder=4)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - pad[0], max(xs) + pad[0])
    ax.set_ylim(min(ys) - pad[1], max(ys) + pad[1])
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def unit_depths(graph: dict) -> dict[str, int]:
    """Longest-path distance from an input for every unit of a scalar graph (the chapter's format:
    ``order``, ``inputs``, ``outputs`` and ``parents``, a dict ``unit -> [(parent, weight), ...]``)."""
    for key in ("order", "inputs", "outputs", "parents"):
        if key not in graph:
            raise ValueError(f"a unit graph is a dict with 'order', 'inputs', 'outputs' and 'parents'; it has no {key!r}")
    depth = {}
    for u in graph["order"]:
        if u in graph["inputs"]:
            depth[u] = 0
            continue
        parents = graph["parents"].get(u)
        if not parents:
            raise ValueError(f"unit {u!r} is not an input and has no parents")
        missing = [p for p, _ in parents if p not in depth]
        if missing:
            raise ValueError(f"unit {u!r} reads {missing} before they are computed: list 'order' topologically")
        depth[u] = 1 + max(depth[p] for p, _ in parents)
    return depth


def draw_unit_messages(graph: dict, messages: dict, ax=None, backward: bool = False, symbol: str | None = None,
                       title: str | None = None, highlight: tuple[str, str] | None = None):
    """Draw a graph of scalar units left to right, each unit labelled with its message.

    ``messages`` maps every unit to a number: the forward messages ``M`` (arrows point from parent to
    child, the way ``M`` flows) or, with ``backward=True``, the backward messages ``V`` (arrows point
    from child to parent). Every edge is labelled with its weight. ``highlight`` is an edge
    ``(parent, child)`` drawn thick, for the one weight whose gradient a caption explains.
    """
    depth = unit_depths(graph)
    missing = [u for u in graph["order"] if u not in messages]
    if missing:
        raise ValueError(f"messages must give a number for every unit; missing {missing}")
    bad = [u for u in graph["order"] if not isinstance(messages[u], numbers.Real)]
    if bad:
        raise TypeError(f"messages must be plain numbers (use float(...) or .item()); {bad[0]!r} is "
                        f"{type(messages[bad[0]]).__name__}")
    edges = [(p, c, float(w)) for c in graph["order"] for p, w in graph["parents"].get(c, [])]
    if highlight is not None and highlight not in {(p, c) for p, c, _ in edges}:
        raise ValueError(f"highlight {highlight!r} is not an edge (parent, child) of the graph")
    symbol = symbol or ("V" if backward else "M")
    columns: dict[int, list[str]] = {}
    for u in graph["order"]:
        columns.setdefault(depth[u], []).append(u)
    pos = {u: (2.2 * d, (len(us) - 1) / 2 - 1.25 * i) for d, us in columns.items() for i, u in enumerate(us)}
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(columns) + 1, 1.1 * max(len(v) for v in columns.values()) + 1))
    role = {u: "input" if u in graph["inputs"] else "output" if u in graph["outputs"] else "hidden" for u in graph["order"]}
    colour = {"input": PALETTE[2], "hidden": PALETTE[1], "output": PALETTE[3]}
    for k, (p, c, w) in enumerate(edges):
        start, end = (pos[c], pos[p]) if backward else (pos[p], pos[c])
        span = depth[c] - depth[p]
        bend = 0.0 if span == 1 else 0.25 * (1 if k % 2 else -1)
        thick = highlight == (p, c)
        ax.annotate("", xy=end, xytext=start,
                    arrowprops=dict(arrowstyle="-|>", color="black" if thick else "0.45", lw=2.4 if thick else 0.9,
                                    shrinkA=19, shrinkB=19, connectionstyle=f"arc3,rad={bend}"))
        # where along the edge its weight is written, on the line itself; crossing edges meet halfway
        t = 0.5 if span > 1 or pos[p][1] == pos[c][1] else 0.36
        (x0, y0), (x1, y1) = pos[p], pos[c]
        ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0) + (0 if span == 1 else bend * 1.2), f"{w:+.2f}",
                ha="center", va="center", fontsize=6.5, color="0.25",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))
    fills = {u: colour[role[u]] for u in graph["order"]}
    labels = {u: f"{u}\n{symbol}={messages[u]:+.3f}" for u in graph["order"]}
    return _nodes_and_frame(ax, pos, fills, labels, area=2000, fontsize=6.5, pad=(0.7, 0.6), title=title)
