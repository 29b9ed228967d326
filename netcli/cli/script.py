"""The `netcli` console script: drop the implicit current folder from the import path, then run.

This module imports nothing outside netcli before `drop_implicit_cwd`, so a
`typer.py` or `yaml.py` in the current folder (reachable through an empty
PYTHONPATH entry) is never imported in place of the real one.
"""
from __future__ import annotations


def main() -> None:
    from netcli.core.safepath import drop_implicit_cwd
    drop_implicit_cwd(module_run=False)
    from netcli.cli.commands import main as run
    run()
