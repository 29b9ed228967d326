"""SPEC §1.8: arithmetic over block params, keyword arguments after positional ones, `apply` init rules.

Each form is compared with the PyTorch a person writes by hand (print, state_dict keys, seeded values).
"""

from __future__ import annotations

import json
from pathlib import Path

import handwritten_modern as hm
import pytest
import torch
import yaml
from test_eject import _roundtrip, assert_ruff_clean
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


# --- apply init rules: net.apply(fn) with isinstance branches ------------------------------------------------

DCGAN = """\
input: [2, 100, 1, 1]
vars: {nz: 100, ngf: 8, nc: 3}
blocks:
  Generator:
    children:
      main:
        - ConvTranspose2d: ["${nz}", "${ngf * 8}", 4, 1, 0, {bias: false}]
        - BatchNorm2d: "${ngf * 8}"
        - ReLU: true
        - ConvTranspose2d: ["${ngf * 8}", "${ngf * 4}", 4, 2, 1, {bias: false}]
        - BatchNorm2d: "${ngf * 4}"
        - ReLU: true
        - ConvTranspose2d: ["${ngf * 4}", "${ngf * 2}", 4, 2, 1, {bias: false}]
        - BatchNorm2d: "${ngf * 2}"
        - ReLU: true
        - ConvTranspose2d: ["${ngf * 2}", "${ngf}", 4, 2, 1, {bias: false}]
        - BatchNorm2d: "${ngf}"
        - ReLU: true
        - ConvTranspose2d: ["${ngf}", "${nc}", 4, 2, 1, {bias: false}]
        - Tanh
    forward: |
      return main(x)
model: {use: Generator}
init:
  - apply:
      ConvTranspose2d: "normal(0.0, 0.02):weight"
      BatchNorm2d: ["normal(1.0, 0.02):weight", "zeros:bias"]
"""


@pytest.mark.parametrize("seed", [0, 1234])
def test_dcgan_weights_init_applied_with_net_apply_equals_the_apply_rule(write_spec, seed):
    net = _build(write_spec(DCGAN), seed=seed)
    torch.manual_seed(seed)
    _assert_same(net, hm.dcgan_generator())


def test_rules_by_type_would_not_interleave_the_draws(write_spec):
    """The reason for apply: one type after the other draws the same numbers into other tensors."""
    by_type = DCGAN.replace(
        DCGAN[DCGAN.index("  - apply:") :],
        '  - "normal(0.0, 0.02):ConvTranspose2d"\n  - "normal(1.0, 0.02):BatchNorm2d"\n'
        "  - {init: zeros, target: BatchNorm2d, params: bias}\n",
    )
    torch.manual_seed(0)
    hand = hm.dcgan_generator().state_dict()
    net = _build(write_spec(by_type), seed=0).state_dict()
    assert not torch.equal(net["main.1.weight"], hand["main.1.weight"])


CONVNEXT = """\
input: [2, 32, 8, 8]
blocks:
  ConvNeXtBlock:
    params: {dim: 32}
    children:
      dwconv: {Conv2d: ["${dim}", "${dim}", {kernel_size: 7, padding: 3, groups: "${dim}"}]}
      norm: {LayerNorm: ["${dim}", {eps: 1.0e-6}]}
      pwconv1: {Linear: ["${dim}", "${4 * dim}"]}
      act: GELU
      pwconv2: {Linear: ["${4 * dim}", "${dim}"]}
      gamma: {Parameter: {full: ["${dim}"], value: 1.0e-6}}
      drop_path: Identity
    forward: |
      input = x
      x = dwconv(x)
      x = x.permute(0, 2, 3, 1)
      x = pwconv2(act(pwconv1(norm(x))))
      x = gamma * x
      x = x.permute(0, 3, 1, 2)
      return input + drop_path(x)
model: {use: ConvNeXtBlock}
init:
  - apply:
      Conv2d: ["trunc_normal(std=0.02):weight", "zeros:bias"]
      Linear: ["trunc_normal(std=0.02):weight", "zeros:bias"]
"""


