"""Init rules against the chapter's hand-written init functions, bit for bit, and their errors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import handwritten as hw
from conftest import ROOT
from netcli.init import rules
from netcli.init.apply import apply_rules, explain
from netcli.init.plan import check_rules
from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.validate import load_spec, load_spec_text

MLP = str(ROOT / "configs" / "mlp.yaml")
RGNET = str(ROOT / "configs" / "rgnet.yaml")
SHARED = str(ROOT / "configs" / "shared.yaml")


# The chapter's init functions (D2L 5.2.2), as the book writes them.
def init_normal(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def init_constant(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 1)
        nn.init.zeros_(m.bias)


def init_xavier(m):
    if type(m) == nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m):
    if type(m) == nn.Linear:
        nn.init.constant_(m.weight, 42)


def my_init(m):
    if type(m) == nn.Linear:
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


def default_net():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def assert_same(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every tensor of `net` equals the one under its name in `state`, bit for bit."""
    expected = net.state_dict()
    assert set(state) <= set(expected)
    for name, t in state.items():
        assert torch.equal(expected[name], t.to(expected[name].dtype)), name


def built(spec: str | None, rule_texts=(), seed: int = 0):
    return build_model(load_spec(spec), seed=seed, rules=rule_texts)


def test_xavier_then_const42_matches_the_chapter(run_cli, tmp_path):
    torch.manual_seed(0)
    net = hw.mlp()
    net[0].apply(init_xavier)
    net[2].apply(init_42)
    assert_same(net, built(MLP, ["xavier:0", "const42:2"]).net.state_dict())
    # and through the command as written, saving the result
    out = tmp_path / "mlp.safetensors"
    r = run_cli("init", MLP, "--rule", "xavier:0", "--rule", "const42:2", "--seed", "0", "-o", out)
    assert r.code == 0, r.err
    assert "xavier:0" in r.out and "0.weight" in r.out and "[256, 20]" in r.out
    assert "const42:2" in r.out and "2.weight" in r.out and "[10, 256]" in r.out
    saved = load_file(out)
    assert set(saved) == set(net.state_dict())
    assert_same(net, saved)


def test_normal_with_zero_biases_matches_init_normal():
    torch.manual_seed(0)
    net = hw.mlp()
    net.apply(init_normal)
    got = built(MLP, ["normal(std=0.01):*", "zeros:*.bias"]).net
    assert_same(net, got.state_dict())
    assert (got[0].bias == 0).all() and got[0].weight.std() < 0.02
    # the same in the spec, with the long form's params: bias
    loaded = load_spec_text(
        "model: [{Linear: [20, 256]}, ReLU, {Linear: [256, 10]}]\n"
        "init:\n  - normal(mean=0, std=0.01):Linear\n"
        "  - {init: zeros, target: Linear, params: bias}\n", "normal.yaml")
    assert_same(net, build_model(loaded, seed=0).net.state_dict())


def test_arguments_by_position_and_keyword():
    torch.manual_seed(0)
    net = hw.mlp()
    nn.init.xavier_uniform_(net[0].weight, gain=2)
    nn.init.uniform_(net[2].weight, -10, 10)
    assert_same(net, built(MLP, ["xavier(2):0", "uniform(-10, 10):2.weight"]).net.state_dict())


def test_constant_one_matches_init_constant():
    torch.manual_seed(0)
    net = hw.mlp()
    net.apply(init_constant)
    assert_same(net, built(MLP, ["constant(1):*", "zeros:*.bias"]).net.state_dict())
    assert_same(net, built(MLP, ["ones:Linear", "const0:*.bias"]).net.state_dict())


@pytest.mark.parametrize("name", ["custom", "my_init"])
def test_custom_rule_matches_my_init(run_cli, tmp_path, monkeypatch, name):
    # the default network, as the chapter's parameter-management section builds it
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETCLI_SPEC", raising=False)
    torch.manual_seed(3)
    net = default_net()
    net.apply(my_init)
    r = run_cli("init", "--rule", f"{name}:*", "--seed", "3", "-o", "net.safetensors")
    assert r.code == 0, r.err
    assert "built-in default" in r.err
    assert_same(net, load_file(tmp_path / "net.safetensors"))
    w = net[0].weight
    assert ((w == 0) | (w.abs() >= 5)).all()


