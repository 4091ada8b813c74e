"""Drawing a network as a graph of layers (course_utils/plotting/graphs.py)."""

from __future__ import annotations

from course_utils.nets.dag import residual_dag


def test_draw_and_describe_run():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dag = residual_dag(3, 4, 2, 2)
    ax = dag.draw(title="residual")
    assert ax.get_title() == "residual"
    fills = {t.get_text().split("\n")[0]: c.get_facecolor()[0][:3]
             for t, c in zip([t for t in ax.texts if t.get_text()], ax.collections)}
    assert set(fills) == set(dag.order)
    assert all(tuple(fills[n]) == (1.0, 1.0, 1.0) for n in ("r0", "r1", "r2")), "sum nodes are white"
    assert all(tuple(fills[n]) != (1.0, 1.0, 1.0) for n in ("x", "a1", "a2", "out"))
    text = dag.describe()
    assert "r1(I)" in text and "parameters" in text
    plt.close("all")
