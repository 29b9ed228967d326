"""netcli from Python (SPEC 1.9): each public function against hand-written torch or the command line's own files."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch
import yaml
from safetensors import safe_open
from torch import nn

import handwritten_nets
import netcli
from conftest import CONFIGS, ROOT

CFG = ROOT / "configs"
PY = sys.executable


def _tensors(path) -> dict[str, torch.Tensor]:
    """Every name a .safetensors file netcli wrote stands for (tied names through its aliases), read by safetensors."""
    with safe_open(str(path), "pt") as f:
        out = {k: f.get_tensor(k) for k in f.keys()}
        aliases = json.loads((f.metadata() or {}).get("netcli.aliases", "{}"))
    return {**out, **{a: out[s] for a, s in aliases.items()}}


def _assert_state(net: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = net.state_dict()
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def _subprocess(code: str, cwd=None) -> str:
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=cwd or ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


# ---------------------------------------------------------------- the package's surface


def test_import_netcli_imports_no_torch_and_names_the_api():
    out = _subprocess(
        "import sys, netcli; print('torch' in sys.modules); "
        "print(issubclass(netcli.SpecError, ValueError), 'torch' in sys.modules); print(sorted(netcli.__all__))"
    )
    lines = out.splitlines()
    assert lines[0] == "False" and lines[1] == "True False"
    for name in ("build", "load", "save", "initialize", "spec_of", "summary", "SpecError"):
        assert name in lines[2]
        assert callable(getattr(netcli, name))


def test_the_package_is_typed():
    assert (ROOT / "netcli" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


# ---------------------------------------------------------------- build


def test_build_equals_handwritten_resnet18_under_seed():
    net = netcli.build(CFG / "resnet18.yaml", seed=0, set={"vars.num_classes": 10})
    torch.manual_seed(0)
    hand = handwritten_nets.resnet18(num_classes=10)
    assert str(net) == str(hand)
    _assert_state(net, hand.state_dict())
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(net.eval()(x), hand.eval()(x))


@pytest.mark.parametrize("form", ["dict", "text"])
def test_build_takes_a_dict_or_yaml_text(form):
    data = {"input": [2, 4], "model": [{"Linear": [4, 8]}, "ReLU", {"Linear": [8, 1]}]}
    spec = data if form == "dict" else yaml.safe_dump(data)
    net = netcli.build(spec, seed=3, rules=["const42:2"])
    torch.manual_seed(3)
    hand = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    nn.init.constant_(hand[2].weight, 42)  # D2L's init_42: the weight only
    assert str(net) == str(hand)
    _assert_state(net, hand.state_dict())


@pytest.mark.parametrize("config", ["residual", "shared", "resnet18"])
def test_build_values_are_bit_identical_to_netcli_save_seed(config, run_cli, tmp_path):
    out = tmp_path / "cli.safetensors"
    assert run_cli("save", CFG / f"{config}.yaml", "--seed", "5", "-o", out).code == 0
    _assert_state(netcli.build(str(CFG / f"{config}.yaml"), seed=5), _tensors(out))


def test_input_shape_fills_in_the_sizes_the_spec_leaves_out():
    spec = "model:\n  - Linear: 8\n  - ReLU\n  - Linear: 2\n"
    net = netcli.build(spec, input_shape=[3, 5], seed=0)
    torch.manual_seed(0)
    hand = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    assert str(net) == str(hand)
    _assert_state(net, hand.state_dict())


# ---------------------------------------------------------------- errors


def test_spec_error_problems_are_the_json_objects(write_spec, run_cli):
    bad = write_spec("input: [2, 4]\nmodel:\n  - Linear: {in_features: 4, out_feature: 3}\n  - Relu\n")
    with pytest.raises(netcli.SpecError) as caught:
        netcli.build(str(bad))
    assert isinstance(caught.value, ValueError)
    result = run_cli("build", bad, "--json")
    assert result.code == 2
    assert caught.value.problems == json.loads(result.out)["problems"]
    assert len(caught.value.problems) == 2
    assert str(caught.value).splitlines()[0].startswith(f"{bad}:3:")


def test_spec_error_of_a_dict_names_the_place_without_lines():
    with pytest.raises(netcli.SpecError) as caught:
        netcli.build({"model": [{"Linear": [4, 8]}, "Relu"]})
    (problem,) = caught.value.problems
    assert problem["path"] == "model[1]" and problem["line"] is None
    assert problem["hint"] == "did you mean 'ReLU'?"


def test_a_missing_file_and_a_bad_set_are_spec_errors(tmp_path):
    with pytest.raises(netcli.SpecError, match="no such file"):
        netcli.build(str(tmp_path / "nope.yaml"))
    with pytest.raises(netcli.SpecError, match="num_clases"):
        netcli.build(CFG / "resnet18.yaml", set={"vars.num_clases": 10})
    with pytest.raises(netcli.SpecError, match="not built by netcli"):
        netcli.save(nn.Linear(2, 2), tmp_path / "x.safetensors")


# ---------------------------------------------------------------- save and load


@pytest.mark.parametrize("config", ["shared", "residual"])
def test_save_writes_the_file_netcli_save_writes(config, run_cli, tmp_path):
    # the same spec and values: the same bytes, tied tensors once, the spec inside
    cli, api = tmp_path / "cli.safetensors", tmp_path / "api.safetensors"
    assert run_cli("save", CFG / f"{config}.yaml", "--seed", "1", "-o", cli).code == 0
    netcli.save(netcli.build(CFG / f"{config}.yaml", seed=1), api)
    assert api.read_bytes() == cli.read_bytes()


def test_a_trained_network_saved_from_python_is_read_by_netcli_load(run_cli, tmp_path):
    net = netcli.build(CFG / "residual.yaml", seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        net(torch.rand(4, 3, 6, 6)).sum().backward()
        opt.step()
    path = tmp_path / "trained.safetensors"
    netcli.save(net, path)
    _assert_state(net, _tensors(path))
    result = run_cli("load", path, "--input", "ones:1,3,6,6", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    net.eval()
    assert data["module"] == str(net)
    with torch.no_grad():
        assert torch.tensor(data["output"]["values"]).allclose(net(torch.ones(1, 3, 6, 6)), atol=0, rtol=1e-6)


def test_load_reads_every_format_the_commands_read(run_cli, tmp_path):
    spec = CFG / "shared.yaml"
    single = tmp_path / "one.safetensors"
    assert run_cli("save", spec, "--seed", "2", "-o", single).code == 0
    expected = _tensors(single)
    assert run_cli("save", spec, "--seed", "2", "--max-shard-size", "200B", "-o", f"{tmp_path}/hf/").code == 0
    assert run_cli("convert", single, "-o", f"{tmp_path}/dcp/").code == 0
    assert run_cli("save", spec, "--seed", "2", "-o", tmp_path / "plain.pt").code == 0
    formats = ((single, None), (tmp_path / "hf", None), (tmp_path / "dcp", None), (tmp_path / "plain.pt", spec))
    for path, given in formats:
        net = netcli.load(path, spec=given)
        _assert_state(net, expected)
        assert net[2] is net[4]  # the tie is one module again
    with pytest.raises(netcli.SpecError, match="holds no spec"):
        netcli.load(tmp_path / "plain.pt")


def test_load_not_strict_warns_naming_what_it_skipped(tmp_path):
    path = tmp_path / "small.safetensors"
    netcli.save(netcli.build({"model": [{"Linear": [4, 8]}]}, seed=0), path)
    bigger = {"model": [{"Linear": [4, 8]}, {"Linear": [8, 2]}]}
    with pytest.raises(netcli.SpecError, match="missing key '1.weight'"):
        netcli.load(path, spec=bigger)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = netcli.load(path, spec=bigger, strict=False)
    assert any("1.weight" in str(w.message) for w in caught)
    assert torch.equal(net[0].weight, _tensors(path)["0.weight"])


# ---------------------------------------------------------------- initialize


@pytest.mark.parametrize("config", ["resnet18", "residual", "shared", "transformer_encoder"])
def test_initialize_after_to_empty_equals_save_fast_init(config, run_cli, tmp_path):
    out = tmp_path / "fast.safetensors"
    assert run_cli("save", CFG / f"{config}.yaml", "--fast-init", "--seed", "7", "-o", out).code == 0
    net = netcli.build(CFG / f"{config}.yaml", device="meta")
    assert all(p.is_meta for p in net.parameters())
    net.to_empty(device="cpu")
    assert netcli.initialize(net, seed=7) is net
    _assert_state(net, _tensors(out))


def test_initialize_refuses_a_network_still_on_meta():
    net = netcli.build(CFG / "mlp.yaml", device="meta")
    with pytest.raises(netcli.SpecError, match="to_empty"):
        netcli.initialize(net, seed=0)


# How a gloo script ends here: torch 2.13's gloo worker threads outlive destroy_process_group while sharded
# tensors still hold the group, and one may still be releasing a finished collective's tensors when Python
# finalizes; taking the GIL then aborts the process ("terminate called without an active exception", SIGABRT;
# 3 runs in 72 under load, core dump: ProcessGroupGloo::runLoop destroying an AsyncBarrierWork during
# Py_FinalizeEx). The results are written and checked by then: leave without finalizing, as netcli's own ranks do.
END_WITHOUT_FINALIZING = """
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""

