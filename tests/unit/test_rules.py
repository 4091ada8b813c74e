"""By-hand rules (course_utils/rules.py): the source check finds every way of naming a forbidden
function and nothing in honest code, and the run-time ban refuses the forbidden call however it is
reached, records it even when the answer catches the error, and lets everything else run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.rules import BannedCall, Rule, check_rule, enforced, source_findings

CE = Rule("pixel_cross_entropy", "build it from torch.logsumexp and indexing", names=("pixel_cross_entropy",),
          forbid=("torch.nn.functional.cross_entropy", "torch.nn.functional.log_softmax", "torch.nn.functional.nll_loss",
                  "torch.log_softmax", "torch.Tensor.log_softmax", "torch.nn.CrossEntropyLoss"),
          ops=("aten._log_softmax", "aten.nll_loss*"))
NO_AUTOGRAD = Rule("backward_messages", "without autograd", names=("backward_messages",), autograd=False)
SETUP = "import torch\nimport torch.nn.functional as F\n"
HONEST = ("def pixel_cross_entropy(scores, labels):\n    log_softmax = scores - torch.logsumexp(scores, dim=1, keepdim=True)\n"
          "    return -log_softmax.gather(1, labels.unsqueeze(1)).mean()\n")
# the lab's own code may use what an answer may not: it is not reachable from the answer
DEMO = "loss = F.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]))\nscores = torch.randn(2, 3).log_softmax(1)\n"


def found(*cells, rule=CE):
    return [f.what for f in source_findings(rule, [SETUP, *cells])]


def test_honest_code_and_the_labs_own_code_are_not_findings():
    assert found(HONEST, DEMO) == []
    # a local variable that shares a name with a top-level one does not drag that one in
    assert found("def pixel_cross_entropy(scores, labels):\n    loss = torch.logsumexp(scores, 1).mean()\n    return loss\n", DEMO) == []


@pytest.mark.parametrize("answer, finding", [
    ("def pixel_cross_entropy(s, l):\n    return F.cross_entropy(s, l)\n", "uses torch.nn.functional.cross_entropy"),
    ("def pixel_cross_entropy(s, l):\n    return torch.nn.functional.nll_loss(s.log_softmax(1), l)\n", "uses torch.nn.functional.nll_loss"),
    ("def pixel_cross_entropy(s, l):\n    return -s.log_softmax(1).mean()\n", "calls the tensor method .log_softmax()"),
    ("def pixel_cross_entropy(s, l):\n    return getattr(F, 'cross_entropy')(s, l)\n", "uses torch.nn.functional.cross_entropy"),
    ("def pixel_cross_entropy(s, l):\n    return getattr(F, 'cross' + '_entropy')(s, l)\n", "looks an attribute up by a computed name (getattr)"),
    ("from torch.nn.functional import cross_entropy as ce\npixel_cross_entropy = lambda s, l: ce(s, l)\n", "uses torch.nn.functional.cross_entropy"),
    ("def pixel_cross_entropy(s, l):\n    return torch.ops.aten.nll_loss2d_forward(s, l, None, 1, -100)[0]\n", "names the operator nll_loss2d_forward"),
    ("def pixel_cross_entropy(s, l):\n    return eval('F.cross_entropy')(s, l)\n", "runs or looks up code dynamically (eval)"),
    ("def pixel_cross_entropy(s, l):\n    return __import__('torch').nn.functional.cross_entropy(s, l)\n", "runs or looks up code dynamically (__import__)"),
    ("def pixel_cross_entropy(s, l):\n    return vars(F)['cross_entropy'](s, l)\n", "runs or looks up code dynamically (vars())"),
    ("def pixel_cross_entropy(s, l):\n    return F.__dict__['cross_entropy'](s, l)\n", "reaches code dynamically through .__dict__"),
    ("def pixel_cross_entropy(s, l):\n    return helper(s, l)\n", "uses torch.nn.functional.log_softmax"),
    ("torch.logsumexp = F.cross_entropy\n" + HONEST, "patches torch.logsumexp"),
])
def test_every_way_of_naming_a_forbidden_function_is_found(answer, finding):
    helper = "def helper(s, l):\n    return F.nll_loss(F.log_softmax(s, 1), l)\n"
    assert finding in found(helper, answer, DEMO)


def test_a_name_bound_before_in_another_cell_is_followed():
    assert "uses torch.nn.functional.cross_entropy" in found("_ce = F.cross_entropy\n", DEMO,
                                                            "def pixel_cross_entropy(s, l):\n    return _ce(s, l)\n")


def test_findings_say_where_they_are():
    [finding] = source_findings(CE, [SETUP, "def pixel_cross_entropy(s, l):\n    x = 1\n    return F.cross_entropy(s, l)\n"])
    assert 'line 3 of the cell that starts "def pixel_cross_entropy(s, l):"' in str(finding)


def test_no_autograd_rules_find_backward_and_torch_autograd():
    assert "calls the tensor method .backward()" in found("def backward_messages(m):\n    m.sum().backward()\n", rule=NO_AUTOGRAD)
    assert "uses torch.autograd.grad" in found("from torch.autograd import grad\ndef backward_messages(m):\n    return grad(m.sum(), m)\n",
                                                rule=NO_AUTOGRAD)
    assert found("def backward_messages(m):\n    with torch.no_grad():\n        return m * 2\n", rule=NO_AUTOGRAD) == []


def _run(rule, fn):
    with enforced(rule) as ban:
        try:
            fn()
            outcome = "ran"
        except BannedCall as exc:
            outcome = str(exc)
    return outcome, ban.violations


def test_the_ban_refuses_the_call_however_it_is_reached():
    s, l = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    bound = F.cross_entropy  # a reference taken before the ban
    ways = {
        "directly": lambda: F.cross_entropy(s, l),
        "bound before": lambda: bound(s, l),
        "a tensor method": lambda: s.log_softmax(1),
        "a layer's forward": lambda: torch.nn.CrossEntropyLoss()(s, l),
        "torch.ops.aten": lambda: torch.ops.aten._log_softmax(s, 1, False),
        "an operator underneath": lambda: torch.ops.aten.nll_loss2d_forward(s, l, None, 1, -100),
    }
    for way, fn in ways.items():
        outcome, violations = _run(CE, fn)
        assert outcome.startswith("pixel_cross_entropy:") and "build it from torch.logsumexp" in outcome, way
        assert violations, way
    assert _run(CE, lambda: torch.logsumexp(s, 1).gather(1, l[:, None, :, 0]))[0] == "ran"


def test_a_caught_ban_is_still_recorded():
    def evasive():
        try:
            F.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]))
        except BannedCall:
            pass
    assert _run(CE, evasive) == ("ran", ["calling torch.nn.functional.cross_entropy"])


def test_no_autograd_refuses_every_backward_pass_and_allows_the_forward():
    x = torch.randn(3, requires_grad=True)
    grad = torch.autograd.grad
    for fn in (lambda: (x * 2).sum().backward(), lambda: grad((x * 2).sum(), x),
               lambda: torch.autograd.backward([(x ** 2).sum()])):
        outcome, violations = _run(NO_AUTOGRAD, fn)
        assert outcome != "ran" and violations
    assert _run(NO_AUTOGRAD, lambda: torch.tanh(x * 2))[0] == "ran"


def test_operator_conditions_tell_a_transposed_convolution_from_an_ordinary_one():
    rule = Rule("q", "no transposed convolution", names=("f",), ops=("aten.convolution(transposed=True)",))
    x, w = torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3)
    assert _run(rule, lambda: F.conv2d(x, w))[0] == "ran"
    assert "transposed=True" in _run(rule, lambda: F.conv_transpose2d(x, w))[1][0]


def test_python_functions_outside_torch_are_refused_too():
    import course_utils.metrics as metrics

    rule = Rule("confusion_counts", "count by hand", names=("confusion_counts",),
                forbid=("course_utils.metrics.confusion_matrix", "torch.distributions"))
    bound = metrics.confusion_matrix
    assert _run(rule, lambda: bound(torch.tensor([0, 1]), torch.tensor([0, 1]), 2))[1]
    assert _run(rule, lambda: torch.distributions.Categorical(probs=torch.ones(3)).sample())[1]
    assert _run(rule, lambda: torch.bincount(torch.tensor([0, 1])))[0] == "ran"


def test_grader_check_reports_the_rule_for_a_banned_answer_and_passes_an_honest_one():
    class PublicTest:  # what otter's test_case objects offer
        def __init__(self, fn):
            self.fn = fn

        def call_func(self, env):
            self.fn(env["pixel_cross_entropy"])

    def public(pixel_cross_entropy):
        s, l = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        torch.testing.assert_close(pixel_cross_entropy(s, l), F.cross_entropy(s, l))  # the test itself may call it

    rule = {**CE.to_dict(), "question": "pixel_cross_entropy"}
    honest = {}
    exec(SETUP + HONEST, honest)
    check_rule(rule, honest, [PublicTest(public)])
    with pytest.raises(AssertionError, match="must follow its by-hand rule: build it from torch.logsumexp"):
        check_rule(rule, {"pixel_cross_entropy": lambda s, l: F.cross_entropy(s, l)}, [PublicTest(public)])


def test_rules_need_a_sentence_for_students_and_well_formed_operators():
    with pytest.raises(ValueError, match="needs a 'rule:' sentence"):
        Rule("q", "", names=("f",))
    with pytest.raises(ValueError, match="aten.<name>"):
        Rule("q", "text", names=("f",), ops=("conv2d",))
