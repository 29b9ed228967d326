"""Security: a spec, a --set or a tensor file can never run code or reach outside itself.

Each attack writes a canary file if it succeeds; every test checks the error
and that no canary exists. Types and initializers come only from the
registry, YAML is read with standard tags only, torch files only with
`weights_only=True`, plugins only by an explicit module name or entry point.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT

NETCLI = str(Path(sys.executable).parent / "netcli")


@pytest.fixture
def canary(tmp_path, monkeypatch) -> Path:
    """A module `netcli_canary` that writes a file when imported, importable from tmp_path."""
    marker = tmp_path / "PWNED"
    (tmp_path / "netcli_canary.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "def boom(*a, **k):\n"
        f"    open({str(marker)!r}, 'w').write('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("netcli_canary", None)
    yield marker
    sys.modules.pop("netcli_canary", None)


# --- types and initializers only from the registry --------------------------------

@pytest.mark.parametrize("type_name", [
    "os.system", "netcli_canary.boom", "builtins.eval", "torch.nn.Linear", "__import__", "eval",
    "Module", "nn.Linear", "torch.nn.modules.linear.Linear", "subprocess.Popen", "getattr",
])
def test_a_type_is_only_a_registered_name(run_cli, write_spec, canary, type_name):
    path = write_spec(f"model:\n  - {{'{type_name}': ['touch x']}}\n")
    for command in ("validate", "build"):
        result = run_cli(command, path)
        assert result.code == 2
        assert f"{path}:2:" in result.err and f"unknown type '{type_name}'" in result.err
    assert not canary.exists()
    assert "netcli_canary" not in sys.modules


@pytest.mark.parametrize("rule", [
    "os.system:0", "netcli_canary.boom:0", "eval:*", "__import__('netcli_canary'):0",
    "normal(std=__import__('netcli_canary')):0", "normal(std=open('x', 'w')):0", "constant((lambda: 1)()):*",
])
def test_an_initializer_is_only_a_registered_name(run_cli, write_spec, canary, rule):
    path = write_spec("model: [{Linear: [4, 2]}]\n")
    result = run_cli("init", path, "--rule", rule)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert not canary.exists()
    assert "netcli_canary" not in sys.modules


# --- safe YAML only ---------------------------------------------------------------

ATTACKS = [
    "!!python/object/apply:netcli_canary.boom []",
    "!!python/object/new:netcli_canary.boom []",
    "!!python/name:netcli_canary.boom",
    "!!python/module:netcli_canary",
    "!!python/object:netcli_canary.boom {}",
    "!custom [ReLU]",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch x']",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_python_tags_are_refused_in_the_file(run_cli, write_spec, canary, attack):
    path = write_spec(f"model: {attack}\n")
    result = run_cli("validate", path)
    assert result.code == 2
    assert f"{path}:1:8: the tag" in result.err and "is not allowed" in result.err
    assert not canary.exists()


@pytest.mark.parametrize("attack", ATTACKS)
def test_python_tags_are_refused_in_a_set_value(run_cli, canary, attack):
    result = run_cli("validate", str(ROOT / "configs" / "mlp.yaml"), "--set", f"model.0={attack}")
    assert result.code == 2
    assert result.err.startswith(f"--set model.0={attack}:1:1: the tag")
    assert not canary.exists()


# --- --set stays inside the document -------------------------------------------------

@pytest.mark.parametrize("path, ok", [
    ("__class__", False), ("model.__class__", False), ("__class__.__init__.__globals__.x", False),
    ("model.0.__dict__", False), ("model.0.Linear.__class__", False), ("/etc/passwd", False), ("../x", False),
    ("model..0", False), ("name.upper", False), ("model.-99", False), ("model.100000", False),
    ("vars.__class__.x", False),  # refused as a new variable nothing uses (issue 16, 23); a used one is fine:
    ("vars.__class__.x --set model.2.Linear.1=${__class__.x}", True),  # it is only a key of vars:
])
def test_set_cannot_reach_outside_the_spec(run_cli, path, ok):
    """A --set path names keys and indices of the YAML document; Python attributes are not reachable."""
    from netcli.specfile import schema
    from netcli.specfile import loading as spec
    before = (dict(vars(spec)), dict(vars(schema)), dict(vars(spec.Document)))
    path, _, more = path.partition(" --set ")
    result = run_cli("validate", str(ROOT / "configs" / "mlp.yaml"), "--set", f"{path}=1",
                     *(("--set", more) if more else ()))
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert result.code == (0 if ok else 2), result.err
    if not ok:  # refused by --set itself, or as an unknown key/option of the document it wrote
        assert result.err.startswith((f"--set {path}=1:", f"{ROOT / 'configs' / 'mlp.yaml'}:")), result.err
    assert (dict(vars(spec)), dict(vars(schema)), dict(vars(spec.Document))) == before


@settings(max_examples=int(os.environ.get("NETCLI_FUZZ_EXAMPLES", 200)), deadline=None, database=None)
@given(parts=st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["__class__", "__dict__", "0", "-1", "model",
                                                                      "vars", "Linear", "__globals__"])),
                      min_size=1, max_size=5),
       value=st.sampled_from(["1", "[1, 2]", "{a: 1}", "null", "ReLU"]))
def test_set_only_ever_changes_plain_data(parts, value):
    """Whatever the path, --set writes plain YAML data into the document and nowhere else."""
    from netcli.core.errors import NetcliError
    from netcli.specfile.overrides import apply_sets
    from netcli.specfile.yamldoc import parse_yaml
    text = (ROOT / "configs" / "rgnet.yaml").read_text()
    doc = parse_yaml(text, "rgnet.yaml")
    pristine = yaml.safe_load(text)
    try:
        apply_sets(doc, [".".join(parts) + "=" + value])
    except NetcliError as exc:
        assert all(str(p).startswith("--set ") for p in exc.problems)
        return

    def plain(x) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, (str, int, float, bool, type(None))) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return isinstance(x, (str, int, float, bool, type(None)))
    assert type(doc.data) is dict and plain(doc.data)
    assert yaml.safe_load(yaml.safe_dump(doc.data)) == doc.data  # still a YAML document
    changed = [k for k in set(doc.data) | set(pristine) if doc.data.get(k) != pristine.get(k)]
    assert len(changed) <= 1  # one top-level key at most: the one the path starts with


# --- plugins only by explicit name or entry point ---------------------------------

@pytest.mark.parametrize("name", ["../netcli_canary", "netcli_canary.py", "/tmp/netcli_canary", "netcli_canary:boom",
                                  "os;import netcli_canary", "", "netcli_canary boom"])
def test_a_plugin_is_a_module_name_not_a_path(run_cli, write_spec, canary, name):
    path = write_spec(f"plugins: [{name!r}]\nmodel: [ReLU]\n")
    result = run_cli("validate", path)
    assert result.code == 2
    assert f"{path}:1:" in result.err
    assert not canary.exists()


def test_a_spec_cannot_import_a_module_lying_beside_it(tmp_path):
    """The spec's folder (and the current folder) is not on the import path of the netcli command."""
    marker = tmp_path / "PWNED"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    (tmp_path / "spec.yaml").write_text("plugins: [evil]\nmodel: [ReLU]\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([NETCLI, "validate", "spec.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "spec.yaml:1:" in out.stderr and "plugin 'evil' cannot be imported" in out.stderr
    assert not marker.exists()


def test_an_explicit_plugin_is_imported(run_cli, write_spec, canary):
    """The contrast: a module named with --plugin is imported (that is what naming it means)."""
    result = run_cli("validate", write_spec("model: [ReLU]\n"), "--plugin", "netcli_canary")
    assert result.code == 0, result.err
    assert canary.read_text() == "imported"


# --- torch files: weights only --------------------------------------------------------

class Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("zipped", [True, False])
def test_a_pickle_that_would_run_code_is_never_run(tmp_path, run_cli, write_spec, zipped):
    import torch
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.ones(2, 4), "x": Evil(str(marker))}, evil,
               _use_new_zipfile_serialization=zipped)
    assert zipfile.is_zipfile(evil) == zipped
    spec = write_spec("input: [1, 4]\nmodel: [{Linear: [4, 2]}]\n")
    for args in (("show", evil), ("load", evil, spec), ("run", spec, "--checkpoint", evil),
                 ("run", spec, "--input", evil), ("inspect", evil)):
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert "Traceback" not in result.err
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # what a plain torch.load(weights_only=True) says
        torch.load(evil, weights_only=True)
    assert not marker.exists()
