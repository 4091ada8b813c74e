"""What crosses between the judge and the student process (course_tools/grading/wire.py): plain
data round-trips exactly, modules and course objects cross as data only from a fixed list, and
anything else is refused before it is built. Nothing in the grader unpickles."""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_tools.grading import wire
from course_tools.grading.wire import Decoder, Encoder, WireError, recv_frame, send_frame


def cross(value, trusted: bool = False, by_name: bool = False):
    """Encode ``value``, send it through a real frame and decode it on the other end."""
    exported = []
    enc = Encoder(lambda obj: exported.append(obj) or {"$ref": len(exported), "type": type(obj).__name__}, by_name=by_name)
    data = enc.encode(value)
    a, b = socket.socketpair()
    with a, b:
        send_frame(a, {"value": data}, enc.tensors)
        message, tensors, _ = recv_frame(b, deadline=None)
    return Decoder(tensors, lambda record: ("proxy", record["type"]), trusted=trusted).decode(message["value"])


def decode(data, tensors=None, trusted=False):
    return Decoder(tensors or {}, lambda record: ("proxy", record["type"]), trusted=trusted).decode(data)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool])
def test_tensors_of_every_dtype_cross_exactly(dtype):
    g = torch.Generator().manual_seed(0)
    for shape in [(), (0, 3), (2, 3, 4)]:
        t = (torch.randn(shape, generator=g) * 50).to(dtype)
        got = cross(t)
        assert type(got) is torch.Tensor and got.dtype == dtype and got.shape == t.shape
        assert torch.equal(got, t)


def test_plain_values_and_containers_round_trip():
    value = {
        ("x", "h1"): [1, 2.5, -3, True, None, "text", float("nan"), float("inf")],
        "nested": ({"a": (1, (2, 3))}, {frozenset({1, 2}) and 4: {5, 6}}),
        3: torch.Size([2, 3]),
        "kinds": [torch.float64, torch.device("cpu"), slice(1, None, 2)],
        "numpy": [np.arange(6).reshape(2, 3), np.float64(1.5), np.int64(-7), np.bool_(True)],
        "big": 2 ** 80,
    }
    got = cross(value)
    assert got[("x", "h1")][:6] == [1, 2.5, -3, True, None, "text"]
    assert math.isnan(got[("x", "h1")][6]) and got[("x", "h1")][7] == math.inf
    assert got["nested"] == ({"a": (1, (2, 3))}, {4: {5, 6}})
    assert isinstance(got[3], torch.Size) and got[3] == (2, 3)
    assert got["kinds"] == [torch.float64, torch.device("cpu"), slice(1, None, 2)]
    np.testing.assert_array_equal(got["numpy"][0], np.arange(6).reshape(2, 3))
    assert got["numpy"][1] == 1.5 and type(got["numpy"][1]) is np.float64 and type(got["numpy"][3]) is np.bool_
    assert got["big"] == 2 ** 80


def test_a_generator_crosses_with_its_state():
    g = torch.Generator().manual_seed(3)
    torch.randn(5, generator=g)
    copy = cross(g)
    assert torch.equal(torch.randn(4, generator=copy), torch.randn(4, generator=g))


def test_a_tensor_subclass_arrives_as_a_plain_tensor():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            out = super().__torch_function__(func, types, args, kwargs or {})
            return True if getattr(func, "__name__", "") in ("eq", "__eq__", "equal") else out

    lying = torch.zeros(3).as_subclass(Liar)
    assert torch.equal(lying, torch.ones(3)) is True  # it lies in its own process
    got = cross(lying)
    assert type(got) is torch.Tensor and not torch.equal(got, torch.ones(3))


def test_requires_grad_gradients_and_identity_are_kept():
    w = torch.randn(3, requires_grad=True)
    w.grad = torch.ones(3)
    got = cross([w, w])
    assert got[0] is got[1], "one tensor sent twice arrives as one tensor"
    assert got[0].requires_grad and torch.equal(got[0].grad, torch.ones(3))


def test_torch_modules_cross_as_data_and_compute_the_same():
    torch.manual_seed(0)
    net = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(2, 3, 3, dilation=2, padding_mode="zeros"), nn.BatchNorm2d(3),
                        nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).eval()
    net[2].running_mean.normal_()
    copy = cross(net)
    assert type(copy) is nn.Sequential and [type(m) for m in copy] == [type(m) for m in net]
    assert not copy.training and copy[1].dilation == (2, 2) and copy[4].ceil_mode
    x = torch.randn(2, 2, 7, 7)
    torch.testing.assert_close(copy(x), net(x), rtol=0, atol=0)
    for (k, a), b in zip(net.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in copy.parameters())


