"""Start-up stays fast: `--help` of every command and `netcli schema` never import torch.

Each check runs a fresh interpreter, since this test process has torch loaded
already; `python -X importtime` lists every module the command imported.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from netcli.cli import commands

COMMANDS = [c.name or c.callback.__name__.rstrip("_") for c in commands.app.registered_commands]


def imported_modules(*args: str) -> list[str]:
    """Run `python -X importtime -m netcli ARGS`; return the modules it imported, in order."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "netcli", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    names = [line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "typer" in names  # the listing worked: the CLI's own imports are in it
    return names


def torch_modules(names: list[str]) -> list[str]:
    return [n for n in names if n == "torch" or n.startswith("torch.")]


def test_importing_the_commands_module_does_not_import_torch():
    code = "import sys, netcli.cli.commands; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_every_command_is_checked():
    assert {"build", "run", "init", "save", "load", "schema", "validate"} <= set(COMMANDS)


@pytest.mark.parametrize("args", [["--help"]] + [[name, "--help"] for name in COMMANDS], ids=" ".join)
def test_help_does_not_import_torch(args):
    assert torch_modules(imported_modules(*args)) == []


def test_schema_prints_the_shipped_schema_without_torch():
    assert torch_modules(imported_modules("schema")) == []


def test_the_check_would_see_torch():
    # `build` imports torch when it runs: the same listing must show it, or the tests above prove nothing
    assert "torch" in torch_modules(imported_modules("build", "--device", "meta"))


def test_show_of_a_safetensors_file_reads_only_its_header_without_torch(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np
    path = tmp_path / "w.safetensors"
    save_file({"weight": np.ones((3, 4), dtype=np.float32)}, str(path))
    assert torch_modules(imported_modules("show", str(path))) == []
