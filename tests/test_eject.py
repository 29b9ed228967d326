"""`netcli code` (SPEC 1.7): the written module builds what `netcli build` builds, and a reviewer accepts it.

Every shipped config is written out, imported from its file and compared with
build_model: the same print, state_dict keys, seeded values (default path) and
outputs; the file is ruff-clean, imports only torch (and collections/math), and
writing it twice gives the same bytes.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import CONFIGS, ROOT
from netcli.app.eject import eject
from netcli.builder.validate import load_spec
from netcli.init.engine import build_model

ALLOWED_IMPORTS = {"torch", "torch.nn", "torch.nn.functional", "collections", "math"}
RUFF = [sys.executable, "-m", "ruff"]
SEEDS = [0, 1234]


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_and_import(text: str, folder: Path, name: str):
    path = folder / f"{name}.py"
    path.write_text(text)
    return path, _import(path, f"ejected_{name}")


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda p: p.stem)
def ejected(request, tmp_path_factory):
    """(config, loaded spec, file, imported module) for one shipped config."""
    config = request.param
    loaded = load_spec(str(config))
    text = eject(loaded, spec_args=f"configs/{config.name}")
    path, module = write_and_import(text, tmp_path_factory.mktemp("code"), f"{config.stem}_model")
    return config, loaded, path, module


def _netcli(config: Path, seed: int):
    return build_model(load_spec(str(config)), seed=seed).net


def test_print_and_keys_match_netcli_build(ejected):
    config, _, _, module = ejected
    ours, theirs = module.build(0), _netcli(config, 0)
    assert str(ours) == str(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("seed", SEEDS)
def test_values_match_netcli_build_under_the_same_seed(ejected, seed):
    config, _, _, module = ejected
    ours, theirs = module.build(seed).state_dict(), _netcli(config, seed).state_dict()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    theirs_net, ours_net = _netcli(config, seed), module.build(seed)
    assert [p.requires_grad for p in ours_net.parameters()] == [p.requires_grad for p in theirs_net.parameters()]


def test_outputs_match_on_the_example_input(ejected):
    from netcli.io.inputs import call, make_input
    config, loaded, _, module = ejected
    ours, theirs = module.build(7).eval(), _netcli(config, 7).eval()
    torch.manual_seed(3)
    x = make_input(None, loaded.spec.input, torch.device("cpu"))  # a tuple for a forward of several inputs
    with torch.no_grad():
        _assert_same(call(ours, x), call(theirs, x))


def _assert_same(a, b):
    if isinstance(b, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)


def test_the_file_is_ruff_clean(ejected):
    assert_ruff_clean(ejected[2])


def assert_ruff_clean(path: Path):
    check = subprocess.run([*RUFF, "check", "--isolated", "--no-cache", "--select", "E,F,W,I,B,UP", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([*RUFF, "format", "--isolated", "--no-cache", "--check", "--diff", str(path)],
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_the_file_imports_only_torch_collections_and_math(ejected):
    _, _, path, _ = ejected
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= ALLOWED_IMPORTS, imported
    text = path.read_text()
    assert "pickle" not in text and "import netcli" not in text


def test_code_twice_gives_the_same_bytes(ejected, run_cli, tmp_path):
    config = ejected[0]
    outs = []
    for n in range(2):
        out = tmp_path / f"model{n}.py"
        result = run_cli("code", config, "-o", out)
        assert result.code == 0, result.err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    printed = run_cli("code", config)
    assert printed.code == 0 and printed.out.encode() == outs[0]


def test_code_takes_seed_and_rules_and_keeps_its_spec(run_cli, tmp_path, root):
    spec = tmp_path / "mlp.yaml"
    spec.write_text((root / "configs" / "mlp.yaml").read_text())
    refused = run_cli("code", spec, "-o", spec)
    assert refused.code == 2 and "refusing to overwrite" in refused.err
    assert spec.read_text() == (root / "configs" / "mlp.yaml").read_text()
    out = tmp_path / "mlp_model.py"
    rules = ["normal(std=0.01):Linear", "zeros:*.bias"]
    result = run_cli("code", spec, "--seed", "5", *[a for r in rules for a in ("--rule", r)], "-o", out)
    assert result.code == 0, result.err
    module = _import(out, "ejected_mlp_seed")
    ours, theirs = module.build(), build_model(load_spec(str(spec)), seed=5, rules=rules).net  # build's default seed
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    said = " ".join(out.read_text().split())  # the docstring says how the file was made (wrapped)
    assert f"netcli code {spec} --rule 'normal(std=0.01):Linear' --rule 'zeros:*.bias' --seed 5" in said


# --- specs written for these tests --------------------------------------------------------


def _roundtrip(write_spec, tmp_path, text: str, seeds=(0, 1234)):
    """Write the spec, eject it, and check print, keys, values and outputs against build_model."""
    path = write_spec(textwrap.dedent(text))
    loaded = load_spec(str(path))
    code = eject(loaded, spec_args=path.name)
    written, module = write_and_import(code, tmp_path, f"m_{abs(hash(text)) % 10**8}")
    assert_ruff_clean(written)
    for seed in seeds:
        ours, theirs = module.build(seed), build_model(load_spec(str(path)), seed=seed).net
        assert str(ours) == str(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), (seed, key)
        if loaded.spec.input is not None:
            x = torch.rand(*loaded.spec.input)
            assert torch.equal(ours.eval()(x), theirs.eval()(x))
    return code


def test_init_rules_become_torch_init_calls_in_netcli_order(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [2, 4]
        vars: {hidden: 8}
        blocks:
          block1: [{Linear: [4, "${hidden}"]}, ReLU, {Linear: ["${hidden}", 4]}, ReLU]
          block2: {use: block1, repeat: 4, names: "block {i}"}
        model:
          - use: block2
          - Linear: [4, 1]
        init:
          - "xavier:0"
          - "const42:1"
          - "normal(std=0.01):Linear"
          - "zeros:*.bias"
          - "custom:0.block 1"
          - "default:0.block 2.0"
          - {init: uniform, args: {a: -1, b: 1}, target: "0.block 3", params: all}
          - "kaiming_normal(mode='fan_out'):*"
        """)
    assert "nn.init.xavier_uniform_(" in code and "nn.init.constant_(net[1].weight, 42)" in code
    assert "def my_init(tensor" in code and ".reset_parameters()" in code


