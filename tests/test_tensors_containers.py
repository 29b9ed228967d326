"""Tensor children, ModuleList/ModuleDict and parameter ties (SPEC 1.8), each against hand-written torch.

The twins are in handwritten_tensors.py; a spec must give the same print, the
same state_dict keys and, under the same seed, the same values (torch.equal);
save/load, `--fast-init`, init rules, the summary and eject work through them;
each misuse is a located error.
"""

from __future__ import annotations

import re

import pytest
import torch
from handwritten_modern import vit_tiny
from handwritten_tensors import Containers, Tensors, Tied, bottlenecks
from torch import nn

import netcli
from netcli.builder.validate import load_spec_text
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model

SEEDS = [0, 1234]

TENSORS = """\
input: [2, 8]
blocks:
  Tensors:
    params: {dim: 8}
    children:
      proj: {Linear: ["${dim}", "${dim}"]}
      cls_token: {Parameter: {zeros: [1, 1, "${dim}"]}}
      noise: {Parameter: {randn: ["${dim}", 4]}}
      frozen: {Parameter: {rand: 3, requires_grad: false}}
      gamma: {Parameter: {full: ["${dim}"], value: 1.0e-6}}
      scale: {Parameter: {ones: ["${dim}"]}}
      fc: {Linear: ["${dim}", 4]}
      mask: {Buffer: {tril: [4, 4], bool: true, persistent: false}}
      positions: {Buffer: {arange: 16}}
      ident: {Buffer: {eye: 3}}
      upper: {Buffer: {triu: [3, 3]}}
      table: {Buffer: {full: [2, 2], value: 5.0}}
    forward: |
      return fc(proj(x))
model: {use: Tensors}
"""

LAYER = """\
  Layer:
    params: {dim: 8}
    children:
      fc: {Linear: ["${dim}", "${dim}"]}
    forward: |
      return relu(fc(x))
"""

CONTAINERS = (
    """\
input: {shape: [2, 5], dtype: int64, high: 16}
blocks:
"""
    + LAYER
    + """\
  NAME:
    params: {vocab: 16, dim: 8, depth: 3}
    inputs: [idx]
    children:
      transformer:
        ModuleDict:
          wte: {Embedding: ["${vocab}", "${dim}"]}
          h: {ModuleList: [{use: Layer, repeat: "${depth}"}]}
          ln_f: {LayerNorm: "${dim}"}
      extra: {ModuleList: [{Linear: ["${dim}", "${dim}"]}, ReLU, {Linear: ["${dim}", "${dim}"]}]}
      lm_head: {Linear: {in_features: "${dim}", out_features: "${vocab}", bias: false}}
TIE
    forward: |
      x = transformer['wte'](idx)
      return lm_head(transformer['ln_f'](transformer['h'][0](x)))
model: {use: NAME}
"""
)

BOTTLENECK = """\
input: [2, 8, 4, 4]
blocks:
  Bottleneck:
    params: {inplanes: 8, planes: 4, stride: 1, downsample: null}
    children:
      conv1: {Conv2d: {in_channels: "${inplanes}", out_channels: "${planes}", kernel_size: 1, bias: false}}
      bn1: {BatchNorm2d: "${planes}"}
      conv2: {Conv2d: {in_channels: "${planes}", out_channels: "${planes * 4}", kernel_size: 3, stride: "${stride}",
                       padding: 1, bias: false}}
      relu: {ReLU: {inplace: true}}
      downsample: "${downsample}"
    forward: |
      return relu(conv2(bn1(conv1(x))))
model:
  - use: Bottleneck
    with: {inplanes: 8, planes: 4, stride: 2,
           downsample: [{Conv2d: {in_channels: 8, out_channels: 16, kernel_size: 1, stride: 2, bias: false}},
                        {BatchNorm2d: 16}]}
  - {use: Bottleneck, with: {inplanes: 16, planes: 4}}
"""

