"""Shared fixtures: run the CLI in-process, find the shipped configs."""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import configuration as _hypothesis_configuration

# Hypothesis keeps its example database and caches under its home folder, `.hypothesis/` in the
# current folder by default: the checkout, or wherever the suite is started. A folder of this run's
# own keeps the checkout as it was (and a failing example is printed, not replayed from disk).
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="netcli-hypothesis-")
_hypothesis_configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(*args: str) -> Result:
    """Run `netcli ARGS` in this process through main(); return exit code, stdout, stderr."""
    from netcli.cli import commands

    out, err = io.StringIO(), io.StringIO()
    code = 0
    commands._state["debug"] = False
    with redirect_stdout(out), redirect_stderr(err):
        try:
            commands.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli():
    """Return a function that runs netcli in-process: run_cli("build", "x.yaml") -> Result."""
    return invoke


@pytest.fixture
def write_spec(tmp_path):
    """Return a function that writes YAML text to a file in tmp_path and returns its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def scoped_registry():
    """The registries, to which a test may add types and initializers; they are removed when it ends."""
    from netcli import registry

    registry.ensure_loaded()
    with registry.types.scoped(), registry.initializers.scoped():
        yield registry
