"""The `forward:` compiler (SPEC §1.6): twins of hand-written blocks, refusals, traceability, fuzz.

Each network is built twice under one seed: as the hand-written class, and as a
block whose children are that class's children and whose forward is compiled
from text. The two must print alike, save alike and compute bit-identical
outputs. Every construct outside the subset is refused before anything runs,
located inside the forward text; the fuzz test checks that no text, valid or
mangled, gets past parse and compile with anything but NetcliError, and that
none of them, run, can touch the file system.
"""
from __future__ import annotations

import copy
import io
import os
import random
import re
import signal
import subprocess
import sys
import warnings
from collections import OrderedDict
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import handwritten_nets
from netcli.builder.forward import (
    FUNCTIONS,
    METHODS,
    block_class,
    compile_forward,
    compiled_program,
    failure_location,
    parse_forward,
    to_python,
)
from netcli.core.errors import NetcliError

SOURCE, LINE, COLUMN = "spec.yaml", 20, 7  # where the block scalar's first character is


# ---- the hand-written twins ----

class BasicBlock(nn.Module):
    def __init__(self, planes=8):
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + x)


BASIC = """\
out = bn2(conv2(relu(bn1(conv1(x)))))
return relu(out + x)
"""


class Inception(handwritten_nets.Inception):
    """D2L's Inception (tests/handwritten_nets.py), small: 4 channels in."""

    def __init__(self):
        super().__init__(4, 2, (3, 4), (1, 2), 2)


INCEPTION = """\
p1 = relu(p1_1(x))
p2 = relu(p2_2(relu(p2_1(x))))
p3 = F.relu(p3_2(F.relu(p3_1(x))))   # the F. spelling is accepted too
p4 = relu(p4_2(p4_1(x)))
return cat((p1, p2, p3, p4), dim=1)
"""


def conv_block(in_channels, out_channels):
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1))


class DenseBlock(nn.Module):  # D2L 8.7, its loop written out for two blocks
    def __init__(self, in_channels=3, growth=4):
        super().__init__()
        self.net = nn.Sequential(conv_block(in_channels, growth), conv_block(in_channels + growth, growth))

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


DENSE = """\
Y = net[0](X)
X = cat((X, Y), dim=1)
Y = net[-1](X)
X = torch.cat([X, Y], 1)
return X
"""


class LastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 7, batch_first=True)
        self.head = nn.Linear(7, 3)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]), h


LSTM = """\
out, (h, c) = lstm(x)
return head(out[:, -1]), h
"""


class MaskedPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(6, 2)

    def forward(self, x, mask):
        h = self.drop(self.proj(x)) * mask.unsqueeze(-1)
        pooled = h.sum(dim=1) / mask.sum(dim=1, keepdim=True)
        z = F.dropout(pooled, 0.25, training=self.training)
        return self.out(z.reshape(x.shape[0], -1)), x.size(1)


MASKED = """\
h = drop(proj(x)) * mask.unsqueeze(-1)
pooled = h.sum(dim=1) / mask.sum(dim=1, keepdim=True)
z = dropout(pooled, 0.25)         # like nn.Dropout: only while training
return out(z.reshape(x.shape[0], -1)), x.size(1)
"""


class Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(OrderedDict(hidden=nn.Linear(4, 8), act=nn.ReLU(), output=nn.Linear(8, 2)))
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2), "b": nn.Linear(8, 1)})

    def forward(self, x, eye):
        h = self.net.act(self.net.hidden(x))
        return self.net.output(h) - self.heads["a"](h) @ eye, -h[..., 1:3]


NAMED = """\
h = net['act'](net['hidden'](x))
return net[2](h) - heads['a'](h) @ eye, -h[..., 1:3]
"""

TWINS = {
    "BasicBlock": (BasicBlock, BASIC, ("x",), lambda: (torch.randn(2, 8, 6, 6),)),
    "Inception": (Inception, INCEPTION, ("x",), lambda: (torch.randn(2, 4, 7, 7),)),
    "DenseBlock": (DenseBlock, DENSE, ("X",), lambda: (torch.randn(2, 3, 5, 5),)),
    "LastStep": (LastStep, LSTM, ("x",), lambda: (torch.randn(3, 4, 5),)),
    "MaskedPool": (MaskedPool, MASKED, ("x", "mask"), lambda: (torch.randn(3, 5, 6), (torch.rand(3, 5) > 0.3).float())),
}


