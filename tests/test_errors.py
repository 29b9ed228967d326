"""Bad specs: each gives exit 2, a FILE:LINE:COL location, a message with a hint, and no traceback."""
from __future__ import annotations

import re

import pytest

# (name, spec text, expected line:col, a regex the message must match)
BAD_SPECS = [
    ("unknown type", "model:\n  - Lineer: [4, 8]\n", "2:5", r"unknown type 'Lineer' \(did you mean 'Linear'\?\)"),
    ("unknown argument", "model:\n  - Linear: {in_features: 4, out_feature: 8}\n",
     "2:30", r"model\[0\]\.Linear: unknown argument 'out_feature' \(did you mean 'out_features'\?\)"),
    ("too many arguments", "model:\n  - ReLU: [1, 2, 3]\n", "2:18", r"too many positional arguments \(ReLU takes inplace=False\)"),
    ("missing argument", "model:\n  - Linear: [4]\n", "2:13", r"missing a required argument: 'out_features'"),
    ("wrong argument type", "model:\n  - Linear: [4, abc]\n", "2:17", r"argument 'out_features' must be int"),
    ("quoted number", "model:\n  - Linear: [4, \"8\"]\n", "2:17", r"must be int, not the text '8' \(write the value without quotes\)"),
    ("float for int", "model:\n  - Linear: [4, 8.5]\n", "2:17", r"argument 'out_features' must be int"),
    ("bad literal", "model:\n  - Conv2d: {in_channels: 1, out_channels: 2, kernel_size: 3, padding_mode: mirror}\n",
     "2:63", r"argument 'padding_mode' must be one of 'zeros', 'reflect', 'replicate', 'circular', not 'mirror'"),
    ("undefined use", "blocks:\n  block1: [ReLU]\nmodel:\n  - use: blok1\n", "4:10", r"'blok1' is not defined \(did you mean 'block1'\?\)"),
    ("undefined ref", "model:\n  - ref: shared\n", "2:10", r"'shared' is not defined \(define it under blocks:\)"),
    ("cyclic definitions", "blocks:\n  a: [{use: b}]\n  b: {use: a}\nmodel: {use: a}\n", "3:6", r"cycle: a -> b -> a"),
    ("self use", "blocks:\n  a: [ReLU, {use: a}]\nmodel: {use: a}\n", "2:13", r"cycle: a -> a"),
    ("unknown top-level key", "model: [ReLU]\nmodle: 1\n", "2:1", r"unknown top-level key 'modle' \(did you mean 'model'\?\)"),
    ("unknown option", "model:\n  - {Linear: [4, 8], nmae: x}\n", "2:22", r"unknown option 'nmae' \(did you mean 'name'\?\)"),
    ("two type keys", "model:\n  - {Linear: [4, 8], ReLU: null}\n", "2:5", r"exactly one type"),
    ("duplicate key", "model: [ReLU]\nseed: 1\nseed: 2\n", "3:1", r"the key 'seed' is written twice \(first at line 2\)"),
    ("duplicate kwarg", "model:\n  - Linear: {in_features: 4, in_features: 5, out_features: 2}\n", "2:30", r"written twice"),
    ("yaml syntax", "model: [ReLU\nseed: 1\n", "2:5", r"invalid YAML"),
    ("tab indentation", "model:\n\t- ReLU\n", "2:1", r"invalid YAML"),
    ("undefined variable", "vars: {hidden: 8}\nmodel:\n  - Linear: [4, \"${hiden}\"]\n", "3:17",
     r"undefined variable '\$\{hiden\}' \(did you mean 'hidden'\?\)"),
    ("bad device", "device: gpu\nmodel: [ReLU]\n", "1:9", r"'gpu' is not a device"),
    ("missing GPU", "model:\n  - Linear: [4, 8]\n    device: cuda:1\n", "3:13", r"not available.*\(use auto:1"),
    ("shape mismatch", "input: [2, 5]\nmodel:\n  - Linear: [4, 8]\n  - ReLU\n", "3:5",
     r"shapes stop fitting at block '0'.*\(its input has shape \[2, 5\]\)"),
    ("shape mismatch deep", "input: [2, 4]\nmodel:\n  - Linear: [4, 8]\n  - [ReLU, {Linear: [4, 1]}]\n", "4:12",
     r"shapes stop fitting at block '1\.1'"),
    ("missing model", "seed: 1\n", "1:1", r"missing required key 'model'"),
    ("empty file", "", None, r"the spec is empty"),
    ("not a mapping", "- ReLU\n", "1:1", r"a spec is a mapping"),
    ("bad node", "model:\n  - 42\n", "2:5", r"a node is a type name, a list or a mapping"),
    ("repeat zero", "model:\n  - {Linear: [4, 4], repeat: 0}\n", "2:22", r"greater than or equal to 1"),
    ("names without repeat", "model:\n  - {Linear: [4, 4], names: 'b {i}'}\n", "2:5", r"'names' only applies with 'repeat'"),
    ("names collide", "model:\n  - {ReLU: null, repeat: 2, names: same}\n", "2:36", r"gives the same name twice"),
    ("duplicate child names", "model:\n  - {ReLU: null, name: a}\n  - {Tanh: null, name: a}\n", "3:5", r"two children are named 'a'"),
    ("bad input", "input: [2, -1]\nmodel: [ReLU]\n", "1:12", r"greater than or equal to 0"),
    ("unknown dtype", "model:\n  - Linear: {in_features: 4, out_features: 2, dtype: float65}\n", "2:47", r"unknown dtype 'float65' \(did you mean 'float64'\?\)"),
    ("python tag", "model: !!python/object/apply:os.system ['touch pwned']\n", "1:8", r"tag .* is not allowed"),
    ("os.system as type", "model:\n  - os.system: [\"touch pwned\"]\n", "2:5", r"unknown type 'os.system'"),
    ("deep nesting", "model: " + "[" * 70 + "ReLU" + "]" * 70 + "\n", None, r"nesting deeper than 64"),
    ("bad plugin", "plugins: [no_such_plugin_xyz]\nmodel: [ReLU]\n", "1:11", r"plugin 'no_such_plugin_xyz' cannot be imported"),
]


