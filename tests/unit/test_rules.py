"""By-hand rules (course_utils/rules.py): the source check finds every way of naming a forbidden
function (aliases by assignment included) and nothing in honest code; every way of storing one where
that check cannot follow it is found, and its honest near miss is not; every way of reaching into the
grader, torch's mode machinery or the interpreter is flagged, and honest code is not; the labs' own
code gives no finding at all; the run-time ban refuses the forbidden call however it is reached,
records it even when the answer catches the error, and lets everything else run."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from course_tools import REPO
from course_utils.rules import BannedCall, Rule, check_rule, enforced, source_findings, stored_findings, tamper_findings

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


# --- stored forbidden functions, aliases by assignment, tampering ----------------------------------------

CALL = "F.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]))"


def stored(*cells, rule=CE):
    return [f.what for f in stored_findings(rule, [SETUP, *cells])]


def tampered(*cells, where=False):
    return [(f.line, f.what) if where else f.what for f in tamper_findings([SETUP, "from torch import nn\n", *cells])]


def test_plain_aliases_by_assignment_are_followed_like_imports():
    answer = "def pixel_cross_entropy(s, l):\n    return {}(s, l)\n"
    for aliases, use in [("G = torch.nn.functional\n", "G.cross_entropy"), ("ce = F.cross_entropy\n", "ce"),
                         ("G = F\nH = G\n", "H.cross_entropy"), ("G, ce = torch.nn, F.cross_entropy\n", "ce"),
                         ("G = torch.nn\nH = G.functional\n", "H.cross_entropy"),
                         ("def setup():\n    global G\n    G = F\n", "G.cross_entropy")]:
        assert "uses torch.nn.functional.cross_entropy" in found(aliases, DEMO, answer.format(use)), aliases
    # an alias of something allowed stays allowed, and a name bound to a value is no alias
    assert found("G = F\nact = G.relu\n", "def pixel_cross_entropy(s, l):\n    return act(s).sum() + torch.logsumexp(s, 1).mean()\n") == []
    assert found("ce = torch.zeros(3)\n", "def pixel_cross_entropy(s, l):\n    return ce.sum() + torch.logsumexp(s, 1).mean()\n") == []
    # an answer's local names are its own, whatever the notebook binds them to elsewhere
    assert found("ce = F.cross_entropy\nG = F\nfor fn in (F.cross_entropy, F.nll_loss):\n    print(fn)\n",
                 "def pixel_cross_entropy(s, l):\n    ce, G = torch.logsumexp, torch\n    fn = lambda x: x.mean()\n"
                 "    return fn(ce(s, 1)) + G.zeros(())\n") == []
    assert found("G = torch\ndef tidy():\n    G = object()\n    G.x = 1\n", HONEST) == []  # no library patched


def test_torchs_internal_names_for_a_forbidden_function_are_the_function():
    for use in ("torch.nn.modules.loss.F.cross_entropy(s, l)", "torch.nn.modules.loss.CrossEntropyLoss()(s, l)",
                "F.torch.log_softmax(s, 1).mean()"):
        assert [w for w in found(f"def pixel_cross_entropy(s, l):\n    return {use}\n") if w.startswith("uses")], use


def test_getattr_passed_around_is_dynamic():
    assert "looks attributes up by computed names (getattr used as a value)" in found(
        "g = getattr\n", "def pixel_cross_entropy(s, l):\n    return g(F, 'cross' + '_entropy')(s, l)\n")


def test_a_library_patched_through_an_alias_is_found():
    assert "patches torch.logsumexp" in found("x = torch\nx.logsumexp = F.cross_entropy\n", HONEST)


def test_what_fills_a_container_the_answer_reads_is_checked():
    helper = "def helper(s, l):\n    return F.cross_entropy(s, l)\n"
    answer = "def pixel_cross_entropy(s, l):\n    return table['f'](s, l)\n"
    for fill in ("table['f'] = helper\n", "table.update(f=helper)\n", "for k in ['f']:\n    table[k] = helper\n"):
        assert "uses torch.nn.functional.cross_entropy" in found("table = {}\n", helper, fill, DEMO, answer), fill


def test_code_under_time_magics_is_read_and_other_magics_are_dynamic():
    assert "uses torch.nn.functional.cross_entropy" in found("%%time\ndef pixel_cross_entropy(s, l):\n    return F.cross_entropy(s, l)\n")
    assert found("%matplotlib inline\n%timeit -n 1 torch.zeros(3)\n", HONEST) == []


# (route, code that stores F.cross_entropy where the source check cannot follow it, an honest near miss)
STORAGE = [
    ("subscript", "d = {}\nd['f'] = F.cross_entropy\n", "d = {}\nd['f'] = F.relu\n"),
    ("subscript key", "d = {}\nd[F.cross_entropy] = 1\n", f"d = {{}}\nd['loss'] = {CALL}\n"),
    (".append", "fs = []\nfs.append(F.cross_entropy)\n", f"losses = []\nlosses.append({CALL}.item())\n"),
    ("object attribute", "class O:\n    pass\no = O()\no.f = F.cross_entropy\n", "class O:\n    pass\no = O()\no.f = F.relu\n"),
    ("attribute in __init__", "class O:\n    def __init__(self):\n        self.f = F.cross_entropy\n",
     "class O(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.act = F.relu\n"),
    ("loop filling a dict", "d = {}\nfor k in ['a', 'b']:\n    d[k] = F.cross_entropy\n",
     f"d = {{}}\nfor k in ['a', 'b']:\n    d[k] = {CALL}\n"),
    ("loop over pairs", "d = {}\nfor name, fn in [('ce', F.cross_entropy)]:\n    d[name] = fn\n",
     "for name, fn in [('relu', F.relu), ('ce', F.cross_entropy)]:\n    print(name, fn(torch.randn(2, 3), torch.tensor([0, 1])))\n"),
    ("class attribute", "class C:\n    f = F.cross_entropy\n", "class C:\n    f = F.relu\n    eps = 1e-6\n"),
    ("default argument", "def g(s, l, f=F.cross_entropy):\n    return f(s, l)\n", "def g(x, f=F.relu):\n    return f(x)\n"),
    ("decorator", "@F.cross_entropy\ndef g():\n    pass\n", "@torch.no_grad()\ndef g():\n    pass\n"),
    ("alias by assignment", "G = torch.nn.functional\nd = {}\nd['f'] = G.cross_entropy\n",
     "G = torch.nn.functional\nd = {}\nd['f'] = G.relu\n"),
    ("walrus", "if (f := F.cross_entropy):\n    pass\n", "if (n := len([1, 2])) > 1:\n    pass\n"),
    ("lambda", "g = lambda: F.cross_entropy\n", "g = lambda s, l: F.cross_entropy(s, l)\n"),
    ("return", "def g():\n    return F.cross_entropy\n", "def g(s, l):\n    return F.cross_entropy(s, l)\n"),
    ("local alias returned", "def g():\n    f = F.cross_entropy\n    return f\n",
     "def g(s, l):\n    f = F.cross_entropy\n    return f(s, l)\n"),
    ("functools.partial", "import functools\np = functools.partial(F.cross_entropy)\n", "import functools\np = functools.partial(F.relu)\n"),
    ("map", "m = map(F.cross_entropy, [], [])\n", "m = list(map(float, [1, 2]))\n"),
    ("setattr of the module", "class O:\n    pass\nsetattr(O(), 'f', F)\n", "class O:\n    pass\nsetattr(O(), 'f', 1)\n"),
    ("container", "fs = [F.cross_entropy]\n", "fs = [F.relu, torch.tanh]\n"),
    ("comprehension", "fs = {k: F.cross_entropy for k in 'ab'}\n", "fs = {k: F.relu for k in 'ab'}\n"),
    ("augmented assignment", "fs = []\nfs += [F.cross_entropy]\n", f"total = 0.0\ntotal += {CALL}.item()\n"),
    ("tensor method", "d = {}\nd['m'] = torch.zeros(3).log_softmax\n", "d = {}\nd['m'] = torch.zeros(3).softmax\n"),
    ("the module holding it", "d = {}\nd['t'] = torch\n", "d = {}\nd['t'] = torch.float64\n"),
    ("globals()", "globals()['_s'] = getattr(F, 'cross_entropy')\n", "x = getattr(F, 'relu')\n"),
]


@pytest.mark.parametrize("route, smuggled, honest", STORAGE, ids=[s[0] for s in STORAGE])
def test_every_way_of_storing_a_forbidden_function_is_found_and_the_near_miss_is_not(route, smuggled, honest):
    [what, *_] = stored(smuggled)
    assert what.startswith("stores torch") or what.startswith("stores the tensor method .log_softmax"), what
    assert stored(honest) == []


def test_imports_plain_aliases_and_calls_are_not_stored_findings():
    assert stored("import torch.nn.functional as G\nfrom torch.nn.functional import cross_entropy\n",
                  f"ce = F.cross_entropy\nH = F\nloss = {CALL}\nloss2 = ce(torch.randn(2, 3), torch.tensor([0, 1]))\n",
                  f"for fn in (F.cross_entropy, F.nll_loss):\n    print(fn, fn(torch.randn(2, 3), torch.tensor([0, 1])))\n",
                  "def first_try(s, l):\n    return F.cross_entropy(s, l)\n", HONEST, DEMO) == []
    # the course's own helpers only call what they are given; a helper the notebook rebinds is any function
    assert stored("from course_utils.nets import fit\nfit(None, None, loss_fn=F.cross_entropy)\n") == []
    assert stored("from course_utils.nets import fit\ndef fit(*a, **k):\n    pass\nfit(loss_fn=F.cross_entropy)\n")
    assert stored("def print(f):\n    pass\nprint(F.cross_entropy)\n")  # a notebook's own print is any function
    # code a timing library runs from text is read too
    assert stored("import timeit\nd = {}\ntimeit.timeit(\"d['f'] = F.cross_entropy\", globals={'d': d}, number=1)\n")


def test_stored_findings_quote_the_line():
    [finding] = stored_findings(CE, [SETUP, "d = {}\nd['f'] = F.cross_entropy  # sneaky\n"])
    assert str(finding).endswith('(line 2 of the cell that starts "d = {}"): d[\'f\'] = F.cross_entropy  # sneaky')


# (what a notebook does, the kind of finding it must give)
TAMPERING = [
    ("from course_utils import rules\nE = rules.enforced\nE.__enter__ = lambda self: self\n", "reaches into the grader"),
    ("import course_utils.rules as r\nr._Ban.refuse = lambda self, what: None\n", "reaches into the grader"),
    ("from course_utils.testing import count_torch_calls\n", "reaches into the grader"),
    ("import course_tools.grading.link\n", "reaches into the grader"),
    ("from otter.test_files import exception_test\n", "reaches into the grader"),
    ("grader = otter.Notebook('lab.ipynb')\ngrader._ignore_errors = True\n", "reaches into the grader"),
    ("torch._C.DisableTorchFunction()\n", "mode machinery"),
    ("with torch._C.DisableTorchFunctionSubclass(): pass\n", "mode machinery"),
    ("from torch.utils._python_dispatch import _disable_current_modes\n", "mode machinery"),
    ("from torch.utils._python_dispatch import _push_mode, _pop_mode\n", "mode machinery"),
    ("torch._C._set_torch_function_mode(None)\n", "mode machinery"),
    ("from torch.overrides import TorchFunctionMode\n", "mode machinery"),
    ("import torch.utils._python_dispatch as d\nd.TorchDispatchMode\n", "mode machinery"),
    ("class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
     "        return super().__torch_function__(func, types, args, kwargs)\n", "mode machinery"),
    ("torch.ops.aten._log_softmax(torch.zeros(1, 2), 1, False)\n", "mode machinery"),
    ("x = getattr(F, 'cross' + '_entropy')\n", "dynamically"),
    ("setattr(F, 'cross' + '_entropy', print)\n", "dynamically"),
    ("delattr(F, name)\n", "dynamically"),
    ("m = __import__('torch')\n", "dynamically"),
    ("import importlib\n", "dynamically"),
    ("from importlib import import_module\n", "dynamically"),
    ("import sys\nsys.modules['torch'].nn\n", "interpreter"),
    ("import gc\ngc.get_objects()\n", "interpreter"),
    ("import ctypes\n", "interpreter"),
    ("import inspect\n", "interpreter"),
    ("eval('F.cross_entropy')\n", "dynamically"),
    ("exec('x = 1')\n", "dynamically"),
    ("code = compile('1', 'f', 'eval')\n", "dynamically"),
    ("globals()['x'] = 1\n", "dynamically"),
    ("vars()['x'] = 1\n", "dynamically"),
    ("locals()['x']\n", "dynamically"),
    ("get_ipython().user_ns['x'] = 1\n", "IPython"),
    ("import pickle\npickle.loads(b'')\n", "dynamically"),
    ("f = torch.compile(print)\n", "dynamically"),
    ("import sys\nsys.setprofile(None)\n", "interpreter"),
    ("import sys\nsys.settrace(None)\n", "interpreter"),
    ("import threading\nthreading.setprofile(None)\n", "interpreter"),
    ("def f():\n    pass\nf.__code__ = (lambda: 1).__code__\n", "interpreter"),
    ("def f():\n    pass\nf.__globals__['x'] = 1\n", "interpreter"),
    ("F.__dict__['cross_entropy']\n", "interpreter"),
    ("class A:\n    pass\na = A()\na.__class__ = int\n", "interpreter"),
    ("import sys\nframe = sys._getframe().f_back\n", "interpreter"),
    ("x = getattr(F, '__dict__')\n", "interpreter"),
    ("type(torch.zeros(1)).__call__\n", "interpreter"),
    ("b = __builtins__\n", "interpreter"),
    ("net = nn.Linear(1, 1)\nnet._compiled_call_impl = print\n", "call hooks"),
    ("net = nn.Linear(1, 1)\nnet._call_impl(torch.zeros(1))\n", "call hooks"),
    ("net = nn.Linear(1, 1)\nnet._forward_hooks.clear()\n", "call hooks"),
    ("net = nn.Linear(1, 1)\nnet.register_forward_hook(print)\n", "call hooks"),
    ("net = nn.Linear(1, 1)\nnet.register_forward_pre_hook(print)\n", "call hooks"),
    ("net = nn.Linear(1, 1)\nnet.register_full_backward_hook(print)\n", "call hooks"),
    ("nn.modules.module.register_module_forward_hook(print)\n", "call hooks"),
    ("torch.nn.modules.module._global_forward_hooks.clear()\n", "call hooks"),
    ("import threading\nthreading.Thread(target=print).start()\n", "another thread or process"),
    ("from threading import Thread\n", "another thread or process"),
    ("import _thread\n", "another thread or process"),
    ("from concurrent.futures import ThreadPoolExecutor\n", "another thread or process"),
    ("import multiprocessing as mp\n", "another thread or process"),
    ("import subprocess\n", "another thread or process"),
    ("import pty\n", "another thread or process"),
    ("import os\nos.fork()\n", "another thread or process"),
    ("import os\nos.posix_spawn('/bin/true', ['true'], {})\n", "another thread or process"),
    ("import os\nos.system('true')\n", "another thread or process"),
    ("import os\nos.execv('/bin/true', ['true'])\n", "another thread or process"),
    ("loader = torch.utils.data.DataLoader([], num_workers=2)\n", "another thread or process"),
    ("import os\nos.kill(1, 9)\n", "signals"),
    ("import signal\nsignal.signal(signal.SIGALRM, print)\n", "signals"),
    ("import os\nos.write(3, b'x')\n", "signals"),
    ("import socket\n", "sockets"),
    ("open('/proc/self/maps').read()\n", "process internals"),
    ("x = torch\nx.logsumexp = F.cross_entropy\n", "replaces a library attribute"),
    ("setattr(torch, 'logsumexp', print)\n", "replaces a library attribute"),
    ("type(torch.zeros(1)).log_softmax = print\n", "replaces a library attribute"),
    ("torch.testing.assert_close = lambda *a, **k: None\n", "replaces a library attribute"),
    ("import builtins\nbuiltins.isinstance = lambda *a: True\n", "interpreter"),
    ("!ls\n", "IPython"),
    ("%%bash\nls\n", "IPython"),
    ("%%writefile helper.py\nprint(1)\n", "IPython"),
    ("%%time\nimport threading\n", "another thread or process"),
    ("import timeit\ntimeit.timeit('import os; os.fork()', number=1)\n", "another thread or process"),
    ("import timeit\ntimeit.timeit('imp' + 'ort threading', number=1)\n", "dynamically"),
    ("g = getattr\n", "dynamically"),
    ("exec = exec\nexec('x = 1')\n", "dynamically"),
    ("import helper_the_notebook_wrote\n", "not installed"),
]


@pytest.mark.parametrize("code, kind", TAMPERING, ids=[t[0].splitlines()[-1][:40] for t in TAMPERING])
def test_every_way_of_reaching_into_the_grader_modes_or_interpreter_is_found(code, kind):
    found = tampered(code, where=True)
    line = 1 if code.startswith("%%") and "time" not in code else code.count("\n")  # the line that does it
    assert any(kind in what and n == line for n, what in found), found


HONEST_CODE = [
    "x = torch.zeros(2)\nprint(x.__class__.__name__, type(x).__name__, F.relu.__name__, F.relu.__doc__, torch.__version__)\n",
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)\n"
    "    def forward(self, x):\n        return F.relu(self.conv(x))\n    def __repr__(self):\n        return 'Net'\n",
    "net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())\nfor p in net.parameters():\n    p.requires_grad_(False)\n",
    "with torch.no_grad():\n    y = torch.zeros(1) * 2\n",
    "losses = []\nlosses.append(torch.zeros(()).item())\nacts = {'relu': F.relu}\nacts['tanh'] = torch.tanh\nact = F.relu\n",
    "import sys, os, time, copy, json, math\nsys.stdout.write('x')\nos.makedirs('out', exist_ok=True)\ntime.sleep(0)\n",
    "import os\nos.environ['KMP_DUPLICATE_LIB_OK'] = 'TRUE'\ntorch.backends.cudnn.benchmark = True\n",
    "%matplotlib inline\n%config InlineBackend.figure_format = 'retina'\n%timeit -n 1 -r 1 torch.zeros(3)\n",
    "%%time\ny = torch.zeros(3)\n",
    "import otter\ngrader = otter.Notebook('lab.ipynb')\ngrader.check('q')\ngrader.check_all()\ngrader.export()\n",
    "from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))\n",
    "import torch.utils.benchmark as benchmark\nt = benchmark.Timer(stmt='fn()', globals={'fn': print}, num_threads=1)\n",
    "from course_utils import setup, sizes_for, answered\nfrom course_utils.nets import fit\n",
    "d = getattr(nn.Conv2d(1, 1, 1), 'dilation', 1)\nok = hasattr(d, 'shape')\n",
    "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, o: False\n",
    "if __name__ == '__main__':\n    print(__file__ if '__file__' in dir() else '')\n",
    "loader = torch.utils.data.DataLoader([1, 2], num_workers=0)\nimport numpy as np\nnp.random.seed(0)\n",
    "class Block(nn.Module):\n    def __init__(self):\n        nn.Module.__init__(self)\n",
    "ok = hasattr([], '__iter__') and callable(print)\nmode = 'eval'\nsplit = 'train'\n",
    "import timeit\nt = timeit.timeit('sum(range(10))', number=1) + timeit.timeit(lambda: 1, number=1)\n",
    "vars = torch.zeros(3).var(0)\nprint(vars)\nfrom re import compile\npattern = compile('a+')\n",
    "import pandas as pd\npd.options.display.max_rows = 10\n",
]


def test_honest_code_is_not_tampering():
    for code in HONEST_CODE:
        assert tampered(code) == [], code


def test_tamper_findings_quote_the_line_and_only_scan_the_cells_asked():
    cells = ["import torch\n", "import threading\n", "x = 1\nimport os\nos.fork()\n"]
    found = tamper_findings(cells, scan=[2])
    assert [str(f) for f in found] == ['runs code in another thread or process (os.fork) '
                                       '(line 3 of the cell that starts "x = 1"): os.fork()']
    # a cell that does not parse is searched as text, if patterns are given
    [finding] = tamper_findings(["x = (\nimport threading\n"], fallback={r"\bthreading\b": "threads"})
    assert finding.line == 2 and finding.what.startswith("threads")


# --- the labs' own code: no finding at all ---


def _master(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The code cells of a master notebook as the solution notebook has them (tests and raw cells as
    ""), and the names each question's tests take."""
    cells, names, question, in_tests = [], {}, None, False
    for cell in json.loads(path.read_text())["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        head = src.lstrip()
        if cell["cell_type"] == "raw":
            if head.startswith("# BEGIN QUESTION"):
                question = yaml.safe_load(head.split("\n", 1)[1])["name"]
            in_tests = head.startswith("# BEGIN TESTS") or (in_tests and not head.startswith("# END TESTS"))
        elif cell["cell_type"] == "code" and in_tests:
            for node in ast.parse(src).body:
                if isinstance(node, ast.FunctionDef):
                    names.setdefault(question, []).extend(a.arg for a in node.args.args if a.arg != "env")
        elif cell["cell_type"] == "code":
            cells.append(src)
            continue
        cells.append("")
    return cells, names


MASTERS = sorted(REPO.glob("labs/[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))
OTTER_CELLS = ['# Initialize Otter\nimport otter\ngrader = otter.Notebook("lab.ipynb")\n', 'grader.check("q")\n']


@pytest.mark.parametrize("master", MASTERS, ids=[m.parent.name for m in MASTERS])
def test_the_solution_code_of_every_lab_gives_no_finding(master):
    cells, names = _master(master)
    cells = OTTER_CELLS[:1] + cells + OTTER_CELLS[1:]
    assert [str(f) for f in tamper_findings(cells)] == []
    rules = yaml.safe_load((master.parent / "grading.yml").read_text()).get("by_hand") or {}
    for question, spec in rules.items():
        rule = Rule.from_dict({**spec, "question": question, "names": names[question]})
        assert [str(f) for f in source_findings(rule, cells) + stored_findings(rule, cells)] == [], question


def test_the_judge_flags_tampering_quoting_the_line_and_scores_stored_functions_zero():
    from course_tools.grading.judge import LabTests, Question, review_findings, rule_findings

    handout = {"cells": [{"cell_type": "code", "source": SETUP}, {"cell_type": "code", "source": "import ctypes\n"},
                         {"cell_type": "code", "source": "def pixel_cross_entropy(s, l):\n    ...\n"}]}
    submitted = {"cells": handout["cells"][:2] + [
        {"cell_type": "code", "source": HONEST},
        {"cell_type": "code", "source": "import threading\nE = threading.Thread\nfs = []\nfs.append(F.cross_entropy)\n"}]}
    lab = LabTests("00_x", "", [Question("pixel_cross_entropy", 4, 1, 3, ["pixel_cross_entropy"], CE.to_dict())], {},
                   handout, Path("."))
    assert review_findings(submitted, lab) == [
        'runs code in another thread or process (import threading) (line 1 of the cell that starts "import threading"): import threading',
        'runs code in another thread or process (threading.Thread) (line 2 of the cell that starts "import threading"): E = threading.Thread']
    assert rule_findings(submitted, lab) == {"pixel_cross_entropy": [
        "stores torch.nn.functional.cross_entropy as an argument of fs.append() "
        '(line 4 of the cell that starts "import threading"): fs.append(F.cross_entropy)']}
    assert review_findings(handout, lab) == [] and rule_findings(handout, lab) == {}


def test_code_nested_too_deeply_to_check_is_flagged_and_breaks_no_scan():
    for terms in (1500, 20000):  # Python runs the first; it cannot even parse the second
        deep = "x = " + " + ".join(["1"] * terms) + "\n"
        assert any("nested too deeply" in what for what in tampered(deep)), terms
        assert stored(deep) == [] and found(deep, HONEST) == []


def test_the_judge_searches_a_cell_that_does_not_parse_as_text():
    from course_tools.grading.judge import LabTests, review_findings

    lab = LabTests("00_x", "", [], {}, {"cells": []}, Path("."))
    [line] = review_findings({"cells": [{"cell_type": "code", "source": "x = (\nimport subprocess\n"}]}, lab)
    assert line.startswith("runs code in another thread or process (the cell could not be parsed")
    assert line.endswith(": import subprocess")


def test_a_first_attempt_replaced_by_the_final_definition_does_not_count():
    rule = Rule(question="q", text="by hand", names=("loss",), forbid=("torch.nn.functional.cross_entropy",))
    first = "import torch.nn.functional as F\ndef loss(s, y):\n    return F.cross_entropy(s, y)"
    final = "import torch\ndef loss(s, y):\n    return (torch.logsumexp(s, 1) - s.gather(1, y[:, None])[:, 0]).mean()"
    assert source_findings(rule, [first, final]) == []
    assert source_findings(rule, [final, first]), "run last, the first attempt is the answer again"
    wrapped = final + "\nloss = functools.wraps(loss)(lambda s, y: F.cross_entropy(s, y))"
    assert source_findings(rule, [first, wrapped]), "a later rebinding that reads the name builds on it"
    kept = "def helper(s, y):\n    return F.cross_entropy(s, y)\nold = loss"
    assert source_findings(rule, [first, kept, final]) == [], "nothing the final answer reads"
    reuse = "import torch.nn.functional as F\ndef helper(s, y):\n    return F.cross_entropy(s, y)\ndef loss(s, y):\n    return helper(s, y)"
    assert source_findings(rule, [reuse])


def test_a_subclass_of_a_forbidden_class_counts_when_the_answer_uses_it_and_not_otherwise():
    subclass = "class L(torch.nn.CrossEntropyLoss):\n    pass\n"
    uses = "def pixel_cross_entropy(scores, labels):\n    return L()(scores, labels)\n"
    assert found(subclass, uses) and stored(subclass, uses) == []
    assert found(subclass, HONEST) == [], "a class the answer does not use costs nothing"
    custom = "class Fn(torch.autograd.Function):\n    @staticmethod\n    def forward(ctx, x):\n        return x\n"
    assert stored(custom, rule=NO_AUTOGRAD) == [], "an honest custom Function elsewhere is no evasion"