def test_refs_are_one_object_and_factories_take_them(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [2, 8]
        blocks:
          tied: {Linear: [8, 8]}
          pair: [{ref: tied}, ReLU, {ref: tied}]
        model:
          - use: pair
          - {use: pair, frozen: true}
          - {ref: tied, repeat: 2}
          - Linear: [8, 1]
        """)
    assert "def pair(tied):" in code and "tied = nn.Linear(8, 8)" in code


def test_inferred_sizes_that_differ_between_uses_become_factory_arguments(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [2, 4]
        blocks:
          dense: [{Linear: 8}, ReLU]
        model:
          - use: dense
          - use: dense
          - {Linear: 6, repeat: 3}
          - Linear: 1
        """)
    assert "def dense(in_features):" in code and "dense(4)" in code and "dense(8)" in code


def test_names_options_and_spelled_sequentials(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [3, 20]
        model:
          - {Linear: [20, 16], name: first}
          - Sequential:
              "hidden layer": {Linear: [16, 16]}
              act: {ReLU: {inplace: true}}
          - {Sequential: [{Linear: [16, 4]}, Tanh], name: head}
          - {Dropout: 0.0}
        """)
    assert 'OrderedDict(' in code and '("hidden layer", nn.Linear(16, 16))' in code


def test_a_device_spec_builds_on_the_cpu_where_there_is_no_gpu(write_spec, tmp_path):
    _roundtrip(write_spec, tmp_path, """
        input: [2, 20]
        device: auto
        model:
          - Sequential: [{Linear: [20, 32]}, ReLU]
            device: auto:1
          - Linear: [32, 10]
          - {Linear: [10, 10], device: cpu}
        """)


def test_custom_blocks_become_classes_with_their_params(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [2, 3, 8, 8]
        blocks:
          Unit:
            params: [planes, {stride: 1}]
            children:
              conv: {Conv2d: {out_channels: "${planes}", kernel_size: 3, stride: "${stride}", padding: 1}}
              bn: BatchNorm2d
              act: {ReLU: {inplace: true}}
            forward: |
              return act(bn(conv(x)))
          Stack:
            params: {n: 2, width: 4}
            children:
              body: {use: Unit, with: {planes: "${width}"}, repeat: "${n}"}
          Plain:
            class: Head
            children:
              pool: {AdaptiveAvgPool2d: [[1, 1]]}
              "0": Flatten
              fc: {Linear: 5}
          tied: {Conv2d: [6, 6, 1]}
        model:
          - {use: Unit, with: {planes: 6}}
          - {use: Unit, with: {planes: 6, stride: 2}}
          - {ref: tied}
          - {ref: tied}
          - {use: Stack, with: {n: 3, width: 6}}
          - {use: Stack}
          - class: Mixer
            params: {k: 3}
            children:
              a: {Conv2d: {out_channels: 4, kernel_size: "${k}", padding: 1}}
              b: {Conv2d: {out_channels: 4, kernel_size: 1}, device: cpu}
            forward: |
              return a(x) + b(x)
          - use: Plain
        init:
          - "zeros:Unit"
          - "normal(std=0.02):Mixer"
        """)
    # params are __init__ arguments (a required one first), ${param} is the argument, a size inferred per
    # use is the param it equals (planes) or an argument of its own (in_channels)
    assert "def __init__(self, planes, stride=1, in_channels=3):" in code
    assert "self.bn = nn.BatchNorm2d(planes)" in code and "stride=stride" in code
    assert "Unit(planes=6, stride=2, in_channels=6)" in code
    assert "*(Unit(planes=width, in_channels=6) for _ in range(n))" in code
    # a block without forward is a Sequential of its class; a child named "0" is added by name
    assert "class Head(nn.Sequential):" in code and 'self.add_module("0", nn.Flatten())' in code
    # Stack's two uses build other children: a second class that prints as Stack
    assert "class Stack_2(nn.Sequential):" in code and 'return "Stack"' in code
    # a child on its own device: inputs moved per child, as the builder links devices
    assert 'a.register_forward_pre_hook(move_inputs_to("cpu"))' in code


