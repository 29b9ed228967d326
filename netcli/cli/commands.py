"""The command-line interface: a thin typer layer over the library modules.

Nothing here imports torch at module level, so `netcli --help` starts fast;
each command imports what it needs when it runs. `main()` is the one boundary
that turns NetcliError into `FILE:LINE:COL: where: what (hint)` and exit 2.
"""
from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from netcli.cli.completion import complete_device, complete_rule, complete_type

app = typer.Typer(
    name="netcli", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True,
    help="Build, inspect, initialize, run, save and load PyTorch networks described in YAML.",
)

_state = {"debug": bool(os.environ.get("NETCLI_DEBUG"))}

# Options shared by every command that reads a spec.
SpecArg = Annotated[Optional[str], typer.Argument(
    help="spec file (default: $NETCLI_SPEC, ./netcli.yaml, else the built-in [Linear(4, 8), ReLU, Linear(8, 1)])",
    show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="override PATH=VALUE before validation, e.g. vars.hidden=64 (repeatable)", show_default=False)]
def _check_seed(value: Optional[int]) -> Optional[int]:
    if value is not None and not -(2**63) <= value <= 2**64 - 1:  # what torch.manual_seed accepts
        raise typer.BadParameter("a seed is an integer from -2**63 to 2**64-1")
    return value


SeedOpt = Annotated[Optional[int], typer.Option(help="seed torch before building (bit-reproducible)", show_default=False,
                                                callback=_check_seed)]
DeviceOpt = Annotated[Optional[str], typer.Option(
    help="cpu | cuda | cuda:N | auto | auto:N | mps | meta", show_default=False, autocompletion=complete_device)]
