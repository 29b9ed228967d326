"""Arithmetic in `${...}` (SPEC §1.8): sizes computed from vars and params, parsed, never evaluated."""

from __future__ import annotations

import pytest
import torch
from torch import nn

VIT = """\
vars: {dim: 64, heads: 4, image: 32, patch: 4}
model:
  - Linear: ["${dim}", "${dim * 4}"]
  - Linear: ["${dim * 4}", "${dim // heads}"]
  - Linear: ["${dim // heads}", "${(image // patch) ** 2 + 1}"]
  - Linear: ["${(image // patch) ** 2 + 1}", "${min(dim, 2 * heads) + max(1, heads % 3)}"]
"""


def _hand():
    dim, heads, image, patch = 64, 4, 32, 4
    return nn.Sequential(
        nn.Linear(dim, dim * 4),
        nn.Linear(dim * 4, dim // heads),
        nn.Linear(dim // heads, (image // patch) ** 2 + 1),
        nn.Linear((image // patch) ** 2 + 1, min(dim, 2 * heads) + max(1, heads % 3)),
    )


def test_sizes_computed_from_vars_build_the_hand_written_network(write_spec, run_cli):
    spec = write_spec(VIT)
    out = run_cli("build", spec, "--print", "--seed", "0")
    assert out.code == 0, out.err
    torch.manual_seed(0)
    assert out.out == str(_hand()) + "\n"


def test_block_params_and_vars_mix_in_one_expression(write_spec):
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model

    spec = write_spec(
        """\
vars: {mult: 4}
blocks:
  Mlp:
    params: {dim: 8}
    children:
      fc1: {Linear: ["${dim}", "${dim * mult}"]}
      fc2: {Linear: ["${dim * mult}", "${dim}"]}
model: [{use: Mlp}, {use: Mlp, with: {dim: 16}}]
"""
    )
    net = build_model(load_spec(str(spec)), seed=0).net
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(32, 8), (32,), (8, 32), (8,), (64, 16), (64,), (16, 64), (16,)]
    assert net[1].fc1.in_features == 16 and net[1].fc1.out_features == 64


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${dimm * 2}", "undefined variable '${dimm}' (did you mean 'dim'?)"),
        ("${dim ** 99}", "too large"),
        ("${__import__('os')}", "the only functions are min(...) and max(...)"),
        ("${dim.__class__}", "undefined variable"),
        ("${dim if dim else 1}", "is not arithmetic"),
        ("${dim / 0}", "divides by zero"),
        ("${9 ** 9 ** 9}", "too large"),
    ],
)
def test_what_is_not_arithmetic_is_a_located_error(write_spec, run_cli, value, message):
    spec = write_spec(f'vars: {{dim: 64}}\nmodel:\n  - Linear: [4, "{value}"]\n')
    result = run_cli("validate", spec)
    assert result.code == 2
    assert f"{spec}:3:17: model[0].Linear" in result.err and message in result.err, result.err
    assert "Traceback" not in result.err


def test_a_float_where_a_size_must_be_an_integer_says_to_use_floor_division(write_spec, run_cli):
    spec = write_spec('vars: {dim: 64}\nmodel:\n  - Linear: [4, "${dim / 3}"]\n')
    result = run_cli("validate", spec)
    assert result.code == 2
    assert "argument 'out_features' must be int, not 21.33" in result.err
    assert "// divides to a whole number" in result.err


def test_inside_text_an_expression_is_its_text(write_spec, run_cli):
    spec = write_spec('vars: {n: 3}\nname: "net_${n * 2}"\nmodel:\n  - Linear: [4, 2]\n')
    assert "net_6" in run_cli("build", spec).out
