"""The command-line interface: each command parses its options, calls one library function, renders.

Nothing here imports torch at module level, so `netcli --help` starts fast;
each command imports what it needs when it runs. `main()` is the one boundary
that turns NetcliError into `FILE:LINE:COL: where: what (hint)` and exit 2.
"""
from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from netcli.cli import render
from netcli.cli.completion import complete_type
from netcli.cli.dist_options import MaxShardSizeOpt, ShardOpt
from netcli.cli.options import (DeviceOpt, FastInitOpt, InputOpt, InputSeedOpt, JsonOpt, PluginOpt, RuleOpt, SeedOpt,
                                SetOpt, SpecArg, SpecOrCheckpointArg)

app = typer.Typer(
    name="netcli", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True,
    help="Build, inspect, initialize, run, save and load PyTorch networks described in YAML.",
)

_state = {"debug": bool(os.environ.get("NETCLI_DEBUG"))}


class _StderrNotes(list):
    """Notes for the user (which spec file was used), printed on stderr the moment they are made."""

    def append(self, note: str) -> None:
        print(note, file=sys.stderr)


def _notes() -> list[str]:
    return _StderrNotes()


def _open_spec(spec, sets, plugins):
    from netcli.app.network import open_spec
    return open_spec(spec, sets or (), plugins or (), _notes())


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks (or set NETCLI_DEBUG=1)")] = False):
    """Build, inspect, initialize, run, save and load PyTorch networks described in YAML."""
    if debug:
        _state["debug"] = True


@app.command()
def validate(
    specs: Annotated[Optional[list[str]], typer.Argument(help="spec files", show_default=False)] = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """Check each spec fully without running it: structure, types, arguments, definitions, shapes."""
    from netcli.app.validating import validate_spec
    notes = _notes() if json_ else None  # as text, render.validation says which spec it checked
    results = [validate_spec(spec, set_ or (), plugin or (), device, notes) for spec in specs or [None]]
    if json_:
        render.print_json([{"file": r.file, "ok": r.ok, "problems": [p.as_json() for p in r.problems],
                            "note": r.note, "used": r.used,
                            **({"inferred": r.inferred} if r.ok else {})} for r in results])
    else:
        render.validation(results)
    raise typer.Exit(0 if all(r.ok for r in results) else 2)


@app.command()
def build(
    spec: SpecArg = None, print_: Annotated[bool, typer.Option("--print", help="print exactly what print(net) prints")] = False,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False, shard: ShardOpt = None,
    depth: Annotated[Optional[int], typer.Option(
        "--depth", min=0, help="show blocks down to this depth (0: the network alone); deeper ones are folded "
                               "into their parents' counts", show_default=False)] = None,
    columns: Annotated[Optional[str], typer.Option(
        "--columns", help="the table's columns, comma-separated: shape, params, param_mem, trainable, macs, flops, "
                          "act_mem, device, or all", show_default=False)] = None,
    backward: Annotated[bool, typer.Option(
        "--backward", help="count forward+backward FLOPs (the backward of the output's sum)")] = False,
):
    """Build the network; show per block its output shape, parameters, MACs/FLOPs and memory, and the totals."""
    from netcli.app import sharded
    from netcli.app.summary import describe, parse_columns
    chosen = parse_columns(columns)  # a bad name fails before anything is built
    loaded = _open_spec(spec, set_, plugin)
    built = sharded.build(loaded, shard=shard, device=device, seed=seed, fast_init=fast_init)
    if print_:
        print(built.net)
        return
    summary = describe(loaded, built, backward=backward, depth=depth)
    if json_:
        render.print_json({"name": loaded.name, "device": str(built.device), **summary.as_json()})
    else:
        from netcli.app.summary import render as render_summary
        render_summary(summary, f"{loaded.name} on {built.device}", render.stdout(), columns=chosen,
                       backward=backward)


@app.command()
def run(
    spec: SpecArg = None, input_: InputOpt = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write the output to FILE (.pt, .npy, .safetensors)", show_default=False)] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="load parameters from FILE first", show_default=False)] = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False, shard: ShardOpt = None,
):
    """Run a forward pass on the example input and print the output, like net(X)."""
    from netcli.app.running import run_network
    from netcli.build.inference import input_sets
    from netcli.init.engine import build_model
    from netcli.io.inputs import make_input
    from netcli.core.atomic import refuse_overwriting_inputs
    refuse_overwriting_inputs(output, spec, checkpoint, input_)  # -o onto what this run reads
    # --input's shape is the one shape inference uses (as --set input=[...] would)
    loaded = _open_spec(spec, [*input_sets(input_), *(set_ or ())], plugin)
    from netcli.app import sharded
    built = sharded.build(loaded, shard=shard, device=device, seed=seed, fast_init=fast_init)
    if checkpoint is not None:
        sharded.run_checkpoint(built, checkpoint)
    y = run_network(built, make_input(input_, loaded.spec.input, built.device))
    if output is not None:
        from netcli.io.outputs import save_output
        save_output(y, output)
    render.output_tensor(y, json_)


@app.command("inspect")
def inspect_(
    spec: SpecOrCheckpointArg = None,
    param: Annotated[Optional[str], typer.Option(
        "--param", help="show one tensor (class, value, grad): 2.bias, 0.1.0.weight", show_default=False)] = None,
    module: Annotated[Optional[str], typer.Option(
        "--module", help="show that block's state_dict: 2, 0.block 1", show_default=False)] = None,
    grad: Annotated[bool, typer.Option(
        "--grad", help="run one forward and backward pass on the example input first, and show the grads")] = False,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
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
        render.print_json({"name": built.loaded.name, "device": str(built.device),
                           **params.inventory(net, grads=grad).as_json()})
    else:
        render.inventory(params.inventory(net, grads=grad), f"{built.loaded.name} on {built.device}")


@app.command("init")
def init_(
    spec: SpecArg = None, rule: RuleOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help="list every parameter and the rule that last set it")] = False,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write the initialized parameters (.safetensors)",
                                                  show_default=False)] = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False, shard: ShardOpt = None,
):
    """Build, apply the spec's init rules and then --rule ones, and show what each rule set."""
    from netcli.app.network import open_network
    from netcli.core.atomic import refuse_overwriting_inputs
    from netcli.init.apply import explain as explain_rules
    refuse_overwriting_inputs(output, spec)
    if shard is not None:
        from netcli.app import sharded
        built = sharded.build(_open_spec(spec, set_, plugin), shard=shard, device=device, seed=seed,
                              rules=tuple(rule or ()))
    else:
        built = open_network(spec, sets=set_ or (), plugins=plugin or (), device=device, seed=seed,
                             rules=tuple(rule or ()), fast_init=fast_init, notes=_notes())
    touched = built.init_report
    explained = explain_rules(built.net, touched) if explain else None
    if output is not None and shard is not None:
        from netcli.app import sharded
        sharded.save(built, output)
    elif output is not None:
        from netcli.io.checkpoint_save import save_checkpoint
        save_checkpoint(built, output)
    if json_:
        data = {"name": built.loaded.name, "device": str(built.device),
                "touched": [t.as_json() for t in touched], "output": output}
        if explained is not None:
            data["explain"] = explained
        render.print_json(data)
    else:
        render.init_report(touched, explained, output)