@pytest.mark.parametrize("seed", [0, 1234])
def test_convnext_init_weights_with_trunc_normal_and_zeros_equals_the_apply_rule(write_spec, seed):
    path = write_spec(CONVNEXT)
    net = _build(path, seed=seed)
    torch.manual_seed(seed)
    hand = hm.convnext_block()
    _assert_same(net, hand)
    x = torch.rand(2, 32, 8, 8)
    assert torch.equal(net.eval()(x), hand.eval()(x))


NESTED = """\
blocks:
  Mlp:
    children:
      fc1: {Linear: [4, 8]}
      fc2: {Linear: [8, 4]}
model: [{use: Mlp}, {Linear: [4, 2]}]
init:
  - apply: {Linear: "normal(0, 1):weight", Mlp: "uniform(-1, 1):*.bias"}
"""


class _Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 4)


def test_modules_are_visited_children_first_as_module_apply_does(write_spec):
    """Module.apply calls fn on every child (recursively) before the module itself: post-order."""
    import fnmatch

    def fn(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 1)
        elif isinstance(m, _Mlp):  # after its two Linears were visited
            for name, param in m.named_parameters():
                if fnmatch.fnmatchcase(name, "*.bias"):
                    nn.init.uniform_(param, -1, 1)

    net = _build(write_spec(NESTED), seed=7)
    torch.manual_seed(7)
    hand = nn.Sequential(_Mlp(), nn.Linear(4, 2))
    hand.apply(fn)
    assert list(net.state_dict()) == list(hand.state_dict())
    for key, value in hand.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_init_shows_each_module_in_apply_order_and_explain_names_the_entry(write_spec, run_cli):
    spec = write_spec(NESTED)
    out = run_cli("init", spec, "--json")
    assert out.code == 0, out.err
    rows = [(r["rule"], r["parameter"]) for r in json.loads(out.out)["touched"]]
    assert rows == [
        ("apply Linear: normal(0, 1):weight", "0.fc1.weight"),
        ("apply Linear: normal(0, 1):weight", "0.fc2.weight"),
        ("apply Mlp: uniform(-1, 1):*.bias", "0.fc1.bias"),
        ("apply Mlp: uniform(-1, 1):*.bias", "0.fc2.bias"),
        ("apply Linear: normal(0, 1):weight", "1.weight"),
    ]
    explained = run_cli("init", spec, "--explain", "--json")
    assert explained.code == 0, explained.err
    set_by = {r["parameter"]: r["set_by"] for r in json.loads(explained.out)["explain"]}
    assert set_by["0.fc2.bias"] == "apply Mlp: uniform(-1, 1):*.bias" and set_by["1.bias"] == "default"


def test_fast_init_sets_the_tensors_the_equivalent_rules_set(write_spec):
    """--fast-init seeds each tensor by its name: the visiting order does not matter there."""
    tail = DCGAN[DCGAN.index("  - apply:") :]
    by_type = DCGAN.replace(
        tail,
        '  - "normal(0.0, 0.02):ConvTranspose2d"\n  - "normal(1.0, 0.02):BatchNorm2d"\n'
        "  - {init: zeros, target: BatchNorm2d, params: bias}\n",
    )
    ours = _build(write_spec(DCGAN, "a.yaml"), seed=3, fast_init=True).state_dict()
    theirs = _build(write_spec(by_type, "b.yaml"), seed=3, fast_init=True).state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    assert abs(float(ours["main.1.weight"].mean()) - 1.0) < 0.05


@pytest.mark.parametrize("text", [DCGAN, NESTED], ids=["dcgan", "nested"])
def test_apply_is_ejected_as_weights_init_and_net_apply(write_spec, tmp_path, text):
    code = _roundtrip(write_spec, tmp_path, text)
    assert "def weights_init(m):" in code and "net.apply(weights_init)" in code
    assert "if isinstance(m, nn." in code and "elif " in code


