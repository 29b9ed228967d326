"""Custom blocks (SPEC 1.6) end to end: params and with, located errors, inference through a forward,
several and integer inputs, tuples, positional meaning, devices, ties, init targets, dynamic-batch export.

The shipped networks (ResNet-18, Inception, Residual, DenseBlock, Transformer, U-Net, VGG) are compared
with their hand-written twins in test_configs.py; these are the language's own cases.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from netcli.builder.validate import load_spec, load_spec_text
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model
from netcli.io.inputs import call, make_input


def at(text: str, token: str, nth: int = 0) -> str:
    """`LINE:COL` of the nth occurrence of `token` in `text` (1-based, as errors print it)."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(token, index + 1)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def build(text: str, **kw):
    return build_model(load_spec_text(text, "spec.yaml"), **kw)


# ---------------------------------------------------------------- located errors, never a traceback

BASE = """\
input: [2, 4]
blocks:
  Twice:
    params: {width: 4}
    children:
      first: {Linear: [4, "${width}"]}
      second: {Linear: ["${width}", 4]}
    forward: |
      h = relu(first(x))
      return second(h)
"""

MISTAKES = {
    # name: (spec text, token the error points at, message pattern)
    "unknown name in the forward": (
        "model:\n  children:\n    conv: {Linear: [4, 4]}\n  forward: |\n    y = conv(x)\n    return relu(yy)\n",
        "yy", r"unknown name 'yy' \(did you mean 'y'\?\)"),
    "misspelled child": (
        "model:\n  children:\n    conv1: {Linear: [4, 4]}\n  forward: |\n    return conv2(x)\n",
        "conv2", r"unknown name 'conv2' \(did you mean 'conv1'\?\)"),
    "an import": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n  forward: |\n    import os\n    return a(x)\n",
        "import os", r"an import is not allowed in a forward"),
    "a dunder call": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n  forward: |\n    m = __import__('os')\n    return a(x)\n",
        "__import__", r"dunder names are not allowed"),
    "a loop": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n  forward: |\n    for i in x:\n      x = a(x)\n    return x\n",
        "x", r"a loop runs over a child ModuleList or Sequential: for block in blocks:"),
    "a child's child out of range": (
        "model:\n  children:\n    net: [{Linear: [4, 4]}, ReLU]\n  forward: |\n    return net[5](x)\n",
        "net[5]", r"net has 2 children: \[5\] is out of range"),
    "unknown param in with": (
        BASE + "model: {use: Twice, with: {widht: 8}}\n", "widht", r"unknown param 'widht' of Twice \(did you mean 'width'\?\)"),
    "with on a definition without params": (
        "blocks:\n  b: [{Linear: [4, 4]}]\nmodel: {use: b, with: {n: 2}}\n", "n: 2", r"unknown param 'n' of b \(b declares no params\)"),
    "missing required param": (
        "blocks:\n  B:\n    params: [width]\n    children: {l: {Linear: [4, '${width}']}}\nmodel: {use: B}\n",
        "B}\n", r"B needs the param 'width' \(pass it: with: \{width: \.\.\.\}\)"),
    "a param's value the layer cannot take": (
        BASE + "model: {use: Twice, with: {width: wide}}\n", '"${width}"]',
        r"\(with width='wide', from model\): argument 'out_features' must be int"),
    "a key that is not a block key": (
        "model:\n  children: {a: {Linear: [4, 4]}}\n  forwrd: 'return a(x)'\n", "forwrd", r"did you mean 'forward'\?"),
    "a bad class name": (
        "model:\n  class: my block\n  children: {a: {Linear: [4, 4]}}\n", "my block", r"'my block' cannot be a class name"),
    "a child named twice": (
        "model:\n  children: {a: {Linear: [4, 4], name: b}}\n", "name: b", r"the child 'a' is named by its key"),
    "a child named like a module attribute": (
        "model:\n  children: {forward: {Linear: [4, 4]}}\n", "forward:", r"'forward' cannot be a child's name"),
    "an input named twice": (
        "model:\n  inputs: [x, x]\n  children: {a: {Linear: [4, 4]}}\n  forward: 'return a(x)'\n", "return",
        r"input 'x' is named twice"),
    "a ref to a block without defaults": (
        "blocks:\n  B:\n    params: [w]\n    children: {l: {Linear: [4, '${w}']}}\nmodel: [{ref: B}]\n",
        "B}]", r"a ref is the one shared B"),
    "a block that contains itself": (
        "blocks:\n  B:\n    children: {inner: {use: B}}\n    forward: 'return inner(x)'\nmodel: {use: B}\n",
        "{use: B}", r"definitions refer to each other in a cycle: B -> B"),
    "shapes that stop fitting in a forward": (
        "input: [2, 4]\nmodel:\n  class: Sum\n  children: {a: {Linear: [4, 4]}, b: {Linear: [4, 3]}}\n"
        "  forward: |\n    y = a(x) + b(x)\n    return y\n",
        "a(x) + b(x)", r"shapes stop fitting in the forward of block '\(root\)' \(Sum\)"),
    "a block with neither children nor forward": (
        "model:\n  class: Empty\n", "model", r"a custom block needs children: or forward:"),
}


