"""Specs that extend specs (issue 17): merge rules, --set last, located errors across files, budgets."""
from __future__ import annotations

import json
import time

import pytest
import torch
import yaml

from netcli.builder.validate import load_spec
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model
from netcli.specfile import compose as compose_mod
from netcli.specfile import merge as merge_mod
from netcli.specfile.yamldoc import MAX_BYTES

BASE = """\
# base.yaml
name: base
input: [2, 20]
seed: 3
vars: {hidden: 16, act: ReLU}
blocks:
  head: {Linear: {in_features: 16, out_features: 4}}
model:
  - Linear: [20, "${hidden}"]
  - ReLU
  - Linear: ["${hidden}", 16]
init:
  - "xavier:0"
"""


@pytest.fixture
def files(tmp_path):
    """Write name -> text files into tmp_path; return the path of the first."""
    def write(**texts: str):
        paths = []
        for name, text in texts.items():
            path = tmp_path / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            paths.append(path)
        return paths[0]
    return write


def data_of(path, *sets):
    return yaml.safe_load(load_spec(str(path), sets).resolved_text)


def problems_of(path, *sets) -> list[str]:
    with pytest.raises(NetcliError) as info:
        load_spec(str(path), sets)
    return [str(p) for p in info.value.problems]


# --- the merge ------------------------------------------------------------------

def test_mappings_merge_lists_replace_and_the_extending_file_wins(files):
    path = files(wide="extends: base.yaml\nvars: {hidden: 64}\nmodel: [{Linear: [20, 4]}]\n", base=BASE)
    data = data_of(path)
    assert data["vars"] == {"hidden": 64, "act": "ReLU"}  # merged key by key
    assert data["model"] == [{"Linear": [20, 4]}]  # a list replaces the base's whole
    assert data["input"] == [2, 20] and data["seed"] == 3 and data["init"] == ["xavier:0"]
    assert "extends" not in data


def test_append_with_plus_equals_and_delete_with_null(files):
    path = files(more="extends: base.yaml\nseed: ~\nmodel+=:\n  - ReLU\n  - {use: head}\ninit+=: ['zeros:*.bias']\n",
                 base=BASE)
    data = data_of(path)
    assert "seed" not in data
    assert data["model"] == [{"Linear": [20, 16]}, "ReLU", {"Linear": [16, 16]}, "ReLU", {"use": "head"}]
    assert data["init"] == ["xavier:0", "zeros:*.bias"]
    net = build_model(load_spec(str(path)), seed=0).net
    assert net(torch.rand(2, 20)).shape == (2, 4)


def test_vars_of_the_extension_fill_the_base(files):
    path = files(wide="extends: base.yaml\nvars: {hidden: 32}\n", base=BASE)
    net = build_model(load_spec(str(path))).net
    assert net[0].out_features == 32 and net[2].in_features == 32


def test_set_applies_last(files):
    path = files(wide="extends: base.yaml\nvars: {hidden: 32}\n", base=BASE)
    data = data_of(path, "vars.hidden=8", "model.2.Linear.1=5")
    assert data["vars"]["hidden"] == 8 and data["model"][0] == {"Linear": [20, 8]}
    assert data["model"][2] == {"Linear": [8, 5]}


def test_bases_in_order_later_wins_and_chains(files):
    path = files(top="extends: [a.yaml, b.yaml]\nvars: {z: 3}\nmodel: [ReLU]\n",
                 a="extends: c.yaml\nvars: {x: 1, y: 1}\n", b="vars: {y: 2}\n", c="vars: {w: 0, x: 0}\nseed: 5\n")
    data = data_of(path)
    assert data["vars"] == {"w": 0, "x": 1, "y": 2, "z": 3}
    assert data["seed"] == 5


def test_name_is_not_inherited(files):
    path = files(wide="extends: base.yaml\n", base=BASE)
    assert load_spec(str(path)).name == "wide"


def test_a_node_of_another_type_replaces_the_base_node(files):
    path = files(top="extends: base.yaml\nblocks:\n  head: {Conv1d: [16, 4, 1]}\n", base=BASE)
    assert data_of(path)["blocks"]["head"] == {"Conv1d": [16, 4, 1]}
    path = files(top2="extends: base.yaml\nblocks:\n  head: {Linear: {out_features: 7}, frozen: true}\n", base=BASE)
    assert data_of(path)["blocks"]["head"] == {"Linear": {"in_features": 16, "out_features": 7}, "frozen": True}