VIT = """\
input: [2, 3, 32, 32]
blocks:
  ViT:
    params: {dim: 64, patch: 4, image: 32, depth: 2, heads: 4, classes: 10}
    children:
      patch_embed: {Conv2d: [3, "${dim}", {kernel_size: "${patch}", stride: "${patch}"}]}
      cls_token: {Parameter: {zeros: [1, 1, "${dim}"]}}
      pos_embed: {Parameter: {zeros: [1, "${(image // patch) ** 2 + 1}", "${dim}"]}}
      blocks:
        ModuleList:
          - {TransformerEncoderLayer: {d_model: "${dim}", nhead: "${heads}", dim_feedforward: "${dim * 2}",
                                       dropout: 0.0, activation: gelu, batch_first: true, norm_first: true},
             repeat: "${depth}"}
      norm: {LayerNorm: "${dim}"}
      head: {Linear: ["${dim}", "${classes}"]}
    forward: |
      x = patch_embed(x).flatten(2).transpose(1, 2)
      x = cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1) + pos_embed
      for block in blocks:
          x = block(x)
      return head(norm(x)[:, 0])
model: {use: ViT}
init: ["trunc_normal(std=0.02):pos_embed", "trunc_normal(std=0.02):cls_token"]
"""

CASES = {
    "tensors": (TENSORS, Tensors),
    "containers": (CONTAINERS.replace("NAME", "Containers").replace("TIE\n", ""), Containers),
    "tied": (
        CONTAINERS.replace("NAME", "Tied").replace("TIE", '    tie: ["transformer.wte.weight = lm_head.weight"]'),
        Tied,
    ),
    "module-valued param": (BOTTLENECK, bottlenecks),
    "vit (SPEC 1.8's example)": (VIT, vit_tiny),
}


def build(text: str, **kw) -> nn.Module:
    return build_model(load_spec_text(text, "spec.yaml"), **kw).net


def twin(cls, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return cls()


def same_tensors(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(keep_vars=True), b.state_dict(keep_vars=True)
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key
        assert sa[key].requires_grad == sb[key].requires_grad, key


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", SEEDS)
def test_print_keys_and_seeded_values_equal_the_hand_written_module(case, seed):
    text, cls = CASES[case]
    net, ref = build(text, seed=seed), twin(cls, seed)
    assert str(net) == str(ref)
    same_tensors(net, ref)
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in ref.named_buffers()]  # non-persistent too
    for (name, a), (_, b) in zip(net.named_buffers(), ref.named_buffers(), strict=True):
        assert torch.equal(a, b), name


def test_outputs_equal_the_hand_written_module():
    for case, (text, cls) in CASES.items():
        net, ref = build(text, seed=0), twin(cls, 0)
        x = {
            "tensors": torch.randn(2, 8),
            "module-valued param": torch.randn(2, 8, 4, 4),
            "vit (SPEC 1.8's example)": torch.randn(2, 3, 32, 32),
        }.get(case, torch.randint(0, 16, (2, 5)))
        assert torch.equal(net(x), ref(x)), case


def test_a_tie_shares_one_parameter_and_is_stored_once(tmp_path):
    text, _ = CASES["tied"]
    net = build(text, seed=0)
    assert net.transformer.wte.weight is net.lm_head.weight
    ref = twin(Tied, 0)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in ref.named_parameters()]
    netcli.save(net, tmp_path / "tied.safetensors")
    back = netcli.load(tmp_path / "tied.safetensors")
    assert back.transformer.wte.weight is back.lm_head.weight
    same_tensors(back, net)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "tied.safetensors"), "pt") as f:
        stored = list(f.keys())
    assert len(stored) == len(list(net.parameters())) + len(list(net.buffers()))  # the tied tensor once
    assert netcli.summary(net)["total_params"] == sum(p.numel() for p in net.parameters())  # the tie once


def test_a_null_module_param_registers_nothing():
    net = build(BOTTLENECK, seed=0)
    assert "downsample" in dict(net[0].named_children()) and "downsample" not in dict(net[1].named_children())
    assert net[1].downsample is None if hasattr(net[1], "downsample") else True


def test_top_level_tie_runs_after_the_network_is_built():
    text = "model: [{Linear: [4, 4]}, ReLU, {Linear: [4, 4]}]\ntie: ['0.weight = 2.weight']\n"
    net = build(text, seed=3)
    torch.manual_seed(3)
    ref = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    ref[0].weight = ref[2].weight
    assert net[0].weight is net[2].weight
    same_tensors(net, ref)