def compiled_twin(cls, text, inputs, seed=0):
    """The hand-written class's children, created under `seed`, in a block with a compiled forward."""
    torch.manual_seed(seed)
    donor = cls()
    block = block_class(cls.__name__)()
    for name, child in donor.named_children():
        block.add_module(name, child)
    program = parse_forward(text, inputs=inputs, children=list(block._modules),
                            source=SOURCE, line=LINE, column=COLUMN)
    return compile_forward(program, block)


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", list(TWINS))
def test_compiled_block_is_the_hand_written_one(name):
    cls, text, inputs, make_inputs = TWINS[name]
    torch.manual_seed(0)
    hand = cls()
    built = compiled_twin(cls, text, inputs)
    assert str(built) == str(hand)
    assert type(built).__name__ == name
    assert list(built.state_dict()) == list(hand.state_dict())
    for key, value in hand.state_dict().items():
        assert torch.equal(value, built.state_dict()[key])
    for training in (True, False, True):
        hand.train(training), built.train(training)
        args = make_inputs()
        torch.manual_seed(1)
        want = hand(*[a.clone() for a in args])
        torch.manual_seed(1)
        got = built(*[a.clone() for a in args])
        assert_same(want, got)


def test_named_children_of_children_by_name_and_position():
    torch.manual_seed(0)
    hand = Named()
    built = compiled_twin(Named, NAMED, ("x", "eye"))
    x, eye = torch.randn(3, 4), torch.randn(2, 2)
    assert_same(built(x, eye), hand(x, eye))
    code = type(built)._netcli_source
    assert "self.net.output(h)" in code and "self.net.hidden" in code and "self.heads.a" in code


def test_unused_child_stays_registered_and_printed():
    block = block_class("Twice")()
    block.add_module("used", nn.Linear(2, 2))
    block.add_module("spare", nn.Linear(2, 3))
    compile_forward(parse_forward("return used(used(x))", children=["used", "spare"]), block)
    assert list(block.state_dict()) == ["used.weight", "used.bias", "spare.weight", "spare.bias"]
    assert "(spare): Linear" in str(block)


def test_forward_is_compiled_once_per_definition():
    a = compiled_twin(BasicBlock, BASIC, ("x",))
    cls = type(a)
    b = cls()
    for name, child in BasicBlock().named_children():
        b.add_module(name, child)
    compile_forward(parse_forward(BASIC, children=list(b._modules)), b)
    assert type(b) is cls and cls.forward is type(a).forward
    assert "forward" in cls.__dict__  # a class method, as hand-written: nothing per instance
    assert "forward" not in a.__dict__ and "forward" not in b.__dict__
    c = copy.deepcopy(a)
    x = torch.randn(1, 8, 4, 4)
    a.eval(), c.eval()
    assert torch.equal(a(x), c(x))


def test_instances_that_resolve_differently_get_a_same_named_variant():
    cls = block_class("Tail")
    program = parse_forward("return net[-1](x)", children=["net"])
    short, long = cls(), cls()
    short.net = nn.Sequential(nn.Linear(2, 2))
    long.net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 5))
    compile_forward(program, short)
    compile_forward(program, long)
    assert type(short) is cls and type(long) is not cls and isinstance(long, cls)
    assert type(long).__name__ == "Tail" and str(long).startswith("Tail(")
    assert long(torch.randn(1, 2)).shape == (1, 5) and short(torch.randn(1, 2)).shape == (1, 2)


def test_two_definitions_may_share_a_printed_name():
    a, b = block_class("Block")(), block_class("Block")()
    a.lin = nn.Linear(2, 2)
    b.lin = nn.Linear(2, 2)
    compile_forward(parse_forward("return lin(x)", children=["lin"]), a)
    compile_forward(parse_forward("return -lin(x)", children=["lin"]), b)
    x = torch.randn(1, 2)
    b.lin.load_state_dict(a.lin.state_dict())
    assert torch.equal(a(x), -b(x)) and str(a) == str(b)


# ---- traceability ----

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace is deprecated, still used
def test_compiled_block_traces_and_exports():
    block = compiled_twin(BasicBlock, BASIC, ("x",)).eval()
    x = torch.randn(2, 8, 6, 6)
    want = block(x)
    traced = torch.jit.trace(block, (x,))
    assert torch.allclose(traced(x), want)
    exported = torch.export.export(block, (x,))
    assert torch.allclose(exported.module()(x), want)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter warns