def test_a_spec_without_extends_is_unchanged(root):
    loaded = load_spec(str(root / "configs/mlp.yaml"))
    assert loaded.doc.sources == {} and yaml.safe_load(loaded.resolved_text)["model"][0] == {"Linear": [20, 256]}


# --- the checkpoint embeds the resolved spec ----------------------------------------

def test_checkpoint_embeds_the_merged_spec(files, tmp_path, run_cli):
    path = files(**{"sub/wide": "extends: ../base.yaml\nvars: {hidden: 8}\n"}, base=BASE)
    out = tmp_path / "elsewhere" / "net.safetensors"
    out.parent.mkdir()
    assert run_cli("save", path, "-o", out).code == 0
    (tmp_path / "base.yaml").unlink()  # the checkpoint needs no file beside it
    info = json.loads(run_cli("show", out, "--json").out)
    embedded = json.dumps(info)
    assert "extends" not in embedded and "base.yaml" not in embedded
    loaded = run_cli("load", out)
    assert loaded.code == 0, loaded.err
    assert "Linear(in_features=20, out_features=8, bias=True)" in loaded.out


def test_resolved_text_is_self_contained(files):
    path = files(wide="extends: base.yaml\nmodel+=: [ReLU]\n", base=BASE)
    loaded = load_spec(str(path))
    again = load_spec_from_text(loaded.resolved_text)
    assert yaml.safe_load(again.resolved_text) == yaml.safe_load(loaded.resolved_text)


def load_spec_from_text(text):
    from netcli.builder.validate import load_spec_text
    return load_spec_text(text, "<embedded>")


# --- errors point where the value was written -------------------------------------

def test_error_in_the_base_points_into_the_base(files, run_cli):
    base = BASE.replace("  - ReLU\n", "  - Relu\n")
    path = files(wide="extends: base.yaml\nvars: {hidden: 8}\n", base=base)
    result = run_cli("validate", path)
    assert result.code == 2 and "Traceback" not in result.err
    base_path = path.parent / "base.yaml"
    assert f"{base_path}:10:5: model[1]: unknown type 'Relu'" in result.err
    assert "  10 |   - Relu" in result.err  # the excerpt is the base's line


def test_error_in_the_extension_points_into_the_extension(files):
    path = files(wide="extends: base.yaml\nmodel+=:\n  - {Linear: {in_features: 16, out_feature: 3}}\n", base=BASE)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:3:32: model[3].Linear: unknown argument 'out_feature'")


def test_a_variable_used_in_the_base_and_set_in_the_extension(files):
    path = files(wide="extends: base.yaml\nvars: {hidden: abc}\n", base=BASE)
    problems = problems_of(path)  # where ${hidden} is used: in the base
    assert problems[0].startswith(f"{path.parent / 'base.yaml'}:9:18: model[0].Linear: argument 'out_features'")


@pytest.mark.parametrize("texts, where, message", [
    ({"a": "extends: b.yaml\nmodel: [ReLU]\n", "b": "extends: [a.yaml]\n"}, "b.yaml:1:11", "extends forms a cycle"),
    ({"a": "extends: a.yaml\nmodel: [ReLU]\n"}, "a.yaml:1:10", "extends forms a cycle"),
    ({"a": "model: [ReLU]\nextends: [nope.yaml]\n"}, "a.yaml:2:11", "no such file"),
    ({"a": "extends: 3\nmodel: [ReLU]\n"}, "a.yaml:1:10", "extends names a base spec file"),
    ({"a": "extends: []\nmodel: [ReLU]\n"}, "a.yaml:1:10", "extends names a base spec file"),
    ({"a": "extends: sub\nmodel: [ReLU]\n", "sub/x": "model: [ReLU]\n"}, "a.yaml:1:10", "is a folder"),
    ({"a": "extends: b.yaml\nmodel: [ReLU]\n", "b": "- ReLU\n"}, "b.yaml: ", "a base spec is a mapping"),
    ({"a": "extends: b.yaml\nmodel: [ReLU]\n", "b": "model: [ReLU\n"}, "b.yaml:", "invalid YAML"),
    ({"a": "extends: b.yaml\nmodel+=: ReLU\n", "b": "model: [ReLU]\n"}, "a.yaml:2:1", "appends a list"),
    ({"a": "extends: b.yaml\nvars+=: [1]\nmodel: [ReLU]\n", "b": "vars: {x: 1}\n"}, "a.yaml:2:1",
     "the base's 'vars' is not one"),
    ({"a": "extends: b.yaml\nmodel: [ReLU]\nmodel+=: [ReLU]\n", "b": "model: [ReLU]\n"}, "a.yaml:3:1",
     "are both written here"),
    ({"a": "model+=: [ReLU]\n"}, "a.yaml:1:1", "unknown top-level key 'model+='"),
])
def test_located_errors(files, run_cli, texts, where, message):
    path = files(**texts)
    for command in ("validate", "build"):
        result = run_cli(command, path)
        assert result.code == 2, result.err
        assert "Traceback" not in result.err
        assert f"{path.parent}/{where}" in result.err and message in result.err, result.err


