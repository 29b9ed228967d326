"""Commands on files: save, load, show, convert, export."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from netcli.cli import render
from netcli.cli.app import _notes, _open_spec, app
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
    import time

    from netcli.app import sharded
    from netcli.io.checkpoint_save import format_of, save_checkpoint

    loaded = _open_spec(spec, set_, plugin)
    if shard is not None or max_shard_size is not None:
        output = output or f"{loaded.name}/"
        if max_shard_size is not None and shard is None:
            from netcli.io.convert import target_of
            from netcli.io.shards import parse_size

            target_of(output, "hf", max_shard_size)
            parse_size(max_shard_size)
        built = sharded.build(
            loaded, shard=shard, device=device, seed=seed, rules=tuple(rule or ()), fast_init=fast_init
        )
        start = time.perf_counter()
        data = sharded.save(built, output, max_shard_size=max_shard_size)
        data.update(spec_sha256=loaded.sha256, seconds=round(time.perf_counter() - start, 4))
        if json_:
            render.print_json(data)
        else:
            from netcli.core.devices import human_bytes

            print(
                f"saved to {output}: {data['format']}, {len(data['files'])} file(s), {human_bytes(data['bytes'])}, "
                f"spec sha256 {loaded.sha256[:12]}"
            )
        return
    output = output or f"{loaded.name}.safetensors"
    format_of(output)  # refuse an unknown extension before building anything
    from netcli.core.atomic import refuse_overwriting_inputs

    refuse_overwriting_inputs(output, spec)
    built = sharded.build(loaded, shard=None, device=device, seed=seed, rules=tuple(rule or ()), fast_init=fast_init)
    start = time.perf_counter()
    report = save_checkpoint(built, output)
    seconds = time.perf_counter() - start
    if json_:
        render.print_json(
            {
                "file": output,
                "format": report.format,
                "tensors": report.tensors,
                "tied": report.tied,
                "bytes": report.nbytes,
                "spec_sha256": loaded.sha256,
                "seconds": round(seconds, 4),
                "rules": [t.as_json() for t in built.init_report],
            }
        )
    else:
        render.saved(report, loaded.sha256)


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
    from netcli.app import sharded

    built, report = sharded.restore(
        file, spec, shard=shard, sets=set_ or (), plugins=plugin or (), device=device, strict=strict
    )
    net = built.net
    net.eval()  # as net_clone.eval() after loading
    err = render.stderr()
    if report.spec_note:
        err.print(f"netcli: note: {report.spec_note}", markup=False)
    for line in report.skipped:
        err.print(f"netcli: skipped: {line}", markup=False)
    y = None
    if input_ is not None:
        import torch

        from netcli.io.inputs import make_input

        if seed is not None:
            torch.manual_seed(seed)
        from netcli.app.running import forward_inputs
        from netcli.io.inputs import call

        x = make_input(input_, built.loaded.spec.input, built.device, forward_inputs(built.loaded))
        with torch.no_grad():
            y = call(net, x)
    if json_:
        data = {**report.as_json(), "module": str(net)}
        if y is not None:
            data.update(render.output_json(y))  # {"output": ...}, or {"outputs": [...]} for several
        render.print_json(data)
        return
    print(net)
    if y is not None:
        print(y)


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
    from netcli.io.show import describe, render_description

    info = describe(file, values=values, limit=limit)
    if json_:
        render.print_json(info)
    else:
        render_description(info, render.stdout(), limit=limit)


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
    from netcli.core.atomic import refuse_overwriting_inputs
    from netcli.io.convert import convert as convert_files

    refuse_overwriting_inputs(output, source)
    report = convert_files(source, output, to=to, max_shard_size=max_shard_size)
    if json_:
        render.print_json(report)
    else:
        from netcli.core.devices import human_bytes

        shards = f" in {len(report['shards'])} shard(s)" if "shards" in report else ""
        print(
            f"wrote {output}: {report['format']}, {report['tensors']} tensors, {human_bytes(report['bytes'])}{shards}"
        )


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
    output: Annotated[str, typer.Option("--output", "-o", help="the file to write (.onnx, .pt, .pt2)")] = ...,
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
    from netcli.app.network import open_network
    from netcli.io.export import export_model, format_for
    from netcli.io.inputs import make_input

    fmt = format_for(format_.value if format_ is not None else None, output)
    from netcli.core.atomic import refuse_overwriting_inputs

    refuse_overwriting_inputs(
        output, source, spec, input_
    )  # `export model.pt -o model.pt` would replace the state_dict
    built = open_network(
        source, sets=set_ or (), plugins=plugin or (), device=device, seed=seed, spec=spec, notes=_notes()
    )
    result = export_model(built, make_input(input_, built.loaded.spec.input, built.device), fmt, output, static=static)
    if json_:
        render.print_json(result.as_json())
    else:
        render.exported(result, fmt)