def test_a_block_written_out_twice_differently_keeps_one_print_name(write_spec, tmp_path):
    code = _roundtrip(write_spec, tmp_path, """
        input: [2, 8]
        blocks:
          Pair:
            class: Twin
            params: {width: 8}
            children:
              fc: {Linear: ["${width}", "${width}"]}
            forward: |
              return relu(fc(x))
          Twin:
            children:
              fc: {Linear: [8, 8]}
              out: {Linear: [8, 8]}
            forward: |
              return out(fc(x)) - x
        model:
          - {use: Pair}
          - {use: Twin}
          - {use: Pair, with: {width: 8}}
          - {ref: Twin}
          - {ref: Twin}
        """)
    assert "class Twin(nn.Module):" in code and "class Pair(nn.Module):" in code
    assert "twin = Twin()" in code  # the shared block, created first, used twice
    assert "def _get_name(self):" in code and "F.relu(self.fc(x))" in code


def test_a_type_that_cannot_be_imported_is_named_in_the_error(tmp_path):
    (tmp_path / "hidden_plugin.py").write_text(textwrap.dedent("""
        from torch import nn
        import netcli

        def _make():
            class Hidden(nn.Identity):
                pass
            return Hidden

        netcli.register_block(_make(), name="Hidden")
        """))
    spec = tmp_path / "spec.yaml"
    spec.write_text("plugins: [hidden_plugin]\nmodel:\n  - Linear: [4, 4]\n  - Hidden\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "netcli", "code", str(spec)], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{spec}:4:5: model[1].Hidden: cannot write 'Hidden' as code" in proc.stderr
    assert "inside a function" in proc.stderr and "Traceback" not in proc.stderr
    # an initializer the file cannot import is named too, at its rule
    (tmp_path / "hidden_init.py").write_text(textwrap.dedent("""
        import netcli
        netcli.register_init(lambda tensor: tensor.zero_(), name="hidden_zero")
        """))
    spec.write_text("plugins: [hidden_init]\nmodel: [{Linear: [4, 4]}]\ninit: ['hidden_zero:0']\n")
    proc = subprocess.run([sys.executable, "-m", "netcli", "code", str(spec)], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "cannot write the initializer 'hidden_zero' as code" in proc.stderr, proc.stderr
    assert f"{spec}:3:8: init[0]" in proc.stderr and "Traceback" not in proc.stderr


def test_plugin_types_are_imported_from_their_module(tmp_path):
    src = ROOT / "examples" / "netcli-plugin-example" / "src"
    spec = tmp_path / "spec.yaml"
    spec.write_text("plugins: [netcli_plugin_example]\ninput: [3, 4]\n"
                    "model: [{Linear: [4, 8]}, ReLU, {Scale: 0.5}, {Linear: [8, 2]}]\n"
                    "init: ['scaled_normal(gain=2.0):Linear']\n")
    out = tmp_path / "model.py"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "netcli", "code", str(spec), "-o", str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "from netcli_plugin_example import Scale  # netcli plugin type" in text
    check = f"""
import sys, torch
sys.path.insert(0, {str(src)!r})
import importlib.util
spec = importlib.util.spec_from_file_location("m", {str(out)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
from netcli.builder.validate import load_spec
from netcli.init.engine import build_model
ours, theirs = m.build(3), build_model(load_spec({str(spec)!r}), seed=3).net
assert str(ours) == str(theirs)
assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_chapter_classes_are_written_out_not_imported(ejected):
    config, _, path, _ = ejected
    text = path.read_text()
    if config.stem in {"chimera", "mylinear", "centered", "mlp_block"}:
        assert "class " in text and "(nn.Module):" in text