def test_compiled_block_exports_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    block = compiled_twin(BasicBlock, BASIC, ("x",)).eval()
    x = torch.randn(2, 8, 6, 6)
    buffer = io.BytesIO()
    torch.onnx.export(block, (x,), buffer, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue())
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert torch.allclose(torch.from_numpy(got), block(x), atol=1e-5)


@pytest.mark.filterwarnings("ignore:The tensor attributes")  # nn.LSTM's flat weights, any LSTM export
def test_lstm_block_exports_with_tuples():
    block = compiled_twin(LastStep, LSTM, ("x",)).eval()
    x = torch.randn(3, 4, 5)
    exported = torch.export.export(block, (x,))
    assert_same_close(exported.module()(x), block(x))


def assert_same_close(a, b):
    for x, y in zip(a, b):
        assert torch.allclose(x, y)


# ---- the code writer for `netcli code` ----

def test_to_python_reads_like_the_hand_written_forward():
    program = parse_forward(BASIC, children=["conv1", "bn1", "relu", "conv2", "bn2"])
    assert to_python(program) == (
        "def forward(self, x):\n"
        "    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))\n"
        "    return self.relu(out + x)\n")
    masked = parse_forward(MASKED, inputs=["x", "mask"], children=["proj", "drop", "out"])
    assert "F.dropout(pooled, 0.25, training=self.training)" in to_python(masked)
    named = parse_forward("return net['hidden'](x)[:, 1:, ::2] * -(x - 1) @ x", children=["net"])
    assert to_python(named).endswith("    return self.net.hidden(x)[:, 1:, ::2] * -(x - 1) @ x\n")


@pytest.mark.parametrize("name", list(TWINS))
def test_to_python_runs_like_the_compiled_forward(name):
    cls, text, inputs, make_inputs = TWINS[name]
    built = compiled_twin(cls, text, inputs).eval()
    program = compiled_program(built)
    namespace = {"torch": torch, "F": F}
    exec(to_python(program), namespace)  # the test runs code the writer wrote, as `netcli code` users will
    ejected = type("Ejected", (nn.Module,), {"forward": namespace["forward"]})()
    for child_name, child in built.named_children():
        ejected.add_module(child_name, child)
    ejected.eval()
    args = make_inputs()
    assert_same(ejected(*args), built(*args))


# ---- refusals, located inside the text ----

def refusal(text, inputs=("x",), children=("conv1", "net", "relu")):
    with pytest.raises(NetcliError) as info:
        parse_forward(text, inputs=inputs, children=children, source=SOURCE, line=LINE, column=COLUMN)
    return info.value


@pytest.mark.parametrize("text, line, column, words", [
    ("import os\nreturn x", 20, 7, "import"),
    ("y = conv1(x)\nfor i in x:\n    y = conv1(y)\nreturn y", 21, 16, "a loop runs over a child ModuleList"),
    ("if x is not None:\n    x = conv1(x)\nreturn x", 20, 7, "the one conditional"),
    ("y = x if x else x\nreturn y", 20, 11, "conditional"),
    ("f = lambda v: v\nreturn x", 20, 11, "lambda"),
    ("return [v for v in x]", 20, 14, "comprehension"),
    ("y = x.__class__\nreturn y", 20, 11, "dunder"),
    ("return __import__('os')", 20, 14, "dunder"),
    ("return getattr(x, 'shape')", 20, 14, "getattr"),
    ("return eval('x')", 20, 14, "eval"),
    ("return exec('x')", 20, 14, "exec"),
    ("return open('/tmp/canary', 'w')", 20, 14, "open"),
    ("return globals()", 20, 14, "globals"),
    ("y = conv1(*x)\nreturn y", 20, 17, "star"),
    ("y = conv1(**x)\nreturn y", 20, 17, "**"),
    ("return (y := conv1(x))", 20, 15, "walrus"),
    ("return x.data", 20, 14, "attribute .data"),
    ("return x.add_(1)", 20, 14, ".add_"),
    ("return x.numpy()", 20, 14, ".numpy"),
    ("return conv1.weight.__class__", 20, 14, "dunder"),
    ("return self.conv1(x)", 20, 14, "no `self`"),
    ("return 'x'", 20, 14, "string"),
    ("return torch.save(x, 'f')", 20, 14, "torch.save"),
    ("y = cnov1(x)\nreturn y", 20, 11, "did you mean 'conv1'"),
    ("y = conv1(z)\nz = x\nreturn y", 20, 17, "before it is assigned (line 21)"),
    ("y = conv1(x)", 20, 7, "no return"),
    ("return x\ny = x", 21, 7, "nothing may follow"),
    ("y = x(x)\nreturn y", 20, 11, "value, not a child"),
    ("y = conv1\nreturn y", 20, 11, "call it"),
    ("y = net[0]\nreturn y", 20, 11, "call it"),
    ("y = net[x](x)\nreturn y", 20, 15, "number or a quoted name"),
    ("y = conv1(x))\nreturn y", 20, 19, "not valid Python: unmatched ')'"),
    ("conv1 = relu(x)\nreturn conv1", 20, 7, "name of a child"),
    ("x[0] = 1\nreturn x", 20, 7, "only names can be assigned"),
    ("conv1(x)\nreturn x", 20, 7, "bare expression"),
    ("return x if x > 0 else -x", 20, 14, "conditional"),
    ("return x < 0 < x", 20, 14, "one comparison at a time"),
    ("return x ** 2", 20, 14, "+ - * / // % @"),
    ("return ~x", 20, 14, "unary minus"),
    ("return f'{x}'", 20, 14, "f-string"),
    ("return {'a': x}", 20, 14, "dict"),
    ("return cat(x, dim=1, dim=2)", 20, 28, "twice"),
    ("a, *b = conv1(x)\nreturn a", 20, 10, "star"),
    ("return", 20, 7, "needs a value"),
    ("", 20, 7, "empty"),
])
def test_refused_before_anything_runs(text, line, column, words):
    error = refusal(text)
    problem = error.problems[0]
    assert (problem.location.source, problem.location.line, problem.location.column) == (SOURCE, line, column)
    assert words in str(problem)