@pytest.mark.parametrize(
    ("rule", "message", "hint", "where"),
    [
        (
            '{apply: {Conv2D: "normal:weight"}}',
            "apply: unknown type 'Conv2D'",
            "did you mean 'Conv2d'?",
            "Conv2D",
        ),
        (
            '{apply: {Linear: "normal:weigth"}}',
            "apply: 'weigth' matches no parameter of any Linear (2 visited)",
            "did you mean 'weight'?",
            '"normal',
        ),
        ('{apply: {Linear: "normall:weight"}}', "unknown initializer 'normall'", "did you mean 'normal'?", '"normal'),
        ('{apply: {Linear: ["zeros:bias", "xavier:bias"]}}', "xavier cannot apply to '0.bias'", "", '"xavier'),
        ('{apply: {Conv2d: "zeros:bias"}}', "apply: the network has no Conv2d", "its types are Linear", "Conv2d"),
        (
            '{apply: {RNNBase: "zeros:all", LSTM: "ones:all"}}',
            "apply: every LSTM is initialized by the earlier type RNNBase",
            "put LSTM before RNNBase",
            "LSTM",
        ),
    ],
)
def test_misuse_of_apply_is_a_located_error(write_spec, run_cli, rule, message, hint, where):
    model = "[{LSTM: [4, 8]}]" if "LSTM" in rule else "[{Linear: [4, 8]}, {Linear: [8, 2]}]"
    spec = write_spec(f"model: {model}\ninit:\n  - {rule}\n")
    result = run_cli("init", spec)
    assert result.code == 2, result.out
    column = 5 + rule.index(where)
    assert f"{spec}:3:{column}:" in result.err and message in result.err and hint in result.err, result.err
    assert "Traceback" not in result.err


def test_the_json_schema_accepts_apply_rules():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schema" / "netcli.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for text in (DCGAN, CONVNEXT, NESTED):
        assert not [e.message for e in validator.iter_errors(yaml.safe_load(text))]
    assert list(validator.iter_errors(yaml.safe_load("model: [ReLU]\ninit: [{apply: {Linear: 3}}]")))


def test_an_apply_rule_on_the_command_line_is_the_same_rule(write_spec, run_cli, tmp_path):
    """`--rule '{apply: {...}}'` reads the rule as YAML: the same values as the spec's `init:`."""
    in_spec, bare = write_spec(DCGAN, "a.yaml"), write_spec(DCGAN[: DCGAN.index("init:")], "b.yaml")
    rule = (
        "{apply: {ConvTranspose2d: 'normal(0.0, 0.02):weight', "
        "BatchNorm2d: ['normal(1.0, 0.02):weight', 'zeros:bias']}}"
    )
    for spec, extra in ((in_spec, []), (bare, ["--rule", rule])):
        out = run_cli("save", spec, "--seed", "1234", "-o", str(tmp_path / f"{spec.stem}.pt"), *extra)
        assert out.code == 0, out.err
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("a", "b"))
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    bad = run_cli("init", bare, "--rule", "{apply: {BatchNorm2d: 'normal:wieght'}}")
    assert bad.code == 2 and "--rule {apply: {BatchNorm2d: 'normal:wieght'}}: apply: 'wieght'" in bad.err, bad.err
    assert "did you mean 'weight'?" in bad.err and "Traceback" not in bad.err


def test_a_command_line_rule_read_as_yaml_takes_no_anchors(write_spec, run_cli):
    spec = write_spec("model: [{Linear: [4, 8]}]\n")
    bad = run_cli("init", spec, "--rule", "{apply: {Linear: &a ['zeros:bias']}, x: *a}")
    assert bad.code == 2 and "without YAML anchors" in bad.err and "Traceback" not in bad.err, bad.err
