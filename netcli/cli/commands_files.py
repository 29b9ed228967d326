"""Commands on files: save, load, show, convert, export."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from netcli.app.options import Building, Reading
from netcli.cli import render
from netcli.cli.app import app
from netcli.cli.dist_options import MaxShardSizeOpt, NprocOpt, ShardOpt
from netcli.cli.options import (
    DeviceOpt,
    FastInitOpt,
    InputOpt,
    InputSeedOpt,
    JsonOpt,
    PluginOpt,
    RuleOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
)
from netcli.cli.render_show import render_description


@app.command()
def save(
    spec: SpecArg = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="FILE: .safetensors (default, keeps the spec) | .pt | .pth | .params (a plain state_dict)",
            show_default=False,
        ),
    ] = None,
    rule: RuleOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
    fast_init: FastInitOpt = False,
    shard: ShardOpt = None,
    nproc: NprocOpt = None,  # taken by cli.commands._launch_ranks; 1 runs here
    max_shard_size: MaxShardSizeOpt = None,
):
    """Build, initialize (the spec's init:, then --rule) and write the parameters to FILE, atomically.

    With --shard fsdp, -o DIR/ is a torch.distributed.checkpoint folder written by every rank;
    with --max-shard-size, -o DIR/ is the Hugging Face sharded layout.
    """
    from netcli.app.saving import save_network

    saved = save_network(
        spec,
        output,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed, rule, fast_init, shard),
        max_shard_size=max_shard_size,
    )
    render.result(saved, render.saved, as_json=json_)


@app.command()
def load(
    file: Annotated[str, typer.Argument(help="a checkpoint: .safetensors (with its spec inside) or a torch file")],
    spec: Annotated[
        str | None,
        typer.Argument(help="the spec to rebuild (default: the one saved inside FILE)", show_default=False),
    ] = None,
    input_: InputOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict/--no-strict", help="--no-strict loads the keys that fit and lists the ones it skipped"),
    ] = True,
    set_: SetOpt = None,
    seed: InputSeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
    shard: ShardOpt = None,
    nproc: NprocOpt = None,  # taken by cli.commands._launch_ranks; 1 runs here
):
    """Rebuild the network (from SPEC or the spec inside FILE), load the tensors, print it in eval mode.

    FILE may be a folder: the Hugging Face sharded layout or a DCP checkpoint (at any world size).
    """
    from netcli.app.reload import load_network

    reloaded = load_network(
        file,
        Reading.of(set_, plugin, render.notes()),
        Building.of(device, seed, shard=shard),
        spec=spec,
        strict=strict,
        inputs=input_,
    )
    render.loaded(reloaded, json_)


@app.command()
def show(
    file: Annotated[
        str, typer.Argument(help="a .safetensors file, or any file torch.save wrote (tensor, list, dict, state_dict)")
    ],
    values: Annotated[bool, typer.Option("--values", help="print the values of small tensors")] = False,
    limit: Annotated[int, typer.Option(help="with --values: the most values a tensor may have to be printed")] = 100,
    json_: JsonOpt = False,
):
    """List what a tensor file holds: names or indices, shapes, dtypes, bytes, total, and the embedded spec."""
    from netcli.app.files import describe_file

    info = describe_file(file, values=values, limit=limit)
    render.result(info, lambda i: render_description(i, render.stdout(), limit=limit), as_json=json_)


@app.command()
def convert(
    source: Annotated[
        str,
        typer.Argument(
            help="a .safetensors, an index layout (its folder or .index.json), a DCP folder, or a torch file"
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="FILE.safetensors | DIR/ (DCP, or the HF layout with --max-shard-size) | "
            "DIR/NAME.safetensors.index.json | FILE.pt",
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", help="safetensors | hf | dcp | torch (default: from -o)", show_default=False),
    ] = None,
    max_shard_size: MaxShardSizeOpt = None,
    json_: JsonOpt = False,
):
    """Convert a checkpoint between one .safetensors, the Hugging Face sharded layout, a DCP folder and .pt."""
    from netcli.app.files import convert_file

    report = convert_file(source, output, to=to, max_shard_size=max_shard_size)
    render.result(report, lambda r: render.converted(r, output), as_json=json_)


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    exported = "exported"


@app.command()
def export(
    source: Annotated[
        str | None,
        typer.Argument(
            help="a spec, or a checkpoint (.safetensors with its spec inside, .pt/.pth/.params with --spec)",
            show_default=False,
        ),
    ] = None,
    # `...`: typer's mark of a required option (it has no default, but follows arguments that have one)
    output: Annotated[str, typer.Option("--output", "-o", help="the file to write (.onnx, .pt, .pt2)")] = ...,  # type: ignore[assignment]
    format_: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="onnx (torch.onnx), torchscript (torch.jit), exported (torch.export); default: from -o's extension",
            show_default=False,
        ),
    ] = None,
    spec: Annotated[
        str | None, typer.Option("--spec", help="with a checkpoint: the spec to rebuild it from", show_default=False)
    ] = None,
    input_: Annotated[
        str | None,
        typer.Option(
            "--input", help="the example input: rand:2,20 | FILE (default: the spec's input:)", show_default=False
        ),
    ] = None,
    static: Annotated[
        bool, typer.Option("--static", help="fix the batch size to the example's (default: any batch size)")
    ] = False,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """Export the network for other software: ONNX, TorchScript or a torch.export program, run on the example input.

    The batch dimension stays dynamic (a program made on a batch of 2 runs a batch of 5) unless --static.
    """
    from netcli.app.exporting import export_network

    result = export_network(
        source,
        output,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed),
        fmt=format_.value if format_ is not None else None,
        spec=spec,
        input_=input_,
        static=static,
    )
    render.result(result, render.exported, as_json=json_)
