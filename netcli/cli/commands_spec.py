"""`netcli spec MODULE:CALLABLE`: the spec of a network written in Python (the reverse of `netcli code`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from netcli.cli.app import app
from netcli.cli.options import JsonOpt


@app.command("spec")
def spec_(
    target: Annotated[
        str,
        typer.Argument(
            help="the Python callable (or module object) that returns the network: mypkg.models:resnet50 or "
            "path/to/model.py:build",
            show_default=False,
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="write the spec to FILE (default: print it)", show_default=False),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            help="also save the module's values to FILE (.safetensors, the spec embedded)",
            show_default=False,
        ),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            help="a keyword argument of the callable, NAME=VALUE (a YAML value); repeatable",
            show_default=False,
        ),
    ] = None,
    leaf: Annotated[
        list[str] | None,
        typer.Option(
            "--leaf",
            help="keep this class as a registered (plugin) type instead of a custom block; repeatable",
            show_default=False,
        ),
    ] = None,
    input_: Annotated[
        str | None,
        typer.Option(
            "--input", help="an example input shape for the spec's input: key, e.g. 2,3,224,224", show_default=False
        ),
    ] = None,
    json_: JsonOpt = False,
):
    """Write the spec of an existing PyTorch network: the module is imported because you named it here."""
    from netcli.app.codespec import write_spec
    from netcli.cli import render

    report = write_spec(target, args=arg or (), output=output, weights=weights, leaves=leaf or (), input_shape=input_)
    if json_:
        render.print_json({k: v for k, v in report.items() if k != "spec" or output is None})
        return
    if output is None:
        sys.stdout.write(report["spec"])
    else:
        lines = report["spec"].count("\n")
        print(f"wrote {output}: {lines} lines; netcli build {output} --print prints the same network", file=sys.stderr)
    if weights:
        print(
            f"wrote {weights}: {report['tensors']} tensors; netcli load {weights} gives the module back",
            file=sys.stderr,
        )
