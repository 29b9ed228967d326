"""`netcli build`'s table: the block tree with the chosen columns' cells, then the totals, ties, compute, notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcli.app.summary_table import human_count
from netcli.core.devices import human_bytes

if TYPE_CHECKING:  # the summary's module imports torch; `netcli --help` must not
    from netcli.app.summary import BlockRow, Summary


def default_columns(summary: Summary) -> list[str]:
    """The columns worth showing: costs when an input shape gave them, trainable and device when they vary."""
    cols = ["shape"] if any(r.shape is not None for r in summary.rows) else []
    cols += ["params", "param_mem"]
    if summary.frozen_params:
        cols.append("trainable")
    if summary.flops is not None:
        cols += ["macs", "flops", "act_mem"]
    if len({r.device for r in summary.rows if r.device != "-"}) > 1:
        cols.append("device")
    return cols


def _cell(row: BlockRow, column: str, backward: bool) -> str:
    if column == "shape":
        return "[" + ", ".join(map(str, row.shape)) + "]" if row.shape is not None else "-"
    if column == "params":
        if not row.params:
            return "-"
        text = f"{row.params:,}"
        if row.tied_with:
            text += (
                f" (tied: {row.tied_with[0]}" + (f" +{len(row.tied_with) - 1}" if len(row.tied_with) > 1 else "") + ")"
            )
        return text
    if column == "param_mem":
        return human_bytes(row.param_bytes) if row.params else "-"
    if column == "trainable":
        if not row.params:
            return "-"
        return "yes" if row.trainable == row.params else "no" if row.trainable == 0 else "partly"
    at_least = "≥" if row.partial else ""  # the run stopped inside this block
    if column == "macs":
        return at_least + human_count(row.macs) if row.macs else ("-" if row.macs is None else "0")
    if column == "flops":
        if row.flops is None:
            return "-"
        total = row.flops + (row.backward_flops or 0) if backward else row.flops
        return at_least + human_count(total) if total else "0"
    if column == "act_mem":
        return human_bytes(row.activation_bytes) if row.activation_bytes is not None else "-"
    if column == "device":
        return row.device
    raise KeyError(column)


_HEADERS = {
    "shape": "output",
    "params": "params",
    "param_mem": "param mem",
    "trainable": "trainable",
    "macs": "MACs",
    "flops": "FLOPs",
    "act_mem": "out mem",
    "device": "device",
}


def _tree_prefixes(rows: list[BlockRow]) -> list[str]:
    """The ├─ / └─ drawing before each row's name, for the rows shown."""
    index = {row.name: i for i, row in enumerate(rows)}  # qualified names are unique
    last_child: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.name:
            last_child[row.name.rpartition(".")[0]] = i

    def is_last(name: str) -> bool:
        return last_child.get(name.rpartition(".")[0]) == index.get(name)

    prefixes = []
    for row in rows:
        if not row.name:
            prefixes.append("")
            continue
        parts = row.name.split(".")
        # an ancestor with later siblings draws a │ down past this row
        lead = "".join("   " if is_last(".".join(parts[:d])) else "│  " for d in range(1, len(parts)))
        prefixes.append(lead + ("└─ " if is_last(row.name) else "├─ "))
    return prefixes


def summary_table(described) -> None:
    """`build`'s table on stdout, titled with the network's name and device."""
    from netcli.cli.render import stdout

    built = described.built
    title = f"{built.loaded.name} on {built.device}"
    render(described.summary, title, stdout(), columns=described.columns, backward=described.backward)


def render(summary: Summary, title: str, console, *, columns: list[str] | None = None, backward: bool = False) -> None:
    """Print the summary as a table whose first column is the module tree, then the totals."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    columns = columns if columns is not None else default_columns(summary)
    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.add_column("block", no_wrap=True)
    for column in columns:
        header = _HEADERS[column] + (" (fwd+bwd)" if column == "flops" and backward else "")
        table.add_column(
            header, justify="left" if column in ("shape", "device", "trainable") else "right", no_wrap=True
        )
    for prefix, row in zip(_tree_prefixes(summary.rows), summary.rows, strict=False):
        label = f"{prefix}[cyan]{escape(row.name.rsplit('.', 1)[-1] or '(root)')}[/]: {escape(row.type)}"
        if row.arguments is not None:  # Linear(in_features=400 [inferred], ...)
            label += "(" + escape(row.arguments) + ")"
        table.add_row(label, *(escape(_cell(row, c, backward)) for c in columns))
    console.print(table)
    console.print(
        f"[bold]parameters[/]: {summary.total_params:,} ({summary.trainable_params:,} trainable"
        + (f", {summary.frozen_params:,} frozen" if summary.frozen_params else "")
        + f"), {human_bytes(summary.total_bytes)}"
        + (f"; buffers {human_bytes(summary.buffers_bytes)}" if summary.buffers_bytes else "")
    )
    for group in summary.tied:
        console.print(f"[bold]tied[/]: {' = '.join(group)} (one tensor, counted once)", markup=True)
    if summary.flops is not None:
        shape = _input_text(summary.input_shape)
        line = (
            f"[bold]compute[/]: {'at least ' if summary.partial else ''}"
            f"{human_count(summary.flops, 'FLOPs')} = {human_count(summary.macs, 'MACs')} "
            f"per forward{' of ' + escape(shape) if shape else ''}"
            + (" (the counting run stopped: see the note)" if summary.partial else "")
        )
        if summary.backward_flops is not None:
            total = summary.flops + summary.backward_flops
            line += (
                f"; {human_count(summary.backward_flops, 'FLOPs')} backward, "
                f"{human_count(total, 'FLOPs')} forward+backward"
            )
        console.print(line)
        console.print(
            f"[bold]activations[/]: {human_bytes(summary.activation_bytes or 0)} "
            "(the leaf blocks' outputs, one forward)"
        )
    elif summary.input_shape is None:
        console.print(
            "[dim]FLOPs and activations need an input shape: add input: to the spec or pass --set input=[...][/]"
        )
    if summary.shape_note:
        console.print(f"[yellow]note[/]: {escape(summary.shape_note)}")


def _input_text(spec_input) -> str:
    """`[2, 20]`, `[2, 16] int64`, or several of those for a forward with several inputs."""
    if spec_input is None:
        return ""
    if isinstance(spec_input, (list, tuple)) and all(isinstance(s, int) for s in spec_input):
        return "[" + ", ".join(map(str, spec_input)) + "]"
    if isinstance(spec_input, (list, tuple)):
        return ", ".join(_input_text(entry) for entry in spec_input)
    shape = spec_input.get("shape") if isinstance(spec_input, dict) else getattr(spec_input, "shape", None)
    dtype = spec_input.get("dtype") if isinstance(spec_input, dict) else getattr(spec_input, "dtype", None)
    if shape is None:
        return str(spec_input)
    text = _input_text(list(shape))
    return text + (f" {dtype}" if dtype not in (None, "float32") else "")