def test_column_counts_characters_not_bytes():
    problem = refusal("é = conv1(x)\nreturn é + zz").problems[0]
    assert (problem.location.line, problem.location.column) == (21, COLUMN + 11)


def test_every_problem_is_reported_not_just_the_first():
    error = refusal("a = nope(x)\nb = conv1(a)\nc = zilch(b)\nreturn c")
    assert [(p.location.line, p.location.column) for p in error.problems] == [(20, 11), (22, 11)]


def test_bad_input_names_are_refused():
    for inputs in (["x", "x"], ["conv1"], ["x):\n    open('c', 'w')\n#"], ["__x__"], ["self"], ["lambda"], ["inf"], ["slice"],
                   ["torch"], [""], [3]):
        with pytest.raises(NetcliError):
            parse_forward("return x", inputs=inputs, children=["conv1"])


def test_a_missing_child_is_located_when_compiling():
    block = block_class("Short")()
    block.net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    block.lin = nn.Linear(2, 2)
    program = parse_forward("y = net[0](x)\nreturn net[5](y) + net['act'](y) + lin[0](y)", children=["net", "lin"],
                            source=SOURCE, line=LINE, column=COLUMN)
    with pytest.raises(NetcliError) as info:
        compile_forward(program, block)
    messages = [(p.location.line, p.location.column, p.message) for p in info.value.problems]
    assert messages[0] == (21, 14, "net has 2 children: [5] is out of range")
    assert "no child 'act'" in messages[1][2] and messages[1][1] == 26
    assert "not a Sequential or ModuleList" in messages[2][2]


def test_runtime_failure_points_at_the_statement():
    block = block_class("Bad")()
    block.a = nn.Linear(3, 4)
    block.b = nn.Linear(5, 2)
    program = parse_forward("h = a(x)\ny = b(h)\nreturn y", children=["a", "b"], source=SOURCE, line=LINE,
                            column=COLUMN)
    compile_forward(program, block)
    with pytest.raises(RuntimeError) as info:
        block(torch.randn(2, 3))
    where = failure_location(info.value)
    assert (where.line, where.column) == (21, 11)
    assert failure_location(ValueError("elsewhere")) is None


def test_dropout_follows_the_block_mode():
    block = block_class("Drop")()
    compile_forward(parse_forward("return dropout(x, 0.5)"), block)
    x = torch.ones(1000)
    assert torch.equal(block.eval()(x), x)
    assert (block.train()(x) == 0).any()