def test_star_visits_modules_in_apply_order():
    # rgnet nests four blocks: `*` must draw in net.apply's order (children first)
    torch.manual_seed(0)
    net = hw.rgnet()
    net.apply(init_xavier)
    assert_same(net, built(RGNET, ["xavier:*"]).net.state_dict())


@pytest.mark.parametrize("path", ["0.1.0", "0.block 1.0", "0.1.0.weight", "0.block 1.0.weight"])
def test_positions_reach_named_children(path):
    torch.manual_seed(0)
    net = hw.rgnet()
    net[0][1][0].apply(init_xavier)
    b = built(RGNET, [f"xavier:{path}"])
    assert_same(net, b.net.state_dict())
    assert [(t.name, t.shape) for t in b.init_report] == [("0.block 1.0.weight", (8, 4))]


def test_a_later_rule_wins_and_explain_says_which():
    b = built(MLP, ["const42:*", "ones:0", "zeros:*.bias"])
    assert (b.net[0].weight == 1).all() and (b.net[2].weight == 42).all()
    assert (b.net[0].bias == 0).all()
    explained = {row["parameter"]: row["set_by"] for row in explain(b.net, b.init_report)}
    assert explained == {"0.weight": "ones:0", "0.bias": "zeros:*.bias",
                         "2.weight": "const42:*", "2.bias": "zeros:*.bias"}
    untouched = explain(built(MLP, ["ones:0"]).net, built(MLP, ["ones:0"]).init_report)
    assert {r["parameter"]: r["set_by"] for r in untouched}["2.weight"] == "default"


def test_explain_on_the_command_line(run_cli):
    r = run_cli("init", MLP, "--rule", "const42:*", "--rule", "ones:0", "--explain", "--json")
    assert r.code == 0, r.err
    import json
    data = json.loads(r.out)
    assert [t["rule"] for t in data["touched"]] == ["const42:*", "const42:*", "ones:0"]
    assert {e["parameter"]: e["set_by"] for e in data["explain"]} == {
        "0.weight": "ones:0", "0.bias": "default", "2.weight": "const42:*", "2.bias": "default"}


def test_a_tied_parameter_is_initialized_once():
    # normal draws are consumed per tensor: a second draw for the shared layer would shift 6.weight
    torch.manual_seed(0)
    net = hw.shared()
    for m in (net[0], net[2], net[6]):  # the shared layer once, not once per use
        nn.init.normal_(m.weight)
    b = built(SHARED, ["normal:*"])
    assert_same(net, b.net.state_dict())
    assert [t.name for t in b.init_report] == ["0.weight", "2.weight", "6.weight"]
    assert b.init_report[1].tied == ("4.weight",)
    assert b.net[2] is b.net[4]


def test_spec_rules_run_before_command_line_rules():
    loaded = load_spec_text("input: [2, 4]\nmodel: [{Linear: [4, 8]}, ReLU, {Linear: [8, 1]}]\n"
                            "init: ['xavier:0', 'const42:2']\n", "spec.yaml")
    torch.manual_seed(0)
    net = default_net()
    net[0].apply(init_xavier)
    net[2].apply(init_42)
    assert_same(net, build_model(loaded, seed=0).net.state_dict())
    b = build_model(loaded, seed=0, rules=["ones:2"])
    assert (b.net[2].weight == 1).all()
    assert [t.rule for t in b.init_report] == ["xavier:0", "const42:2", "ones:2"]


def test_no_rules_leaves_the_default_build_bit_identical():
    torch.manual_seed(0)
    net = hw.rgnet()
    b = built(RGNET)
    assert_same(net, b.net.state_dict())
    assert b.init_report == []


def test_default_rule_reruns_reset_parameters():
    torch.manual_seed(0)
    net = hw.mlp()
    nn.init.constant_(net[0].weight, 42)
    net[0].reset_parameters()
    loaded = load_spec_text("model: [{Linear: [20, 256]}, ReLU, {Linear: [256, 10]}]\n"
                            "init: ['const42:0', {init: default, target: '0', params: all}]\n", "d.yaml")
    assert_same(net, build_model(loaded, seed=0).net.state_dict())