INIT_SHARDED = """
import os, sys, torch, netcli
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
torch.distributed.init_process_group("gloo")
net = netcli.build(sys.argv[1], device="meta")
mesh = init_device_mesh("cpu", (torch.distributed.get_world_size(),))
for block in list(net.children())[:-1]:
    if any(True for _ in block.parameters()):
        fully_shard(block, mesh=mesh)
fully_shard(net, mesh=mesh)
net.to_empty(device="cpu")
netcli.initialize(net, seed=11)
full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in net.state_dict().items()}
if torch.distributed.get_rank() == 0:
    torch.save(full, sys.argv[2])
torch.distributed.barrier()  # no rank leaves while rank 0 is still writing (gloo aborts otherwise)
torch.distributed.destroy_process_group()
""" + END_WITHOUT_FINALIZING


@pytest.mark.slow
@pytest.mark.parametrize("config", ["residual", "resnet18"])  # resnet18: init rules on the sharded tensors
def test_initialize_after_the_users_own_fully_shard_equals_one_process(config, run_cli, tmp_path):
    script, spec = tmp_path / "shard.py", CFG / f"{config}.yaml"
    script.write_text(INIT_SHARDED)
    out = tmp_path / "one.safetensors"
    assert run_cli("save", spec, "--fast-init", "--seed", "11", "-o", out).code == 0
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), str(spec),
           str(tmp_path / "full.pt")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    full = torch.load(tmp_path / "full.pt", weights_only=True)
    expected = _tensors(out)
    assert sorted(full) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(full[key], value), key