def test_checking_a_forward_imports_no_torch():
    code = ("import sys, netcli.builder.forward_parse as p; p.parse_forward('return relu(x)', children=['relu']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_allow_lists_name_real_torch_callables():
    for target in FUNCTIONS.values():
        module, _, attr = target.rpartition(".")
        assert callable(getattr({"torch": torch, "torch.nn.functional": F}[module], attr)), target
    for method in METHODS:
        assert callable(getattr(torch.Tensor, method)), method
        assert not method.endswith("_")


# ---- fuzz: token soups and mutated texts; nothing escapes ----

LONG = os.environ.get("NETCLI_LONG_FUZZ") == "1" or os.environ.get("NETCLI_FUZZ") == "long"
FUZZ = settings(max_examples=5_000 if LONG else 200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
CHILDREN = ("conv1", "net", "relu", "lin")
VALID = [  # the shapes of the twins above, over the fuzz block's children
    "out = relu(lin(relu(conv1(x))))\nreturn relu(out + x)\n",
    "b1 = relu(conv1(x))\nb2 = F.relu(net['hidden'](x))\nreturn cat((b1, b2), dim=1)\n",
    "y = net[0](x)\nx = cat((x, y), dim=1)\ny = net[-1](x)\nreturn torch.cat([x, y], 1)\n",
    "out, (h, c) = lin(x), (x, -x)\nreturn lin(out[:, -1]), h\n",
    ("h = lin(x) * x.mean(-1).unsqueeze(-1)\npooled = h.sum(dim=1) / x.sum(dim=1, keepdim=True)\n"
     "return dropout(pooled.reshape(x.shape[0], -1), 0.5), x.size(1)\n"),
    "return net['hidden'](x)[..., -1] @ x.transpose(0, 1)",
    "a, b = x.chunk(2, dim=-1)\nreturn cat((a, -b), 1)",
]
ATTACKS = [
    "open({c!r}, 'w')", "__import__('os').system('touch {c}')", "eval(\"open({c!r}, 'w')\")",
    "exec(\"open({c!r}, 'w')\")", "getattr(x, '__class__')", "x.__class__.__mro__[1].__subclasses__()",
    "torch.save(x, {c!r})", "x.numpy().tofile({c!r})", "(lambda: open({c!r}, 'w'))()",
    "net['a\"); open({c!r}, \"w\"); (\"'](x)", "F.__dict__['open']({c!r}, 'w')", "x.register_hook(open)",
    "[open({c!r}, 'w') for _ in x]", "globals()['__builtins__']['open']({c!r}, 'w')", "f'{{open({c!r}, \"w\")}}'",
]
TOKENS = ["x", "y", "out", *CHILDREN, "cat", "relu", "mean", "flatten", "softmax", "torch", "F", "self", "=",
          "return", "(", ")", "[", "]", ",", ":", ".", "+", "-", "*", "/", "@", "**", "0", "1", "-1", "2", "...",
          "None", "True", "'hidden'", "dim=1", "\n", "    ", "import", "os", "open", "eval", "lambda", "for",
          "in", "if", "else", ":=", "__class__", "getattr", "shape", "size", "*x", "**x", "#", ";", "'", '"']


@contextmanager
def alarm(seconds=20):
    if not hasattr(signal, "SIGALRM"):
        yield
        return
    def timeout(*_):
        raise TimeoutError(f"no answer in {seconds} s")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz_block():
    """A block on the meta device: running a fuzzed forward allocates nothing, whatever it asks for."""
    block = block_class("Fuzz")()
    with torch.device("meta"):
        block.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        block.net = nn.Sequential(OrderedDict(hidden=nn.Linear(4, 4), act=nn.ReLU()))
        block.relu = nn.ReLU()
        block.lin = nn.Linear(4, 4)
    return block


def check_text(text, canary):
    """parse + compile may only raise NetcliError; a compiled forward is run; the canary never appears."""
    with alarm():
        try:
            program = parse_forward(text, inputs=("x",), children=CHILDREN, source=SOURCE, line=LINE, column=COLUMN)
            block = compile_forward(program, fuzz_block())
        except NetcliError as error:
            lines = text.count("\n") + text.count("\r") + 1
            for problem in error.problems:
                where = problem.location
                assert where.source == SOURCE and LINE <= where.line <= LINE + lines and where.column >= COLUMN
            block = None
        if block is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    block(torch.empty(2, 4, 4, 4, device="meta"))
            except Exception:  # noqa: BLE001  (a wrong shape is the trial run's business, not this test's)
                pass
    assert not os.path.exists(canary), text


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return str(tmp_path_factory.mktemp("forward") / "canary")


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_fuzz_token_soup(canary, text):
    check_text(text, canary)


PIECES = re.compile(r"\w+|\s+|[^\w\s]")


@FUZZ
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2),
                                                   st.sampled_from(TOKENS + ATTACKS)), min_size=1, max_size=3))