def test_default_rule_on_weights_keeps_the_bias():
    b = built(MLP, ["const42:*.bias", "default:0"])
    assert (b.net[0].bias == 42).all() and not (b.net[0].weight == 42).any()


def test_a_bad_rule_changes_nothing():
    b = built(MLP)
    before = {k: v.clone() for k, v in b.net.state_dict().items()}
    with pytest.raises(NetcliError, match="target '5' matches nothing; the root's children are 0, 1, 2"):
        apply_rules(b.net, rules.cli_rules(["ones:0", "xavier:5"]))
    assert_same(b.net, before)


def test_check_rules_reports_every_bad_rule_and_runs_on_meta():
    b = build_model(load_spec(MLP), device="meta")
    with pytest.raises(NetcliError) as info:
        check_rules(b.net, rules.cli_rules(["xavier:5", "ones:0", "xavier:0.bias"]))
    assert len(info.value.problems) == 2
    check_rules(b.net, rules.cli_rules(["xavier:*", "orthogonal:0", "trunc_normal(std=0.02):*"]))


def test_spec_rule_errors_are_located_in_the_file(run_cli, write_spec):
    path = write_spec("model: [{Linear: [4, 8]}, ReLU]\ninit:\n  - xavier:0\n  - xavier:3\n")
    r = run_cli("validate", path)
    assert r.code == 2
    assert f"{path}:4:5: init[1]: target '3' matches nothing; the root's children are 0, 1" in r.err
    r = run_cli("init", path)
    assert r.code == 2 and "init[1]" in r.err and "Traceback" not in r.err


