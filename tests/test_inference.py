"""Shape inference (issue 6): specs without input sizes build what hand-written torch builds."""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import handwritten
from netcli.builder import inference
from netcli import registry
from netcli.init.engine import build_model
from netcli.registry import register_block
from netcli.builder.validate import load_spec, load_spec_text

SEEDS = [0, 1, 1234]


class LSTMOutput(nn.Module):
    """Keep the output sequence of an LSTM/GRU/RNN ((output, state) -> output), for stacks."""

    def forward(self, X):
        return X[0]


class MyCell(nn.Module):
    """A custom layer whose input size is not declared inferable."""

    def __init__(self, in_units: int, units: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))

    def forward(self, X):
        return X @ self.weight


@pytest.fixture(autouse=True)
def test_types(scoped_registry):
    """This file's own types, registered for each test and removed after it."""
    register_block(LSTMOutput)
    scoped_registry.types.add("MyCell", MyCell)


# name -> (spec without any input size, hand-written torch with the sizes written out,
#          the arguments the error without input: must name)
CASES = {
    "lenet": ("""
input: [2, 1, 28, 28]
model:
  - Conv2d: {out_channels: 6, kernel_size: 5, padding: 2}
  - Sigmoid
  - AvgPool2d: {kernel_size: 2, stride: 2}
  - Conv2d: {out_channels: 16, kernel_size: 5}
  - Sigmoid
  - AvgPool2d: {kernel_size: 2, stride: 2}
  - Flatten
  - Linear: 120
  - Sigmoid
  - Linear: 84
  - Sigmoid
  - Linear: 10
""", handwritten.lenet, ["in_channels", "in_channels", "in_features", "in_features", "in_features"]),
    "mlp": ("""
input: [2, 20]
model: [{Linear: 256}, ReLU, {Linear: 10}]
""", lambda: nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)),
        ["in_features", "in_features"]),
    # D2L 8.5: LeNet with batch normalization
    "bn_cnn": ("""
input: [2, 1, 28, 28]
model:
  - Conv2d: {out_channels: 6, kernel_size: 5}
  - BatchNorm2d
  - Sigmoid
  - AvgPool2d: {kernel_size: 2, stride: 2}
  - Conv2d: [16, 5]
  - BatchNorm2d
  - Sigmoid
  - AvgPool2d: {kernel_size: 2, stride: 2}
  - Flatten
  - Linear: 120
  - BatchNorm1d
  - Sigmoid
  - Linear: 84
  - {BatchNorm1d: {momentum: 0.2}}
  - Sigmoid
  - Linear: 10
  - LayerNorm
""", lambda: nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84, momentum=0.2), nn.Sigmoid(),
        nn.Linear(84, 10), nn.LayerNorm(10)),
        ["in_channels", "num_features", "in_channels", "num_features", "in_features", "num_features",
         "in_features", "num_features", "in_features", "normalized_shape"]),
    # (seq, batch, features): input_size is always the last dimension
    "lstm": ("""
input: [5, 3, 10]
model: [{LSTM: 32}]
""", lambda: nn.Sequential(nn.LSTM(10, 32)), ["input_size"]),
    # a stack: LSTMOutput (registered above) passes the output sequence on
    "lstm_stack": ("""
input: [3, 5, 10]
model:
  - LSTM: {hidden_size: 32, batch_first: true}
  - LSTMOutput
  - LSTM: {hidden_size: 16, batch_first: true, num_layers: 2}
  - LSTMOutput
  - Linear: 4
""", lambda: nn.Sequential(nn.LSTM(10, 32, batch_first=True), LSTMOutput(),
                           nn.LSTM(32, 16, batch_first=True, num_layers=2), LSTMOutput(), nn.Linear(16, 4)),
        ["input_size", "input_size", "in_features"]),
}


def _hand(name, seed):
    torch.manual_seed(seed)
    return CASES[name][1]()


def _load(text, tmp_path, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text.lstrip())
    return path


@pytest.mark.parametrize("name", CASES)
def test_print_matches_handwritten(name, tmp_path, run_cli):
    result = run_cli("build", _load(CASES[name][0], tmp_path), "--print")
    assert result.code == 0, result.err
    assert result.out == str(_hand(name, 0)) + "\n"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CASES)
def test_parameters_and_rng_stream_equal_handwritten(name, seed, tmp_path):
    built = build_model(load_spec(str(_load(CASES[name][0], tmp_path))), seed=seed)
    after_ours = torch.rand(4)  # the RNG stream goes on where hand-written code leaves it
    hand = _hand(name, seed)
    after_theirs = torch.rand(4)
    ours, theirs = built.net.state_dict(), hand.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.equal(after_ours, after_theirs)
    x = torch.rand(*built.loaded.spec.input)
    out_ours, out_theirs = built.net(x), hand(x)
    out_ours = out_ours[0] if isinstance(out_ours, tuple) else out_ours
    out_theirs = out_theirs[0] if isinstance(out_theirs, tuple) else out_theirs
    assert torch.equal(out_ours, out_theirs)


