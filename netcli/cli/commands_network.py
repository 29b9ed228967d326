"""Commands on a network: validate, build, run, inspect, init."""

from __future__ import annotations

from typing import Annotated

import typer

from netcli.cli import render
from netcli.cli.app import _notes, _open_spec, app
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

    notes = _notes() if json_ else None  # as text, render.validation says which spec it checked
    results = [validate_spec(spec, set_ or (), plugin or (), device, notes) for spec in specs or [None]]
    if json_:
        render.print_json(
            [
                {
                    "file": r.file,
                    "ok": r.ok,
                    "problems": [p.as_json() for p in r.problems],
                    "note": r.note,
                    "used": r.used,
                    **({"inferred": r.inferred} if r.ok else {}),
                }
                for r in results
            ]
        )
    else:
        render.validation(results)
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
    from netcli.app import sharded
    from netcli.app.summary import describe
    from netcli.app.summary_table import parse_columns

    chosen = parse_columns(columns)  # a bad name fails before anything is built
    loaded = _open_spec(spec, set_, plugin)
    built = sharded.build(loaded, shard=shard, device=device, seed=seed, fast_init=fast_init)
    if print_:
        print(built.net)
        return
    if json_:  # the object netcli.summary returns
        from netcli.app.api import summary_data

        render.print_json(summary_data(built, backward=backward, depth=depth))
        return
    from netcli.app.summary_table import render as render_summary

    summary = describe(loaded, built, backward=backward, depth=depth)
    render_summary(summary, f"{loaded.name} on {built.device}", render.stdout(), columns=chosen, backward=backward)


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
    from netcli.app.running import given_inputs, run_network
    from netcli.core.atomic import refuse_overwriting_inputs

    refuse_overwriting_inputs(output, spec, checkpoint, *(input_ or ()))  # -o onto what this run reads
    # --input's shapes and dtypes are the ones shape inference uses (as --set input=[...] would)
    given, input_set = given_inputs(spec, input_ or (), set_ or (), plugin or ())
    loaded = _open_spec(spec, [*input_set, *(set_ or ())], plugin)
    from netcli.app import sharded

    built = sharded.build(loaded, shard=shard, device=device, seed=seed, fast_init=fast_init)
    if checkpoint is not None:
        sharded.run_checkpoint(built, checkpoint)
    if eval_:
        built.net.eval()
    y = run_network(built, given(built))
    if output is not None:
        from netcli.io.outputs import save_output

        save_output(y, output)
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
    from netcli.app.network import open_network
    from netcli.core.errors import NetcliError
    from netcli.init import params

    if param is not None and module is not None:
        raise NetcliError("give --param or --module, not both", hint="run inspect twice")
    built = open_network(spec, sets=set_ or (), plugins=plugin or (), device=device, seed=seed, notes=_notes())
    net = built.net
    if grad:
        if built.device.type == "meta":
            raise NetcliError("--grad needs values, and the network is on meta", hint="use --device cpu")
        from netcli.app.running import backward
        from netcli.io.inputs import make_input

        backward(built, make_input(None, built.loaded.spec.input, built.device))
    if param is not None:
        found = params.find_tensor(net, param)
        tied = next((g for g in params.inventory(net).tied if found.name in g), [])
        if json_:
            render.print_json({**params.tensor_view(found), "tied": [n for n in tied if n != found.name]})
        else:
            render.tensor(found.tensor, tied)
    elif module is not None:
        found = params.find(net, module, tensors=False)
        if json_:
            render.print_json(params.state_view(found, grads=grad))
        else:
            print(found.module.state_dict())
            if grad:
                render.grads(params.module_grads(found.module))
    elif json_:
        render.print_json(
            {"name": built.loaded.name, "device": str(built.device), **params.inventory(net, grads=grad).as_json()}
        )
    else:
        render.inventory(params.inventory(net, grads=grad), f"{built.loaded.name} on {built.device}")


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
    from netcli.app.network import open_network
    from netcli.core.atomic import refuse_overwriting_inputs
    from netcli.init.apply import explain as explain_rules

    refuse_overwriting_inputs(output, spec)
    if shard is not None:
        from netcli.app import sharded

        built = sharded.build(
            _open_spec(spec, set_, plugin), shard=shard, device=device, seed=seed, rules=tuple(rule or ())
        )
    else:
        built = open_network(
            spec,
            sets=set_ or (),
            plugins=plugin or (),
            device=device,
            seed=seed,
            rules=tuple(rule or ()),
            fast_init=fast_init,
            notes=_notes(),
        )
    touched = built.init_report
    explained = explain_rules(built.net, touched) if explain else None
    if output is not None and shard is not None:
        from netcli.app import sharded

        sharded.save(built, output)
    elif output is not None:
        from netcli.io.checkpoint_save import save_checkpoint

        save_checkpoint(built, output)
    if json_:
        data = {
            "name": built.loaded.name,
            "device": str(built.device),
            "touched": [t.as_json() for t in touched],
            "output": output,
        }
        if explained is not None:
            data["explain"] = explained
        render.print_json(data)
    else:
        render.init_report(touched, explained, output)