@pytest.mark.parametrize("text,token,pattern", MISTAKES.values(), ids=MISTAKES.keys())
def test_every_mistake_is_located_with_a_suggestion(text, token, pattern, write_spec, run_cli):
    path = write_spec(text)
    result = run_cli("validate", path)
    assert result.code == 2, result.out
    assert "Traceback" not in result.err
    problems = [line for line in result.err.splitlines() if line.startswith(str(path))]
    assert problems, result.err
    expected = f"{path}:{at(text, token)}: "
    assert any(p.startswith(expected) and re.search(pattern, p) for p in problems), (expected, pattern, problems)


def test_the_forward_text_is_never_run(tmp_path, write_spec, run_cli):
    canary = tmp_path / "canary"
    text = ("model:\n  children: {a: {Linear: [4, 4]}}\n  forward: |\n"
            f"    f = open('{canary}', 'w')\n    return a(x)\n")
    result = run_cli("validate", write_spec(text))
    assert result.code == 2 and "Python's 'open' is not available in a forward" in result.err
    assert not canary.exists()


# ---------------------------------------------------------------- params, with, vars


def test_params_defaults_with_and_vars():
    text = """\
input: [2, 4]
vars: {out: 3, width: 99}
blocks:
  Twice:
    params: {width: 8, copies: 1}          # width shadows vars.width inside the block
    children:
      first: {Linear: [4, "${width}"], repeat: "${copies}"}
      second: {Linear: ["${width}", "${out}"]}
    forward: |
      return second(first(x))
model:
  - {use: Twice}
  - {use: Twice, with: {width: 16}}
  - {use: Twice, with: {width: 4, copies: 1}}
"""
    net = build(text, seed=0).net
    assert type(net[0]).__name__ == "Twice"
    assert net[0].first[0].out_features == 8 and net[1].first[0].out_features == 16
    assert net[1].second.out_features == 3  # a global var, not shadowed
    assert net[2].first[0].out_features == 4


def test_a_required_param_and_a_nested_use_passing_it_on():
    text = """\
input: [2, 4]
blocks:
  Inner:
    params: [width]
    children: {lin: {Linear: [4, "${width}"]}}
    forward: "return lin(x)"
  Outer:
    params: {hidden: 5}
    children:
      inner: {use: Inner, with: {width: "${hidden}"}}
      head: {Linear: ["${hidden}", 2]}
    forward: "return head(relu(inner(x)))"
model: {use: Outer, with: {hidden: 7}}
"""
    net = build(text, seed=0).net
    assert net.inner.lin.out_features == 7 and net.head.in_features == 7
    assert net(torch.rand(2, 4)).shape == (2, 2)


def test_a_definition_with_required_params_that_is_never_used_validates():
    load_spec_text("blocks:\n  B:\n    params: [w]\n    children: {l: {Linear: [4, '${w}']}}\n"
                   "model: [{Linear: [4, 4]}]\n", "spec.yaml")