@pytest.mark.parametrize("name,text,where,pattern", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
@pytest.mark.parametrize("command", ["validate", "build"])
def test_bad_spec_is_a_located_error(command, name, text, where, pattern, write_spec, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_spec(text)
    result = run_cli(command, path)
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    first = result.err.splitlines()[0]
    prefix = f"{path}:{where}: " if where else f"{path}"
    assert first.startswith(prefix), first
    assert re.search(pattern, result.err), result.err
    assert not (tmp_path / "pwned").exists()


def test_validate_reports_every_problem_of_a_file(write_spec, run_cli):
    path = write_spec("model:\n  - Lineer: [4, 8]\n  - Linear: {in_features: 4, out_feature: 8}\n  - use: nothing\n")
    result = run_cli("validate", path)
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.startswith(str(path))]
    assert len(lines) == 3, result.err
    assert [line.split(":")[1] for line in lines] == ["2", "3", "4"]


def test_validate_takes_several_files_and_fails_if_any_fails(write_spec, run_cli, root):
    bad = write_spec("model: [Nope]\n")
    result = run_cli("validate", root / "configs/mlp.yaml", bad)
    assert result.code == 2
    assert "OK" in result.out and "mlp.yaml" in result.out
    assert "unknown type 'Nope'" in result.err


def test_debug_shows_the_traceback(write_spec, tmp_path):
    import subprocess
    import sys
    path = write_spec("model: [Nope]\n")
    quiet = subprocess.run([sys.executable, "-m", "netcli", "build", str(path)], capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-m", "netcli", "--debug", "build", str(path)], capture_output=True, text=True)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "NetcliError" in loud.stderr


def test_billion_laughs_fails_fast(write_spec, run_cli):
    import time
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = write_spec("vars:\n" + "\n".join("  " + line for line in lines) + "\nmodel: [ReLU]\n")
    start = time.perf_counter()
    result = run_cli("validate", path)
    assert time.perf_counter() - start < 1.0
    assert result.code == 2 and "expands to more than" in result.err


def test_oversized_spec_is_refused(write_spec, run_cli):
    path = write_spec("model: [ReLU]\n" + "# padding\n" * 120_000)
    result = run_cli("validate", path)
    assert result.code == 2 and "larger than 1024 KiB" in result.err


def test_set_errors_are_located_at_the_option(run_cli, root):
    result = run_cli("build", root / "configs/mlp.yaml", "--set", "model.7.Linear.1=3")
    assert result.code == 2
    assert result.err.startswith("--set model.7.Linear.1=3: ")
    result = run_cli("build", root / "configs/mlp.yaml", "--set", "model.0.Linear.1=abc")
    assert result.code == 2 and result.err.startswith("--set model.0.Linear.1=abc: model[0].Linear")


def test_bad_device_option(run_cli, root):
    result = run_cli("build", root / "configs/mlp.yaml", "--device", "cuda:1")
    assert result.code == 2 and "auto:1" in result.err
