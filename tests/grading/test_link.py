"""Requests across the boundary (course_tools/grading/link.py), checked against doing the same in
one process: values, gradients (a remote call is a node of the caller's autograd graph), callbacks,
in-place changes reported but never applied to the judge's objects, gradients checked against the
forward, errors, proxies that cannot lie, and the by-hand rule around calls."""

from __future__ import annotations

import copy
import json
import socket
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_tools.grading.link import Link, NotebookError
from course_utils.testing import LoopWarning, assert_inputs_unchanged, count_torch_calls, expect_vectorized


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
    untouched = copy.deepcopy(net)
    trained = remote("fit", fit)(net, lambda out, y: losses.append(1) or F.mse_loss(out, y))
    fit(local, F.mse_loss)
    assert len(losses) == 5 and trained is not net, "the net it trained and returned arrives as a copy"
    for a, b, c in zip(trained.parameters(), local.parameters(), untouched.parameters()):
        torch.testing.assert_close(a, b)
    for a, c in zip(net.parameters(), untouched.parameters()):
        assert torch.equal(a, c), "the judge's own net is as it was before the call"


def test_in_place_changes_are_reported_and_never_applied_to_the_judges_objects(notebook):
    remote, _ = notebook

    def meddle(t, leaf, net, scores):
        t.mul_(2)
        (leaf * 3).sum().backward()
        net.eval()
        scores.zero_()  # a blank answer that poisons its input so that the reference equals its output
        return t

    t, leaf, net = torch.ones(3), torch.ones(2, requires_grad=True), nn.Linear(2, 2)
    scores = torch.randn(2, 3)
    before = scores.clone()
    f = remote("meddle", meddle)
    same = f(t, leaf, net, scores)
    assert same is not t and torch.equal(same, torch.full((3,), 2.0)), "the returned argument carries the change"
    assert torch.equal(t, torch.ones(3)) and torch.equal(scores, before), "the judge's tensors are pristine"
    assert leaf.grad is None and net.training, "no .grad written and no mode switched on a judge object"
    with pytest.raises(AssertionError, match=r"argument 1 \(a tensor of shape \(3,\)\).*argument 4"):
        assert_inputs_unchanged(f, torch.ones(3), leaf, net, torch.randn(2, 3))
    with pytest.raises(AssertionError, match="argument 1"):  # the same helper, in one process
        assert_inputs_unchanged(meddle, torch.ones(3), torch.ones(2, requires_grad=True), nn.Linear(2, 2), torch.randn(2, 3))
    assert torch.equal(assert_inputs_unchanged(remote("double", lambda x: 2 * x), torch.ones(2)), torch.full((2,), 2.0))


def test_a_returned_module_trained_in_place_is_a_copy_and_reported(notebook):
    remote, _ = notebook

    def train_in_place(net):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        return net

    net = nn.Linear(2, 2)
    before = copy.deepcopy(net.state_dict())
    f = remote("train_in_place", train_in_place)
    with pytest.raises(AssertionError, match=r"argument 1 \(a Linear \(its weights or buffers\)\)"):
        assert_inputs_unchanged(f, net)
    out = f(net)
    assert out is not net and torch.equal(out.weight, before["weight"] + 1)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_a_forged_backward_fails_against_the_forward(notebook):
    remote, _ = notebook

    class Forged(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g + 1.0  # a gradient that its forward does not have

    forged = remote("forged", lambda x: Forged.apply(x) * 2)
    honest = remote("honest", lambda x: torch.relu(x) ** 2 + torch.nn.functional.max_pool1d(x[None], 2).sum())
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(3, 4, dtype=dtype, requires_grad=True)
        with pytest.raises(AssertionError, match="does not match its own forward"):
            torch.autograd.grad(forged(x).sum(), x)
        mine, = torch.autograd.grad(honest(x).sum(), x)  # kinks (ReLU, max pooling) do not fail an honest answer
        ref, = torch.autograd.grad((torch.relu(x) ** 2 + torch.nn.functional.max_pool1d(x[None], 2).sum()).sum(), x)
        torch.testing.assert_close(mine, ref)


def test_low_precision_results_are_refused(notebook):
    remote, _ = notebook
    f = remote("bf16", lambda x: (x.mean() + 0.001).to(torch.bfloat16))
    with pytest.raises(TypeError, match="got bfloat16 tensor"):
        f(torch.full((4,), 0.75))
    g = remote("half_in_half_out", lambda x: x * 2)
    assert g(torch.ones(2, dtype=torch.float16)).dtype == torch.float16, "a half input may give a half output"


def test_a_module_structure_comes_from_data_not_from_its_methods(notebook):
    remote, _ = notebook

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
            self.scale = nn.Parameter(torch.ones(1))

        def parameters(self, recurse=True):  # a lie padded to the count a test expects
            yield from super().parameters(recurse)
            yield torch.zeros(1000)

        def __len__(self):
            return 7

        def forward(self, x):
            return self.body(x) * self.scale

    net = remote("Padded", Padded)()
    local = Padded()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in nn.Module.parameters(local)) == 2 * 9 + 2 + 1
    assert [k for k, _ in net.named_parameters()] == ["scale", "body.0.weight", "body.0.bias"]
    assert set(net.state_dict()) == {"scale", "body.0.weight", "body.0.bias"}
    assert isinstance(net.body[0], nn.Conv2d) and len(net) == 7, "only the registry is read as data"
    x = torch.randn(1, 1, 5, 5, requires_grad=True)
    net(x).sum().backward()
    assert [p.grad is not None for p in net.parameters()] == [True, True, True], "gradients of the notebook's weights"


