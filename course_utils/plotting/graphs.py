"""Drawing a network as a graph of layers.

Taught in {ref}`sec-dag-messages` (chapter 1): weighted edges solid grey, identity (residual) edges
dashed orange; inputs blue, hidden layers yellow, outputs green, and sum nodes (hidden nodes whose
activation is the identity, as on a residual stream) white.
"""

from __future__ import annotations

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
    for n in dag.order:
        node = dag.nodes[n]
        x, y = pos[n]
        fill = "white" if node.role == "hidden" and node.act == "identity" else colour[node.role]
        ax.scatter([x], [y], s=520, color=fill, edgecolor="0.2", zorder=3)
        ax.text(x, y, f"{n}\n{node.size}", ha="center", va="center", fontsize=7, zorder=4)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 1.2, max(ys) + 1.2)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax
