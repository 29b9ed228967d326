"""SPEC §1.8: arithmetic over block params, keyword arguments after positional ones, `apply` init rules.

Each form is compared with the PyTorch a person writes by hand (print, state_dict keys, seeded values).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from netcli.app.eject import eject
from netcli.builder.validate import load_spec
from netcli.init.engine import build_model

ROOT = Path(__file__).resolve().parent.parent


def _build(path: Path, seed: int = 0, **kw) -> nn.Module:
    return build_model(load_spec(str(path)), seed=seed, **kw).net


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    assert str(a) == str(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --- arithmetic in ${...} over block params ------------------------------------------------------------------

PATCHES = """\
vars: {width: 4}
blocks:
  Embed:
    params: {dim: 64, patch: 4, image: 32, heads: 4}
    children:
      proj: {Linear: ["${patch * patch * 3}", "${dim}"]}
      pos: {Linear: ["${dim}", "${(image // patch) ** 2 + 1}"]}
      qkv: {Linear: ["${dim}", "${dim * 3 // heads * width}"]}
      mix: {Linear: ["${dim // heads}", "${max(dim // heads, 2) + min(1, heads % 3)}"]}
model: [{use: Embed}, {use: Embed, with: {dim: 32, heads: 8}}]
"""


class _Embed(nn.Module):
    def __init__(self, dim=64, patch=4, image=32, heads=4, width=4):
        super().__init__()
        self.proj = nn.Linear(patch * patch * 3, dim)
        self.pos = nn.Linear(dim, (image // patch) ** 2 + 1)
        self.qkv = nn.Linear(dim, dim * 3 // heads * width)
        self.mix = nn.Linear(dim // heads, max(dim // heads, 2) + min(1, heads % 3))


def test_sizes_computed_from_block_params_equal_the_hand_written_sizes(write_spec):
    net = _build(write_spec(PATCHES), seed=0)
    torch.manual_seed(0)
    hand = nn.Sequential(_Embed(), _Embed(dim=32, heads=8))
    assert str(net).replace("Embed", "_Embed") == str(hand)
    for a, b in zip(net.state_dict().values(), hand.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_whole_value_expression_keeps_its_type(write_spec, run_cli):
    spec = write_spec(
        'vars: {p: 0.25, n: 10}\nmodel:\n  - Linear: [4, "${n * 2}"]\n  - Dropout: "${p * 2}"\n'
        '  - LeakyReLU: "${1 / n}"\n'
    )
    net = _build(spec)
    assert net[0].out_features == 20 and type(net[0].out_features) is int
    assert net[1].p == 0.5 and net[2].negative_slope == 0.1


@pytest.mark.parametrize(
    ("line", "message", "where"),
    [
        (
            'fc: {Linear: ["${dim}", "${dim * mlt}"]}',
            "undefined variable '${mlt}' (did you mean 'mult'?)",
            '"${dim * mlt}"',
        ),
        ('fc: {Linear: ["${dimm}", 4]}', "undefined variable '${dimm}' (did you mean 'dim'?)", '"${dimm}"'),
        ('fc: {Linear: [4, "${dim / 3}"]}', "argument 'out_features' must be int, not 2.66", '"${dim / 3}"'),
    ],
)
def test_a_misspelt_name_or_a_fraction_inside_a_block_is_a_located_error(write_spec, run_cli, line, message, where):
    column = 7 + line.index(where)
    spec = write_spec(
        f"vars: {{mult: 4}}\nblocks:\n  B:\n    params: {{dim: 8}}\n    children:\n      {line}\nmodel: {{use: B}}\n"
    )
    result = run_cli("validate", spec)
    assert result.code == 2, result.out
    assert f"{spec}:6:{column}:" in result.err and message in result.err, result.err
    assert "Traceback" not in result.err
    if "/" in line:
        assert "// divides to a whole number" in result.err


# --- a trailing mapping holds the keyword arguments ----------------------------------------------------------

DCGAN_G = """\
input: [2, 100, 1, 1]
model:
  - ConvTranspose2d: [100, 64, 4, 1, 0, {bias: false}]
  - BatchNorm2d: 64
  - ReLU: [{inplace: true}]
  - ConvTranspose2d: [64, 3, 4, 2, 1, {bias: false}]
  - Tanh
"""


def _dcgan_g() -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(100, 64, 4, 1, 0, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


@pytest.mark.parametrize("seed", [0, 1234])
def test_keyword_arguments_after_positional_ones_build_the_hand_written_layers(write_spec, seed):
    net = _build(write_spec(DCGAN_G), seed=seed)
    torch.manual_seed(seed)
    _assert_same(net, _dcgan_g())


def test_keyword_arguments_after_positional_ones_are_ejected_as_a_call(write_spec, tmp_path):
    from tests.test_eject import assert_ruff_clean

    path = write_spec(DCGAN_G)
    code = eject(load_spec(str(path)), spec_args=path.name)
    assert "nn.ConvTranspose2d(100, 64, 4, 1, 0, bias=False)" in code
    assert "nn.ReLU(inplace=True)" in code
    out = tmp_path / "ejected_kwargs.py"
    out.write_text(code)
    assert_ruff_clean(out)


@pytest.mark.parametrize(
    ("line", "message", "hint", "where"),
    [
        (
            "- {ConvTranspose2d: [100, 64, 4], bias: false}",
            "'bias' beside 'ConvTranspose2d' is not an option of a node: constructor arguments go in the value",
            "write {ConvTranspose2d: [100, 64, 4, {bias: false}]}",
            "bias",
        ),
        (
            "- ConvTranspose2d: [100, 64, 4, {stride: 2, bais: false}]",
            "unknown argument 'bais'",
            "did you mean 'bias'?",
            "bais",
        ),
        ("- ConvTranspose2d: [100, 64, 4, {kernel_size: 3}]", "multiple values for argument 'kernel_size'", "", "["),
    ],
)
def test_misplaced_or_wrong_keyword_arguments_are_located_errors(write_spec, run_cli, line, message, hint, where):
    column = 3 + line.index(where)
    spec = write_spec(f"model:\n  {line}\n")
    result = run_cli("validate", spec)
    assert result.code == 2, result.out
    assert f"{spec}:2:{column}:" in result.err and message in result.err and hint in result.err, result.err
    assert "Traceback" not in result.err


def test_the_json_schema_accepts_keyword_arguments_after_positional_ones():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schema" / "netcli.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(DCGAN_G)))
    bad = yaml.safe_load("model:\n  - ConvTranspose2d: [100, 64, 4, {bais: false}]\n")
    assert list(validator.iter_errors(bad))
