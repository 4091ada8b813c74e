"""Tests of course_utils.nets.dag: activations against autograd, graph validation, builders, the chain twin."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.nets.dag import (
    ACTIVATIONS,
    Edge,
    LayerDAG,
    Node,
    activation,
    dense_dag,
    mlp_dag,
    random_dag,
    random_inputs,
    residual_dag,
)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_match_autograd(name):
    m = torch.linspace(-4, 4, 81, dtype=torch.float64).reshape(9, 9) + 0.013  # avoid relu's kink at 0
    m.requires_grad_(True)
    act = activation(name)
    (d,) = torch.autograd.grad(act.h(m).sum(), m)
    torch.testing.assert_close(act.dh(m.detach()), d, rtol=1e-12, atol=1e-12)
    reference = {"identity": lambda x: x, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "softplus": F.softplus, "relu": F.relu}[name]
    torch.testing.assert_close(act(m.detach()), reference(m.detach()))


def test_unknown_activation_names_the_known_ones():
    with pytest.raises(ValueError, match="tanh"):
        activation("swish")


def _tiny(**change):
    W = torch.ones(2, 3, dtype=torch.float64)
    nodes = [Node("x", 3, "identity", "input"), Node("y", 2, "identity", "output")]
    edges = [Edge("x", "y", W)]
    biases = {"y": torch.zeros(2, dtype=torch.float64)}
    return change.get("nodes", nodes), change.get("edges", edges), change.get("biases", biases)


def test_graph_validation_gives_clear_errors():
    LayerDAG(*_tiny())
    with pytest.raises(ValueError, match="shape"):
        LayerDAG(*_tiny(edges=[Edge("x", "y", torch.ones(3, 2, dtype=torch.float64))]))
    with pytest.raises(ValueError, match="backwards"):
        LayerDAG(*_tiny(nodes=[Node("y", 2, "identity", "output"), Node("x", 3, "identity", "input")]))
    with pytest.raises(ValueError, match="equal sizes"):
        LayerDAG(*_tiny(edges=[Edge("x", "y", None)]))
    with pytest.raises(ValueError, match="bias"):
        LayerDAG(*_tiny(biases={}))
    with pytest.raises(ValueError, match="unknown node"):
        LayerDAG(*_tiny(edges=[Edge("x", "z", torch.ones(2, 3, dtype=torch.float64))]))
    with pytest.raises(ValueError, match="identity activation"):
        LayerDAG(*_tiny(nodes=[Node("x", 3, "identity", "input"), Node("y", 2, "tanh", "output")]))
    with pytest.raises(ValueError, match="dtype"):
        LayerDAG(*_tiny(biases={"y": torch.zeros(2, dtype=torch.float32)}))
    with pytest.raises(ValueError, match="no parents"):
        LayerDAG(*_tiny(nodes=[Node("x", 3, "identity", "input"), Node("h", 2, "tanh"), Node("y", 2, "identity", "output")],
                        biases={"y": torch.zeros(2, dtype=torch.float64), "h": torch.zeros(2, dtype=torch.float64)}))


def test_check_inputs_and_check_messages_name_the_expected_shape():
    dag = mlp_dag([3, 4, 2])
    assert dag.check_inputs({"x": torch.zeros(5, 3, dtype=torch.float64)}) == 5
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        dag.check_inputs({"x": torch.zeros(5, 4, dtype=torch.float64)})
    with pytest.raises(TypeError, match="dict"):
        dag.check_inputs(torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        dag.check_inputs({"x": torch.zeros(5, 3)})
    with pytest.raises(ValueError, match="missing"):
        dag.check_messages({"x": torch.zeros(5, 3, dtype=torch.float64)})
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        dag.check_messages({"x": torch.zeros(5, 3), "h1": torch.zeros(5, 2), "out": torch.zeros(5, 2)})


def test_builders_make_the_advertised_structures():
    res = residual_dag(3, 4, blocks=2, output_size=2)
    identity = [e.key for e in res.edges if not e.trainable]
    assert identity == [("r0", "r1"), ("r1", "r2")]
    dense = dense_dag(3, 4, layers=3, output_size=2)
    for j, c in enumerate(dense.order[1:], start=1):
        assert [e.parent for e in dense.parents(c)] == dense.order[:j], "every layer reads every earlier one"
    mlp = mlp_dag([5, 7, 7, 2], act="relu")
    assert mlp.is_chain() and not res.is_chain() and not dense.is_chain()
    assert mlp.num_parameters() == 5 * 7 + 7 + 7 * 7 + 7 + 7 * 2 + 2
    assert mlp.num_unit_edges() == 5 * 7 + 7 * 7 + 7 * 2
    assert res.num_unit_edges() == 3 * 4 + 2 * (16 + 16 + 4) + 4 * 2
    with pytest.raises(ValueError, match="chain"):
        res.chain_parameters()


def _autograd_messages(dag, inputs):
    """Forward messages written out with torch ops, pre-activations kept for their gradients."""
    msgs = dict(inputs)
    for c in dag.order:
        if c in inputs:
            continue
        msgs[c] = dag.bias[c] + sum(
            dag.h(e.parent, msgs[e.parent]) if e.weight is None else F.linear(dag.h(e.parent, msgs[e.parent]), e.weight)
            for e in dag.parents(c))
        msgs[c].retain_grad()
    return msgs


@pytest.mark.parametrize("blocks", [1, 3])
def test_the_residual_stream_carries_the_backward_message_unchanged(blocks):
    """With every block's output weight at zero the network is the stream alone, and the gradient with
    respect to the first stream node equals the gradient with respect to the last: no slope on the way.
    With the blocks on, the first node's gradient is the last node's plus what the blocks add."""
    dag = residual_dag(3, 5, blocks=blocks, output_size=2, seed=4).requires_grad_(True)
    assert all(dag.nodes[f"r{i}"].act == "identity" for i in range(blocks + 1)), "the stream is made of sum nodes"
    assert all(dag.nodes[f"a{i}"].act == "tanh" for i in range(1, blocks + 1))
    x = random_inputs(dag, 6, seed=1)
    G = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    off = residual_dag(3, 5, blocks=blocks, output_size=2, seed=4).requires_grad_(True)
    for i in range(1, blocks + 1):
        with torch.no_grad():
            off.edge(f"a{i}", f"r{i}").weight.zero_()
    msgs = _autograd_messages(off, x)
    (msgs["out"] * G).sum().backward()
    torch.testing.assert_close(msgs["r0"].grad, msgs[f"r{blocks}"].grad, rtol=0, atol=0)

    msgs = _autograd_messages(dag, x)
    (msgs["out"] * G).sum().backward()
    last, first = msgs[f"r{blocks}"].grad, msgs["r0"].grad
    added = sum(msgs[f"a{i}"].grad @ dag.edge(f"r{i-1}", f"a{i}").weight for i in range(1, blocks + 1))
    torch.testing.assert_close(first, last + added, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(first, last), "the blocks do add to the message"


def test_random_graphs_are_valid_deterministic_and_varied():
    graphs = [random_dag(seed=s, inputs=1 + s % 2, outputs=1 + s % 3) for s in range(20)]
    for s, dag in enumerate(graphs):
        assert len(dag.inputs) == 1 + s % 2 and len(dag.outputs) == 1 + s % 3
        for n in dag.order:  # every node but the inputs has parents, every hidden node feeds something
            if dag.nodes[n].role == "hidden":
                assert dag.parents(n) and dag.children(n)
        for x in dag.inputs:
            assert dag.children(x), "every input is used"
    again = random_dag(seed=5, inputs=2, outputs=3)
    assert [e.key for e in again.edges] == [e.key for e in graphs[5].edges]
    assert all(torch.equal(a, b) for a, b in zip(again.tensors(), graphs[5].tensors()))
    assert any(not e.trainable for d in graphs for e in d.edges), "some random graphs have residual edges"
    assert any(len(d.parents(n)) > 1 for d in graphs for n in d.order), "some nodes have several parents"


def test_to_sequential_is_the_chain_written_with_torch_layers():
    dag = mlp_dag([4, 6, 5, 3], act="sigmoid", seed=2)
    net = dag.to_sequential()
    x = random_inputs(dag, 7)["x"]
    W, b, acts = dag.chain_parameters()
    assert acts == ["sigmoid", "sigmoid"]
    expected = F.linear(torch.sigmoid(F.linear(torch.sigmoid(F.linear(x, W[0], b[0])), W[1], b[1])), W[2], b[2])
    torch.testing.assert_close(net(x), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the module shares storage with the graph
        W[0][0, 0] += 1.0
    assert net[0].weight[0, 0] == W[0][0, 0]


def test_to_changes_dtype_and_copies():
    dag = random_dag(seed=1)
    d32 = dag.to(torch.float32)
    assert d32.dtype == torch.float32 and dag.dtype == torch.float64
    assert all(torch.allclose(a.double(), b, atol=1e-6) for a, b in zip(d32.tensors(), dag.tensors()))
    d32.tensors()[0].add_(1.0)
    assert not torch.allclose(d32.tensors()[0].double(), dag.tensors()[0], atol=0.5)
