"""The JSON Schema for editors: shipped configs pass, bad specs fail, the shipped file is current."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

from netcli.specfile import jsonschema as js  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SHIPPED = ROOT / "schema" / "netcli.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SHIPPED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, text: str) -> list:
    return list(validator.iter_errors(yaml.safe_load(text)))


def test_shipped_file_is_draft_2020_12(validator):
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert js.SCHEMA_FILE == SHIPPED


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(validator, config):
    found = errors(validator, config.read_text())
    assert not found, [f"{list(e.absolute_path)}: {e.message}" for e in found]


GOOD = {
    "vars in arguments": "vars: {h: 8}\nmodel: [{Linear: [4, '${h}']}, {Dropout: '${p}'}]",
    "inferred input size": "input: [2, 4]\nmodel: [{Linear: 10}, {Linear: [3]}, {LayerNorm: {}}]",
    "keywords": "model: {Conv2d: {in_channels: 3, out_channels: 8, kernel_size: [3, 3], bias: false}}",
    "named children": "model: {Sequential: {hidden: {Linear: [20, 256]}, act: ReLU}, name: net}",
    "use, ref, options": ("blocks: {b: [{Linear: [4, 4]}], s: {Linear: [4, 4]}}\n"
                          "model: [{use: b, repeat: 2, names: 'b {i}'}, {ref: s, frozen: true}]"),
    "init rules": "model: [{Linear: [4, 8]}]\ninit: ['xavier:0', {init: normal, args: {std: 0.01}, target: '*', params: all}]",
    "null value": "model: [{ReLU: null}, {MLP: []}]",
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_valid_specs_validate(validator, text):
    found = errors(validator, text)
    assert not found, [f"{list(e.absolute_path)}: {e.message}" for e in found]


# Each bad spec is refused by the schema at the path shown, and by netcli itself.
BAD = {
    "unknown type": ("model: [Lnear]", ["model", 0]),
    "misspelled argument": ("model: [{Linear: {in_features: 4, out_feature: 3}}]", ["model", 0, "Linear"]),
    "text for an int": ("model: [{Linear: [4, 'eight']}]", ["model", 0, "Linear"]),
    "too many arguments": ("model: [{Linear: [4, 8, true, null, null, 3]}]", ["model", 0, "Linear"]),
    "unknown top-level key": ("modle: [ReLU]\nmodel: [ReLU]", []),
    "unknown option": ("model: [{Linear: [4, 8], frozn: true}]", ["model", 0]),
    "two types in a node": ("model: [{Linear: [4, 8], ReLU: null}]", ["model", 0]),
    "repeat zero": ("model: [{Linear: [4, 4], repeat: 0}]", ["model", 0]),
    "bad params": ("model: [{Linear: [4, 8]}]\ninit: [{init: xavier, params: weights}]", ["init", 0]),
    "missing model": ("input: [2, 4]", []),
}


@pytest.mark.parametrize("text,path", BAD.values(), ids=BAD.keys())
def test_invalid_specs_are_caught(validator, text, path, write_spec, run_cli):
    found = errors(validator, text)
    assert found, "the schema accepted a bad spec"
    best = jsonschema.exceptions.best_match(found)
    assert list(best.absolute_path)[:len(path)] == path
    assert run_cli("validate", str(write_spec(text))).code == 2  # netcli agrees


def test_every_registered_type_has_its_arguments(validator):
    from netcli import registry
    registry.ensure_loaded()
    defs = validator.schema["$defs"]
    builtin = [n for n in registry.types if js.builtin_origin(registry.types.entry(n).origin)]
    assert set(defs["TypeName"]["enum"]) == set(builtin)
    for name in builtin:
        if name != "Sequential":
            assert f"layer.{name}" in defs and f"args.{name}" in defs, name
    linear = next(f for f in defs["args.Linear"]["anyOf"] if f.get("type") == "object")
    assert set(linear["properties"]) == {"in_features", "out_features", "bias", "device", "dtype"}
    assert linear["additionalProperties"] is False
    assert defs["param.Linear.in_features"]["anyOf"][0] == {"type": "integer"}
    assert defs["param.Linear.bias"]["default"] is True


def test_shipped_file_is_current():
    recorded = json.loads(SHIPPED.read_text())["x-netcli"]
    now = js.versions()
    fix = "regenerate it: python -m netcli.specfile.jsonschema"
    assert recorded["netcli"] == now["netcli"], fix
    if recorded["torch"] != now["torch"]:
        pytest.skip(f"shipped schema made with torch {recorded['torch']}, this is {now['torch']}")
    assert js.render(js.generate(builtin_only=True)) == SHIPPED.read_text(), fix


def test_generating_twice_gives_the_same_text():
    assert js.render(js.generate(builtin_only=True)) == js.render(js.generate(builtin_only=True))


def test_schema_command_prints_the_shipped_file_without_torch():
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write('torch imported' if 'torch' in sys.modules else 'no torch'))\n"
            "from netcli.cli.commands import main\nmain(['schema'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if not js.is_current(json.loads(SHIPPED.read_text())) or js.installed_plugins():
        pytest.skip("the shipped file is not current here, so netcli schema regenerates")
    assert proc.stdout == SHIPPED.read_text()
    assert proc.stderr.endswith("no torch")


def test_schema_command_regenerates_and_writes(run_cli, tmp_path):
    out = tmp_path / "s.json"
    result = run_cli("schema", "--regenerate", "-o", str(out))
    assert result.code == 0, result.err
    assert json.loads(out.read_text())["$defs"]["TypeName"]["enum"] == js.generate()["$defs"]["TypeName"]["enum"]


def test_stale_file_is_regenerated(monkeypatch, tmp_path):
    stale = json.loads(SHIPPED.read_text())
    stale["x-netcli"]["torch"] = "0.0.1"
    path = tmp_path / "netcli.schema.json"
    path.write_text(json.dumps(stale))
    monkeypatch.setattr(js, "SCHEMA_FILE", path)
    text, source = js.schema_text()
    assert source == "generated"
    assert json.loads(text)["x-netcli"]["torch"] == js.versions()["torch"]