def test_course_modules_and_objects_cross_as_data():
    from course_utils.nets.dag import random_dag, random_inputs
    from course_utils.nets import SmallFCN

    net = SmallFCN(1, 3, width=4, depth=1).eval()
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(cross(net)(x), net(x), rtol=0, atol=0)
    dag = random_dag(seed=2)
    copy = cross(dag)
    assert type(copy) is type(dag) and copy.order == dag.order and [e.key for e in copy.edges] == [e.key for e in dag.edges]
    inputs = random_inputs(dag, 3)
    for c in dag.order[len(inputs):]:
        assert torch.equal(copy.bias[c], dag.bias[c])
    data = torch.utils.data.TensorDataset(torch.arange(4), torch.arange(4) * 2)
    assert [tuple(map(int, item)) for item in cross(data)] == [(i, 2 * i) for i in range(4)]


def test_other_objects_stay_behind_as_references():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    got = cross({"f": lambda x: x, "module": Custom(), "bytes": b"\x80\x04pickle"})
    assert got == {"f": ("proxy", "function"), "module": ("proxy", "Custom"), "bytes": ("proxy", "bytes")}
    hooked = nn.Linear(2, 2)
    hooked.register_forward_hook(lambda *a: None)
    assert cross(hooked) == ("proxy", "Linear"), "a module with a hook is not plain torch.nn: it stays behind"


@pytest.mark.parametrize("record, why", [
    ({"$module": "subprocess.Popen", "attrs": {}}, "not a class that can cross"),
    ({"$module": "__main__.Evil", "attrs": {}}, "not a class that can cross"),
    ({"$module": "torch.nn.modules.linear.Linear", "attrs": {"forward": {"$ref": 1, "type": "x"}}}, "cannot carry the attribute"),
    ({"$module": "torch.nn.modules.linear.Linear", "attrs": {"__class__": 1}}, "cannot carry the attribute"),
    ({"$object": "os._wrap_close", "vars": {}}, "not a class that can cross"),
    ({"$object": "course_utils.nets.small_fcn.SmallFCN", "vars": {}}, "crosses as \\$module"),
    ({"$fn": "os.system"}, "cannot cross in this direction"),
    ({"$dtype": "system"}, "unknown dtype"),
    ({"$npscalar": "object", "v": 1}, "bad NumPy scalar"),
    ({"$t": "t9"}, "not in the blob"),
    ({"$same": 0}, "did not carry"),
    ({"nothing": 1}, "untagged"),
])
def test_the_judge_refuses_what_is_not_on_the_list(record, why):
    with pytest.raises(WireError, match=why):
        decode(record)


def test_library_functions_travel_by_name_only_from_the_judge():
    assert cross(torch.tanh, by_name=True, trusted=True) is torch.tanh
    with pytest.raises(WireError):
        decode({"$fn": "torch.tanh"}, trusted=False)


def test_malformed_and_oversized_frames_are_errors_not_crashes():
    for raw in [b"XXXX" + b"\0" * 12, wire.HEADER.pack(wire.MAGIC, 3, 0) + b"{{{", wire.HEADER.pack(wire.MAGIC, 2, 0) + b"[]",
                wire.HEADER.pack(wire.MAGIC, 2, 5) + b"{}" + b"12345",
                wire.HEADER.pack(wire.MAGIC, wire.MAX_JSON + 1, 0)]:
        a, b = socket.socketpair()
        with a, b:
            a.sendall(raw)
            a.shutdown(socket.SHUT_WR)
            with pytest.raises(WireError):
                recv_frame(b, deadline=None)


def test_nothing_in_the_grader_unpickles():
    """The trust boundary's promise, checked in the source (strings aside): no module of the grader
    imports pickle, dill or marshal, or calls torch.load or numpy.load."""
    import ast

    import course_tools.grading as grading

    sources = sorted(Path(grading.__file__).parent.glob("*.py"))
    assert len(sources) >= 8
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "marshal", "shelve") for n in names):
                found.append(f"{path.name}:{node.lineno} imports {names}")
            if isinstance(node, ast.Attribute) and node.attr == "load" and isinstance(node.value, ast.Name) \
                    and node.value.id in ("torch", "np", "numpy"):
                found.append(f"{path.name}:{node.lineno} calls {node.value.id}.load")
    assert not found, f"the grader must not unpickle anything: {found}"
