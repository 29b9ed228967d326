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
