"""Requests across the boundary (course_tools/grading/link.py), checked against doing the same in
one process: values, gradients (a remote call is a node of the caller's autograd graph), callbacks,
in-place changes copied back, errors, proxies that cannot lie, and the by-hand rule around calls."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_tools.grading.link import Link, NotebookError
from course_utils.testing import count_torch_calls


@pytest.fixture
def notebook():
    """A judge link whose student end serves ``namespace`` in a thread (the real processes are
    tested in tests/test_grading.py; here both ends share one interpreter)."""
    namespace: dict = {}
    a, b = socket.socketpair()
    student = Link(b, "student", namespace=namespace)
    thread = threading.Thread(target=student.serve_forever, daemon=True)
    thread.start()
    judge = Link(a, "judge")
    judge.deadline = None

    def remote(name, value):
        namespace[name] = value
        return judge.lookup(name)

    yield remote, judge
    judge.notify("bye")
    thread.join(timeout=5)
    a.close()
    b.close()


def by_hand_cross_entropy(scores, labels):
    log_z = torch.logsumexp(scores, dim=1)
    return (log_z - scores.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()


def forward_backward_like(u, a):
    """Several outputs, in a dict and a tuple, one of them not differentiable."""
    z = torch.logsumexp(u @ a, dim=-1)
    return {"z": z, "pair": (z.sum() * a, (u > 0).sum())}


def test_values_and_gradients_equal_the_local_ones(notebook):
    remote, _ = notebook
    f = remote("f", by_hand_cross_entropy)
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 5), generator=g)
    mine, ref = f(scores, labels), by_hand_cross_entropy(scores, labels)
    torch.testing.assert_close(mine, ref, rtol=0, atol=0)
    torch.testing.assert_close(torch.autograd.grad(mine, scores)[0], torch.autograd.grad(ref, scores)[0], rtol=0, atol=0)

    h = remote("h", forward_backward_like)
    u = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    out, local = h(u, a), forward_backward_like(u, a)
    assert out["pair"][1].dtype == torch.int64 and not out["pair"][1].requires_grad
    loss = (out["z"] ** 2).sum() + out["pair"][0].sum()
    ref_loss = (local["z"] ** 2).sum() + local["pair"][0].sum()
    for mine_g, ref_g in zip(torch.autograd.grad(loss, (u, a)), torch.autograd.grad(ref_loss, (u, a))):
        torch.testing.assert_close(mine_g, ref_g)
    assert torch.autograd.gradcheck(lambda u, a: h(u, a)["z"], (u.detach().requires_grad_(), a.detach().requires_grad_()))


def test_a_remote_module_trains_through_the_callers_backward(notebook):
    remote, _ = notebook

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.up = nn.Linear(2, 3)

        def forward(self, x):
            return torch.tanh(self.up(x))

    block = remote("Block", Block)()
    local = Block()
    x = torch.randn(5, 2, requires_grad=True)
    (block(x) ** 2).sum().backward()
    x_grad = x.grad.clone()
    x.grad = None
    (local(x) ** 2).sum().backward()
    torch.testing.assert_close(x_grad, x.grad)
    torch.testing.assert_close(block.up.weight.grad, local.up.weight.grad), "parameter gradients accumulate where the module lives"
    assert type(block).__name__ == "Block" and type(block.up) is nn.Linear, "a torch.nn attribute arrives as data"


def test_callbacks_see_the_arguments_the_notebook_changes_in_place(notebook):
    remote, _ = notebook

    def finite_differences(f, w, eps=1e-6):
        grad = torch.zeros_like(w)
        flat = w.view(-1)
        with torch.no_grad():
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = float(f())
                flat[i] = old - eps
                down = float(f())
                flat[i] = old
                grad.view(-1)[i] = (up - down) / (2 * eps)
        return grad

    fd = remote("fd", finite_differences)
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    before = w.clone()
    calls = []
    grad = fd(lambda: calls.append(1) or (w ** 3).sum(), w)
    torch.testing.assert_close(grad, 3 * before ** 2, rtol=0, atol=1e-6)
    assert len(calls) == 8 and torch.equal(w, before)


def test_the_notebook_can_backpropagate_through_a_judge_callback(notebook):
    remote, _ = notebook

    def fit(net, loss_fn, steps=5):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x, y = torch.linspace(-1, 1, 8)[:, None], torch.linspace(1, -1, 8)[:, None]
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
        return net

    torch.manual_seed(1)
    net = nn.Linear(1, 1)
    local = nn.Linear(1, 1)
    local.load_state_dict(net.state_dict())
    losses = []
    trained = remote("fit", fit)(net, lambda out, y: losses.append(1) or F.mse_loss(out, y))
    fit(local, F.mse_loss)
    assert len(losses) == 5 and trained is net, "the notebook trained the judge's net, which it returned"
    for a, b in zip(net.parameters(), local.parameters()):
        torch.testing.assert_close(a, b)


def test_in_place_changes_gradients_and_modes_are_copied_back(notebook):
    remote, _ = notebook

    def meddle(t, leaf, net):
        t.mul_(2)
        (leaf * 3).sum().backward()
        net.eval()
        return t

    t, leaf, net = torch.ones(3), torch.ones(2, requires_grad=True), nn.Linear(2, 2)
    same = remote("meddle", meddle)(t, leaf, net)
    assert same is t and torch.equal(t, torch.full((3,), 2.0))
    assert torch.equal(leaf.grad, torch.full((2,), 3.0)) and not net.training


def test_errors_keep_their_type_and_message_but_never_stop_the_judge(notebook):
    remote, _ = notebook

    def bad(x):
        raise ValueError(f"expected (2, 3), got {tuple(x.shape)}")

    with pytest.raises(ValueError, match=r"got \(4,\)") as info:
        remote("bad", bad)(torch.zeros(4))
    assert isinstance(info.value, NotebookError)

    def leave():
        raise SystemExit(0)

    with pytest.raises(NotebookError) as info:
        remote("leave", leave)()
    assert not isinstance(info.value, SystemExit) and info.value.remote_type == "SystemExit"


def test_a_notebook_object_cannot_claim_to_equal_anything(notebook):
    remote, _ = notebook

    class AlwaysEqual:
        def __eq__(self, other):
            return True

        def __float__(self):
            return 0.75

    liar = remote("make", lambda: AlwaysEqual())()
    assert type(liar).__name__ == "AlwaysEqual"
    assert not (liar == 0.75) and liar != 0.75
    with pytest.raises(TypeError):
        float(liar)
    assert not isinstance(liar, (torch.Tensor, float))


def test_operations_are_counted_where_the_function_runs(notebook):
    remote, _ = notebook

    def looped(x):
        return torch.stack([row.sum() for row in x])

    f = remote("looped", looped)
    for n in (2, 7):
        x = torch.randn(n, 3)
        assert count_torch_calls(f, x)[0] == count_torch_calls(looped, x)[0]
    assert count_torch_calls(f, torch.randn(7, 3))[0] > count_torch_calls(f, torch.randn(2, 3))[0]


def test_a_banned_call_is_reported_even_when_the_notebook_catches_it(notebook):
    remote, judge = notebook

    def evasive(scores, labels):
        try:
            return F.cross_entropy(scores, labels)
        except Exception:  # noqa: BLE001 - the ban's error, swallowed
            return by_hand_cross_entropy(scores, labels)

    judge.rule = {"question": "q", "rule": "by hand", "forbid": ["torch.nn.functional.cross_entropy"],
                  "ops": ["aten.nll_loss*"], "names": ["evasive"]}
    scores, labels = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    remote("evasive", evasive)(scores, labels)
    assert judge.violations == ["calling torch.nn.functional.cross_entropy"]


def test_the_judge_answers_nothing_but_calls_of_its_callbacks(notebook):
    remote, _ = notebook
    seen = {}

    def probe(callback):
        for attempt in ("getattr", "iter"):
            try:
                (getattr(callback, "f_globals") if attempt == "getattr" else list(callback))
            except Exception as exc:  # noqa: BLE001
                seen[attempt] = str(exc)
        return callback(2)

    assert remote("probe", probe)(lambda v: v * 21) == 42
    assert seen == {"getattr": "judge does not serve 'getattr'", "iter": "judge does not serve 'iter'"}


def test_a_trained_network_is_judged_on_data_the_judge_makes_and_the_labels_stay_there(notebook):
    remote, judge = notebook

    class Thresholder(nn.Module):  # "trained" in the notebook: a class the judge cannot rebuild
        def forward(self, x):
            return torch.stack([-x, x], dim=1)

    net = remote("net", Thresholder())
    judge.audit = []
    g = torch.Generator().manual_seed(4)
    images = torch.randn(6, 5, 5, generator=g)
    labels = (images > 0).long() + 7  # the judge's answer key, offset so it cannot be mistaken for a prediction
    with torch.no_grad():
        accuracy = float((net(images).argmax(1) + 7 == labels).double().mean())
    assert accuracy == 1.0
    [call] = [json.loads(m) for m in judge.audit]
    assert call["op"] == "call" and json.dumps(call).count('"$t"') == 1, "one tensor crossed: the images, not the labels"