@app.command()
def save(
    spec: SpecArg = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="FILE: .safetensors (default, keeps the spec) | .pt | .pth | .params (a plain state_dict)",
        show_default=False)] = None,
    rule: RuleOpt = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False, shard: ShardOpt = None,
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
            from netcli.io.shards import parse_size, target_of
            target_of(output, "hf", max_shard_size)
            parse_size(max_shard_size)
        built = sharded.build(loaded, shard=shard, device=device, seed=seed, rules=tuple(rule or ()),
                              fast_init=fast_init)
        start = time.perf_counter()
        data = sharded.save(built, output, max_shard_size=max_shard_size)
        data.update(spec_sha256=loaded.sha256, seconds=round(time.perf_counter() - start, 4))
        if json_:
            render.print_json(data)
        else:
            from netcli.core.devices import human_bytes
            print(f"saved to {output}: {data['format']}, {len(data['files'])} file(s), {human_bytes(data['bytes'])}, "
                  f"spec sha256 {loaded.sha256[:12]}")
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
        render.print_json({"file": output, "format": report.format, "tensors": report.tensors, "tied": report.tied,
                           "bytes": report.nbytes, "spec_sha256": loaded.sha256, "seconds": round(seconds, 4),
                           "rules": [t.as_json() for t in built.init_report]})
    else:
        render.saved(report, loaded.sha256)


@app.command()
def load(
    file: Annotated[str, typer.Argument(help="a checkpoint: .safetensors (with its spec inside) or a torch file")],
    spec: Annotated[Optional[str], typer.Argument(
        help="the spec to rebuild (default: the one saved inside FILE)", show_default=False)] = None,
    input_: InputOpt = None,
    strict: Annotated[bool, typer.Option(
        "--strict/--no-strict", help="--no-strict loads the keys that fit and lists the ones it skipped")] = True,
    set_: SetOpt = None, seed: InputSeedOpt = None,
    device: DeviceOpt = None, plugin: PluginOpt = None, json_: JsonOpt = False, shard: ShardOpt = None,
):
    """Rebuild the network (from SPEC or the spec inside FILE), load the tensors, print it in eval mode.

    FILE may be a folder: the Hugging Face sharded layout or a DCP checkpoint (at any world size).
    """
    from netcli.app import sharded
    built, report = sharded.restore(file, spec, shard=shard, sets=set_ or (), plugins=plugin or (), device=device,
                                    strict=strict)
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
        from netcli.io.inputs import call
        x = make_input(input_, built.loaded.spec.input, built.device)
        with torch.no_grad():
            y = call(net, x)
    if json_:
        data = {**report.as_json(), "module": str(net)}
        if y is not None:
            data["output"] = {"shape": list(y.shape), "dtype": render.dtype_text(y.dtype),
                              "values": y.detach().cpu().tolist()}
        render.print_json(data)
        return
    print(net)
    if y is not None:
        print(y)


