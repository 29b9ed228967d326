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
