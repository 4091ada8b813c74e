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


def _small_graph():
    return dict(order=["x", "a", "b", "y"], inputs={"x"}, outputs=["y"],
                parents={"a": [("x", 0.5)], "b": [("x", -1.0), ("a", 2.0)], "y": [("b", 0.25)]})


def test_unit_depths_are_longest_paths_and_bad_orders_are_named():
    import pytest

    from course_utils.plotting.graphs import unit_depths

    assert unit_depths(_small_graph()) == {"x": 0, "a": 1, "b": 2, "y": 3}  # b reads x directly, but also a
    backwards = dict(_small_graph(), order=["x", "b", "a", "y"])
    with pytest.raises(ValueError, match="topologically"):
        unit_depths(backwards)
    with pytest.raises(ValueError, match="'parents'"):
        unit_depths({"order": [], "inputs": set(), "outputs": []})


def test_unit_messages_are_drawn_on_their_units_with_arrows_the_way_they_flow():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pytest

    from course_utils.plotting.graphs import draw_unit_messages

    graph = _small_graph()
    values = {"x": 1.0, "a": 0.5, "b": -0.0379, "y": 0.125}
    for backward in (False, True):
        ax = draw_unit_messages(graph, values, backward=backward, highlight=("x", "b"))
        labels = [t for t in ax.texts if "=" in t.get_text()]
        shown = {t.get_text().split("\n")[0]: t.get_text().split("\n")[1] for t in labels}
        symbol = "V" if backward else "M"
        assert shown == {u: f"{symbol}={v:+.3f}" for u, v in values.items()}
        where = {t.get_text().split("\n")[0]: t.get_position() for t in labels}
        arrows = [t for t in ax.texts if t.get_text() == ""]
        assert len(arrows) == 4, "one arrow per edge"
        heads = {(tuple(a.xyann), tuple(a.xy)) for a in arrows}
        for p, c in [("x", "a"), ("x", "b"), ("a", "b"), ("b", "y")]:
            tail, head = (where[c], where[p]) if backward else (where[p], where[c])
            assert (tuple(tail), tuple(head)) in heads, f"the arrow of {p} -> {c} points the way the message flows"
        widths = sorted(a.arrow_patch.get_linewidth() for a in arrows)
        assert widths[-1] > 2 * widths[0] and widths[-2] == widths[0], "only the highlighted edge is thick"
        weights = sorted(t.get_text() for t in ax.texts if t.get_text().startswith(("+", "-")))
        assert weights == sorted(["+0.50", "-1.00", "+2.00", "+0.25"])
        plt.close("all")
    with pytest.raises(ValueError, match="missing"):
        draw_unit_messages(graph, {"x": 1.0})
    with pytest.raises(TypeError, match="plain numbers"):
        draw_unit_messages(graph, dict(values, a="0.5"))
    with pytest.raises(ValueError, match="not an edge"):
        draw_unit_messages(graph, values, highlight=("a", "y"))
    plt.close("all")
