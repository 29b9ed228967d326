"""The package's layers: imports point down only (the import-linter contract in pyproject.toml)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_point_down_the_layers():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_is_in_a_layer():
    """A module straight under netcli/ would sit outside the contract; only the package's entry points may."""
    loose = sorted(p.name for p in (ROOT / "netcli").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], loose


def test_the_package_is_ruff_clean_and_formatted():
    """The package meets the bar it sets for ejected code: ruff E,F,W,I,B,UP and ruff format."""
    import subprocess
    import sys
    check = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "netcli"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "netcli"], cwd=ROOT,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


# The pydantic models of the node kinds, and the kinds' tags.
NODE_CLASSES = {"LayerNode", "SequenceNode", "UseNode", "RefNode", "BlockNode", "TensorNode"}
NODE_KINDS = {"layer", "sequence", "use", "ref", "block", "tensor"}
# The one walker (specfile/tree.py: Walker.dispatch and the tree's helpers), and the models themselves.
KIND_MODULES = {"netcli/specfile/tree.py", "netcli/specfile/nodes.py", "netcli/specfile/schema.py"}


def _kind_checks(tree) -> list[int]:
    """Lines that tell node kinds apart: isinstance(x, <node class>) or `x.kind == "<kind>"` (any spelling)."""
    import ast

    def names(node) -> set[str]:  # yaml.SequenceNode is PyYAML's, not a spec node
        found = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id != "yaml"}
        return found | {
            n.attr
            for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and not (isinstance(n.value, ast.Name) and n.value.id == "yaml")
        }

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            if len(node.args) == 2 and names(node.args[1]) & NODE_CLASSES:
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            texts = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
            if texts & NODE_KINDS and ("kind" in names(node) or "kind" in texts):
                lines.append(node.lineno)
    return lines


def test_one_walker_tells_node_kinds_apart():
    """Only the spec walker (specfile/tree.py) dispatches on a node's kind: the builder, eject's writer, the size
    check and the registry checks are its clients, so a new kind of node (SPEC 1.8's forms) is taught in one place."""
    import ast

    found = {}
    for path in sorted((ROOT / "netcli").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("netcli/io/", "netcli/core/", "netcli/registry/")):
            continue  # below the spec's layer: a checkpoint's `kind` there, never a node's
        lines = _kind_checks(ast.parse(path.read_text(encoding="utf-8")))
        if lines and rel not in KIND_MODULES:
            found[rel] = lines
    assert found == {}, f"node kinds told apart outside the walker (use specfile/tree.py's Walker): {found}"
    walker = (ROOT / "netcli/specfile/tree.py").read_text(encoding="utf-8")
    assert len(_kind_checks(ast.parse(walker))) > 0  # the check finds what it looks for


def test_the_spec_walkers_clients():
    from netcli.app.eject.walk import Writer
    from netcli.builder.builder import Builder
    from netcli.builder.size_check import _Count
    from netcli.builder.validate import _NodeChecks
    from netcli.specfile.tree import Walker

    for client in (Builder, Writer, _Count, _NodeChecks):
        assert issubclass(client, Walker), client
        assert "dispatch" not in client.__dict__, client  # the kinds are told apart in Walker.dispatch alone


def test_the_cli_reaches_the_layers_below_only_through_the_app():
    """A thin command line: lint-imports (above) holds netcli.cli to netcli.app and netcli.core with a `forbidden`
    contract; this checks that the contract is there and names every layer under the app, so that deleting or
    narrowing it fails too."""
    import pytest

    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    forbidden = [c for c in contracts if c["type"] == "forbidden" and c["source_modules"] == ["netcli.cli"]]
    assert len(forbidden) == 1, forbidden
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    below_app = set(layers[layers.index("netcli.app") + 1 :]) - {"netcli.core"}
    assert set(forbidden[0]["forbidden_modules"]) == below_app


def test_the_package_type_checks(tmp_path):
    """mypy, as configured in pyproject.toml ([tool.mypy]: the package, pydantic's plugin), finds no error.

    A fresh cache each run, so the verdict never comes from a stale one."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