def test_fuzz_mutated_valid_texts(canary, base, edits):
    """Token-level edits of valid texts: a name swapped, a piece dropped, an attack spliced in."""
    pieces = PIECES.findall(base)
    for position, cut, insert in edits:
        position %= len(pieces) + 1
        pieces[position:position + cut] = [insert.format(c=canary)]
    check_text("".join(pieces), canary)


def grow(inner):
    children = st.sampled_from(["conv1", "relu", "lin", "net['hidden']", "net[0]", "net[-1]", "net[5]", "net['no']"])
    return st.one_of(
        st.builds("{}({})".format, children, inner),
        st.builds("{}({})".format, st.sampled_from(sorted(FUNCTIONS)), inner),
        st.builds("{}({}, {})".format, st.sampled_from(sorted(FUNCTIONS)), inner, inner),
        st.builds("{}.{}()".format, inner, st.sampled_from(sorted(METHODS))),
        st.builds("{}.{}({})".format, inner, st.sampled_from(sorted(METHODS)), inner),
        st.builds("({} {} {})".format, inner, st.sampled_from("+-*/@"), inner),
        st.builds("-{}".format, inner),
        st.builds("{}[{}]".format, inner, st.sampled_from([":, -1", "0", "..., 1:3", "None", ":, :2", "x", "'a'"])),
        st.builds("{}.shape[{}]".format, inner, st.sampled_from(["0", "-1"])),
        st.builds("cat(({}, {}), dim={})".format, inner, inner, st.sampled_from(["0", "1", "-1"])),
        st.builds("{}({})".format, st.sampled_from(["open", "getattr", "eval", "self.lin", "x.__class__", "lambda: x"]),
                  inner),
    )


EXPRESSIONS = st.recursive(st.sampled_from(["x", "x", "0", "1", "-1", "2", "None", "True", "1.5"]), grow, max_leaves=8)


@FUZZ
@given(st.lists(EXPRESSIONS, min_size=1, max_size=4))
def test_fuzz_generated_programs(canary, expressions):
    """Grammar-built programs: most get through parse and compile and are run on the meta device."""
    lines = [f"x = {e}" for e in expressions[:-1]] + [f"return {expressions[-1]}"]
    check_text("\n".join(lines), canary)


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("place", ["return {a}", "y = {a}\nreturn x", "y = conv1({a})\nreturn y",
                                   "return cat((x, {a}), dim=1)", "return x.mean(dim={a})"])
def test_attacks_never_touch_the_file_system(canary, attack, place):
    text = place.format(a=attack.format(c=canary))
    with pytest.raises(NetcliError):
        parse_forward(text, inputs=("x",), children=CHILDREN)
    check_text(text, canary)


def test_a_child_name_cannot_inject_code(canary):
    block = fuzz_block()
    evil = f'a"); open({canary!r}, "w"); ("'
    block.net.add_module(evil, nn.Identity())
    program = parse_forward(f"return net[{evil!r}](x)", children=CHILDREN)
    with pytest.raises(NetcliError, match="cannot be called"):
        compile_forward(program, block)
    program = parse_forward("return net[-1](x)", children=CHILDREN)
    with pytest.raises(NetcliError, match="cannot be called"):
        compile_forward(program, block)
    block.net.add_module("class", nn.Identity())  # fx would write self.net.class
    with pytest.raises(NetcliError, match="cannot be called"):
        compile_forward(parse_forward("return net['class'](x)", children=CHILDREN), block)
    assert not os.path.exists(canary)


def test_random_valid_programs_compile_and_run():
    """Well-formed programs built from the allow-list always get through parse and compile."""
    rng = random.Random(0)
    for _ in range(50):
        lines, names = [], ["x"]
        for i in range(rng.randint(1, 6)):
            src = rng.choice(names)
            expr = rng.choice([f"lin({src})", f"relu({src})", f"{src} + {rng.choice(names)}", f"-{src}",
                               f"{src}.softmax(dim=-1)", f"net['hidden']({src})", f"net[1]({src})",
                               f"{src}[:, :]", f"{src} * {src}.shape[0]"])
            lines.append(f"v{i} = {expr}")
            names.append(f"v{i}")
        lines.append(f"return {names[-1]}")
        text = "\n".join(lines)
        block = compile_forward(parse_forward(text, children=CHILDREN), fuzz_block())
        assert block(torch.empty(3, 4, device="meta")).shape == (3, 4), text