def test_extends_cannot_be_set_on_the_command_line(files, run_cli):
    path = files(wide="extends: base.yaml\n", base=BASE)
    result = run_cli("validate", path, "--set", "extends=other.yaml")
    assert result.code == 2 and result.err.startswith("--set extends=other.yaml: extends: 'extends' is resolved")


# --- budgets hold across files --------------------------------------------------------

def test_size_budget_counts_every_file(files, run_cli):
    half = "model: [ReLU]\n" + "# padding\n" * (MAX_BYTES // 10 // 2 + 10)
    path = files(a="extends: b.yaml\n" + "# padding\n" * (MAX_BYTES // 10 // 2 + 10), b=half)
    result = run_cli("validate", path)
    assert result.code == 2 and "larger than 1024 KiB together" in result.err and f"{path}:1:10" in result.err


def test_file_budget_stops_a_diamond_explosion(files, run_cli):
    # each level extends the next twice: 2**20 reads without a budget
    texts = {f"l{i}": f"extends: [l{i + 1}.yaml, l{i + 1}.yaml]\n" for i in range(20)}
    texts["l20"] = "model: [ReLU]\n"
    path = files(**texts)
    start = time.perf_counter()
    result = run_cli("validate", path)
    assert time.perf_counter() - start < 5
    assert result.code == 2 and f"more than {compose_mod.MAX_FILES} files" in result.err


def test_value_budget_holds_across_files(files, run_cli, monkeypatch):
    monkeypatch.setattr(merge_mod, "MAX_NODES", 50)  # the merged document's values are counted as they merge
    path = files(a="extends: b.yaml\nvars: {" + ", ".join(f"a{i}: {i}" for i in range(30)) + "}\nmodel: [ReLU]\n",
                 b="init: [" + ", ".join("'zeros:*'" for _ in range(30)) + "]\n")
    result = run_cli("validate", path)
    assert result.code == 2 and "merge to more than 50 values" in result.err


def test_depth_limit_holds_in_a_base(files, run_cli):
    path = files(a="extends: b.yaml\n", b="model: " + "[" * 70 + "ReLU" + "]" * 70 + "\n")
    result = run_cli("validate", path)
    assert result.code == 2 and "nesting deeper than 64" in result.err and "b.yaml:" in result.err


# --- the shipped variant ----------------------------------------------------------

def test_mlp_wide_extends_mlp(root, run_cli):
    loaded = load_spec(str(root / "configs/mlp_wide.yaml"))
    assert loaded.name == "mlp_wide" and loaded.spec.input is not None
    assert loaded.locate(("input",)).source.endswith("configs/mlp.yaml")  # inherited from mlp.yaml
    result = run_cli("build", root / "configs/mlp_wide.yaml", "--set", "vars.width=64", "--print")
    assert "Linear(in_features=20, out_features=64, bias=True)" in result.out


def test_error_inside_a_forward_written_in_the_base(files, root):
    """A custom block's forward text lives in the base: the column and line are counted in the base's text."""
    base_text = (root / "configs/resnet18.yaml").read_text()
    broken = base_text.replace("out = bn2(conv2(out))", "out = bn2(conv3(out))", 1)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "conv3" in text)
    path = files(net="extends: resnet18.yaml\nvars: {num_classes: 10}\n", resnet18=broken)
    problems = problems_of(path)
    assert problems[0].startswith(f"{path.parent / 'resnet18.yaml'}:{line}:17: blocks.BasicBlock.forward: "
                                  "unknown name 'conv3'"), problems


def test_resnet34_extends_resnet18(root):
    loaded = load_spec(str(root / "configs/resnet34.yaml"))
    data = yaml.safe_load(loaded.resolved_text)
    assert "extends" not in data and list(data["model"]["children"]) == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert [len(data["model"]["children"][f"layer{i}"]) for i in range(1, 5)] == [3, 4, 6, 3]
    assert loaded.locate(("model", "forward")).source.endswith("configs/resnet18.yaml")
