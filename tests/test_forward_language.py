"""SPEC §1.8's forward additions, each against the hand-written module that forward stands for.

Loops over a container (unrolled when compiled), a child's parameters read as
tensors, comparisons, `//` and `%`, `inf`, tensor factories with `device=` and
`dtype=`, string choices, and `if CHILD is not None:`; then each misuse's
located error. Values are compared with torch.equal under a seed, and the
ejected code (`netcli code`) must build the same module again.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

LOOP = """\
input: [2, 8]
blocks:
  Stack:
    children:
      blocks: [{Linear: [8, 8]}, {Linear: [8, 8]}, {Linear: [8, 8]}]
      head: {Linear: [8, 8]}
    forward: |
      for block in blocks:
          x = relu(block(x)) + x
      if head is not None:
          x = head(x)
      return x
model: {use: Stack}
"""


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
        self.head = nn.Linear(8, 8)

    def forward(self, x):
        for block in self.blocks:
            x = F.relu(block(x)) + x
        if self.head is not None:
            x = self.head(x)
        return x


TIED = """\
input: [3, 5, 16]
blocks:
  Attn:
    children:
      enc: {Linear: [16, 32]}
    forward: |
      h = enc(x)
      t = x.shape[1]
      mask = tril(ones(t, t, device=x.device)) == 0
      att = (h @ h.transpose(1, 2)) // 4 % 7
      att = softmax(att.masked_fill(mask, -inf), dim=-1)
      pos = arange(0, t, dtype=torch.long, device=x.device)
      out = F.linear(att @ h, enc.weight.t()) + pos.to(x.dtype).unsqueeze(-1)
      return out, (att > 0.5).sum(-1)
model: {use: Attn}
"""


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(16, 32)

    def forward(self, x):
        h = self.enc(x)
        t = x.shape[1]
        mask = torch.tril(torch.ones(t, t, device=x.device)) == 0
        att = (h @ h.transpose(1, 2)) // 4 % 7
        att = torch.softmax(att.masked_fill(mask, -float("inf")), dim=-1)
        pos = torch.arange(0, t, dtype=torch.long, device=x.device)
        out = F.linear(att @ h, self.enc.weight.t()) + pos.to(x.dtype).unsqueeze(-1)
        return out, (att > 0.5).sum(-1)


CHOICE = """\
input: [2, 3, 4, 4]
blocks:
  Up:
    children:
      conv: {Conv2d: [3, 3, 3]}
    forward: |
      y = interpolate(x, scale_factor=2, mode="nearest")
      return conv(pad(y, (1, 1, 1, 1), mode="reflect"))
