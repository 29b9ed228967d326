"""Devices: the resolver, `netcli devices`, per-block placement, the meta device, memory checks."""
from __future__ import annotations

import json
import re
import time

import pytest
import torch
from torch import nn

from netcli.core import devices
from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.validate import load_spec

no_gpu = pytest.mark.skipif(devices.gpu_count() > 0, reason="this machine has a GPU")

BIG = """\
input: [2, 100000]
model:
  - Linear: [100000, 100000]
"""

# D2L 5.1's MLP with its head on another device: the chapter's model parallelism on a CPU machine.
TWO_DEVICES = """\
input: [2, 20]
model:
  - Linear: [20, 256]
  - ReLU
  - Linear: [256, 10]
    device: meta
"""


def _hooks(net: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) for m in net.modules())


# --- resolution ------------------------------------------------------------


@pytest.mark.parametrize("count, text, want", [
    (0, "auto", "cpu"), (0, "auto:0", "cpu"), (0, "auto:1", "cpu"), (0, "cpu", "cpu"), (0, "meta", "meta"),
    (2, "auto", "cuda:0"), (2, "auto:1", "cuda:1"), (2, "auto:2", "cpu"), (2, "auto:10", "cpu"),
    (2, "cuda", "cuda:0"), (2, "cuda:0", "cuda:0"), (2, "cuda:1", "cuda:1"), (1, " cuda:0 ", "cuda:0"),
])
def test_resolution_with_a_faked_gpu_count(monkeypatch, count, text, want):
    monkeypatch.setattr(devices, "gpu_count", lambda: count)
    assert devices.resolve_device(text) == torch.device(want)


@pytest.mark.parametrize("count, text, seen, hint", [
    (0, "cuda", "no GPU is visible", "auto:0"),
    (0, "cuda:1", "no GPU is visible", "auto:1"),
    (1, "cuda:1", "1 GPU visible (cuda:0..cuda:0)", "auto:1"),
    (2, "cuda:3", "2 GPUs visible (cuda:0..cuda:1)", "auto:3"),
])
def test_missing_gpu_says_how_many_and_suggests_auto(monkeypatch, count, text, seen, hint):
    monkeypatch.setattr(devices, "gpu_count", lambda: count)
    with pytest.raises(NetcliError, match=rf"'{text}' is not available: {re_escape(seen)}") as info:
        devices.resolve_device(text, where="--device")
    problem = info.value.problems[0]
    assert problem.where == "--device" and problem.hint == f"use {hint} to fall back to the CPU"


def re_escape(text: str) -> str:
    import re
    return re.escape(text)


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cpu:1", "meta:2", "auto:-1", "", "cuda:0:1"])
def test_not_a_device_lists_the_forms(text):
    with pytest.raises(NetcliError, match="is not a device") as info:
        devices.resolve_device(text)
    assert "auto:N" in info.value.problems[0].hint


def test_all_gpus_is_try_all_gpus(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 0)
    assert devices.all_gpus() == [torch.device("cpu")]
    monkeypatch.setattr(devices, "gpu_count", lambda: 3)
    assert devices.all_gpus() == [torch.device(f"cuda:{i}") for i in range(3)]


def test_spec_device_is_resolved_with_faked_gpus(monkeypatch, write_spec):
    """A spec naming cuda:1 is refused at load on a 1-GPU machine, at its line, and accepted with 2."""
    path = write_spec("input: [2, 4]\ndevice: cuda:1\nmodel: [{Linear: [4, 2]}]\n")
    monkeypatch.setattr(devices, "gpu_count", lambda: 1)
    with pytest.raises(NetcliError) as info:
        load_spec(str(path))
    problem = info.value.problems[0]
    assert problem.location.line == 2 and "auto:1" in problem.hint


# --- netcli devices ----------------------------------------------------------


