"""The example plugin package, end to end: installed (entry point) and loaded with --plugin.

netcli runs in a subprocess here, so the plugin's registrations never leak
into the registry that the other tests share.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "netcli-plugin-example"
SPEC = EXAMPLE / "example.yaml"
NETCLI = [sys.executable, "-c", "from netcli.cli.commands import main; main()"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Install the example package (a copy: the source tree stays clean) into a folder; return it."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, work / "src-copy")
    target = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (target / "netcli_plugin_example").is_dir()
    return target


def netcli(*args, path: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path) if path else "", str(ROOT)]))}
    env.pop("NETCLI_DEBUG", None)
    return subprocess.run(NETCLI + [str(a) for a in args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=300)


def hand_written(seed: int = 0) -> dict[str, torch.Tensor]:
    """The example spec in plain torch: build under the seed, then the scaled_normal(gain=2) rule on each Linear."""
    torch.manual_seed(seed)
    first, scale, last = nn.Linear(4, 8), torch.tensor(0.5), nn.Linear(8, 1)
    for layer in (first, last):
        nn.init.normal_(layer.weight, 0.0, 2.0 / math.sqrt(layer.in_features))
    return {"0.weight": first.weight, "0.bias": first.bias, "2.weight": scale,
            "3.weight": last.weight, "3.bias": last.bias}


MODES = {
    "installed": lambda installed: (installed, []),
    "--plugin": lambda installed: (EXAMPLE / "src", ["--plugin", "netcli_plugin_example"]),
}


@pytest.mark.parametrize("mode", MODES)
def test_plugin_types_build_and_initialize_like_hand_written_torch(installed, tmp_path, mode):
    path, flags = MODES[mode](installed)
    out = tmp_path / "example.safetensors"
    proc = netcli("save", SPEC, "-o", out, *flags, path=path)
    assert proc.returncode == 0, proc.stderr
    saved = load_file(str(out))
    expected = hand_written(0)
    assert sorted(saved) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(saved[name], tensor.detach()), name


@pytest.mark.parametrize("mode", MODES)
def test_plugin_block_runs_like_hand_written_torch(installed, tmp_path, mode):
    path, flags = MODES[mode](installed)
    x = torch.rand(3, 4)
    torch.save(x, tmp_path / "x.pt")
    proc = netcli("run", SPEC, "--input", tmp_path / "x.pt", "--json", *flags, path=path)
    assert proc.returncode == 0, proc.stderr
    w = hand_written(0)
    expected = torch.relu(x @ w["0.weight"].T + w["0.bias"]) * w["2.weight"] @ w["3.weight"].T + w["3.bias"]
    got = torch.tensor(json.loads(proc.stdout)["values"])
    assert torch.allclose(got, expected.detach(), atol=1e-6)


def test_entry_point_lists_the_plugin_types(installed):
    proc = netcli("types", "Scale", "--json", path=installed)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"name": "Scale", "origin": "netcli_plugin_example.Scale",
                                         "signature": "(init: float = 1.0)"}]


def test_without_the_plugin_the_type_is_unknown():
    proc = netcli("validate", SPEC)
    assert proc.returncode == 2
    assert "unknown type 'Scale'" in proc.stderr


def test_schema_includes_plugin_types(installed):
    for path, flags in ((installed, []), (EXAMPLE / "src", ["--plugin", "netcli_plugin_example"])):
        proc = netcli("schema", *flags, path=path)
        assert proc.returncode == 0, proc.stderr
        schema = json.loads(proc.stdout)
        assert "Scale" in schema["$defs"]["TypeName"]["enum"]
        assert schema["$defs"]["param.Scale.init"]["default"] == 1.0
        assert schema["x-netcli"]["plugins"] == ["netcli_plugin_example"]
        assert "scaled_normal" in schema["x-netcli"]["initializers"]