DDP_SCRIPT = """
import os, sys, torch, netcli
from torch.nn.parallel import DistributedDataParallel as DDP
torch.distributed.init_process_group("gloo", rank=0, world_size=1)
net = DDP(netcli.build(sys.argv[1], seed=0))
net(torch.rand(4, 3, 6, 6)).sum().backward()
netcli.save(net, sys.argv[2])
torch.save(net.module.state_dict(), sys.argv[3])
print(netcli.spec_of(net) == netcli.spec_of(net.module), netcli.summary(net) == netcli.summary(net.module))
torch.distributed.destroy_process_group()
""" + END_WITHOUT_FINALIZING


def test_a_ddp_wrapped_network_saves_and_describes_as_itself(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    out, state = tmp_path / "ddp.safetensors", tmp_path / "state.pt"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    r = subprocess.run([PY, str(tmp_path / "ddp.py"), str(CFG / "residual.yaml"), str(out), str(state)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["True", "True"]
    _assert_state(netcli.load(out), torch.load(state, weights_only=True))  # keys without DDP's "module."


# ---------------------------------------------------------------- spec_of and summary


def test_spec_of_is_the_spec_the_cli_embeds(run_cli, tmp_path):
    out = tmp_path / "r18.safetensors"
    assert run_cli("save", CFG / "resnet18.yaml", "--set", "vars.num_classes=10", "-o", out).code == 0
    with safe_open(str(out), "pt") as f:
        embedded = yaml.safe_load(f.metadata()["netcli.spec"])
    net = netcli.build(CFG / "resnet18.yaml", set={"vars.num_classes": 10})
    assert netcli.spec_of(net) == embedded
    assert netcli.spec_of(net)["model"]["children"]["fc"]["Linear"]["out_features"] == 10
    assert netcli.spec_of(netcli.load(out)) == embedded
    netcli.spec_of(net)["vars"]["num_classes"] = 3  # a new dict each time: the network's spec is unchanged
    assert netcli.spec_of(net) == embedded


@pytest.mark.parametrize("config", ["resnet18", "shared"])
def test_summary_is_build_json(config, run_cli):
    result = run_cli("build", CFG / f"{config}.yaml", "--json")
    assert result.code == 0, result.err
    expected = json.loads(result.out)
    assert netcli.summary(str(CFG / f"{config}.yaml")) == expected
    assert netcli.summary(netcli.build(CFG / f"{config}.yaml")) == expected


# ---------------------------------------------------------------- a plain module: pickle, deepcopy, compile


PICKLED = """
import sys, torch
net = torch.load(sys.argv[1], weights_only=False)
x = torch.load(sys.argv[2], weights_only=True)
net.eval()
with torch.no_grad():
    y = net(x)
torch.save({"state": net.state_dict(), "y": y, "print": str(net),
            "tied": sys.argv[4] == "shared" and net[2] is net[4]}, sys.argv[3])
"""


@pytest.mark.parametrize("config", ["resnet18", "residual", "shared"])
def test_torch_save_of_a_built_network_loads_in_another_process(config, tmp_path):
    net = netcli.build(CFG / f"{config}.yaml", seed=0).eval()
    x = torch.rand(*{"resnet18": (1, 3, 64, 64), "residual": (4, 3, 6, 6), "shared": (2, 4)}[config])
    torch.save(net, tmp_path / "net.pt")
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "check.py").write_text(PICKLED)
    out = tmp_path / "out.pt"
    r = subprocess.run([PY, str(tmp_path / "check.py"), tmp_path / "net.pt", tmp_path / "x.pt", out, config],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(out, weights_only=True)
    assert got["print"] == str(net)
    _assert_state(net, got["state"])
    with torch.no_grad():
        assert torch.equal(got["y"], net(x))
    assert got["tied"] == (config == "shared")  # configs/shared.yaml: one module at both places again


PLUGIN_SPEC = """
blocks:
  Scaled:
    children: {fc: {Linear: [4, 4]}, scale: {Scale: 0.5}}
    forward: |
      return scale(fc(x)) + x
model:
  - use: Scaled
  - Linear: [4, 1]
"""


def test_a_pickled_custom_block_around_a_plugins_type_loads_where_the_plugin_is_installed(tmp_path):
    plugin = ROOT / "examples" / "netcli-plugin-example" / "src"
    sys.path.insert(0, str(plugin))
    try:
        net = netcli.build(PLUGIN_SPEC, seed=0, plugins=["netcli_plugin_example"]).eval()
    finally:
        sys.path.remove(str(plugin))
    x = torch.rand(3, 4)
    torch.save(net, tmp_path / "net.pt")
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "check.py").write_text(PICKLED)
    out = tmp_path / "out.pt"
    # a fresh process whose only netcli import is pickle's: the spec's classes are rebuilt after the
    # plugin the original build recorded is imported (its Scale type registered)
    r = subprocess.run([PY, str(tmp_path / "check.py"), tmp_path / "net.pt", tmp_path / "x.pt", out, "plugin"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(plugin)})
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(out, weights_only=True)
    assert got["print"] == str(net)
    with torch.no_grad():
        assert torch.equal(got["y"], net(x))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_pickles_and_deep_copies(config):
    # pickled here, the spec's classes are rebuilt from the pickled text (a new origin), as in another process
    import io

    net = netcli.build(config, seed=0)
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    for other in (torch.load(buf, weights_only=False), copy.deepcopy(net)):
        assert str(other) == str(net)
        assert [type(m).__name__ for m in other.modules()] == [type(m).__name__ for m in net.modules()]
        _assert_state(other, net.state_dict())


def test_deepcopy_is_an_independent_equal_network():
    net = netcli.build(CFG / "resnet18.yaml", seed=0)
    twin = copy.deepcopy(net)
    assert str(twin) == str(net)
    assert [type(m) for m in twin.modules()] == [type(m) for m in net.modules()]
    _assert_state(twin, net.state_dict())
    with torch.no_grad():
        twin.fc.weight.zero_()
    assert not torch.equal(net.fc.weight, twin.fc.weight)
    assert netcli.spec_of(twin) == netcli.spec_of(net)
    shared = copy.deepcopy(netcli.build(CFG / "shared.yaml"))
    assert shared[2] is shared[4]


def test_torch_compile_fullgraph_gives_the_same_outputs():
    net = netcli.build(CFG / "residual.yaml", seed=0).eval()
    compiled = torch.compile(net, fullgraph=True, backend="eager")  # fullgraph: no graph break anywhere
    x = torch.rand(4, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(compiled(x), net(x))
    assert netcli.spec_of(compiled) == netcli.spec_of(net)


# ---------------------------------------------------------------- the README's example and a typed user script


def test_the_readme_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2 and "netcli.save" in blocks[0] and "netcli.load" in blocks[0]
    (tmp_path / "configs").symlink_to(CFG)
    (tmp_path / "example.py").write_text("\n".join(blocks))
    out = _subprocess(open(tmp_path / "example.py").read(), cwd=tmp_path)
    assert (tmp_path / "mlp.safetensors").is_file()
    assert out.splitlines() == [
        "{'num_classes': 10}",
        "40",
        "unknown argument 'out_feature' did you mean 'out_features'?",
    ]


USER_SCRIPT = """
import copy

import torch
from torch import nn

import netcli


def train(path: str) -> nn.Module:
    net: nn.Module = netcli.build(path, seed=0, set={"vars.num_classes": 10}, device="cpu", rules=["zeros:fc.bias"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    netcli.save(net, "r18.safetensors")
    again: nn.Module = netcli.load("r18.safetensors", spec=path, device=torch.device("cpu"), strict=True)
    rows: dict[str, object] = netcli.summary(again, depth=1)
    spec: dict[str, object] = netcli.spec_of(copy.deepcopy(again))
    meta = netcli.build({"model": [{"Linear": [4, 8]}]}, device="meta", fast_init=True)
    meta.to_empty(device="cpu")
    netcli.initialize(meta, seed=0)
    print(rows["total_params"], spec["model"])
    try:
        netcli.build("model: [Nope]")
    except netcli.SpecError as err:
        problems: list[dict[str, object]] = err.problems
        print(problems)
    return again
"""

MISUSED = """
import netcli

net = netcli.build("x.yaml", seeds=0)
netcli.save(net)
count: int = netcli.summary(net)
"""


PUBLIC = ("__init__.py", "app/api.py", "builder/rebuild.py", "builder/custom_block.py", "init/inplace.py")


@pytest.mark.slow
def test_mypy_strict_passes_on_a_user_script_and_sees_the_real_signatures(tmp_path):
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    (tmp_path / "misused.py").write_text(MISUSED)
    # the package from this checkout (an editable install is found through an import hook mypy does not run)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    public = [str(ROOT / "netcli" / name) for name in PUBLIC]  # the API's own modules pass --strict too
    r = subprocess.run([PY, "-m", "mypy", "--strict", "--follow-imports=silent", "--ignore-missing-imports",
                        "--cache-dir", str(tmp_path / "c"),
                        "user.py", "misused.py", *public], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=600)
    errors = [line for line in r.stdout.splitlines() if ": error:" in line]
    assert errors and all(e.startswith("misused.py") for e in errors), r.stdout
    lines = sorted({int(e.split(":")[1]) for e in errors if e.startswith("misused.py")})
    assert lines == [4, 5, 6], r.stdout  # an unknown keyword, a missing argument, a dict as an int


@pytest.mark.parametrize("config", ["resnet18", "densenet_block", "vit_tiny", "gpt_nano", "lstm_lm"])
def test_a_built_network_is_freed_when_its_last_reference_goes(config):
    """As a hand-written nn.Module is: no reference cycle through netcli keeps it (and its memory) until
    the cyclic collector runs, so `net = netcli.build(...)` in a loop does not hold two networks.
    (A network's init rule once kept the traceback of a caught path miss, whose frames held the network.)"""
    import gc
    import weakref

    netcli.build(CFG / f"{config}.yaml", seed=0)  # the first call's imports may leave cycles of their own (torch.fx)
    gc.collect()
    gc.disable()
    try:
        net = netcli.build(CFG / f"{config}.yaml", seed=0)
        hand = weakref.ref(net), weakref.ref(next(net.parameters()))
        del net
        assert [ref() is None for ref in hand] == [True, True]
    finally:
        gc.enable()


GC_STATE = """
import gc, sys, torch, netcli
try:
    netcli.build({"model": [{"Linear": [4, "x"]}]})  # the first call fails: the collector is back on all the same
except netcli.SpecError:
    pass
states = [gc.isenabled()]
gc.disable()
netcli.build(sys.argv[1], seed=0)
states.append(gc.isenabled())  # a user who turned it off keeps it off
gc.enable()
netcli.build(sys.argv[1], seed=0)
states.append(gc.isenabled())
print(states)
"""


def test_the_first_call_leaves_the_garbage_collector_as_the_user_set_it():
    r = subprocess.run([PY, "-c", GC_STATE, str(CFG / "resnet18.yaml")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[0] == "[True, False, True]"