# ---------------------------------------------------------------- forms of blocks


def test_without_forward_the_children_run_in_order_under_the_class_name():
    text = "model:\n  class: Stack\n  children: {hidden: {Linear: [4, 8]}, act: ReLU, out: {Linear: [8, 2]}}\n"
    net = build(text, seed=0).net
    torch.manual_seed(0)
    hand = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert str(net).startswith("Stack(\n  (hidden): Linear(in_features=4, out_features=8, bias=True)")
    x = torch.rand(3, 4)
    assert torch.equal(net(x), hand(x))


def test_class_sequential_is_a_plain_sequential():
    text = "blocks:\n  b:\n    class: Sequential\n    children: {'0': {Linear: [4, 4]}, '1': ReLU}\nmodel: {use: b}\n"
    assert type(build(text).net) is nn.Sequential


def test_two_definitions_may_print_as_one_class_and_differ():
    text = """\
blocks:
  Res: {children: {lin: {Linear: [4, 4]}}, forward: "return relu(lin(x) + x)"}
  ResPlain: {class: Res, children: {lin: {Linear: [4, 4]}}, forward: "return lin(x)"}
model: [{use: Res}, {use: ResPlain}]
"""
    net = build(text, seed=0).net
    assert type(net[0]).__name__ == type(net[1]).__name__ == "Res" and type(net[0]) is not type(net[1])
    x = torch.rand(2, 4)
    assert torch.equal(net[1](x), net[1].lin(x)) and torch.equal(net[0](x), torch.relu(net[0].lin(x) + x))


def test_a_child_named_like_a_function_is_the_child():
    text = "model:\n  children: {relu: {ReLU: {inplace: true}}}\n  forward: 'return relu(x)'\n"
    net = build(text).net
    assert "(relu): ReLU(inplace=True)" in str(net)


# ---------------------------------------------------------------- shape inference through the forward


def test_sizes_follow_the_forwards_data_flow():
    text = """\
input: [2, 3, 8, 8]
model:
  class: Dense
  children:
    bn: BatchNorm2d
    conv: {Conv2d: {out_channels: 5, kernel_size: 3, padding: 1}}
    bn2: BatchNorm2d
  forward: |
    y = conv(bn(x))
    z = cat((x, y), dim=1)
    return bn2(z)
"""
    built = build(text, seed=0)
    assert built.net.bn.num_features == 3 and built.net.conv.in_channels == 3
    assert built.net.bn2.num_features == 8  # after the concatenation, not the conv's 5
    assert built.inferred["bn2"] == {"num_features": 8}


def test_an_unused_child_that_needs_inference_is_a_located_error(write_spec, run_cli):
    text = "input: [2, 4]\nmodel:\n  children: {a: {Linear: 3}, spare: {Linear: 2}}\n  forward: 'return a(x)'\n"
    result = run_cli("validate", write_spec(text))
    assert result.code == 2 and "cannot infer in_features: no input reaches this block" in result.err


# ---------------------------------------------------------------- inputs: several, integer


def test_several_inputs():
    text = """\
input: [[2, 4], {shape: [2, 4], low: -1, high: 1}]
model:
  class: Pair
  inputs: [x, mask]
  children: {a: {Linear: 3}, b: {Linear: [4, 3]}}
  forward: "return a(x) * b(mask)"
"""
    loaded = load_spec_text(text, "spec.yaml")
    built = build_model(loaded, seed=0)
    assert built.net.a.in_features == 4
    torch.manual_seed(1)
    x, mask = make_input(None, loaded.spec.input, "cpu")
    assert x.min() >= 0 and mask.min() >= -1 and mask.max() < 1 and mask.min() < 0
    assert call(built.net, (x, mask)).shape == (2, 3)