@pytest.mark.parametrize("command", ["validate", "build"])
@pytest.mark.parametrize("name", CASES)
def test_without_input_each_left_out_size_is_a_located_error(name, command, tmp_path, run_cli):
    text = re.sub(r"^input: .*\n", "", CASES[name][0].lstrip())
    path = _load(text, tmp_path)
    result = run_cli(command, path)
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    problems = [line for line in result.err.splitlines() if line.startswith(f"{path}:")]
    assert len(problems) == len(CASES[name][2]), result.err
    for line, arg in zip(problems, CASES[name][2]):
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: model\[\d+\]\.\w+: ", line), line
        assert f"write {arg}" in line, line  # names the argument to write


def test_error_points_at_the_layer(tmp_path, run_cli):
    path = _load("model:\n  - Linear: [20, 256]\n  - ReLU\n  - {Linear: {out_features: 10}}\n", tmp_path)
    result = run_cli("validate", path)
    assert result.code == 2
    assert re.match(rf"{re.escape(str(path))}:4:\d+: model\[2\]\.Linear: cannot infer in_features: "
                    "the spec has no input: shape", result.err), result.err
    assert "write in_features, e.g. {Linear: {in_features: N, out_features: 10}}" in result.err


def test_scalar_without_input_keeps_its_plain_meaning_and_says_what_to_write(tmp_path, run_cli):
    path = _load("model:\n  - Linear: 10\n", tmp_path)
    result = run_cli("build", path)
    assert result.code == 2
    assert f"{path}:2:13: model[0].Linear: missing a required argument: 'out_features'" in result.err
    assert "with an input: shape, in_features is inferred and this reads out_features=10" in result.err
    assert "write in_features" in result.err


def test_input_option_feeds_inference(tmp_path, run_cli):
    text = re.sub(r"^input: .*\n", "", CASES["mlp"][0].lstrip())
    path = _load(text, tmp_path)
    result = run_cli("run", path, "--input", "ones:3,20", "--seed", "0", "--json")
    assert result.code == 0, result.err
    hand = _hand("mlp", 0)
    import json
    assert torch.equal(torch.tensor(json.loads(result.out)["values"]), hand(torch.ones(3, 20)))


def test_build_and_validate_show_inferred_values(tmp_path, run_cli, root):
    result = run_cli("build", root / "configs/lenet.yaml")
    assert result.code == 0, result.err
    assert "Linear(in_features=400 [inferred], ...)" in result.out
    assert "Conv2d(in_channels=1 [inferred], ...)" in result.out
    import json
    blocks = json.loads(run_cli("build", root / "configs/lenet.yaml", "--json").out)["blocks"]
    assert {b["name"]: b["inferred"] for b in blocks if "inferred" in b} == {
        "0": {"in_channels": 1}, "3": {"in_channels": 6}, "7": {"in_features": 400},
        "9": {"in_features": 120}, "11": {"in_features": 84}}
    result = run_cli("validate", root / "configs/lenet.yaml")
    assert result.code == 0
    assert "inferred: 0.in_channels=1, 3.in_channels=6, 7.in_features=400, 9.in_features=120, 11.in_features=84" in result.out


def test_use_repeat_and_ref_infer_per_place(tmp_path):
    spec = load_spec(str(_load("""
input: [2, 4]
blocks:
  head: [{Linear: 8}, ReLU]
  shared: {Linear: 8}
model:
  - use: head
  - {ref: shared}
  - ReLU
  - {ref: shared}
  - {Linear: 3, repeat: 2}
  - use: head
""", tmp_path)))

    def hand():
        shared = nn.Linear(8, 8)  # created first, as a ref definition is
        return nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), shared, nn.ReLU(), shared,
                             nn.Sequential(nn.Linear(8, 3), nn.Linear(3, 3)),
                             nn.Sequential(nn.Linear(3, 8), nn.ReLU()))
    built = build_model(spec, seed=3)
    torch.manual_seed(3)
    theirs = hand()
    assert str(built.net) == str(theirs)
    for key, value in theirs.state_dict().items():
        assert torch.equal(built.net.state_dict()[key], value), key
    assert built.net[1] is built.net[3]
    assert built.inferred["<shared>"] == built.inferred["1"] == built.inferred["3"] == {"in_features": 8}
    assert built.inferred["4.1"] == {"in_features": 3}


def test_custom_block_declares_its_inferable_argument(tmp_path):
    # netcli.registry.chapter_blocks.MyLinear is registered with inferable=("in_units",)
    from netcli.registry.chapter_blocks import MyLinear
    built = build_model(load_spec_text("input: [2, 64]\nmodel: [{MyLinear: 8}, {MyLinear: {units: 1}}]\n", "x.yaml"),
                        seed=0)
    torch.manual_seed(0)
    hand = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
    assert built.inferred == {"0": {"in_units": 64}, "1": {"in_units": 8}}
    for key, value in hand.state_dict().items():
        assert torch.equal(built.net.state_dict()[key], value), key


