"""Every rich or plain-text rendering of a command's result, so commands only parse, call and hand over."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def stdout():
    from netcli.core.terminal import console, unescaped

    # In a pipe rich assumes 80 columns and cuts tree lines; a reader there wants whole lines.
    width = None if sys.stdout.isatty() else 200
    # names and values from files are escaped by the console; rich's own colors are not
    return console(unescaped(sys.stdout), highlight=False, soft_wrap=True, width=width)


def stderr():
    from netcli.core.terminal import console, unescaped

    return console(unescaped(sys.stderr), highlight=False, soft_wrap=True)


class _Notes(list):
    """Notes for the user, on stderr the moment they are made, each after `prefix`.

    Printed through the escaping console: a name in a note may come from a file.
    """

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def append(self, note: str) -> None:
        stderr().print(f"{self.prefix}{note}", markup=False)


def notes() -> list[str]:
    """Where the notes a command's work makes go (a skipped key, a differing spec): `netcli: NOTE`."""
    return _Notes("netcli: ")


def source_notes() -> list[str]:
    """Where the note on which spec a command read goes (`netcli: using ./netcli.yaml`, prefixed already)."""
    return _Notes("")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def result(value: Any, text: Callable[[Any], None], *, as_json: bool) -> None:
    """Hand a command's result over: with --json its object on stdout, else `text(value)` renders it.

    The object is `value.as_json()` (each item's, for a list), or `value` itself where it is data already.
    """
    if as_json:
        print_json(_json_of(value))
    else:
        text(value)


def _json_of(value: Any) -> Any:
    if hasattr(value, "as_json"):
        return value.as_json()
    if isinstance(value, list):
        return [_json_of(v) for v in value]
    return value


def json_problems(problems) -> None:
    """A failed command's problems on stdout, for --json.

    `{"ok": false, "problems": [{file, line, column, path, message, hint}]}`.
    """
    try:
        print_json({"ok": False, "problems": [p.as_json() for p in problems]})
    except (OSError, ValueError):
        pass  # stdout is gone: stderr already has the problems


def usage_error(exc) -> None:
    """A command-line usage error (unknown option, bad value) under --json: said on stderr, and as JSON on stdout."""
    from netcli.core.errors import Location, Problem

    message = exc.format_message()
    param = getattr(exc, "param", None)
    option = None
    if param is not None:
        option = (getattr(param, "opts", None) or [getattr(param, "name", None)])[0]
    option = option or getattr(exc, "option_name", None)
    close = sorted(getattr(exc, "possibilities", None) or ())
    hint = f"did you mean {' or '.join(close)}?" if close else None
    print(f"netcli: {message}", file=sys.stderr)
    if close:  # the message lists them too; in JSON they are the hint
        message = getattr(exc, "message", message)
    problem = Problem(
        message, location=Location(option) if option and option.startswith("--") else Location(), hint=hint
    )
    json_problems([problem])


def show_problem(console, problem) -> None:
    """Print `FILE:LINE:COL: where: what (hint)`, then the spec's line with a caret under the column."""
    from netcli.cli.excerpt import excerpt

    console.print(str(problem), markup=False)
    shown = excerpt(problem)
    if shown is not None:
        console.print(shown[0], markup=False, style="dim")
        console.print(shown[1], markup=False, style="bold red")


