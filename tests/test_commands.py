"""The CLI as a user drives it: help, overrides, variables, the default spec, run's inputs and outputs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from handwritten import HANDWRITTEN


def test_help_lists_commands_without_importing_torch():
    code = ("import sys; from netcli.cli.commands import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'netcli --help imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for command in ("validate", "build", "run"):
        assert command in out.stdout


def test_python_dash_m_runs_the_cli(root):
    out = subprocess.run([sys.executable, "-m", "netcli", "build", str(root / "configs/mlp.yaml"), "--print"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("Sequential(")


def test_set_overrides_vars_and_values(run_cli, root):
    result = run_cli("build", root / "configs/rgnet.yaml", "--print", "--set", "vars.hidden=16")
    assert "Linear(in_features=4, out_features=16, bias=True)" in result.out
    result = run_cli("build", root / "configs/mlp.yaml", "--print", "--set", "model.2.Linear.1=3",
                     "--set", "model.1=Tanh")
    assert "(1): Tanh()" in result.out and "out_features=3" in result.out


def test_set_value_is_yaml(run_cli, root):
    result = run_cli("run", root / "configs/mlp.yaml", "--set", "input=[3,20]", "--json")
    assert json.loads(result.out)["shape"] == [3, 10]


def test_var_inside_text_is_text_and_whole_var_keeps_type(run_cli, write_spec):
    path = write_spec("vars: {n: 3, prefix: layer}\nmodel:\n  - {Linear: [4, 4], repeat: '${n}', names: '${prefix} {i}'}\n")
    result = run_cli("build", path, "--print")
    assert result.code == 0, result.err
    assert "(layer 2): Linear" in result.out


def test_default_spec_is_the_chapters_network_and_says_so(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETCLI_SPEC", raising=False)
    result = run_cli("build", "--print")
    torch.manual_seed(0)
    hand = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    assert result.out == str(hand) + "\n"
    assert "built-in default" in result.err


def test_spec_from_environment_then_local_file(run_cli, tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETCLI_SPEC", str(root / "configs/mlp.yaml"))
    result = run_cli("build", "--print")
    assert "in_features=20" in result.out and "NETCLI_SPEC" in result.err
    monkeypatch.delenv("NETCLI_SPEC")
    (tmp_path / "netcli.yaml").write_text("model: [Tanh]\n")
    result = run_cli("build", "--print")
    assert "Tanh()" in result.out and "netcli.yaml" in result.err


@pytest.mark.parametrize("kind", ["rand", "randn", "ones", "zeros"])
def test_run_generated_inputs(run_cli, root, kind):
    result = run_cli("run", root / "configs/mlp.yaml", "--seed", "0", "--input", f"{kind}:5,20", "--json")
    data = json.loads(result.out)
    torch.manual_seed(0)
    net = HANDWRITTEN["mlp"]()
    x = getattr(torch, kind)(5, 20)
    assert data["shape"] == [5, 10]
    assert torch.equal(torch.tensor(data["values"]), net(x).detach())


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_run_input_and_output_files(run_cli, root, tmp_path, suffix):
    x = torch.randn(3, 20)
    src = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(src, x.numpy())
    elif suffix == ".pt":
        torch.save(x, src)
    else:
        from safetensors.torch import save_file
        save_file({"x": x}, str(src))
    dest = tmp_path / f"y{suffix}"
    result = run_cli("run", root / "configs/mlp.yaml", "--seed", "1", "--input", src, "--output", dest)
    assert result.code == 0, result.err
    torch.manual_seed(1)
    expected = HANDWRITTEN["mlp"]()(x).detach()
    if suffix == ".npy":
        got = torch.from_numpy(np.load(dest))
    elif suffix == ".pt":
        got = torch.load(dest, weights_only=True)
    else:
        from safetensors.torch import load_file
        got = load_file(str(dest))["output"]
    assert torch.equal(got, expected)


def test_run_bad_input_is_exit_2(run_cli, root):
    for bad in ("rand:2,x", "nothing.npy", "rand:"):
        result = run_cli("run", root / "configs/mlp.yaml", "--input", bad)
        assert result.code == 2 and "Traceback" not in result.err, (bad, result.err)


def test_run_without_input_says_how_to_give_one(run_cli, write_spec):
    result = run_cli("run", write_spec("model: [ReLU]\n"))
    assert result.code == 2 and "--input rand:" in result.err


def test_run_wrong_input_shape_is_exit_2_naming_the_block(run_cli, root):
    result = run_cli("run", root / "configs/mlp.yaml", "--input", "rand:2,7")
    assert result.code == 2, result.err
    assert "Traceback" not in result.err


def test_build_summary_counts_tied_once(run_cli, root):
    data = json.loads(run_cli("build", root / "configs/shared.yaml", "--json").out)
    hand = HANDWRITTEN["shared"]()
    assert data["total_params"] == sum(p.numel() for p in hand.parameters()) == 121
    assert ["2.weight", "4.weight"] in data["tied"]
    assert data["output_shape"] == [2, 1]
    assert data["param_bytes"] == 121 * 4


def test_build_summary_shows_shapes_and_totals(run_cli, root):
    result = run_cli("build", root / "configs/rgnet.yaml")
    assert result.code == 0
    assert "block 3" in result.out and "[2, 1]" in result.out
    total = sum(p.numel() for p in HANDWRITTEN["rgnet"]().parameters())
    assert f"parameters: {total:,}" in result.out


def test_frozen_shows_in_trainable_count(run_cli, root):
    data = json.loads(run_cli("build", root / "configs/frozen.yaml", "--json").out)
    assert data["trainable_params"] == data["total_params"] - (20 * 256 + 256)


def test_types_lists_torch_and_chapter_blocks(run_cli):
    names = {t["name"] for t in json.loads(run_cli("types", "--json").out)}
    public = {n for n in dir(torch.nn) if not n.startswith("_") and isinstance(getattr(torch.nn, n), type)
              and issubclass(getattr(torch.nn, n), torch.nn.Module) and n != "Module"}
    assert public <= names
    assert {"CenteredLayer", "MyLinear", "MLP", "FixedHiddenMLP", "NestMLP"} <= names
    assert "system" not in names


def test_register_block_refuses_duplicates():
    from netcli import register_block
    from netcli.core.errors import NetcliError

    class Linear(torch.nn.Module):
        pass
    with pytest.raises(NetcliError, match="'Linear' is already registered .*torch.nn.Linear"):
        register_block(Linear)


def test_registered_block_is_usable_from_a_plugin(run_cli, write_spec, tmp_path, monkeypatch):
    (tmp_path / "myplug.py").write_text(
        "import torch\nimport netcli\n\n@netcli.register_block\nclass Doubler(torch.nn.Module):\n"
        "    def forward(self, x):\n        return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_spec("plugins: [myplug]\ninput: [1, 3]\nmodel: [Doubler]\n")
    result = run_cli("run", path, "--input", "ones:1,3", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["values"] == [[2.0, 2.0, 2.0]]