def test_custom_block_that_does_not_say_how_is_an_error(tmp_path, run_cli):
    path = _load("input: [2, 4]\nmodel:\n  - {MyCell: {units: 3}}\n", tmp_path)
    result = run_cli("validate", path)
    assert result.code == 2
    assert re.match(rf"{re.escape(str(path))}:3:\d+: model\[0\]\.MyCell: missing a required argument: 'in_units'",
                    result.err), result.err


def test_a_shape_that_does_not_fit_is_a_located_error(tmp_path, run_cli):
    path = _load("input: [2, 1, 28, 28]\nmodel:\n  - Flatten\n  - {Conv2d: {out_channels: 6, kernel_size: 5}}\n",
                 tmp_path)
    result = run_cli("build", path)
    assert result.code == 2
    assert re.match(rf"{re.escape(str(path))}:4:\d+: model\[1\]\.Conv2d: cannot infer in_channels: "
                    r"Conv2d expects a 4-d \(N, C, \.\.\.\) or 3-d \(C, \.\.\.\) input, but its input has shape "
                    r"\[2, 784\]", result.err), result.err
    assert "write in_channels" in result.err


def test_after_a_tuple_output_the_shape_is_unknown(tmp_path, run_cli):
    path = _load("input: [5, 3, 10]\nmodel:\n  - LSTM: 8\n  - Linear: 2\n", tmp_path)
    result = run_cli("build", path)
    assert result.code == 2
    assert (f"{path}:4:13: model[1].Linear: cannot infer in_features: block '0' (LSTM) returns a tuple, "
            "not one tensor") in result.err


def test_after_a_block_that_needs_values_the_shape_is_unknown(tmp_path, run_cli):
    path = _load("input: [2, 20]\nmodel:\n  - FixedHiddenMLP\n  - Linear: 2\n", tmp_path)
    result = run_cli("validate", path)
    assert result.code == 2
    assert "model[1].Linear: cannot infer in_features: block '0' (FixedHiddenMLP) needs real values" in result.err


def test_unbatched_conv_reads_channels_from_dim_0():
    assert inference.infer_value(nn.Conv2d, "in_channels", (3, 28, 28)) == 3
    assert inference.infer_value(nn.Conv2d, "in_channels", (2, 3, 28, 28)) == 3
    assert inference.infer_value(nn.BatchNorm1d, "num_features", (2, 7)) == 7
    assert inference.infer_value(nn.BatchNorm1d, "num_features", (2, 7, 9)) == 7
    assert inference.infer_value(nn.LSTM, "input_size", (2, 7, 9)) == 9
    with pytest.raises(inference.InferenceError, match="BatchNorm2d expects a 4-d input"):
        inference.infer_value(nn.BatchNorm2d, "num_features", (2, 7))


@pytest.mark.parametrize("type_name,args,kwargs,expect", [
    ("Linear", [10], {}, ({"out_features": 10}, ("in_features",))),
    ("Linear", [20, 10], {}, ({}, ())),  # written in full: as written
    ("Conv2d", [16, 5], {}, ({"out_channels": 16, "kernel_size": 5}, ("in_channels",))),
    ("Conv2d", [], {"out_channels": 6, "kernel_size": 5}, ({"out_channels": 6, "kernel_size": 5}, ("in_channels",))),
    ("Bilinear", [5, 7], {}, ({"in2_features": 5, "out_features": 7}, ("in1_features",))),
    ("LSTM", [32], {}, ({"hidden_size": 32}, ("input_size",))),
    ("GRU", [32], {"num_layers": 2}, ({"hidden_size": 32, "num_layers": 2}, ("input_size",))),
    ("GRU", [32, 2], {}, ({}, ())),  # written in full: input_size=32, hidden_size=2
    ("BatchNorm2d", [], {}, ({}, ("num_features",))),
    ("LayerNorm", [], {"eps": 0.1}, ({"eps": 0.1}, ("normalized_shape",))),
    ("ReLU", [], {}, ({}, ())),
])
def test_plan_arguments(type_name, args, kwargs, expect):
    registry.ensure_loaded()
    plan = inference.plan_arguments(registry.types.entry(type_name), args, kwargs)
    assert (plan.kwargs if plan.missing else {}, plan.missing) == expect


def test_every_size_written_skips_the_inference_pass(root, monkeypatch):
    def refuse(shape):
        raise AssertionError("the meta inference pass ran for a spec that writes every size")
    monkeypatch.setattr(inference, "Flow", refuse)
    built = build_model(load_spec(str(root / "configs/mlp.yaml")), seed=0)
    assert built.inferred == {}


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 64), min_size=2, max_size=5), batch=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_any_mlp_equals_handwritten(widths, batch, seed):
    layers = "".join(f"  - Linear: {w}\n  - ReLU\n" for w in widths[1:])
    built = build_model(load_spec_text(f"input: [{batch}, {widths[0]}]\nmodel:\n{layers}", "mlp.yaml"), seed=seed)
    torch.manual_seed(seed)
    hand = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
    assert str(built.net) == str(hand)
    for key, value in hand.state_dict().items():
        assert torch.equal(built.net.state_dict()[key], value), key