def test_an_integer_input_feeds_an_embedding(run_cli, root):
    result = run_cli("run", root / "configs/transformer_encoder.yaml", "--seed", "0", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["shape"] == [2, 10]
    x = make_input(None, load_spec(str(root / "configs/transformer_encoder.yaml")).spec.input, "cpu")
    assert x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < 100


def test_an_integer_input_needs_its_range(write_spec, run_cli):
    text = "input: {shape: [2, 8], dtype: int64}\nmodel: [{Embedding: [10, 4]}]\n"
    result = run_cli("validate", write_spec(text))
    assert result.code == 2 and "an integer input needs high:" in result.err


# ---------------------------------------------------------------- arguments: modules, tuples, positions


def test_a_constructor_argument_that_takes_a_module_takes_a_node():
    text = ("model:\n  - TransformerEncoder:\n      encoder_layer: {TransformerEncoderLayer: {d_model: 8, nhead: 2, "
            "batch_first: true}}\n      num_layers: 2\n")
    net = build(text, seed=0).net
    torch.manual_seed(0)
    hand = nn.Sequential(nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=8, nhead=2, batch_first=True),
                                               num_layers=2))
    assert str(net) == str(hand)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), hand.state_dict().values()))


def test_a_wrong_module_argument_is_located(write_spec, run_cli):
    text = ("model:\n  - TransformerEncoder:\n      encoder_layer: {TransformerEncoderLayer: {d_model: 8, nhed: 2}}\n"
            "      num_layers: 2\n")
    path = write_spec(text)
    result = run_cli("validate", path)
    assert result.code == 2
    assert result.err.startswith(f"{path}:{at(text, 'nhed')}: ") and "did you mean 'nhead'?" in result.err


def test_lists_are_passed_as_tuples():
    net = build("model: [{AdaptiveAvgPool2d: [[1, 1]]}, {MaxPool2d: {kernel_size: [2, 2]}}]\n").net
    assert str(net[0]) == "AdaptiveAvgPool2d(output_size=(1, 1))"
    assert str(net[1]) == str(nn.MaxPool2d(kernel_size=(2, 2)))


def test_a_positional_argument_never_silently_changes_meaning(write_spec, run_cli):
    # [96, 11] would be out_channels=96, kernel_size=11 (in_channels inferred); [96, 11, 4] is torch's
    # in_channels=96, out_channels=11, kernel_size=4, which the 1-channel input contradicts
    text = "input: [1, 1, 224, 224]\nmodel:\n  - {Conv2d: [96, 11, 4]}\n"
    path = write_spec(text)
    result = run_cli("validate", path)
    assert result.code == 2
    assert result.err.startswith(f"{path}:{at(text, '[96')}: ")
    assert "reads in_channels=96, out_channels=11, kernel_size=4 in torch's order" in result.err
    assert "{Conv2d: {out_channels: 96, kernel_size: 11, stride: 4}}" in result.err
    # torch's reading that the input agrees with is kept
    net = build("input: [1, 1, 28, 28]\nmodel:\n  - {Conv2d: [1, 6, 5]}\n").net
    assert str(net[0]) == str(nn.Conv2d(1, 6, 5))
    # a plain build runs no forward: torch's reading, as `nn.Conv2d(96, 11, 4)` in Python
    printed = run_cli("build", path, "--print")
    assert printed.code == 0 and str(nn.Conv2d(96, 11, 4)) in printed.out


