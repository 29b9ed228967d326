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