@no_gpu
def test_devices_without_a_gpu_says_so(run_cli):
    result = run_cli("devices")
    assert result.code == 0, result.err
    assert "no GPU is visible" in result.out
    assert "auto resolves to cpu" in result.out and "auto:1 resolves to cpu" in result.out
    assert f"{__import__('os').cpu_count()} cores" in result.out


@no_gpu
def test_devices_json(run_cli):
    result = run_cli("devices", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["gpus"] == [] and data["auto"]["auto"] == "cpu" and data["auto"]["auto:1"] == "cpu"
    assert data["all_gpus"] == ["cpu"]
    assert data["cpu"]["cores"] >= 1 and data["cpu"]["memory_total"] >= data["cpu"]["memory_available"] > 0
    assert data["torch"]["version"] == torch.__version__


@pytest.mark.skipif(devices.gpu_count() == 0, reason="needs a GPU")
def test_devices_lists_each_gpu(run_cli):
    data = json.loads(run_cli("devices", "--json").out)
    assert [g["index"] for g in data["gpus"]] == list(range(torch.cuda.device_count()))
    for g in data["gpus"]:
        props = torch.cuda.get_device_properties(g["index"])
        assert g["name"] == props.name and g["memory_total"] == props.total_memory
        assert g["capability"] == f"{props.major}.{props.minor}"
    assert data["auto"]["auto"] == "cuda:0"


# --- --device on the command line --------------------------------------------


@no_gpu
def test_strict_cuda_is_exit_2_and_suggests_auto(run_cli, root):
    result = run_cli("run", root / "configs/mlp.yaml", "--device", "cuda:1")
    assert result.code == 2
    assert result.err.startswith("--device: device 'cuda:1' is not available: no GPU is visible")
    assert "use auto:1 to fall back to the CPU" in result.err and "Traceback" not in result.err


@no_gpu
def test_auto_1_runs_on_the_cpu(run_cli, root):
    result = run_cli("run", root / "configs/mlp.yaml", "--device", "auto:1", "--seed", "0", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    X = torch.rand(2, 20)
    assert data["device"] == "cpu"
    assert torch.equal(torch.tensor(data["values"], dtype=torch.float32), net(X).detach())


# --- meta --------------------------------------------------------------------


def test_ten_billion_parameters_build_on_meta_in_seconds(run_cli, write_spec):
    path = write_spec(BIG)
    start = time.perf_counter()
    result = run_cli("build", path, "--device", "meta", "--json")
    elapsed = time.perf_counter() - start
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["total_params"] == 10_000_100_000 == 100000 * 100000 + 100000
    assert data["param_bytes"] == 4 * 10_000_100_000
    assert data["device"] == "meta" and data["output_shape"] == [2, 100000]
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_spec_device_meta_builds_inspects_and_validates(run_cli, write_spec):
    path = write_spec("device: meta\n" + BIG)
    start = time.perf_counter()
    data = json.loads(run_cli("build", path, "--json").out)
    assert data["total_params"] == 10_000_100_000 and data["device"] == "meta"
    assert {b["device"] for b in data["blocks"] if b["params"]} == {"meta"}
    assert run_cli("validate", path).code == 0
    assert time.perf_counter() - start < 5


def test_run_on_meta_reports_the_output_shape(run_cli, write_spec, root):
    result = run_cli("run", write_spec(BIG), "--device", "meta")
    assert result.code == 0, result.err
    assert result.out.strip() == "output shape: [2, 100000] (float32, on meta: no values)"
    data = json.loads(run_cli("run", root / "configs/mlp.yaml", "--device", "meta", "--json").out)
    assert data == {"shape": [2, 10], "dtype": "float32", "device": "meta"}


def test_meta_build_matches_handwritten_structure(root):
    built = build_model(load_spec(str(root / "configs/mlp.yaml")), device="meta")
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    assert repr(built.net) == repr(net)
    assert {k: (v.shape, v.device) for k, v in built.net.state_dict().items()} == \
        {k: (v.shape, v.device) for k, v in net.state_dict().items()}


# --- memory check ------------------------------------------------------------


def test_too_big_for_memory_is_refused_before_allocating(run_cli, write_spec):
    """Linear(200000, 200000) is 149 GiB of float32: more than any test machine's RAM."""
    path = write_spec("input: [2, 200000]\nmodel:\n  - Linear: [200000, 200000]\n")
    _, available = devices.cpu_memory()
    assert available is not None and available < 4 * 200000 * 200001
    start = time.perf_counter()
    result = run_cli("build", path, "--device", "cpu")
    assert result.code == 2
    assert result.err.startswith("--device: the parameters need 149.0 GiB on cpu but only ")
    assert "use --device meta" in result.err
    result = run_cli("run", path)  # no --device: the error points into the spec
    assert result.code == 2 and result.err.startswith(f"{path}:3:3: model: the parameters need")
    assert time.perf_counter() - start < 10


def test_memory_check_counts_each_block_on_its_device(monkeypatch, write_spec):
    """A huge block placed on meta costs the CPU nothing; the same block on the CPU is refused."""
    real_free = devices.free_memory
    monkeypatch.setattr(devices, "free_memory", lambda d: 1 << 20 if d.type == "cpu" else real_free(d))
    small_cpu = write_spec(TWO_DEVICES.replace("[256, 10]", "[256, 100000]"))
    built = build_model(load_spec(str(small_cpu)))  # 20*256 floats on cpu: 21 KiB < 1 MiB
    assert built.net[2].weight.shape == (100000, 256) and built.net[2].weight.is_meta
    big_cpu = write_spec(TWO_DEVICES.replace("[256, 10]", "[256, 100000]").replace("    device: meta\n", ""))
    with pytest.raises(NetcliError, match=r"need 98\.1 MiB on cpu but only 1\.0 MiB is free") as info:
        build_model(load_spec(str(big_cpu)))
    assert "--device meta" in info.value.problems[0].hint


def test_memory_check_does_not_draw_from_the_rng(root):
    """Without a seed, the build continues the caller's RNG stream exactly as hand-written code would."""
    loaded = load_spec(str(root / "configs/mlp.yaml"))
    torch.manual_seed(7)
    built = build_model(loaded)
    after = torch.rand(3)
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    assert all(torch.equal(a, b) for a, b in zip(built.net.state_dict().values(), net.state_dict().values()))
    assert torch.equal(after, torch.rand(3))


# --- per-block placement -----------------------------------------------------


def test_two_device_spec_builds_like_handwritten_and_runs(write_spec, run_cli):
    built = build_model(load_spec(str(write_spec(TWO_DEVICES))), seed=0)
    torch.manual_seed(0)
    first = nn.Linear(20, 256)
    with torch.device("meta"):  # created on its device, not built on the CPU and moved
        head = nn.Linear(256, 10)
    net = nn.Sequential(first, nn.ReLU(), head)
    assert repr(built.net) == repr(net)
    assert built.devices == {"2": torch.device("meta")}
    assert [p.device.type for p in built.net.parameters()] == ["cpu", "cpu", "meta", "meta"]
    assert torch.equal(built.net[0].weight, first.weight) and torch.equal(built.net[0].bias, first.bias)
    X = torch.rand(2, 20)
    y = built.net(X)  # the head's input is moved to meta first (the chapter's X.cuda(1))
    assert y.device.type == "meta" and y.shape == (2, 10)  # on the device of the last block
    assert torch.equal(built.net[:2](X), net[:2](X))
    result = run_cli("run", write_spec(TWO_DEVICES), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"shape": [2, 10], "dtype": "float32", "device": "meta"}


def test_build_shows_each_blocks_device(run_cli, write_spec):
    data = json.loads(run_cli("build", write_spec(TWO_DEVICES), "--json").out)
    assert [(b["name"], b["device"]) for b in data["blocks"] if b["params"]] == \
        [("(root)", "cpu"), ("0", "cpu"), ("2", "meta")]
    text = run_cli("build", write_spec(TWO_DEVICES)).out
    # the summary's table: the block, its output shape, its parameters, ..., its device
    assert re.search(r"2: Linear\s+\[2, 10\]\s+2,570\s.*\bmeta\s*$", text, re.M), text


def test_block_after_a_meta_block_is_a_clear_error(write_spec, run_cli):
    spec = "input: [2, 20]\nmodel:\n  - Linear: [20, 256]\n    device: meta\n  - ReLU\n  - Linear: [256, 10]\n"
    result = run_cli("run", write_spec(spec))
    assert result.code == 2
    assert "on cpu gets its input from a block on meta" in result.err and "Traceback" not in result.err


def test_input_returns_to_the_network_device_after_a_placed_block():
    """[cpu, meta, cpu]: the third block is hooked to move its input back; from meta that is a clear error."""
    from netcli.builder.validate import load_spec_text
    text = ("input: [2, 4]\nmodel:\n  - Linear: [4, 4]\n  - Linear: [4, 4]\n    device: meta\n"
            "  - Linear: [4, 4]\n    device: cpu\n")
    built = build_model(load_spec_text(text, "inline.yaml"))
    assert [len(m._forward_pre_hooks) for m in built.net] == [0, 1, 1]
    with pytest.raises(NetcliError, match="Linear on cpu gets its input from a block on meta"):
        built.net(torch.rand(2, 4))


def test_no_hooks_where_nothing_moves(root):
    """configs/devices.yaml names auto:0 and auto:1; on one device nothing is moved, so nothing is hooked."""
    built = build_model(load_spec(str(root / "configs/devices.yaml")), device="cpu")
    assert _hooks(built.net) == 0


@no_gpu
def test_spec_naming_two_devices_builds_runs_saves_and_loads(root, tmp_path):
    """configs/devices.yaml (auto:0, auto:1) on a CPU machine: both resolve to cpu; save and load round-trip."""
    from netcli.app.restore import load_checkpoint
    from netcli.io.checkpoint_save import save_checkpoint
    built = build_model(load_spec(str(root / "configs/devices.yaml")), seed=0)
    assert built.devices == {"0": torch.device("cpu"), "1": torch.device("cpu")}
    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Linear(20, 256), nn.ReLU()), nn.Linear(256, 10))
    X = torch.rand(2, 20)
    assert torch.equal(built.net(X), net(X))
    path = tmp_path / "devices.safetensors"
    save_checkpoint(built, path)
    loaded = load_checkpoint(path, device="cpu")
    assert torch.equal(loaded.net(X), net(X))


