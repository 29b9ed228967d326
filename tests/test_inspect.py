"""`netcli inspect` and netcli.init.params against what the chapter's Python prints."""
from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import torch
from torch import nn

import handwritten as hw
from conftest import CONFIGS, ROOT
from netcli.init import params
from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.validate import load_spec

MLP = str(ROOT / "configs" / "mlp.yaml")
RGNET = str(ROOT / "configs" / "rgnet.yaml")
SHARED = str(ROOT / "configs" / "shared.yaml")
CHIMERA = str(ROOT / "configs" / "chimera.yaml")


def printed(*values) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        for v in values:
            print(v)
    return buf.getvalue()


@pytest.fixture
def no_spec(tmp_path, monkeypatch):
    """Run in an empty folder without NETCLI_SPEC, so the built-in default network is used."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETCLI_SPEC", raising=False)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_inventory_lists_the_state_dict_with_tied_tensors_once(config):
    net = build_model(load_spec(str(config)), device="meta").net
    inv = params.inventory(net)
    names = [n for row in inv.rows for n in row.names]
    assert sorted(names) == sorted(net.state_dict())  # parameters and persistent buffers, every name
    unique_params = sum(p.numel() for p in net.parameters())  # parameters() yields a tied one once
    assert inv.totals()["parameters"] == unique_params
    assert inv.totals()["buffers"] == sum(b.numel() for b in net.buffers())


def test_shared_tensors_are_one_row(run_cli):
    r = run_cli("inspect", SHARED, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["tied"] == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    rows = {t["name"]: t for t in data["tensors"]}
    assert set(rows) == {"0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"}
    assert rows["2.weight"]["tied"] == ["4.weight"] and rows["2.weight"]["shape"] == [8, 8]
    assert data["totals"]["parameters"] == sum(p.numel() for p in hw.shared().parameters()) == 121
    r = run_cli("inspect", SHARED)
    assert "2.weight = 4.weight" in r.out and "parameters: 121" in r.out


def test_every_column_the_spec_names(run_cli):
    r = run_cli("inspect", CHIMERA, "--json")
    data = json.loads(r.out)
    buffer = next(t for t in data["tensors"] if t["name"] == "2.rand_weight")
    assert buffer == {"name": "2.rand_weight", "tied": [], "kind": "buffer", "shape": [20, 20],
                      "dtype": "float32", "device": "cpu", "requires_grad": False, "numel": 400, "bytes": 1600}
    r = run_cli("inspect", CHIMERA)
    for header in ("name", "shape", "dtype", "device", "requires_grad", "count"):
        assert header in r.out
    assert "2.rand_weight" in r.out and "0.net.0.weight" in r.out


def test_frozen_parameters_show_requires_grad_false(run_cli):
    data = json.loads(run_cli("inspect", str(ROOT / "configs" / "frozen.yaml"), "--json").out)
    flags = {t["name"]: t["requires_grad"] for t in data["tensors"]}
    assert flags["0.weight"] is False and flags["2.weight"] is True
    assert data["totals"]["trainable"] == 256 * 10 + 10


def test_param_prints_as_the_chapter_does(run_cli, no_spec):
    # print(type(net[2].bias)); print(net[2].bias); net[2].weight.grad == None
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    r = run_cli("inspect", "--param", "2.bias", "--seed", "0")
    assert r.code == 0, r.err
    assert r.out == printed(type(net[2].bias), net[2].bias, "grad: None")
    assert r.out.startswith("<class 'torch.nn.parameter.Parameter'>\nParameter containing:\ntensor([")


def test_param_path_by_position_reaches_named_children(run_cli):
    torch.manual_seed(0)
    rgnet = hw.rgnet()
    by_position = run_cli("inspect", RGNET, "--param", "0.1.0.bias", "--seed", "0")
    by_name = run_cli("inspect", RGNET, "--param", "0.block 1.0.bias", "--seed", "0")
    assert by_position.code == 0, by_position.err
    assert by_position.out == by_name.out == printed(type(rgnet[0][1][0].bias), rgnet[0][1][0].bias, "grad: None")
    found = params.find(build_model(load_spec(RGNET)).net, "0.1.0")
    assert found.name == "0.block 1.0" and found.attr is None


def test_module_prints_that_blocks_state_dict(run_cli, no_spec):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    r = run_cli("inspect", "--module", "2", "--seed", "0")
    assert r.code == 0, r.err
    assert r.out == printed(net[2].state_dict())


def test_module_json_has_the_values(run_cli):
    torch.manual_seed(0)
    rgnet = hw.rgnet()
    data = json.loads(run_cli("inspect", RGNET, "--module", "0.1", "--seed", "0", "--json").out)
    assert data["module"] == "0.block 1" and data["type"] == "Sequential"
    assert list(data["state_dict"]) == list(rgnet[0][1].state_dict())
    assert torch.equal(torch.tensor(data["state_dict"]["2.weight"]["value"]), rgnet[0][1][2].weight.detach())


def test_grad_runs_one_forward_and_backward_pass(run_cli, no_spec):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    X = torch.rand(2, 4)  # the example input, drawn right after building, as `run` draws it
    net(X).sum().backward()
    data = json.loads(run_cli("inspect", "--param", "0.weight", "--grad", "--seed", "0", "--json").out)
    assert data["class"] == "torch.nn.parameter.Parameter"
    assert torch.equal(torch.tensor(data["grad"]), net[0].weight.grad)
    assert torch.equal(torch.tensor(data["value"]), net[0].weight.detach())
    r = run_cli("inspect", "--param", "0.weight", "--grad", "--seed", "0")
    assert r.out.endswith(printed("grad:", net[0].weight.grad))


def test_inspect_shows_the_init_rules_result(run_cli, write_spec):
    path = write_spec("model: [{Linear: [4, 8]}, ReLU, {Linear: [8, 1]}]\ninit: ['const42:2']\n")
    data = json.loads(run_cli("inspect", path, "--param", "2.weight", "--json").out)
    assert data["value"] == [[42.0] * 8]


def test_inspect_a_checkpoint_written_by_init(run_cli, tmp_path):
    out = tmp_path / "mlp.safetensors"
    assert run_cli("init", MLP, "--rule", "const42:2", "-o", out).code == 0
    r = run_cli("inspect", out, "--param", "2.weight", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["value"] == [[42.0] * 256] * 10


def test_inspect_a_checkpoint_takes_the_spec_options(run_cli, tmp_path):
    """A checkpoint's suffix in any case is a checkpoint, and --device applies to it as to a spec (meta cannot hold values)."""
    out = tmp_path / "MLP.SAFETENSORS"
    assert run_cli("save", MLP, "-o", tmp_path / "mlp.safetensors").code == 0
    (tmp_path / "mlp.safetensors").rename(out)
    r = run_cli("inspect", out, "--device", "cpu", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["device"] == "cpu" and {t["device"] for t in data["tensors"]} == {"cpu"}
    refused = run_cli("inspect", out, "--device", "meta")
    assert refused.code == 2 and "on meta" in refused.err


def test_inspect_on_meta_needs_no_memory(run_cli):
    data = json.loads(run_cli("inspect", RGNET, "--device", "meta", "--json").out)
    assert {t["device"] for t in data["tensors"]} == {"meta"}
    assert data["totals"]["parameters"] == sum(p.numel() for p in hw.rgnet().parameters())


@pytest.mark.parametrize("args,expected", [
    (["--param", "2"], "'2' is a block, not a tensor (use --module 2, or --param 2.weight)"),
    (["--param", "5.bias"], "'5.bias' matches nothing; the root's children are 0, 1, 2"),
    (["--param", "0.bais"], "'0.bais' matches nothing; the tensors of '0' are weight, bias"),
    (["--module", "0.weight"], "'0.weight' is a tensor, not a block (the block is '0')"),
    (["--param", "0.weight.x"], "'0.weight' is a tensor, so 'x' cannot follow it"),
    (["--param", "0.weight", "--module", "0"], "give --param or --module, not both"),
    (["--grad", "--device", "meta"], "--grad needs values, and the network is on meta (use --device cpu)"),
])
def test_bad_paths_exit_2_with_what_exists(run_cli, args, expected):
    r = run_cli("inspect", MLP, *args)
    assert r.code == 2, r.out
    assert expected in r.err and "Traceback" not in r.err


def test_grad_without_an_example_input(run_cli, write_spec):
    r = run_cli("inspect", write_spec("model: [{Linear: [4, 8]}]\n"), "--grad")
    assert r.code == 2 and "no input" in r.err


def test_find_prefers_names_then_positions():
    net = nn.Sequential()
    net.add_module("1", nn.Linear(2, 2))  # named '1' at position 0
    net.add_module("0", nn.Linear(2, 3))  # named '0' at position 1
    assert params.find(net, "0").module is net[1] and params.find(net, "1").name == "1"
    assert params.find(net, "-1").name == "0"
    with pytest.raises(NetcliError, match="the root's children are 1, 0"):
        params.find(net, "2")
