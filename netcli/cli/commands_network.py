"""Commands on a network: validate, build, run, inspect, init."""

from __future__ import annotations

from typing import Annotated

import typer

from netcli.app.options import Building, Reading
from netcli.cli import render, render_summary
from netcli.cli.app import app
from netcli.cli.dist_options import NprocOpt, ShardOpt
from netcli.cli.options import (
    DeviceOpt,
    EvalOpt,
    FastInitOpt,
    InputOpt,
    JsonOpt,
    PluginOpt,
    RuleOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    SpecOrCheckpointArg,
)


@app.command()
def validate(
    specs: Annotated[list[str] | None, typer.Argument(help="spec files", show_default=False)] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """Check each spec fully without running it: structure, types, arguments, definitions, shapes."""
    from netcli.app.validating import validate_spec

    notes = render.source_notes() if json_ else None  # as text, render.validation says which spec it checked
    targets: list[str | None] = list(specs) if specs else [None]  # None: load_spec finds the default spec
    results = [validate_spec(spec, set_ or (), plugin or (), device, notes) for spec in targets]
    render.result(results, render.validation, as_json=json_)
    raise typer.Exit(0 if all(r.ok for r in results) else 2)


@app.command()
def build(
    spec: SpecArg = None,
    print_: Annotated[bool, typer.Option("--print", help="print exactly what print(net) prints")] = False,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
    fast_init: FastInitOpt = False,
    shard: ShardOpt = None,
    nproc: NprocOpt = None,  # taken by cli.commands._launch_ranks; 1 runs here
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            min=0,
            help="show blocks down to this depth (0: the network alone); deeper ones are folded "
            "into their parents' counts",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="the table's columns, comma-separated: shape, params, param_mem, trainable, macs, flops, "
            "act_mem, device, or all",
            show_default=False,
        ),
    ] = None,
    backward: Annotated[
        bool, typer.Option("--backward", help="count forward+backward FLOPs (the backward of the output's sum)")
    ] = False,
):
    """Build the network; show per block its output shape, parameters, MACs/FLOPs and memory, and the totals."""
    from netcli.app.building import build_described

    result = build_described(
        spec,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed, fast_init=fast_init, shard=shard),
        summarize=not print_,
        columns=columns,
        depth=depth,
        backward=backward,
    )
    if print_:
        print(result.built.net)
        return
    render.result(result, render_summary.summary_table, as_json=json_)  # --json: the object netcli.summary returns


@app.command()
def run(
    spec: SpecArg = None,
    input_: InputOpt = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="write the output to FILE (.pt, .npy, .safetensors)", show_default=False),
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="load parameters from FILE first", show_default=False)] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
    fast_init: FastInitOpt = False,
    shard: ShardOpt = None,
    nproc: NprocOpt = None,  # taken by cli.commands._launch_ranks; 1 runs here
    eval_: EvalOpt = False,
):
    """Run a forward pass on the example input and print the output, like net(X)."""
    from netcli.app.running import run_spec

    y = run_spec(
        spec,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed, fast_init=fast_init, shard=shard),
        inputs=input_ or (),
        output=output,
        checkpoint=checkpoint,
        eval_mode=eval_,
    )
    render.output_tensor(y, json_)


@app.command("inspect")
def inspect_(
    spec: SpecOrCheckpointArg = None,
    param: Annotated[
        str | None,
        typer.Option("--param", help="show one tensor (class, value, grad): 2.bias, 0.1.0.weight", show_default=False),
    ] = None,
    module: Annotated[
        str | None, typer.Option("--module", help="show that block's state_dict: 2, 0.block 1", show_default=False)
    ] = None,
    grad: Annotated[
        bool,
        typer.Option("--grad", help="run one forward and backward pass on the example input first, and show the grads"),
    ] = False,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """List every parameter and persistent buffer: name, shape, dtype, device, requires_grad, count, tied names."""
    from netcli.app.inspecting import inspect_network

    result = inspect_network(
        spec,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed),
        param=param,
        module=module,
        grad=grad,
    )
    render.inspected(result, json_)


@app.command("init")
def init_(
    spec: SpecArg = None,
    rule: RuleOpt = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="list every parameter and the rule that last set it")
    ] = False,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="write the initialized parameters (.safetensors)", show_default=False),
    ] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    json_: JsonOpt = False,
    fast_init: FastInitOpt = False,
    shard: ShardOpt = None,
    nproc: NprocOpt = None,  # taken by cli.commands._launch_ranks; 1 runs here
):
    """Build, apply the spec's init rules and then --rule ones, and show what each rule set."""
    from netcli.app.initializing import init_network

    result = init_network(
        spec,
        Reading.of(set_, plugin, render.source_notes()),
        Building.of(device, seed, rule, fast_init, shard),
        explain=explain,
        output=output,
    )
    render.result(result, render.init_report, as_json=json_)
