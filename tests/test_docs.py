"""docs/SPEC-LANGUAGE.md: every YAML example builds (or fails as it says), every command runs,
the forward language's lists are the ones the parser allows, and the README links only files a clone has."""
from __future__ import annotations

import re
import shlex

import pytest
import torch

from conftest import ROOT
from netcli.builder.forward_lang import _FUNCTIONAL, _TORCH, METHODS
from netcli.builder.shape_check import check_shapes
from netcli.builder.validate import load_spec
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model
from netcli.io.inputs import call, make_input

DOC = ROOT / "docs" / "SPEC-LANGUAGE.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def fences(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text()) if lang == kind]


YAML = fences("yaml")
COMMANDS = [line.strip() for body in fences("bash") for line in body.splitlines() if line.strip().startswith("netcli ")]


def test_the_doc_has_examples():
    assert len(YAML) >= 10 and len(COMMANDS) >= 4


@pytest.mark.parametrize("index", range(len(YAML)), ids=lambda i: YAML[i].splitlines()[0][:60])
def test_every_yaml_example(index, tmp_path):
    # a `# file: NAME` example is written for the next ones to use (extends:), and checked as a spec too
    for i, body in enumerate(YAML[:index]):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            (tmp_path / first[len("# file: "):].strip()).write_text(body)
    body = YAML[index]
    first = body.splitlines()[0]
    name = first[len("# file: "):].strip() if first.startswith("# file: ") else "example.yaml"
    path = tmp_path / name
    path.write_text(body)
    if first.startswith("# error: "):
        with pytest.raises(NetcliError) as caught:  # when the spec is read, its shapes checked (validate), or built
            loaded = load_spec(str(path))
            check_shapes(loaded)
            build_model(loaded, device="meta")
        assert re.search(first[len("# error: "):].strip(), str(caught.value)), str(caught.value)
        return
    loaded = load_spec(str(path))
    built = build_model(loaded, seed=0)
    if loaded.spec.input is not None:
        built.net.eval()
        with torch.no_grad():
            call(built.net, make_input(None, loaded.spec.input, "cpu"))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command(command, run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[1:]
    for i, arg in enumerate(args[:-1]):
        if arg in ("-o", "--output"):
            args[i + 1] = str(tmp_path / args[i + 1])
    result = run_cli(*args)
    assert result.code == 0, result.err


def _listed(after: str, until: str) -> set[str]:
    text = DOC.read_text()
    start = text.index(after)
    return set(re.findall(r"`([a-z_0-9]+)`", text[start:text.index(until, start)]))


def test_the_forward_language_lists_what_the_parser_allows():
    assert _listed("`torch`: `abs`", "`torch.nn.functional`:") >= set(_TORCH)
    assert _listed("`torch.nn.functional`:", "- these tensor methods") - {"dropout", "nn"} >= set(_FUNCTIONAL) - {"dropout"}
    assert _listed("- these tensor methods", "Nothing else") == set(METHODS)


def test_the_readme_links_only_files_a_clone_has():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), target
    assert "docs/SPEC-LANGUAGE.md" in readme