@app.command()
def show(
    file: Annotated[str, typer.Argument(help="a .safetensors file, or any file torch.save wrote (tensor, list, dict, state_dict)")],
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
def devices(json_: JsonOpt = False):
    """Show the CPU, every GPU (index, name, memory, capability) and what auto / auto:N resolve to."""
    from netcli.core.devices import list_devices, render_devices
    report = list_devices()
    if json_:
        render.print_json(report.as_json())
    else:
        render_devices(report, render.stdout())


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    exported = "exported"


@app.command()
def export(
    source: Annotated[Optional[str], typer.Argument(
        help="a spec, or a checkpoint (.safetensors with its spec inside, .pt/.pth/.params with --spec)",
        show_default=False)] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="the file to write (.onnx, .pt, .pt2)")] = ...,
    format_: Annotated[Optional[ExportFormat], typer.Option(
        "--format", "-f", help="onnx (torch.onnx), torchscript (torch.jit), exported (torch.export); default: from -o's extension",
        show_default=False)] = None,
    spec: Annotated[Optional[str], typer.Option("--spec", help="with a checkpoint: the spec to rebuild it from", show_default=False)] = None,
    input_: Annotated[Optional[str], typer.Option("--input", help="the example input: rand:2,20 | FILE (default: the spec's input:)", show_default=False)] = None,
    static: Annotated[bool, typer.Option("--static", help="fix the batch size to the example's (default: any batch size)")] = False,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
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
    refuse_overwriting_inputs(output, source, spec, input_)  # `export model.pt -o model.pt` would replace the state_dict
    built = open_network(source, sets=set_ or (), plugins=plugin or (), device=device, seed=seed, spec=spec,
                         notes=_notes())
    result = export_model(built, make_input(input_, built.loaded.spec.input, built.device), fmt, output,
                          static=static)
    if json_:
        render.print_json(result.as_json())
    else:
        render.exported(result, fmt)


@app.command()
def code(
    spec: SpecArg = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write the code to FILE (default: print it)",
                                                  show_default=False)] = None,
    rule: RuleOpt = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
):
    """Write the network as plain PyTorch source: classes, nn.Sequential, and build(seed) with the init rules."""
    from netcli.app.eject import command_args, write_code
    loaded = _open_spec(spec, set_, plugin)
    args = command_args(spec, set_ or (), plugin or (), rule or (), seed, device)
    text = write_code(loaded, output, seed=seed, device=device, rules=tuple(rule or ()), spec_args=args)
    if output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {output}: {text.count(chr(10))} lines of PyTorch; build() returns the network", file=sys.stderr)


@app.command("types")
def types_(
    pattern: Annotated[Optional[str], typer.Argument(help="only names containing this text", autocompletion=complete_type)] = None,
    plugin: PluginOpt = None, json_: JsonOpt = False,
):
    """List the registered types a spec may name, with where each comes from."""
    from netcli import registry
    registry.ensure_loaded()
    for module in plugin or ():
        registry.load_plugin(module)
    entries = [registry.types.entry(n) for n in registry.types
               if pattern is None or pattern.lower() in n.lower()]
    if not entries:
        from netcli.core.errors import NetcliError, did_you_mean
        raise NetcliError(f"no registered type matches '{pattern}'", hint=did_you_mean(pattern, registry.types.names())
                          or "a plugin's types are listed once it is installed, or named with --plugin MODULE; "
                             "netcli types lists them all")
    if json_:
        render.print_json([{"name": e.name, "origin": e.origin,
                            "signature": str(registry.signature(e.obj) or "")} for e in entries])
    else:
        render.registered_types(entries, registry.signature)


@app.command()
def schema(
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write to FILE instead of stdout", show_default=False)] = None,
    regenerate: Annotated[bool, typer.Option("--regenerate", help="generate it from the registry (imports torch) instead of printing the shipped file")] = False,
    plugin: PluginOpt = None,
):
    """Print the JSON Schema (draft 2020-12) of the spec language, for editors (yaml-language-server).

    Every registered type is in it with its arguments. The shipped
    schema/netcli.schema.json is printed while it matches this netcli and torch;
    plugins, --regenerate or other versions generate a fresh one.
    """
    from netcli.spec.jsonschema import schema_text
    text, _ = schema_text(regenerate=regenerate, plugins=plugin or ())
    if output is None:
        sys.stdout.write(text)
    else:
        from netcli.core.atomic import atomic_write
        atomic_write(output, lambda p: p.write_text(text))


