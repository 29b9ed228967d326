"""The typer application every command registers on, and what the commands share.

Nothing here imports torch at module level, so `netcli --help` starts fast;
each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(
    name="netcli",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    help="Build, inspect, initialize, run, save and load PyTorch networks described in YAML.",
)

_state = {"debug": bool(os.environ.get("NETCLI_DEBUG"))}


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks (or set NETCLI_DEBUG=1)")] = False):
    """Build, inspect, initialize, run, save and load PyTorch networks described in YAML."""
    if debug:
        _state["debug"] = True