def test_a_plain_build_that_writes_every_size_runs_no_forward_on_meta(root):
    """resnet18.yaml writes torchvision's `Conv2d(64, 128, 1, 2)` positionally and has an `input:`; building it
    must not run the meta forward of the readings check (its first conv and batch norm import sympy and
    torch._dynamo, about 1 s of a fresh process that the hand-written resnet18 never pays)."""
    script = (
        "import sys, torch, netcli\n"
        f"net = netcli.build({str(root / 'configs/resnet18.yaml')!r}, seed=0)\n"
        "print(sum(p.numel() for p in net.parameters()), 'torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["11689512", "False", "False"]


# ---------------------------------------------------------------- ties, devices, init targets


def test_ref_children_are_one_module(run_cli, write_spec):
    text = """\
input: [2, 4]
blocks: {shared: {Linear: [4, 4]}}
model:
  class: Tied
  children: {a: {ref: shared}, b: {ref: shared}}
  forward: "return b(relu(a(x)))"
"""
    net = build(text, seed=0).net
    assert net.a is net.b
    data = json.loads(run_cli("inspect", write_spec(text), "--json").out)
    assert data["tied"] == [["a.weight", "b.weight"], ["a.bias", "b.bias"]]


def test_children_placed_on_devices_run(run_cli, write_spec):
    text = """\
input: [2, 4]
model:
  class: Placed
  children: {a: {Linear: [4, 4], device: cpu}, b: {Linear: [4, 2]}}
  forward: "return b(a(x) + x)"
"""
    built = build(text, seed=0)
    assert built.net(torch.rand(2, 4)).shape == (2, 2)
    result = run_cli("run", write_spec(text), "--device", "meta", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["shape"] == [2, 2]


def test_init_targets_reach_into_custom_blocks(root):
    loaded = load_spec(str(root / "configs/residual.yaml"))
    built = build_model(loaded, seed=0, rules=["zeros:0.conv1", "ones:Residual", "constant(3):*.bn2.bias"])
    net = built.net
    assert torch.equal(net[1].conv1.weight, torch.ones_like(net[1].conv1.weight))  # the type: whole blocks
    assert torch.equal(net[0].conv1.weight, torch.ones_like(net[0].conv1.weight))  # a later rule wins
    assert torch.equal(net[0].conv1.bias, built.net[0].conv1.bias) and (net[0].bn2.bias == 3).all()
    fast = build_model(loaded, seed=0, rules=["ones:Residual"], fast_init=True).net
    assert torch.equal(fast[1].conv3.weight, torch.ones_like(fast[1].conv3.weight))


# ---------------------------------------------------------------- export keeps the batch dynamic


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_export_keeps_the_batch_dynamic(suffix, tmp_path, run_cli, root):
    pytest.importorskip("onnxscript")
    spec = root / "configs/residual.yaml"  # made on the example's batch of 4
    out = tmp_path / f"net{suffix}"
    result = run_cli("export", spec, "-o", out, "--seed", "0", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["dynamic_batch"] is True
    net = build_model(load_spec(str(spec)), seed=0).net.eval()
    for batch in (5, 1):
        x = torch.rand(batch, 3, 6, 6)
        with torch.no_grad():
            want = net(x)
        if suffix == ".onnx":
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        else:
            with open(out, "rb") as fh:
                got = torch.export.load(fh).module()(x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


def test_export_on_a_batch_of_two_runs_five_and_static_fixes_it(tmp_path, run_cli, root):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    dynamic, static = tmp_path / "dynamic.onnx", tmp_path / "static.onnx"
    spec = root / "configs/unet.yaml"  # input: [2, 1, 32, 32]
    assert run_cli("export", spec, "-o", dynamic).code == 0
    assert run_cli("export", spec, "-o", static, "--static").code == 0
    x = torch.rand(5, 1, 32, 32).numpy()
    session = ort.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"])
    assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (5, 2, 32, 32)
    session = ort.InferenceSession(str(static), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception):
        session.run(None, {session.get_inputs()[0].name: x})


def test_a_forward_that_fixes_the_batch_says_to_export_static(tmp_path, write_spec, run_cli):
    pytest.importorskip("onnxscript")
    text = ("input: [2, 4]\nmodel:\n  children: {a: {Linear: [4, 4]}}\n  forward: 'return a(x).reshape(2, 2, 2)'\n")
    path = write_spec(text)
    result = run_cli("export", path, "-o", tmp_path / "n.pt2")
    assert result.code == 2 and "--static" in result.err and "Traceback" not in result.err
    assert run_cli("export", path, "-o", tmp_path / "n.pt2", "--static").code == 0


def test_several_inputs_export(tmp_path, write_spec, run_cli):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    text = ("input: [[2, 4], [2, 4]]\nmodel:\n  class: Pair\n  inputs: [x, y]\n"
            "  children: {a: {Linear: [4, 3]}}\n  forward: 'return a(x) - a(y)'\n")
    out = tmp_path / "pair.onnx"
    result = run_cli("export", write_spec(text), "-o", out)
    assert result.code == 0, result.err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(5, 4).numpy()
    feed = {i.name: x for i in session.get_inputs()}
    assert len(feed) == 2 and abs(session.run(None, feed)[0]).max() == 0


# ---------------------------------------------------------------- the JSON schema for editors


def test_the_editor_schema_knows_custom_blocks(root):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml
    validator = jsonschema.Draft202012Validator(json.loads((root / "schema/netcli.schema.json").read_text()))
    good = """\
input: {shape: [2, 16], dtype: int64, high: 100}
blocks:
  B:
    params: [width, {stride: 1}]
    inputs: [x]
    class: Block
    children: {a: {Embedding: [100, "${width}"]}}
    forward: "return a(x)"
model: {use: B, with: {width: 8}, name: b}
"""
    assert not list(validator.iter_errors(yaml.safe_load(good)))
    for bad in ("model: {children: {a: ReLU}, forwrd: 'return a(x)'}",      # not a block key
                "model: {class: X}",                                        # neither children nor forward
                "model: {children: {a: ReLU}, inputs: x}"):                 # inputs is a list
        assert list(validator.iter_errors(yaml.safe_load(bad))), bad


class _Scaled(nn.Module):
    """A plugin's block that takes a module: `body` (annotated) and `tail` (not annotated)."""

    def __init__(self, body: nn.Module, tail=None, scale: float = 2.0):
        super().__init__()
        self.body, self.tail, self.scale = body, tail, scale

    def forward(self, x):
        y = self.body(x) * self.scale
        return self.tail(y) if self.tail is not None else y


def test_a_plugins_module_argument_takes_a_node(scoped_registry):
    scoped_registry.register_block(_Scaled, name="TestScaled")
    text = ("input: [2, 4]\nmodel:\n  - TestScaled:\n      body: [{Linear: [4, 8]}, ReLU]\n"
            "      tail: {Linear: [8, 3]}\n      scale: 0.5\n")
    net = build(text, seed=0).net
    torch.manual_seed(0)
    hand = _Scaled(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 3), 0.5)
    assert str(net[0]) == str(hand)
    x = torch.rand(2, 4)
    assert torch.equal(net[0](x), hand(x))


GATE = """\
input: [[2, 8], [2, 8]]
model:
  class: Gate
  inputs: [x, g]
  children: {value: {Linear: [8, 8]}, gate: {Linear: [8, 8]}}
  forward: |
    v = value(x)
    out = v * sigmoid(gate(g))
    return out, v
"""


def test_run_prints_and_saves_several_outputs(write_spec, run_cli, tmp_path):
    path = write_spec(GATE)
    result = run_cli("run", path, "--seed", "0")
    assert result.code == 0, result.err
    loaded = load_spec(str(path))
    built = build_model(loaded, seed=0)
    x = make_input(None, loaded.spec.input, "cpu")
    assert result.out == str(call(built.net, x)) + "\n"
    data = json.loads(run_cli("run", path, "--seed", "0", "--json").out)
    assert [o["shape"] for o in data["outputs"]] == [[2, 8], [2, 8]]
    assert "output shapes: [[2, 8], [2, 8]]" in run_cli("run", path, "--device", "meta").out
    out = tmp_path / "y.safetensors"
    assert run_cli("run", path, "-o", out).code == 0
    from safetensors.torch import load_file
    assert sorted(load_file(str(out))) == ["output.0", "output.1"]
    bad = run_cli("run", path, "-o", tmp_path / "y.npy")
    assert bad.code == 2 and "returns 2 tensors" in bad.err


def test_params_that_are_neither_a_mapping_nor_a_list_are_a_located_error(run_cli, write_spec):
    """Found by the mutated-config fuzz: `params: -1` was an internal error (TypeError) in ${} substitution."""
    path = write_spec("input: [2, 3, 6, 6]\nblocks:\n  R:\n    params: -1\n    children:\n"
                      "      c: {Conv2d: [3, 3, 3]}\nmodel:\n  - use: R\n")
    result = run_cli("validate", path)
    assert result.code == 2 and "internal error" not in result.err, result.err
    assert f"{path}:4:5: blocks.R.params:" in result.err