@app.command()
def convert(
    source: Annotated[str, typer.Argument(help="a .safetensors, an index layout (its folder or .index.json), a DCP folder, or a torch file")],
    output: Annotated[str, typer.Option("--output", "-o", help="FILE.safetensors | DIR/ (DCP, or the HF layout with --max-shard-size) | DIR/NAME.safetensors.index.json | FILE.pt")],
    to: Annotated[Optional[str], typer.Option("--to", help="safetensors | hf | dcp | torch (default: from -o)", show_default=False)] = None,
    max_shard_size: MaxShardSizeOpt = None, json_: JsonOpt = False,
):
    """Convert a checkpoint between one .safetensors, the Hugging Face sharded layout, a DCP folder and .pt."""
    from netcli.io.shards import convert as convert_files
    from netcli.core.atomic import refuse_overwriting_inputs
    refuse_overwriting_inputs(output, source)
    report = convert_files(source, output, to=to, max_shard_size=max_shard_size)
    if json_:
        render.print_json(report)
    else:
        from netcli.core.devices import human_bytes
        shards = f" in {len(report['shards'])} shard(s)" if "shards" in report else ""
        print(f"wrote {output}: {report['format']}, {report['tensors']} tensors, {human_bytes(report['bytes'])}{shards}")


def _exit_code(argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def main(argv: Optional[list[str]] = None) -> None:
    """Run the app; print user errors as located one-liners and exit 2."""
    from netcli.core.errors import NetcliError
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1") and not os.environ.get("NETCLI_IN_JOB"):
        # a rank of a torchrun job: join it, print on rank 0, one reported error, one exit code (SPEC §6)
        from netcli.dist.group import distributed_main
        os.environ["NETCLI_IN_JOB"] = "1"
        sys.exit(distributed_main(lambda: _exit_code(argv)))
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[:1]:
        _state["debug"] = True
    from netcli.core.safepath import drop_implicit_cwd
    from netcli.core.terminal import EscapingStream
    drop_implicit_cwd(module_run=False)  # plugins never come from the current folder by accident
    # Every plain print goes through the escaping stream: a name or value from a file cannot drive the terminal.
    real_stdout, sys.stdout = sys.stdout, EscapingStream(sys.stdout)
    as_json = "--json" in args[:args.index("--")] if "--" in args else "--json" in args
    try:
        try:
            # With --json, usage errors (an unknown option, a bad value) come back here to be written as JSON too.
            code = app(args=args, prog_name="netcli", standalone_mode=not as_json)
        finally:
            sys.stdout = real_stdout
        _flush_stdout()
        if as_json and isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)  # typer.Exit(code) returns it when not standalone
    except _StdoutGone as exc:
        sys.exit(exc.code)
    except NetcliError as exc:
        if _state["debug"]:
            raise
        err = render.stderr()
        for problem in exc.problems:
            render.show_problem(err, problem)
        if as_json:
            render.json_problems(exc.problems)
        sys.exit(2)
    except KeyboardInterrupt:
        print("netcli: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        code = _stdout_error(exc)
        if code:
            sys.exit(code)
        if as_json and hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            render.usage_error(exc)  # typer's UsageError and the like, which standalone mode would have printed
            sys.exit(exc.exit_code)
        print(f"netcli: internal error: {type(exc).__name__}: {exc}\n"
              "(run with --debug or NETCLI_DEBUG=1 to see the traceback; please report it)", file=sys.stderr)
        if as_json:
            from netcli.core.errors import Problem
            render.json_problems([Problem(f"internal error: {type(exc).__name__}: {exc}",
                                          hint="run with --debug or NETCLI_DEBUG=1 to see the traceback; "
                                               "please report it")])
        sys.exit(1)


class _StdoutGone(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _stdout_error(exc: BaseException) -> int:
    """The exit code for a failed write to stdout (a closed pipe, /dev/full), else 0: no traceback for those."""
    import errno
    if isinstance(exc, BrokenPipeError):
        with contextlib.suppress(OSError):  # the reader left (`| head`): say nothing more, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EIO, errno.EBADF):
        print(f"netcli: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def _flush_stdout() -> None:
    """Flush now, where a failure can still be reported, not at interpreter exit."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as exc:
        code = _stdout_error(exc) if isinstance(exc, OSError) else 0
        if code:
            raise _StdoutGone(code) from exc