def test_meta_placed_blocks_save_with_torch_but_not_as_a_checkpoint(write_spec, tmp_path, run_cli):
    """torch.save keeps a cpu+meta state_dict (meta tensors as shapes); netcli refuses: meta has no values."""
    built = build_model(load_spec(str(write_spec(TWO_DEVICES))), seed=0)
    torch.save(built.net.state_dict(), tmp_path / "two.pt")
    state = torch.load(tmp_path / "two.pt", weights_only=True)
    assert state["2.weight"].is_meta and state["2.weight"].shape == (10, 256)
    assert torch.equal(state["0.weight"], built.net[0].weight)
    result = run_cli("save", write_spec(TWO_DEVICES), "-o", tmp_path / "two.safetensors")
    assert result.code == 2 and "meta has no values" in result.err
    assert not (tmp_path / "two.safetensors").exists()


@pytest.mark.skipif(devices.gpu_count() == 0, reason="needs a GPU")
def test_gpu_placement_output_on_last_blocks_device(write_spec):
    spec = TWO_DEVICES.replace("device: meta", "device: cuda:0")
    built = build_model(load_spec(str(write_spec(spec))), seed=0)
    assert built.net[2].weight.device == torch.device("cuda:0")
    assert built.net(torch.rand(2, 20)).device == torch.device("cuda:0")