PluginOpt = Annotated[Optional[list[str]], typer.Option(
    "--plugin", help="import this module to register types and initializers (repeatable)", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
# issue 9: one-pass init (netcli.init.fastinit) for build, init, save, run
FastInitOpt = Annotated[bool, typer.Option(
    "--fast-init", help="build on meta, allocate once, initialize each tensor once from per-path seeds "
                        "(faster; same weights on every device; not the values hand-written code draws)")]


def stdout():
    from rich.console import Console
    # In a pipe rich assumes 80 columns and cuts tree lines; a reader there wants whole lines.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


def stderr():
    from rich.console import Console
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def open_spec(spec: Optional[str], sets: Optional[list[str]], plugins: Optional[list[str]]):
    """Load and check a spec, saying on stderr which file was used when none was named."""
    from netcli.build.validate import load_spec
    notes: list[str] = []
    loaded = load_spec(spec, sets or (), plugins or (), notes=notes)
    for note in notes:
        print(note, file=sys.stderr)
    return loaded


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


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
    from netcli.core.errors import NetcliError
    from netcli.build.validate import check_shapes
    results, failed = [], False
    for spec in specs or [None]:
        try:
            loaded = open_spec(spec, set_, plugin)
            if device is not None:
                from netcli.core.devices import resolve_device
                resolve_device(device, where="--device")
            _, built, note = check_shapes(loaded)
            if loaded.spec.init:
                from netcli.init.plan import check_rules
                from netcli.init.rules import spec_rules
                check_rules(built.net, spec_rules(loaded))
            results.append({"file": spec or loaded.doc.source, "ok": True, "problems": [], "note": note,
                            "inferred": built.inferred})
        except NetcliError as exc:
            failed = True
            results.append({"file": spec or "<default>", "ok": False,
                            "problems": list(exc.problems), "note": None})  # --json writes str(problem)
    if json_:
        print_json(results)
    else:
        out, err = stdout(), stderr()
        for r in results:
            if r["ok"]:
                out.print(f"[green]OK[/] {r['file']}" + (f"  [dim]({r['note']})[/]" if r["note"] else ""))
                if r.get("inferred"):
                    from netcli.build.inference import format_inferred
                    out.print(f"  inferred: {format_inferred(r['inferred'])}", markup=False)
            else:
                for p in r["problems"]:
                    show_problem(err, p)
                err.print(f"[red]FAILED[/] {r['file']}: {len(r['problems'])} problem(s)")
    raise typer.Exit(2 if failed else 0)


@app.command()
def build(
    spec: SpecArg = None, print_: Annotated[bool, typer.Option("--print", help="print exactly what print(net) prints")] = False,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False,
):
    """Build the network; show its blocks, parameter counts, output shapes and totals."""
    from netcli.init.engine import build_model
    loaded = open_spec(spec, set_, plugin)
    built = build_model(loaded, device=device, seed=seed, fast_init=fast_init)
    if print_:
        print(built.net)
        return
    from netcli.app.summary import render, summarize
    shapes, note, out_shape = {}, None, None
    if loaded.spec.input is not None:
        from netcli.build.validate import check_shapes
        trace, _, note = check_shapes(loaded)
        shapes = trace.shapes if trace else {}
        out_shape = shapes.get("")
    summary = summarize(built.net, shapes, note, out_shape, inferred=built.inferred)
    if json_:
        print_json({"name": loaded.name, "device": str(built.device), **summary.as_json()})
    else:
        render(summary, f"{loaded.name} on {built.device}", stdout())


@app.command()
def run(
    spec: SpecArg = None,
    input_: Annotated[Optional[str], typer.Option("--input", help="rand:2,20 | randn:SHAPE | ones:SHAPE | zeros:SHAPE | FILE (.npy, .pt, .safetensors)", show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write the output to FILE (.pt, .npy, .safetensors)", show_default=False)] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="load parameters from FILE first", show_default=False)] = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False,
):
    """Run a forward pass on the example input and print the output, like the chapter's net(X)."""
    import torch
    from netcli.init.engine import build_model
    from netcli.build.inference import input_sets
    from netcli.io.inputs import make_input
    # --input's shape is the one shape inference uses (as --set input=[...] would)
    loaded = open_spec(spec, [*input_sets(input_), *(set_ or ())], plugin)
    built = build_model(loaded, device=device, seed=seed, fast_init=fast_init)
    if checkpoint is not None:
        from netcli.io import files
        from netcli.app.restore import load_checkpoint, restore
        files.load_into(built, checkpoint)
    x = make_input(input_, loaded.spec.input, built.device)
    if built.device.type == "meta":
        from netcli.build.shapes import trace_shapes
        trace = trace_shapes(built.net, x)
        if trace.error is not None:
            from netcli.core.errors import NetcliError
            raise NetcliError(f"the run on meta stopped at '{trace.failed_at or '(root)'}': {trace.error}".splitlines()[0],
                              hint="run it on cpu to see values")
        y = trace.output
    else:
        y = forward(built, x)
    if output is not None:
        from netcli.io.outputs import save_output
        save_output(y, output)
    if json_:
        data = {"shape": list(y.shape), "dtype": str(y.dtype).removeprefix("torch."), "device": str(y.device)}
        if y.device.type != "meta":
            data["values"] = y.detach().cpu().tolist()
        print_json(data)
    elif y.device.type == "meta":
        print(f"output shape: {list(y.shape)} ({str(y.dtype).removeprefix('torch.')}, on meta: no values)")
    else:
        print(y)
    del torch


# --- parameters: init, inspect (issue 3) ---

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".params")


def _built_for_params(spec, set_, seed, device, plugin, rules=(), fast_init=False):
    """Build SPEC (applying its init: rules, then `rules`), or load a checkpoint once files.py offers it."""
    from pathlib import Path
    if spec is not None and Path(spec).suffix in CHECKPOINT_SUFFIXES:
        from netcli.core.errors import NetcliError
        try:
            from netcli.io import files
            from netcli.app.restore import load_checkpoint, restore
        except ImportError:
            files = None
        if files is None or not hasattr(files, "load_checkpoint"):
            raise NetcliError(f"{spec}: reading checkpoints is not available in this version",
                              hint="give the spec the checkpoint was saved from")
        if rules:
            raise NetcliError(f"{spec}: --rule applies to a spec, not to a saved checkpoint",
                              hint="give the spec, then save the result with -o")
        return load_checkpoint(spec)
    from netcli.init.engine import build_model
    loaded = open_spec(spec, set_, plugin)
    return build_model(loaded, device=device, seed=seed, rules=rules, fast_init=fast_init)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _table(*columns: str, title: str, rows: list[tuple[str, ...]]):
    """Return a rich table of `rows` whose cells wrap rather than being cut short.

    Names and rules get the room they need first, so each stays on one line.
    """
    from rich.table import Table
    table = Table(*columns, title=title)
    for i, column in enumerate(table.columns):
        column.overflow = "fold"
        column.min_width = len(columns[i])
        if columns[i] in ("name", "parameter", "rule"):
            column.min_width = min(48, max([len(r[i]) for r in rows] + [len(columns[i])]))
    for row in rows:
        table.add_row(*row)
    return table


@app.command("inspect")
def inspect_(
    spec: Annotated[Optional[str], typer.Argument(
        help="spec file or checkpoint (default: $NETCLI_SPEC, ./netcli.yaml, else the built-in network)",
        show_default=False)] = None,
    param: Annotated[Optional[str], typer.Option(
        "--param", help="show one tensor as the chapter does (class, value, grad): 2.bias, 0.1.0.weight",
        show_default=False)] = None,
    module: Annotated[Optional[str], typer.Option(
        "--module", help="show that block's state_dict: 2, 0.block 1", show_default=False)] = None,
    grad: Annotated[bool, typer.Option("--grad", help="run one forward and backward pass on the example input first")] = False,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """List every parameter and persistent buffer: name, shape, dtype, device, requires_grad, count, tied names."""
    from netcli.init import params
    from netcli.core.errors import NetcliError
    built = _built_for_params(spec, set_, seed, device, plugin)
    net = built.net
    if grad:
        if built.device.type == "meta":
            raise NetcliError("--grad needs values, and the network is on meta", hint="use --device cpu")
        from netcli.io.inputs import make_input
        params.run_backward(net, make_input(None, built.loaded.spec.input, built.device))
    if param is not None and module is not None:
        raise NetcliError("give --param or --module, not both", hint="run inspect twice")
    if param is not None:
        found = params.find(net, param)
        if found.attr is None:
            raise NetcliError(f"--param {param}: '{found.name or '(root)'}' is a block, not a tensor",
                              hint=f"use --module {param}, or --param {found.name + '.' if found.name else ''}"
                                   f"{(params.own_tensors(found.module) or ['weight'])[0]}")
        tied = next((g for g in params.inventory(net).tied if found.name in g), [])
        if json_:
            print_json({**params.tensor_view(found), "tied": [n for n in tied if n != found.name]})
            return
        t = found.tensor
        print(type(t))
        print(t)
        g = getattr(t, "grad", None)
        print("grad: None" if g is None else f"grad:\n{g}")
        if tied:
            print(f"tied: {' = '.join(tied)} (one tensor)")
        return
    if module is not None:
        found = params.find(net, module, tensors=False)
        state = found.module.state_dict()
        if json_:
            print_json({"module": found.name, "type": type(found.module).__name__,
                        "state_dict": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch."),
                                           "value": None if v.device.type == "meta" else v.cpu().tolist()}
                                       for k, v in state.items()}})
        else:
            print(state)
        return
    inv = params.inventory(net)
    if json_:
        print_json({"name": built.loaded.name, "device": str(built.device), **inv.as_json()})
        return
    from netcli.core.devices import human_bytes
    table = _table("name", "kind", "shape", "dtype", "device", "requires_grad", "count",
                   title=f"{built.loaded.name} on {built.device}",
                   rows=[(" = ".join(r.names), r.kind, _shape_text(r.shape), r.dtype, r.device,
                          str(r.requires_grad), f"{r.numel:,}") for r in inv.rows])
    out = stdout()
    out.print(table)
    totals = inv.totals()
    out.print(f"[bold]parameters[/]: {totals['parameters']:,} ({totals['trainable']:,} trainable)"
              + (f"; buffers: {totals['buffers']:,}" if totals["buffers"] else "")
              + f"; {totals['tensors']} tensors, {human_bytes(totals['bytes'])}")
    for group in inv.tied:
        out.print(f"[bold]tied[/]: {' = '.join(group)} (one tensor, counted once)")


def _save_initialized(built, output: str) -> None:
    """Write the initialized parameters: netcli.io.files when it is there, else plain safetensors."""
    from netcli.core.errors import NetcliError
    try:
        from netcli.io import files
        from netcli.app.restore import load_checkpoint, restore
    except ImportError:
        files = None
    if files is not None and hasattr(files, "save_checkpoint"):
        files.save_checkpoint(built, output)
        return
    if built.device.type == "meta":
        raise NetcliError(f"-o {output}: a network on meta has no values to save", hint="use --device cpu")
    from safetensors.torch import save_file
    from netcli.init import params
    from netcli.core.atomic import atomic_write
    state = built.net.state_dict()
    inv = params.inventory(built.net)
    tensors = {row.name: state[row.name].detach().contiguous().cpu() for row in inv.rows}  # tied: stored once
    metadata = {"netcli.spec": built.loaded.resolved_text, "netcli.spec_sha256": built.loaded.sha256,
                "netcli.tied": json.dumps(inv.tied)}
    atomic_write(output, lambda p: save_file(tensors, str(p), metadata=metadata))


@app.command("init")
def init_(
    spec: SpecArg = None,
    rule: Annotated[Optional[list[str]], typer.Option(
        "--rule", help="INIT:TARGET, e.g. xavier:0, normal(std=0.01):Linear, const42:2, zeros:*.bias (repeatable; after the spec's init:)", autocompletion=complete_rule,
        show_default=False)] = None,
    explain: Annotated[bool, typer.Option("--explain", help="list every parameter and the rule that last set it")] = False,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="write the initialized parameters (.safetensors)",
                                                  show_default=False)] = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False,
):
    """Build, apply the spec's init rules and then --rule ones, and show what each rule set."""
    from netcli.init.apply import explain as explain_rules
    built = _built_for_params(spec, set_, seed, device, plugin, tuple(rule or ()), fast_init=fast_init)
    touched = built.init_report
    explained = explain_rules(built.net, touched) if explain else None
    if output is not None:
        _save_initialized(built, output)
    if json_:
        data = {"name": built.loaded.name, "device": str(built.device),
                "touched": [t.as_json() for t in touched], "output": output}
        if explained is not None:
            data["explain"] = explained
        print_json(data)
        return
    out = stdout()
    if touched:
        out.print(_table("rule", "parameter", "shape", title="what the init rules set, in order",
                         rows=[(t.rule, " = ".join((t.name,) + t.tied), _shape_text(t.shape)) for t in touched]))
    else:
        print("no init rules: every parameter keeps its module's default initialization "
              "(add --rule INIT:TARGET, e.g. --rule xavier:0)", file=sys.stderr)
    if explained is not None:
        out.print(_table("parameter", "shape", "set by", title="the rule that last set each parameter",
                         rows=[(" = ".join([r["parameter"]] + r["tied"]), _shape_text(r["shape"]), r["set_by"])
                               for r in explained]))
    if output is not None:
        out.print(f"wrote {output}")