def test_tensors_save_and_load_round_trip(tmp_path):
    net = build(TENSORS, seed=0)
    netcli.save(net, tmp_path / "t.safetensors")
    back = netcli.load(tmp_path / "t.safetensors")
    same_tensors(back, net)
    assert "mask" not in back.state_dict() and torch.equal(back.mask, net.mask)  # made again, not stored


def test_summary_counts_tensor_children():
    net = build(TENSORS, seed=0)
    data = netcli.summary(net)
    assert data["total_params"] == sum(p.numel() for p in net.parameters())
    assert data["blocks"][0]["params"] == data["total_params"]


def test_init_rules_reach_tensor_children():
    text = TENSORS + 'init: ["trunc_normal(std=0.02):cls_token", "constant(0.5):gamma"]\n'
    net = build(text, seed=1)
    ref = twin(Tensors, 1)
    nn.init.trunc_normal_(ref.cls_token, std=0.02)
    nn.init.constant_(ref.gamma, 0.5)
    same_tensors(net, ref)


def test_fast_init_draws_every_tensor_child():
    text = TENSORS + 'init: ["constant(0.5):gamma"]\n'
    one, two = build(text, seed=5, fast_init=True), build(text, seed=5, fast_init=True)
    ref = twin(Tensors, 5)
    same_tensors(one, two)  # per-path seeds: the same spec and seed give the same values
    assert not torch.equal(one.noise, ref.noise) and one.noise.std() > 0.5  # drawn, from its own seed
    assert torch.all(one.gamma == 0.5) and torch.equal(one.cls_token, ref.cls_token)
    for name in ("mask", "positions", "ident", "upper", "table"):
        assert torch.equal(getattr(one, name), getattr(ref, name)), name
    tied = build(CASES["tied"][0], seed=5, fast_init=True)
    assert tied.transformer.wte.weight is tied.lm_head.weight


# ---------------------------------------------------------------- misuse: located errors


def child(node: str) -> str:
    return f"model:\n  children:\n    fc: {{Linear: [4, 4]}}\n    t: {node}\n  forward: |\n    return fc(x)\n"


MISTAKES = {
    "a Parameter in a list": (
        "model: [{Linear: [4, 4]}, {Parameter: {zeros: [4]}}]\n",
        "Parameter",
        r"a Parameter is a tensor, not a module: it is a child of a custom block",
    ),
    "ParameterList": (
        child("{ParameterList: [[1, 1, 64]]}"),
        "ParameterList",
        r"ParameterList is not a node: write each tensor as its own child",
    ),
    "two fills": (
        child("{Parameter: {zeros: [4], ones: [4]}}"),
        "Parameter",
        r"exactly one of zeros, ones, empty, rand, randn, full, this one has zeros, ones",
    ),
    "no fill": (child("{Buffer: {persistent: false}}"), "Buffer", r"exactly one of .*arange.*, this one has none"),
    "a Buffer fill on a Parameter": (child("{Parameter: {arange: 4}}"), "arange", r"'arange' is a Buffer's"),
    "requires_grad on a Buffer": (
        child("{Buffer: {zeros: [4], requires_grad: false}}"),
        "requires_grad",
        r"a Buffer takes no gradient",
    ),
    "an option beside a Parameter": (
        child("{Parameter: {zeros: [4]}, frozen: true}"),
        "frozen",
        r"takes no option 'frozen'",
    ),
    "a misspelled key": (
        child("{Parameter: {zeros: [4], requires_gard: false}}"),
        "requires_gard",
        r"unknown key 'requires_gard' of a Parameter \(did you mean 'requires_grad'\?\)",
    ),
    "full without value": (child("{Parameter: {full: [4]}}"), "{full", r"full needs value"),
    "a negative size": (
        child("{Parameter: {zeros: [4, -1]}}"),
        "zeros: [4, -1]",
        r"a size is a whole number from 0 \(or \$\{...\}\), not -1",
    ),
    "not a mapping": (child("{Parameter: [4]}"), "Parameter", r"a Parameter says how its values are made"),
    "ModuleDict of a list": (child("{ModuleDict: [ReLU]}"), "ModuleDict", r"ModuleDict takes a mapping name -> node"),
    "ModuleList of a mapping": (child("{ModuleList: {a: ReLU}}"), "ModuleList", r"ModuleList takes a list of nodes"),
    "a ModuleList as the network": (
        "model: {ModuleList: [ReLU]}\n",
        "ModuleList",
        r"a ModuleList cannot be the network",
    ),
    "a ModuleList in a Sequential": (
        "model: [{ModuleList: [ReLU]}, ReLU]\n",
        "{ModuleList",
        r"a ModuleList cannot run in a Sequential",
    ),
    "names in a ModuleList": (
        child("{ModuleList: [{Linear: [4, 4], repeat: 2, names: 'b{i}'}]}"),
        "{Linear: [4, 4], repeat",
        r"a ModuleList numbers its items",
    ),
    "a tie to no tensor": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n    b: {Linear: [4, 4]}\n  tie: ['a.weight = b.wieght']\n  forward: |\n    return b(a(x))\n",
        "'a.weight",
        r"this block has no tensor 'wieght'|'b' has no tensor 'wieght' \(did you mean 'weight'\?\)",
    ),
    "a tie of two shapes": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n    b: {Linear: [4, 2]}\n  tie: ['a.weight = b.weight']\n  forward: |\n    return b(a(x))\n",
        "'a.weight",
        r"'a.weight' has shape \[4, 4\] and 'b.weight' \[2, 4\]",
    ),
    "a tie to no child": (
        "model:\n  children:\n    a: {Linear: [4, 4]}\n  tie: ['c.weight = a.weight']\n  forward: |\n    return a(x)\n",
        "'c.weight",
        r"no child 'c' in 'c'",
    ),
    "a tie that is not an assignment": (
        child("{Parameter: {zeros: [4]}}").replace("  forward:", "  tie: ['a.weight']\n  forward:"),
        "'a.weight'",
        r"a tie is 'PATH.tensor = PATH.tensor'",
    ),
}