def test_plugin_initializers_are_registered_by_decorator(run_cli, tmp_path, monkeypatch):
    (tmp_path / "my_inits_issue3.py").write_text(
        "import netcli\nimport torch\n\n"
        "@netcli.register_init\n"
        "def fill_seven(tensor, scale: float = 1.0):\n"
        "    with torch.no_grad():\n"
        "        return tensor.fill_(7 * scale)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = run_cli("init", MLP, "--plugin", "my_inits_issue3", "--rule", "fill_seven(scale=2):2", "--json")
    assert r.code == 0, r.err
    assert '"rule": "fill_seven(scale=2):2"' in r.out
    from netcli import registry
    b = built(MLP, ["fill_seven:0"])
    assert (b.net[0].weight == 7).all()
    r = run_cli("init", MLP, "--plugin", "my_inits_issue3", "--rule", "fill_seven(scal=2):2")
    assert r.code == 2 and "did you mean 'scale'?" in r.err
    assert "fill_seven" in registry.initializers


# (rule, text the message must contain: what is wrong, and what to write instead)
BAD_RULES = [
    ("xavier", "has no target: a rule is INIT:TARGET (write xavier:* for every module"),
    ("xavier:", "has no target after ':' (write xavier:* for every module"),
    (":0", "names no initializer before ':' (write INIT:TARGET"),
    ("xavir:0", "unknown initializer 'xavir' (did you mean 'xavier'?)"),
    ("const:0", "unknown initializer 'const' (write const42 or constant(42))"),
    ("xavier:5", "target '5' matches nothing; the root's children are 0, 1, 2 (write e.g. xavier:0)"),
    ("xavier:0.7", "target '0.7' matches nothing; the tensors of '0' are weight, bias"),
    ("xavier:0.bias", "xavier cannot apply to '0.bias' (1-D, shape [256])"),
    ("xavier:0.bias", "for biases write e.g. zeros:0.bias"),
    ("xavier:1", "target '1' matches nothing: it holds no weight parameters (ReLU)"),
    ("xavier:Linaer", "target 'Linaer' is neither a path nor a type in the network (did you mean 'Linear'?)"),
    ("xavier:Conv2d", "the network has no Conv2d (its types are Linear, ReLU, Sequential)"),
    ("zeros:*.bais", "the glob '*.bais' matches no parameter name (did you mean '*.bias'?; the parameters are 0.weight, 0.bias"),
    ("normal(sd=0.01):*", "normal has no argument 'sd' (did you mean 'std'?)"),
    ("normal(std='big'):*", "argument 'std' of normal must be float, not 'big' (normal takes (mean=0.0, std=1.0))"),
    ("uniform(1, 2, 3):*", "too many positional arguments (uniform takes (a=0.0, b=1.0))"),
    ("uniform(10, -10):*", "the range [a, b] is empty: a=10 > b=-10"),
    ("normal(std=-1):*", "normal expects std >= 0.0"),
    ("constant:*", "missing a required argument: 'val'"),
    ("normal(std=0.01:*", "unbalanced parentheses in the rule 'normal(std=0.01:*' (write arguments as normal(std=0.01))"),
    ("normal(std=__import__('os')):*", "must be plain values (numbers, text, lists) (write e.g. normal(mean=0, std=0.01)"),
    ("kaiming(nonlinearity='relux'):0", "must be one of 'linear', "),
    ("dirac:0", "dirac cannot apply to '0.weight' (2-D, shape [256, 20]): the Dirac delta is defined for "
                "convolution weights (3-5 dimensions) (pick a convolution's weights, e.g. dirac:Conv2d)"),
    ("eye:*.bias", "eye cannot apply to '0.bias'"),
    ("xavier:0.weight.x", "'0.weight' is a tensor, so 'x' cannot follow it (end the path at '0.weight')"),
    ("default:1", "target '1' matches nothing"),
]


@pytest.mark.parametrize("rule,expected", BAD_RULES, ids=[f"{i}:{r}" for i, (r, _) in enumerate(BAD_RULES)])
def test_bad_rules_exit_2_and_say_what_to_write(run_cli, rule, expected):
    r = run_cli("init", MLP, "--rule", rule)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err
    assert r.err.startswith(f"--rule {rule}: ")
    assert expected in r.err
    assert "(" in r.err.splitlines()[0] and r.err.rstrip().endswith(")")  # every message carries a hint


BAD_LONG_RULES = [
    ("{init: zeros, target: '*', params: weights}", "init[0].params: Input should be 'weight', 'bias' or 'all'"),
    ("{init: zeros, targte: '*'}", "unknown key 'targte' in an init rule (did you mean 'target'?)"),
    ("{init: 'normal(std=1)', args: {std: 2}, target: '*'}", "argument 'std' is given twice"),
]


@pytest.mark.parametrize("rule,expected", BAD_LONG_RULES)
def test_bad_long_form_rules_in_a_spec(run_cli, write_spec, rule, expected):
    path = write_spec(f"model: [{{Linear: [4, 8]}}]\ninit:\n  - {rule}\n")
    r = run_cli("init", path)
    assert r.code == 2, r.out
    assert expected in r.err and "Traceback" not in r.err
    assert f"{path}:3:" in r.err


def test_long_form_matches_short_form():
    loaded = load_spec_text("model: [{Linear: [4, 8]}, ReLU, {Linear: [8, 1]}]\n"
                            "init: [{init: normal, args: {std: 0.01}, target: Linear}]\n", "l.yaml")
    a = build_model(loaded, seed=1).net
    b = build_model(load_spec_text("model: [{Linear: [4, 8]}, ReLU, {Linear: [8, 1]}]\n", "s.yaml"),
                    seed=1, rules=["normal(std=0.01):Linear"]).net
    assert_same(a, b.state_dict())


def test_parse_rule_takes_the_long_form_directly():
    rule = rules.parse_rule({"init": "normal", "args": {"std": 0.01}, "target": "Linear", "params": "all"},
                            "--rule long")
    assert (rule.init, rule.kwargs, rule.target, rule.params) == ("normal", {"std": 0.01}, "Linear", "all")
    with pytest.raises(NetcliError, match=r"params must be one of weight, bias, all, not 'weights' "
                                          r"\(did you mean 'weight'\?\)"):
        rules.parse_rule({"init": "zeros", "params": "weights"}, "--rule long")