# --- files: save, load, show (issue 4) ---

RuleOpt = Annotated[Optional[list[str]], typer.Option(
    "--rule", help="INIT:TARGET applied after the spec's init:, e.g. xavier:0, const42:2 (repeatable)", autocompletion=complete_rule,
    show_default=False)]


@app.command()
def save(
    spec: SpecArg = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="FILE: .safetensors (default, keeps the spec) | .pt | .pth | .params (a plain state_dict)",
        show_default=False)] = None,
    rule: RuleOpt = None,
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False, fast_init: FastInitOpt = False,
):
    """Build, initialize (the spec's init:, then --rule) and write the parameters to FILE, atomically."""
    import time
    from netcli.io import files
    from netcli.app.restore import load_checkpoint, restore
    from netcli.init.engine import build_model
    from netcli.io.show import describe
    loaded = open_spec(spec, set_, plugin)
    output = output or f"{loaded.name}.safetensors"
    files.format_of(output)  # refuse an unknown extension before building anything
    built = build_model(loaded, device=device, seed=seed, rules=tuple(rule or ()), fast_init=fast_init)
    start = time.perf_counter()
    files.save_checkpoint(built, output)
    seconds = time.perf_counter() - start
    info = describe(output)
    data = {"file": output, "format": info["format"], "tensors": info["count"],
            "tied": {t["name"]: t["tied"] for t in info["tensors"] if t["tied"]},
            "bytes": os.path.getsize(output), "spec_sha256": loaded.sha256, "seconds": round(seconds, 4),
            "rules": [t.as_json() for t in built.init_report]}
    if json_:
        print_json(data)
        return
    from netcli.core.devices import human_bytes
    tied = sum(len(v) for v in data["tied"].values())
    print(f"saved {data['tensors']} tensors" + (f" ({tied} tied name(s) stored once)" if tied else "")
          + f" to {output}: {data['format']}, {human_bytes(data['bytes'])}"
          + (f", spec sha256 {loaded.sha256[:12]}" if data["format"] == "safetensors" else ""))


