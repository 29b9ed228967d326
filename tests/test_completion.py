"""Shell completion: commands, options, choices, and registered names (without importing torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netcli.specfile import jsonschema

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def complete(run_cli, monkeypatch):
    """Return a function that asks netcli's bash completion for the words of a command line."""

    def ask(line: str) -> list[str]:
        words = line.split(" ")
        monkeypatch.setenv("_NETCLI_COMPLETE", "complete_bash")
        monkeypatch.setenv("COMP_WORDS", line)
        monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
        result = run_cli()
        assert result.code == 0, result.err
        return result.out.split()

    return ask


def test_commands_complete(complete):
    assert complete("netcli exp") == ["export"]
    assert {"build", "validate", "export", "schema", "types"} <= set(complete("netcli "))


def test_options_and_choices_complete(complete):
    assert complete("netcli export --fo") == ["--format"]
    assert complete("netcli export --format ") == ["onnx", "torchscript", "exported"]
    assert "--regenerate" in complete("netcli schema --")


def test_type_names_complete_from_the_registry(complete):
    from netcli import registry

    expected = [n for n in registry.list_types() if n.startswith("Conv")]
    assert expected and complete("netcli types Conv") == expected
    assert complete("netcli types FixedH") == ["FixedHiddenMLP"]


def test_rules_and_devices_complete(complete):
    assert complete("netcli init --rule xav") == ["xavier:", "xavier_normal:", "xavier_uniform:"]
    assert complete("netcli init --rule xavier:") == []
    assert complete("netcli build --device cu") == ["cuda", "cuda:0", "cuda:1"]


def test_a_tab_does_not_import_torch():
    if not jsonschema.is_current(jsonschema.shipped()) or jsonschema.installed_plugins():
        pytest.skip("the shipped schema is not current here: names come from the registry")
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('torch imported' if 'torch' in sys.modules else 'no torch'))\n"
        "from netcli.cli.commands import main\nmain()\n"
    )
    env = {**os.environ, "_NETCLI_COMPLETE": "complete_bash", "COMP_WORDS": "netcli types Lin", "COMP_CWORD": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.stdout.split() == ["Linear", "LinearCrossEntropyLoss"] or "Linear" in proc.stdout.split()
    assert proc.stderr.endswith("no torch")


def test_show_completion_prints_the_shell_script(run_cli, monkeypatch):
    # typer finds the user's shell in the process tree (shellingham): from a background job or CI there
    # may be none. The user here runs bash, whoever started the suite.
    import shellingham

    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    result = run_cli("--show-completion")
    assert result.code == 0
    assert "_NETCLI_COMPLETE=complete_bash" in result.out
    assert "complete -o default -F _netcli_completion netcli" in result.out
