"""Commands around the network: code (eject), devices, types, schema, plot."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from netcli.app.options import Building, Reading
from netcli.cli import render
from netcli.cli.app import app
from netcli.cli.completion import complete_type
from netcli.cli.options import (
    DeviceOpt,
    JsonOpt,
    PluginOpt,
    RuleOpt,
    SeedOpt,
    SetOpt,
    SpecOrCheckpointArg,
)


@app.command()
def code(
    spec: SpecOrCheckpointArg = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="write the code to FILE (default: print it)", show_default=False),
    ] = None,
    rule: RuleOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
):
    """Write the network as plain PyTorch source: classes, nn.Sequential, and build(seed) with the init rules."""
    from netcli.app.exporting import write_network_code

    text = write_network_code(
        spec, Reading.of(set_, plugin, render.source_notes()), Building.of(device, seed, rule), output=output
    )
    if output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {output}: {text.count(chr(10))} lines of PyTorch; build() returns the network", file=sys.stderr)


@app.command()
def devices(json_: JsonOpt = False):
    """Show the CPU, every GPU (index, name, memory, capability) and what auto / auto:N resolve to."""
    from netcli.core.devices import list_devices

    render.result(list_devices(), render.devices, as_json=json_)


@app.command("types")
def types_(
    pattern: Annotated[
        str | None, typer.Argument(help="only names containing this text", autocompletion=complete_type)
    ] = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """List the registered types a spec may name, with where each comes from."""
    from netcli.app.registered import registered_types

    render.result(registered_types(pattern, plugin or ()), render.registered_types, as_json=json_)


@app.command()
def schema(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="write to FILE instead of stdout", show_default=False)
    ] = None,
    regenerate: Annotated[
        bool,
        typer.Option(
            "--regenerate", help="generate it from the registry (imports torch) instead of printing the shipped file"
        ),
    ] = False,
    plugin: PluginOpt = None,
):
    """Print the JSON Schema (draft 2020-12) of the spec language, for editors (yaml-language-server).

    Every registered type is in it with its arguments. The shipped
    schema/netcli.schema.json is printed while it matches this netcli and torch;
    plugins, --regenerate or other versions generate a fresh one.
    """
    from netcli.app.registered import schema_text

    text = schema_text(regenerate=regenerate, plugins=plugin or ())
    if output is None:
        sys.stdout.write(text)
    else:
        from netcli.core.atomic import atomic_write

        atomic_write(output, lambda p: p.write_text(text))


@app.command()
def plot(
    spec: SpecOrCheckpointArg = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="write to FILE: .svg, .png, .pdf (through Graphviz), .dot, .mmd (default: DOT text on stdout)",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="dot, mermaid (text, no extra dependency), svg, png, pdf (default: from -o's suffix)",
            show_default=False,
        ),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            min=0,
            help="draw blocks down to this depth (0: the network alone); deeper ones fold into one node",
            show_default=False,
        ),
    ] = None,
    block: Annotated[
        str | None,
        typer.Option("--block", help="draw only this block: layer1, 0.block 1", show_default=False),
    ] = None,
    set_: SetOpt = None,
    plugin: PluginOpt = None,
):
    """Draw the network: blocks with shapes and parameters, custom blocks' dataflow, ties, frozen and placed blocks.

    A checkpoint is drawn as the spec embedded in it. SVG, PNG and PDF need
    Graphviz (`pip install 'netcli[plot]'` and the system's graphviz package);
    DOT and Mermaid are written as text.
    """
    from netcli.app.plot import plot_to

    drawn, fmt = plot_to(
        spec, output, format_, reading=Reading.of(set_, plugin, render.source_notes()), depth=depth, block=block
    )
    if output is None:
        sys.stdout.write(drawn if isinstance(drawn, str) else drawn.decode())
    else:
        print(f"wrote {output} ({fmt})", file=sys.stderr)