@app.command()
def load(
    file: Annotated[str, typer.Argument(help="a checkpoint: .safetensors (with its spec inside) or a torch file")],
    spec: Annotated[Optional[str], typer.Argument(
        help="the spec to rebuild (default: the one saved inside FILE)", show_default=False)] = None,
    input_: Annotated[Optional[str], typer.Option(
        "--input", help="run it on rand:2,20 | randn:SHAPE | ones:SHAPE | FILE (.npy, .pt, .safetensors)",
        show_default=False)] = None,
    strict: Annotated[bool, typer.Option(
        "--strict/--no-strict", help="--no-strict loads the keys that fit and lists the ones it skipped")] = True,
    set_: SetOpt = None,
    seed: Annotated[Optional[int], typer.Option(help="seed torch before making a random --input", show_default=False,
                                                    min=-(2**63), max=2**64 - 1)] = None,
    device: DeviceOpt = None, plugin: PluginOpt = None, json_: JsonOpt = False,
):
    """Rebuild the network (from SPEC or the spec inside FILE), load the tensors, print it in eval mode."""
    from netcli.io import files
    from netcli.app.restore import load_checkpoint, restore
    built, report = restore(file, spec, sets=set_ or (), plugins=plugin or (), device=device, strict=strict)
    net = built.net
    net.eval()  # the chapter's net_clone.eval()
    err = stderr()
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
        x = make_input(input_, built.loaded.spec.input, built.device)
        with torch.no_grad():
            y = net(x)
    if json_:
        data = {**report.as_json(), "module": str(net)}
        if y is not None:
            data["output"] = {"shape": list(y.shape), "dtype": str(y.dtype).removeprefix("torch."),
                              "values": y.detach().cpu().tolist()}
        print_json(data)
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
        print_json(info)
        return
    render_description(info, stdout(), limit=limit)