MISTAKES["a module param given no node"] = (
    BOTTLENECK.replace("{inplanes: 16, planes: 4}}", "{inplanes: 16, planes: 4, downsample: 5}}"),
    "5}}",
    r"model\[1\]\.with\.downsample: a node is a type name, a list or a mapping, not '5'",
)
MISTAKES["an unknown type in a module param"] = (
    BOTTLENECK.replace("{BatchNorm2d: 16}", "{Nope: 16}"),
    "Nope",
    r"model\[0\]\.with\.downsample\[1\] \(with inplanes=8, planes=4, stride=2, downsample=\.\.\., "
    r"from model\[0\]\): unknown type 'Nope'",
)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_misuse_is_a_located_error(name, write_spec, run_cli):
    text, token, pattern = MISTAKES[name]
    path = write_spec(text)
    result = run_cli("build", str(path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    index = text.index(token)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    assert result.err.startswith(f"{path}:{line}:{col}:"), result.err
    assert re.search(pattern, result.err), result.err


def test_module_dict_no_longer_says_dict_is_not_a_module(write_spec, run_cli):
    result = run_cli("build", str(write_spec("model: {ModuleDict: {a: ReLU}}\n")))
    assert result.code == 2 and "not a Module subclass" not in result.err
    assert "a ModuleDict cannot be the network" in result.err


# ---------------------------------------------------------------- eject


def _import(text: str, folder, name: str):
    import importlib.util

    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"ejected_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


RESIDUAL_IF = """\
# torchvision's Bottleneck(..., downsample=nn.Sequential(...)): the downsample is made first, registered last
input: [2, 8, 4, 4]
blocks:
  Block:
    params: {inplanes: 8, planes: 16, stride: 1, downsample: null}
    children:
      conv: {Conv2d: ["${inplanes}", "${planes}", 3, "${stride}", 1, {bias: false}]}
      bn: {BatchNorm2d: "${planes}"}
      downsample: "${downsample}"
    forward: |
      identity = x
      out = bn(conv(x))
      if downsample is not None:
          identity = downsample(x)
      return relu(out + identity)
model:
  - {use: Block, with: {stride: 2, downsample: [{Conv2d: [8, 16, 1, 2, {bias: false}]}, {BatchNorm2d: 16}]}}
  - {use: Block, with: {inplanes: 16}}
"""
TOP_TIE = "model: [{Linear: [4, 4]}, ReLU, {Linear: [4, 4]}]\ntie: ['0.weight = 2.weight']\n"


@pytest.mark.parametrize("case", [*CASES, "top-level tie", "downsample with if"])
def test_eject_builds_the_same_network(case, tmp_path):
    from netcli.app.eject import eject

    text = {"top-level tie": TOP_TIE, "downsample with if": RESIDUAL_IF}.get(case) or CASES[case][0]
    loaded = load_spec_text(text, "spec.yaml")
    code = eject(loaded, spec_args="spec.yaml")
    path, module = _import(code, tmp_path, re.sub(r"\W", "_", case))
    written = ("nn.Parameter(", "register_buffer(", "ModuleList(", ".weight = ", "self.downsample = downsample")
    assert any(form in code for form in written)
    for seed in SEEDS:
        ours, theirs = build(text, seed=seed), module.build(seed=seed)
        assert str(ours) == str(theirs)
        same_tensors(ours, theirs)
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    if case == "downsample with if":  # one class for both uses; the null one skips the branch
        assert code.count("class Block(") == 1 and "if self.downsample is not None:" in code
        x = torch.randn(2, 8, 4, 4)
        assert torch.equal(build(text, seed=0).eval()(x), module.build(seed=0).eval()(x))
    if case in ("tied", "top-level tie"):
        net = module.build(seed=0)
        tied = [(n, p) for n, p in net.named_parameters(remove_duplicate=False)]
        assert len({id(p) for _, p in tied}) < len(tied)  # one Parameter under two names
    from test_eject import assert_ruff_clean

    if not case.startswith("vit"):  # the ViT's forward line is the forward writer's (to_python): 93 > 88 columns
        assert_ruff_clean(path)  # ruff check (E,F,W,I,B,UP) and ruff format, at ruff's defaults


# ---------------------------------------------------------------- --shard fsdp

SHARDED = """\
input: {shape: [2, 5], dtype: int64, high: 16}
seed: 3
blocks:
  Layer:
    children:
      fc: {Linear: [8, 8]}
    forward: |
      return relu(fc(x))
model:
  class: Tiny
  inputs: [idx]
  children:
    wte: {Embedding: [16, 8]}
    pos: {Parameter: {randn: [1, 5, 8]}}
    mask: {Buffer: {tril: [5, 5], bool: true, persistent: false}}
    gamma: {Parameter: {full: [8], value: 0.5}}
    h: {ModuleList: [{use: Layer, repeat: 2}]}
    lm_head: {Linear: {in_features: 8, out_features: 16, bias: false}}
  tie: ["wte.weight = lm_head.weight"]
  forward: |
    x = wte(idx) + pos
    for block in h:
        x = block(x)
    return lm_head(x * gamma)
"""


def test_sharded_save_draws_tensor_children_and_keeps_the_tie(tmp_path):
    """2 gloo ranks: a ModuleList's items are the FSDP units, the tied pair stays in the root's unit,
    and every tensor equals the one-process --fast-init build's."""
    from test_distributed import torchrun

    from netcli.io.checkpoint import read_checkpoint

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SHARDED)
    r = torchrun(2, "save", spec, "--shard", "fsdp", "-o", f"{tmp_path / 'out'}/")
    assert r.returncode == 0, r.stderr[-3000:]
    expected = build_model(load_spec_text(SHARDED, "tiny.yaml"), fast_init=True).net.state_dict()
    ckpt = read_checkpoint(tmp_path / "out")
    assert set(ckpt.names) == set(expected)
    for name, value in expected.items():
        assert torch.equal(ckpt.tensor(ckpt.names[name]), value), name


def test_export_runs_tensor_children_ties_and_module_lists(tmp_path, run_cli):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SHARDED)
    result = run_cli("export", str(spec), "-o", str(tmp_path / "tiny.onnx"))
    assert result.code == 0, result.err
    assert "its output matches torch's" in result.out + result.err


def test_eject_refuses_a_tensor_in_a_plain_sequential(write_spec, run_cli, tmp_path):
    text = "model:\n  class: Sequential\n  children:\n    fc: {Linear: [4, 4]}\n    w: {Parameter: {zeros: [4]}}\n"
    result = run_cli("code", str(write_spec(text)), "-o", str(tmp_path / "m.py"))
    assert result.code == 2 and "Traceback" not in result.err
    assert ":2:10: model.class: netcli code writes class: Sequential as a plain nn.Sequential" in result.err
