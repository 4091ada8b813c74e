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
    text = dag.describe()
    assert "r1(I)" in text and "parameters" in text
    plt.close("all")