def shape_text(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def table(*columns: str, title: str, rows: list[tuple[str, ...]]):
    """Return a rich table of `rows` whose cells wrap rather than being cut short.

    Names and rules get the room they need first, so each stays on one line.
    """
    from rich.table import Table

    out = Table(*columns, title=title)
    for i, column in enumerate(out.columns):
        column.overflow = "fold"
        column.min_width = len(columns[i])
        if columns[i] in ("name", "parameter", "rule"):
            column.min_width = min(48, max([len(r[i]) for r in rows] + [len(columns[i])]))
    for row in rows:
        out.add_row(*row)
    return out


def dtype_text(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def validation(results) -> None:
    """OK lines on stdout (with what was inferred); each problem, with its excerpt, on stderr."""
    out, err = stdout(), stderr()
    for r in results:
        if r.used:  # no spec was named: say which one this verdict is about
            err.print(f"netcli: {r.used}", markup=False)
        if r.ok:
            default = " (netcli's built-in default network: no spec was named)" if r.file == "<default>" else ""
            out.print(f"[green]OK[/] {r.file}{default}" + (f"  [dim]({r.note})[/]" if r.note else ""))
            if r.inferred:
                out.print(f"  inferred: {r.inferred_text()}", markup=False)
        else:
            for p in r.problems:
                show_problem(err, p)
            err.print(f"[red]FAILED[/] {r.file}: {len(r.problems)} problem(s)")


def output_tensor(y, as_json: bool) -> None:
    """A forward pass's output as the chapter prints `net(X)`, or its shape on meta.

    A forward that returns several values (a tuple, an LSTM's `(output, (h, c))`)
    prints as Python prints them; as JSON they are `{"outputs": [...]}`.
    """
    if as_json:
        print_json(_output_json(y))
    elif _is_tensor(y) and y.device.type == "meta":
        print(f"output shape: {list(y.shape)} ({dtype_text(y.dtype)}, on meta: no values)")
    elif not _is_tensor(y) and _leaves_on_meta(y):
        print(f"output shapes: {_shapes(y)} (on meta: no values)")
    else:
        print(y)


def output_json(y) -> dict:
    """A forward's output as keys of a JSON object: `{"output": {...}}`, or `{"outputs": [...]}` for several."""
    data = _output_json(y)
    return data if "outputs" in data else {"output": data}


def _is_tensor(y) -> bool:
    return hasattr(y, "shape") and hasattr(y, "dtype") and hasattr(y, "device")


def _output_json(y):
    if _is_tensor(y):
        data = {"shape": list(y.shape), "dtype": dtype_text(y.dtype), "device": str(y.device)}
        if y.device.type != "meta":
            data["values"] = y.detach().cpu().tolist()
        return data
    if isinstance(y, (tuple, list)):
        return {"outputs": [_output_json(v) for v in y]}
    return {"value": y if isinstance(y, (int, float, bool, str, type(None))) else repr(y)}


def _leaves_on_meta(y) -> bool:
    if _is_tensor(y):
        return y.device.type == "meta"
    return isinstance(y, (tuple, list)) and bool(y) and all(_leaves_on_meta(v) for v in y)


def _shapes(y):
    return list(y.shape) if _is_tensor(y) else [_shapes(v) for v in y]


def tensor(t, tied: list[str]) -> None:
    """One tensor as the chapter prints it: its class, its value, its grad."""
    print(type(t))
    print(t)
    g = getattr(t, "grad", None)
    print("grad: None" if g is None else f"grad:\n{g}")
    if tied:
        print(f"tied: {' = '.join(tied)} (one tensor)")


def grads(named: dict) -> None:
    """Each parameter's grad after a block's state_dict, as `net[2].weight.grad` prints it."""
    for name, g in named.items():
        print(f"{name}.grad: None" if g is None else f"{name}.grad:\n{g}")


def inspected(result, as_json: bool) -> None:
    """`inspect`'s result: one tensor, one block's state_dict (and grads), or every tensor in a table."""
    if as_json:
        print_json(result.as_json())
    elif result.tensor is not None:
        tensor(result.tensor.tensor, result.tied)
    elif result.block is not None:
        print(result.block.module.state_dict())
        if result.grads:
            grads(result.block_grads)
    else:
        built = result.built
        inventory(result.inventory, f"{built.loaded.name} on {built.device}")


def inventory(inv, title: str) -> None:
    """Every tensor of a network in a table, then totals and tied groups (with --grad, each grad's norm)."""
    from netcli.core.devices import human_bytes

    out = stdout()
    with_grad = any(r.with_grad for r in inv.rows)
    columns = ("name", "kind", "shape", "dtype", "device", "requires_grad", "count") + (
        ("grad norm",) if with_grad else ()
    )
    out.print(
        table(
            *columns,
            title=title,
            rows=[
                (
                    " = ".join(r.names),
                    r.kind,
                    shape_text(r.shape),
                    r.dtype,
                    r.device,
                    str(r.requires_grad),
                    f"{r.numel:,}",
                )
                + ((("None" if r.grad_norm is None else f"{r.grad_norm:.4g}"),) if with_grad else ())
                for r in inv.rows
            ],
        )
    )
    totals = inv.totals()
    out.print(
        f"[bold]parameters[/]: {totals['parameters']:,} ({totals['trainable']:,} trainable)"
        + (f"; buffers: {totals['buffers']:,}" if totals["buffers"] else "")
        + f"; {totals['tensors']} tensors, {human_bytes(totals['bytes'])}"
    )
    for group in inv.tied:
        out.print(f"[bold]tied[/]: {' = '.join(group)} (one tensor, counted once)")


def init_report(initialized) -> None:
    """What each rule set, in order; with --explain, the rule that last set each parameter."""
    touched, explained, output = initialized.touched, initialized.explained, initialized.output
    out = stdout()
    if touched:
        out.print(
            table(
                "rule",
                "parameter",
                "shape",
                title="what the init rules set, in order",
                rows=[(t.rule, " = ".join((t.name,) + t.tied), shape_text(t.shape)) for t in touched],
            )
        )
    else:
        print(
            "no init rules: every parameter keeps its module's default initialization "
            "(add --rule INIT:TARGET, e.g. --rule xavier:0)",
            file=sys.stderr,
        )
    if explained is not None:
        out.print(
            table(
                "parameter",
                "shape",
                "set by",
                title="the rule that last set each parameter",
                rows=[
                    (" = ".join([r["parameter"]] + r["tied"]), shape_text(r["shape"]), r["set_by"]) for r in explained
                ],
            )
        )
    if output is not None:
        out.print(f"wrote {output}")


def saved(saved) -> None:
    """`save`'s line: one file (its tensors, tied names stored once, format, size) or a folder (its files)."""
    from netcli.core.devices import human_bytes

    report, data = saved.report, saved.data
    if report is None:  # a folder: the Hugging Face sharded layout or a DCP checkpoint
        print(
            f"saved to {saved.output}: {data['format']}, {len(data['files'])} file(s), {human_bytes(data['bytes'])}, "
            f"spec sha256 {saved.sha256[:12]}"
        )
        return
    tied = sum(len(v) for v in report.tied.values())
    print(
        f"saved {report.tensors} tensors"
        + (f" ({tied} tied name(s) stored once)" if tied else "")
        + f" to {report.path}: {report.format}, {human_bytes(report.nbytes)}"
        + (f", spec sha256 {saved.sha256[:12]}" if report.format == "safetensors" else "")
    )


def loaded(reloaded, as_json: bool) -> None:
    """`load`'s result: the network as print(net) shows it, then the output of `--input` as print(y) shows it."""
    net, y = reloaded.built.net, reloaded.output
    if as_json:
        data = {**reloaded.report.as_json(), "module": str(net)}
        if y is not None:
            data.update(output_json(y))  # {"output": ...}, or {"outputs": [...]} for several
        print_json(data)
        return
    print(net)
    if y is not None:
        print(y)


def converted(report: dict, output: str) -> None:
    """`convert`'s line: what was written, its tensors and size, and its shards."""
    from netcli.core.devices import human_bytes

    shards = f" in {len(report['shards'])} shard(s)" if "shards" in report else ""
    print(f"wrote {output}: {report['format']}, {report['tensors']} tensors, {human_bytes(report['bytes'])}{shards}")


def registered_types(entries) -> None:
    """`netcli types`: each registered type with its arguments and where it comes from."""
    from rich.table import Table

    out = Table("type", "arguments", "from")
    for e in entries:
        out.add_row(e.name, str(e.signature or "(...)"), e.origin)
    stdout().print(out)


def exported(result) -> None:
    """`export`'s line: the file, how it was made, its input and output shapes, how well it matches torch."""
    fmt = result.format
    check = (
        ""
        if result.max_difference is None
        else f"; its output matches torch's (max |difference| {result.max_difference:.3g})"
    )
    batch = "; any batch size" if result.dynamic_batch else "; batch size fixed"
    stdout().print(
        f"wrote {result.path} ({fmt} via {result.method}, {result.nbytes:,} bytes): "
        f"input {result.input_shape} -> output {result.output_shape}{check}{batch}",
        markup=False,
    )


def devices(report) -> None:
    """`netcli devices`: the CPU line, each GPU's row of a table, what auto and auto:N resolve to."""
    from rich.table import Table

    from netcli.core.devices import human_bytes

    console = stdout()

    c = report.cpu
    mem = (
        f"{human_bytes(c['memory_total'])} total, {human_bytes(c['memory_available'])} available"
        if c["memory_total"]
        else "memory unknown"
    )
    console.print(
        f"[bold]cpu[/]: {c['name']}, {c['cores']} cores ({c['usable_cores']} usable, "
        f"torch uses {c['torch_threads']} threads), {mem}"
    )
    if report.gpus:
        table = Table("index", "device", "name", "memory total", "memory free", "capability")
        for g in report.gpus:
            table.add_row(
                str(g.index),
                f"cuda:{g.index}",
                g.name,
                human_bytes(g.memory_total),
                human_bytes(g.memory_free) if g.memory_free is not None else "?",
                g.capability,
            )
        console.print(table)
    else:
        cuda = (
            f"torch built with CUDA {report.torch['cuda']}" if report.torch.get("cuda") else "torch built without CUDA"
        )
        console.print(f"[bold]gpu[/]: no GPU is visible ({cuda})")
    if report.mps:
        console.print("[bold]mps[/]: Apple Metal (MPS) is available: --device mps")
    for name, dev in report.auto.items():
        console.print(f"[bold]{name}[/] resolves to {dev}")
    console.print(f"[bold]all GPUs[/] (try_all_gpus): {', '.join(report.all_gpus)}")