model: {use: Up}
"""


class Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x):
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(F.pad(y, (1, 1, 1, 1), mode="reflect"))


CASES = {"loop": (LOOP, Stack), "tied": (TIED, Attn), "choice": (CHOICE, Up)}


def _built(write_spec, text, seed=0):
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model

    return build_model(load_spec(str(write_spec(text))), seed=seed)


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1234])
def test_the_forward_equals_the_hand_written_one(write_spec, case, seed):
    text, cls = CASES[case]
    built = _built(write_spec, text, seed)
    torch.manual_seed(seed)
    hand = cls()
    assert str(built.net) == str(hand)
    assert list(built.net.state_dict()) == list(hand.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(built.net.state_dict().values(), hand.state_dict().values(),
                                                 strict=True))
    x = torch.rand(built.loaded.spec.input, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert _same(built.net(x), hand(x))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ejected_forward_builds_the_same(write_spec, run_cli, tmp_path, case):
    text, cls = CASES[case]
    spec = write_spec(text)
    out = tmp_path / f"{case}_model.py"
    assert run_cli("code", spec, "-o", out).code == 0
    code = out.read_text()
    spec_ = importlib.util.spec_from_file_location(f"fl_{case}", out)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[spec_.name] = module
    spec_.loader.exec_module(module)
    net = module.build(0)
    torch.manual_seed(0)
    hand = cls()
    assert str(net) == str(hand)
    x = torch.rand(_built(write_spec, text).loaded.spec.input, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert _same(net(x), hand(x))
    if case == "loop":
        assert "for block in self.blocks:" in code and "if self.head is not None:" in code
    if case == "tied":
        assert "self.enc.weight.t()" in code and "dtype=torch.long" in code


def test_a_loop_leaves_no_loop_at_run_time(write_spec):
    net = _built(write_spec, LOOP).net
    source = type(net)._netcli_source
    assert "for " not in source and source.count("self.blocks") == 3


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("for i in x:\n    x = head(x)\nreturn x", "a loop runs over a child ModuleList or Sequential"),
        ("for b in head:\n    x = b(x)\nreturn x", "head is a Linear: a loop runs over a ModuleList or Sequential"),
        ("return x + head.wieght.sum()", "head holds no parameter or buffer 'wieght' (did you mean 'weight'?)"),
        ("return interpolate(x, scale_factor=2, mode='nearst')", "interpolate's mode is one of 'nearest'"),
        ("return x < 0 < x", "one comparison at a time"),
        ("if x is not None:\n    x = head(x)\nreturn x", "the one conditional a forward may have"),
        ("for b in blocks:\n    return b(x)\nreturn x", "return only at the end of the forward"),
    ],
)
def test_misuse_is_a_located_error(write_spec, run_cli, forward, message):
    body = "\n".join("      " + line for line in forward.splitlines())
    spec = write_spec(
        "input: [2, 8]\nmodel:\n  children:\n    blocks: [{Linear: [8, 8]}]\n    head: {Linear: [8, 8]}\n"
        f"  forward: |\n{body}\n"
    )
    result = run_cli("validate", spec)
    assert result.code == 2, result.err
    assert f"{spec}:" in result.err and message in result.err, result.err
    assert "Traceback" not in result.err


# -- SPEC 1.8's whole forms, against hand-written twins (tests/handwritten_forward.py) --

GPT_SPEC = """\
input: {shape: [2, 8], dtype: int64, high: 32}
blocks:
  CausalSelfAttention:
    children:
      c_attn: {Linear: [16, 48]}
      c_proj: {Linear: [16, 16]}
    forward: |
      b = x.shape[0]
      t = x.shape[1]
      q, k, v = c_attn(x).split(16, dim=2)
      q = q.view(b, t, 2, 16 // 2).transpose(1, 2)
      k = k.view(b, t, 2, 16 // 2).transpose(1, 2)
      v = v.view(b, t, 2, 16 // 2).transpose(1, 2)
      y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
      return c_proj(y.transpose(1, 2).contiguous().view(b, t, 16))
  Block:
    children:
      ln_1: {LayerNorm: 16}
      attn: {use: CausalSelfAttention}
      ln_2: {LayerNorm: 16}
      mlp: [{Linear: [16, 64]}, {GELU: {approximate: tanh}}, {Linear: [64, 16]}]
    forward: |
      x = x + attn(ln_1(x))
      return x + mlp(ln_2(x))
  GPT:
    inputs: [idx]
    children:
      transformer:
        ModuleDict:
          wte: {Embedding: [32, 16]}
          wpe: {Embedding: [8, 16]}
          h: {ModuleList: [{use: Block, repeat: 2}]}
          ln_f: {LayerNorm: 16}
      lm_head: {Linear: {in_features: 16, out_features: 32, bias: false}}
    tie: ["transformer.wte.weight = lm_head.weight"]
    forward: |
      t = idx.shape[1]
      pos = arange(0, t, dtype=long, device=idx.device)
      x = transformer.wte(idx) + F.embedding(pos, transformer.wpe.weight)
      for block in transformer.h:
          x = block(x)
      x = transformer.ln_f(x)
      return F.linear(x, lm_head.weight)
model: {use: GPT}
"""

TOKENS_SPEC = """\
input: [2, 4, 6]
blocks:
  Tokens:
    children:
      patch: {Linear: [6, 8]}
      cls_token: {Parameter: {randn: [1, 1, 8]}}
      pos_embed: {Parameter: {randn: [1, 5, 8]}}
      blocks: {ModuleList: [{Linear: [8, 8], repeat: 2}]}
      gamma: {Parameter: {full: [8], value: 0.5}}
      norm: {LayerNorm: 8}
    forward: |
      x = patch(x)
      x = cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1) + pos_embed
      for blk in blocks:
          x = x + gamma * blk(x)
      return norm(x)[:, 0]
model: {use: Tokens}
"""

NESTED_SPEC = """\
input: [2, 4]
blocks:
  Nested:
    children:
      stages: {ModuleList: [[{Linear: [4, 4]}, Tanh], [{Linear: [4, 4]}, ReLU, {Linear: [4, 4]}]]}
      heads: {ModuleDict: {a: {Linear: [4, 3]}, b: {Linear: [4, 3]}}}
    forward: |
      for stage in stages:
          for layer in stage:
              x = layer(x)
      y = x[:, :3] * 0
      for head in heads.values():
          y = y + head(x)
      return y
model: {use: Nested}
"""

OPTIONAL_SPEC = """\
input: [2, 4, 4, 4]
blocks:
  Bottleneck:
    params: {inplanes: 4, planes: 8, downsample: null}
    children:
      conv: {Conv2d: {in_channels: "${inplanes}", out_channels: "${planes}", kernel_size: 3, padding: 1, bias: false}}
      bn: {BatchNorm2d: "${planes}"}
      relu: {ReLU: {inplace: true}}
      downsample: "${downsample}"
    forward: |
      out = bn(conv(x))
      if downsample is not None:
          identity = downsample(x)
      else:
          identity = x
      return relu(out + identity)
model:
  - use: Bottleneck
    with: {downsample: [{Conv2d: {in_channels: 4, out_channels: 8, kernel_size: 1, bias: false}}, {BatchNorm2d: 8}]}
  - {use: Bottleneck, with: {inplanes: 8}}
"""


def _twins():
    import handwritten_forward as hf

    return {
        "gpt": (GPT_SPEC, hf.GPT),
        "tokens": (TOKENS_SPEC, hf.Tokens),
        "nested": (NESTED_SPEC, hf.Nested),
        "optional": (OPTIONAL_SPEC, hf.bottlenecks),
    }


def _example(built, seed):
    spec = built.loaded.spec.input
    gen = torch.Generator().manual_seed(seed)
    if isinstance(spec, list):
        return torch.rand(spec, generator=gen)
    return torch.randint(0, 32, tuple(spec.shape), generator=gen)


@pytest.mark.parametrize("case", ["gpt", "tokens", "nested", "optional"])
@pytest.mark.parametrize("seed", [0, 1234])
def test_whole_forms_equal_their_twins(write_spec, case, seed):
    text, make = _twins()[case]
    built = _built(write_spec, text, seed)
    torch.manual_seed(seed)
    hand = make()
    assert str(built.net) == str(hand)
    assert list(built.net.state_dict()) == list(hand.state_dict())
    for (key, a), b in zip(built.net.state_dict().items(), hand.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    x = _example(built, seed)
    built.net.eval(), hand.eval()
    with torch.no_grad():
        assert torch.equal(built.net(x), hand(x))


@pytest.mark.parametrize("case", ["gpt", "tokens", "nested", "optional"])
def test_whole_forms_eject_to_the_same_module(write_spec, run_cli, tmp_path, case):
    text, make = _twins()[case]
    spec = write_spec(text)
    out = tmp_path / f"{case}_twin.py"
    result = run_cli("code", spec, "-o", out)
    assert result.code == 0, result.err
    code = out.read_text()
    spec_ = importlib.util.spec_from_file_location(f"flw_{case}", out)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[spec_.name] = module
    spec_.loader.exec_module(module)
    net = module.build(0).eval()
    torch.manual_seed(0)
    hand = make().eval()
    assert str(net) == str(hand)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), hand.state_dict().values(), strict=True))
    x = _example(_built(write_spec, text), 0)
    with torch.no_grad():
        assert torch.equal(net(x), hand(x))
    written = {
        "gpt": ["for block in self.transformer.h:", "F.linear(x, self.lm_head.weight)", "dtype=torch.long"],
        "tokens": ["self.cls_token.expand(x.shape[0], -1, -1)", "+ self.pos_embed", "self.gamma * blk(x)"],
        "nested": ["for stage in self.stages:", "        for layer in stage:", "in self.heads.values():"],
        "optional": ["if self.downsample is not None:", "else:"],
    }[case]
    assert all(line in code for line in written), code
    from test_eject import assert_ruff_clean

    assert_ruff_clean(out)


@pytest.mark.parametrize("case", ["gpt", "tokens", "nested"])
def test_the_compiled_forward_is_straight_line_code_dynamo_takes_whole(write_spec, case):
    text, _ = _twins()[case]
    built = _built(write_spec, text)
    net = built.net.eval()
    sources = [type(m)._netcli_source for m in net.modules() if hasattr(type(m), "_netcli_source")]
    assert sources and not any("for " in s or "if " in s for s in sources)
    x = _example(built, 0)
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True, backend="eager")  # a graph break would raise here
    with torch.no_grad():
        assert torch.equal(compiled(x), net(x))


def test_an_optional_child_is_decided_per_use(write_spec):
    net = _built(write_spec, OPTIONAL_SPEC).net
    with_down, without = (type(m)._netcli_source for m in net)
    assert "self.downsample" in with_down and "downsample" not in without


MISUSE_BASE = """\
input: [2, 8]
model:
  children:
    blocks: {ModuleList: [{Linear: [8, 8]}]}
    heads: {ModuleDict: {a: {Linear: [8, 8]}}}
    head: {Linear: [8, 8]}
    pos: {Parameter: {zeros: [8]}}
  forward: |
"""


@pytest.mark.parametrize(
    ("forward", "token", "message"),
    [
        ("for b in blocks:\n    x = b(x)\nreturn x + b.weight", "b.weight", "loop variable 'b' is used outside its loop"),
        ("for b in blocks:\n    x = x + b\nreturn x", "b\n", "loop variable 'b' is a module: call it (b(...))"),
        ("for b in heads:\n    x = b(x)\nreturn x", "for b", "looping over a ModuleDict gives its keys"),
        ("for b in blocks.values():\n    x = b(x)\nreturn x", "for b", "blocks is a ModuleList: loop over it directly"),
        ("for blocks in blocks:\n    x = x\nreturn x", "blocks in", "loop variable 'blocks' has the name of a child"),
        ("head.weight = x\nreturn x", "head.weight", "parameters and buffers can be read in a forward, never assigned"),
        ("return pos(x)", "pos(x)", "pos is a tensor: it cannot be called"),
        ("return head.trainin", "head.trainin", "head holds no parameter or buffer 'trainin'"),
        ("return pad(x, (1, 1), mode='reflekt')", "'reflekt'", "pad's mode is one of 'constant', 'reflect'"),
        ("return softmax(x, dim='1')", "'1'", "softmax() takes no string dim="),
        ("return x.to(dtype=int)", "int)", "Python's 'int' is not a dtype here (torch.int)"),
        ("if head is None:\n    x = head(x)\nreturn x", "if head", "is the one conditional a forward may have"),
        ("if head is not None:\n    return head(x)\nreturn x", "return head", "return only at the end of the forward"),
        ("return x is not None", "x is", "`is not None` is allowed only as `if CHILD is not None:`"),
        ("return (x > 0) and (x < 1)", "(x > 0) and", "and/or is not allowed"),
        ("return x.masked_fill(x < 0, mode='nearest')", "'nearest'", "takes no string here"),
    ],
)
def test_each_misuse_is_located_in_the_forward_text(write_spec, run_cli, forward, token, message):
    from test_custom_blocks import at

    body = "\n".join("    " + line for line in forward.splitlines()) + "\n"
    text = MISUSE_BASE + body
    spec = write_spec(text)
    result = run_cli("validate", spec)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    start = text.index("  forward: |\n") + len("  forward: |\n")
    located = at(text[start:], token)
    line, column = (int(n) for n in located.split(":"))
    expected = f"{spec}:{line + text[:start].count(chr(10))}:{column}: "
    assert any(row.startswith(expected) and message in row for row in result.err.splitlines()), (expected, result.err)


def test_an_unbound_name_after_an_untaken_branch_is_located(write_spec):
    text = OPTIONAL_SPEC.replace("      else:\n          identity = x\n", "")
    from netcli.core.errors import NetcliError

    with pytest.raises(NetcliError) as info:
        _built(write_spec, text)
    assert "'identity' has no value in this block" in str(info.value)
    assert "spec.yaml:14:25: " in str(info.value)  # `identity` in the return



FUNCTIONS_SPEC = """\
input: [2, 3, 6]
blocks:
  Funcs:
    children:
      proj: {Linear: [6, 6]}
      scale: {Buffer: {full: [6], value: 2.0}}
    forward: |
      y = proj(x)
      d = F.pairwise_distance(x, y) + F.cosine_similarity(x, y, dim=-1)
      z = zeros(x.shape[0], 3, 6, device=x.device) + ones(3, 6, dtype=x.dtype) + full((3, 6), 0.5, device=x.device)
      e = eye(6, device=x.device) + triu(ones(6, 6, device=x.device), diagonal=1)
      keep = (y >= 0) != (y <= 0.5)
      w = (y @ e + z).masked_fill(keep, 0.0) * scale
      r = (y * 100).long() % 7 // 2
      g = gelu(w, approximate="tanh")
      return g, d, r.to(x.dtype), keep == (y < inf)
model: {use: Funcs}
"""


def test_the_listed_functions_and_operators_equal_torch(write_spec):
    from handwritten_forward import Funcs

    built = _built(write_spec, FUNCTIONS_SPEC, 3)
    torch.manual_seed(3)
    hand = Funcs()
    assert str(built.net) == str(hand) and list(built.net.state_dict()) == list(hand.state_dict())
    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = built.net(x), hand(x)
    assert len(ours) == len(theirs) and all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert ours[3].dtype == torch.bool