# --- devices (issue 5) ---


@app.command()
def devices(json_: JsonOpt = False):
    """Show the CPU, every GPU (index, name, memory, capability) and what auto / auto:N resolve to."""
    from netcli.core.devices import list_devices, render_devices
    report = list_devices()
    if json_:
        print_json(report.as_json())
    else:
        render_devices(report, stdout())


# --- ecosystem: export (issue 7) ---


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
    set_: SetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None, plugin: PluginOpt = None,
    json_: JsonOpt = False,
):
    """Export the network for other software: ONNX, TorchScript or a torch.export program, run on the example input."""
    from pathlib import Path
    from netcli.io.export import export_model, format_for
    from netcli.io.inputs import make_input
    fmt = format_for(format_.value if format_ is not None else None, output)
    if source is not None and Path(source).suffix.lower() in (".safetensors", ".pt", ".pth", ".params"):
        from netcli.app.restore import load_checkpoint
        built = load_checkpoint(source, spec, sets=set_ or (), plugins=plugin or (), device=device)
    else:
        from netcli.init.engine import build_model
        built = build_model(open_spec(source, set_, plugin), device=device, seed=seed)
    x = make_input(input_, built.loaded.spec.input, built.device)
    result = export_model(built, x, fmt, output)
    if json_:
        print_json(result.as_json())
        return
    check = ("" if result.max_difference is None
             else f"; its output matches torch's (max |difference| {result.max_difference:.3g})")
    stdout().print(f"wrote {result.path} ({fmt} via {result.method}, {result.nbytes:,} bytes): "
                   f"input {result.input_shape} -> output {result.output_shape}{check}", markup=False)


def forward(built, x):
    """Run the network; a failure inside a block becomes a located error naming it."""
    try:
        return built.net(x)
    except Exception as exc:
        from netcli.core.errors import NetcliError
        from netcli.build.shapes import trace_shapes
        from netcli.build.validate import origin_of
        trace = trace_shapes(built.net, x)  # run again with hooks, only on failure, to find the block
        name = trace.failed_at or ""
        got = trace.inputs.get(name, tuple(x.shape))
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NetcliError(built.loaded.problem(
            origin_of(built.origins, name), f"the run failed in block '{name or '(root)'}': {first}",
            f"its input has shape {list(got)}")) from exc


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
    if json_:
        print_json([{"name": e.name, "origin": e.origin,
                     "signature": str(registry.signature(e.obj) or "")} for e in entries])
        return
    from rich.table import Table
    table = Table("type", "arguments", "from")
    for e in entries:
        table.add_row(e.name, str(registry.signature(e.obj) or "(...)"), e.origin)
    stdout().print(table)


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


def show_problem(console, problem) -> None:
    """Print `FILE:LINE:COL: where: what (hint)`, then the spec's line with a caret under the column."""
    from netcli.cli.excerpt import excerpt
    console.print(str(problem), markup=False)
    shown = excerpt(problem)
    if shown is not None:
        console.print(shown[0], markup=False, style="dim")
        console.print(shown[1], markup=False, style="bold red")


def main(argv: Optional[list[str]] = None) -> None:
    """Run the app; print user errors as located one-liners and exit 2."""
    from netcli.core.errors import NetcliError
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[:1]:
        _state["debug"] = True
    try:
        app(args=args, prog_name="netcli")
    except NetcliError as exc:
        if _state["debug"]:
            raise
        err = stderr()
        for problem in exc.problems:
            show_problem(err, problem)
        sys.exit(2)
    except KeyboardInterrupt:
        print("netcli: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        print(f"netcli: internal error: {type(exc).__name__}: {exc}\n"
              "(run with --debug or NETCLI_DEBUG=1 to see the traceback; please report it)", file=sys.stderr)
        sys.exit(1)