def test_a_module_that_carries_code_does_not_cross_as_data(notebook):
    remote, _ = notebook

    class Sneaky:
        def __call__(self, *args, **kwargs):
            return torch.zeros(1)

    def make():
        conv = nn.Conv2d(1, 1, 1)
        conv._compiled_call_impl = Sneaky  # nn.Module.__call__ would run this where the module is used
        return conv

    conv = remote("make", make)()
    assert not isinstance(conv, nn.Module), "a module carrying a class stays in the notebook, behind a proxy"
    clean = remote("clean", lambda: nn.Conv2d(1, 1, 1))()
    assert isinstance(clean, nn.Conv2d)


def test_a_callback_error_crosses_without_the_judges_text(notebook):
    remote, _ = notebook
    seen = {}

    def calls(callback):
        try:
            callback()
        except Exception as exc:  # noqa: BLE001
            seen["error"] = (type(exc).__name__, str(exc), getattr(exc, "remote_traceback", ""))
        return 1

    def test_hidden_secret_name():
        raise AssertionError("hidden input 0.123456789 at /autograder/source/tests/q1.py")

    remote("calls", calls)(test_hidden_secret_name)
    name, message, trace = seen["error"]
    assert name == "AssertionError" and trace == ""
    assert "0.123456789" not in message and "autograder" not in message and "test_hidden" not in message


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


def test_a_python_loop_over_pixels_counts_as_work(notebook):
    remote, _ = notebook
    cell = {"__name__": "__main__", "torch": torch}  # a function defined in a notebook cell
    exec("def loop_count(x):\n    total = 0\n    for v in x.flatten().tolist():\n        total += v > 0\n"
         "    return torch.tensor(total)\n", cell)
    f = remote("loop_count", cell["loop_count"])
    small, large = count_torch_calls(f, torch.randn(2, 2))[0], count_torch_calls(f, torch.randn(8, 8))[0]
    assert large > small + 50, "every pass of the loop runs lines of notebook code"
    assert count_torch_calls(cell["loop_count"], torch.randn(8, 8))[0] == large, "counted alike in one process"


def test_a_loop_is_a_flag_for_review_never_a_failure(notebook):
    """expect_vectorized decides no points: through the judge's proxy a growing count becomes a flag
    recorded on the judge's side; on a local function it is a LoopWarning naming the function."""
    remote, judge = notebook

    def looped(x):
        return torch.stack([row.sum() for row in x])

    f = remote("looped", looped)
    counts = [count_torch_calls(f, torch.randn(n, 3))[0] for n in (2, 9)]
    assert expect_vectorized(f, counts, over="rows") is False
    assert len(judge.review) == 1 and "a Python loop over rows" in judge.review[0]
    assert f"{counts[0]} -> {counts[1]}" in judge.review[0], "the flag carries the counts a person reads"
    judge.review.clear()
    same = [count_torch_calls(f, torch.randn(n, 3))[0] for n in (4, 4)]
    assert expect_vectorized(f, same) is True and judge.review == []
    assert expect_vectorized(f, [5, 9], slack=4) is True and judge.review == [], "within the slack"

    with pytest.warns(LoopWarning, match="looped: the work grows with the input"):
        assert expect_vectorized(looped, counts, over="rows") is False
    with pytest.raises(ValueError, match="at least two"):
        expect_vectorized(looped, [3])
    with pytest.raises(TypeError, match="needs the function"):
        expect_vectorized(None, [3, 3])


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


def test_a_gradient_written_into_an_argument_is_reported(notebook):
    remote, _ = notebook

    def fit_t(logits, labels):
        t = torch.ones((), requires_grad=True)
        F.cross_entropy(logits / t, labels).backward()  # the scores were not detached: they get a .grad
        return float(t.grad)

    logits, labels = torch.randn(6, 3, requires_grad=True), torch.randint(0, 3, (6,))
    for f in (remote("fit_t", fit_t), fit_t):
        with pytest.raises(AssertionError, match=r"argument 1 \(a tensor of shape \(6, 3\), its .grad was written\)"):
            assert_inputs_unchanged(f, logits, labels)
        logits.grad = None
    assert isinstance(assert_inputs_unchanged(remote("fine", lambda x, y: float(x.detach().sum())), logits, labels), float)
