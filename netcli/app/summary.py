"""Describe a built network: per-block rows, totals, tied parameters, costs; as data and as a rich table.

The counting lives in `cost.py` (FLOPs, MACs, activation bytes, on meta); this
module gathers the rows, folds them to a depth, and renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from netcli.core.devices import human_bytes
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean
from netcli.core.ties import tie_groups


@dataclass
class BlockRow:
    """One module of the network, for the summary; every count includes its children's."""

    name: str
    type: str
    depth: int
    params: int  # its own and its children's, each tensor counted once
    shape: tuple | None
    device: str
    inferred: dict = field(default_factory=dict)  # arguments shape inference filled in
    arguments: str | None = None  # with inferred ones: "in_features=400 [inferred], ..."
    trainable: int = 0  # of `params`, those that take gradients
    param_bytes: int = 0
    tied_with: list[str] = field(default_factory=list)  # other blocks that hold some of the same tensors
    flops: int | None = None  # forward; None: not counted (no input shape, or the run stopped before it)
    backward_flops: int | None = None
    activation_bytes: int | None = None  # bytes of its outputs, every call
    partial: bool = False  # the counting run stopped inside it: its counts are a lower bound

    @property
    def macs(self) -> int | None:
        return None if self.flops is None else self.flops // 2


@dataclass
class Summary:
    rows: list[BlockRow]
    total_params: int
    trainable_params: int
    total_bytes: int
    buffers_bytes: int
    tied: list[list[str]] = field(default_factory=list)  # groups of names that are one tensor
    output_shape: tuple | None = None
    shape_note: str | None = None
    input_shape: object = None
    flops: int | None = None  # forward, as FlopCounterMode counts it
    backward_flops: int | None = None  # with --backward
    activation_bytes: int | None = None  # the leaf blocks' outputs, one forward
    flops_by_op: dict = field(default_factory=dict)
    counted_on: str | None = None  # the device the costs were counted on
    partial: bool = False  # the counting run stopped (see shape_note): the totals are a lower bound

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def macs(self) -> int | None:
        return None if self.flops is None else self.flops // 2

    def as_json(self) -> dict:
        return {
            "blocks": [
                {
                    "name": r.name or "(root)",
                    "type": r.type,
                    "depth": r.depth,
                    "params": r.params,
                    "trainable_params": r.trainable,
                    "param_bytes": r.param_bytes,
                    "output_shape": list(r.shape) if r.shape is not None else None,
                    "device": r.device,
                    "macs": r.macs,
                    "flops": r.flops,
                    "backward_flops": r.backward_flops,
                    "activation_bytes": r.activation_bytes,
                    "partial": r.partial,
                    **({"tied_with": r.tied_with} if r.tied_with else {}),
                    **({"inferred": r.inferred} if r.inferred else {}),
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "param_bytes": self.total_bytes,
            "buffer_bytes": self.buffers_bytes,
            "tied": self.tied,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "macs": self.macs,
            "flops": self.flops,
            "backward_flops": self.backward_flops,
            "flops_by_op": self.flops_by_op,
            "activation_bytes": self.activation_bytes,
            "counted_on": self.counted_on,
            "partial": self.partial,
            "note": self.shape_note,
        }


def tied_groups(net: nn.Module) -> list[list[str]]:
    """Return groups of parameter/buffer names that are the same tensor (tied)."""
    named = list(net.named_parameters(remove_duplicate=False)) + list(net.named_buffers(remove_duplicate=False))
    return [names for _, names in tie_groups(named) if len(names) > 1]


def _owners(net: nn.Module) -> dict[int, list[str]]:
    """Parameter id -> the names of the modules that hold it directly (several for a tied one)."""
    owners: dict[int, list[str]] = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name.rpartition(".")[0])
    return owners


def _inside(name: str, block: str) -> bool:
    return block == "" or name == block or name.startswith(block + ".")


def summarize(
    net: nn.Module,
    shapes: dict[str, tuple] | None = None,
    note: str | None = None,
    output_shape: tuple | None = None,
    inferred: dict[str, dict] | None = None,
    *,
    cost=None,
    input_shape=None,
) -> Summary:
    """Gather one row per module (a module used twice gets a row at each place) and the totals.

    `cost` (a cost.Cost) adds FLOPs, MACs and activation bytes; the totals are
    over unique tensors, so a tied tensor counts once whatever the rows say.
    """
    from netcli.builder.inference import describe_inferred

    shapes, inferred = shapes or {}, inferred or {}
    owners = _owners(net)
    blocks = cost.blocks if cost is not None else {}
    rows: list = []
    seen: dict = {}
    for name, module in net.named_modules(remove_duplicate=False):
        depth = 0 if not name else name.count(".") + 1
        params = list(module.parameters())  # each tensor once
        first = params[0] if params else next(iter(module.buffers()), None)
        parent = name.rpartition(".")[0] if name else None
        # a block without tensors runs where its parent's tensors are
        device = str(first.device) if first is not None else seen.get(parent, "-")
        seen[name] = device
        tied_with = sorted({o for p in params for o in owners.get(id(p), ()) if not _inside(o, name)})
        block = blocks.get(name)
        counted = cost is not None and (block is not None or cost.error is None)
        shape = shapes.get(name)
        if shape is None and block is not None:
            shape = block.shape
        rows.append(
            BlockRow(
                name,
                type(module).__name__,
                depth,
                sum(p.numel() for p in params),
                shape,
                device,
                inferred.get(name, {}),
                describe_inferred(inferred[name]) if name in inferred else None,
                trainable=sum(p.numel() for p in params if p.requires_grad),
                param_bytes=sum(p.numel() * p.element_size() for p in params),
                tied_with=tied_with,
                flops=(block.flops if block is not None else 0) if counted else None,
                backward_flops=(
                    (block.backward_flops if block is not None else 0)
                    if counted and cost.backward_flops is not None
                    else None
                ),
                activation_bytes=(block.activation_bytes if block is not None else 0) if counted else None,
                partial=cost is not None and cost.error is not None and block is not None and block.calls == 0,
            )
        )
    params = list(net.parameters())
    buffers = list(net.buffers())
    if output_shape is None and rows and rows[0].shape is not None:
        output_shape = rows[0].shape
    return Summary(
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_bytes=sum(p.numel() * p.element_size() for p in params),
        buffers_bytes=sum(b.numel() * b.element_size() for b in buffers),
        tied=tied_groups(net),
        output_shape=output_shape,
        shape_note=note,
        input_shape=input_shape,
        flops=cost.flops if cost is not None else None,
        backward_flops=cost.backward_flops if cost is not None else None,
        activation_bytes=cost.activation_bytes if cost is not None else None,
        flops_by_op=dict(cost.by_op) if cost is not None else {},
        counted_on=cost.device if cost is not None else None,
        partial=cost is not None and cost.error is not None,
    )


def describe(loaded, built, *, backward: bool = False, depth: int | None = None) -> Summary:
    """The summary `netcli build` shows: rows, shapes and costs (counted on meta, see cost.py), folded to `depth`."""
    from netcli.app.cost import count_network

    shapes, note, cost = count_network(loaded, built, backward=backward)
    summary = summarize(
        built.net, shapes, note, shapes.get(""), built.inferred, cost=cost, input_shape=loaded.spec.input
    )
    return fold(summary, depth)


def fold(summary: Summary, depth: int | None) -> Summary:
    """Keep the rows down to `depth` (0: the root only); a kept row already includes its children's counts."""
    if depth is None:
        return summary
    return replace(summary, rows=[r for r in summary.rows if r.depth <= depth])


# --- columns ----------------------------------------------------------------

COLUMNS = ("shape", "params", "param_mem", "trainable", "macs", "flops", "act_mem", "device")
COLUMN_HELP = (
    "shape: output shape; params: parameters (tied shown as such); param_mem: their bytes; "
    "trainable: yes/no/partly; macs, flops: forward (with --backward, flops is forward+backward); "
    "act_mem: bytes of the block's outputs; device"
)


def parse_columns(text: str | None, label: str = "--columns") -> list[str] | None:
    """Read `shape,params,flops` (or `all`); None when not given; a located error for an unknown name."""
    if text is None:
        return None
    names = [n.strip().lower().replace("-", "_") for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(COLUMNS)
    aliases = {
        "output": "shape",
        "mem": "param_mem",
        "activations": "act_mem",
        "activation": "act_mem",
        "frozen": "trainable",
        "mac": "macs",
        "flop": "flops",
        "parameters": "params",
    }
    out = []
    for name in names:
        name = aliases.get(name, name)
        if name not in COLUMNS:
            raise NetcliError(
                Problem(
                    f"unknown column '{name}'",
                    location=Location(label),
                    hint=did_you_mean(name, COLUMNS) or f"choose from {', '.join(COLUMNS)}, all",
                )
            )
        if name not in out:
            out.append(name)
    if not out:
        raise NetcliError(
            Problem("no columns named", location=Location(label), hint=f"choose from {', '.join(COLUMNS)}, all")
        )
    return out


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


def human_count(n: int | None, unit: str = "") -> str:
    """Format a count as 3.64G, 15.9K or 772; with a unit, as 3.64 GFLOPs or 772 FLOPs."""
    if n is None:
        return "-"
    for prefix, scale in (("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            value = n / scale
            number = f"{value:.3g}" if value < 1000 or prefix == "P" else f"{value:.0f}"
            return f"{number} {prefix}{unit}" if unit else f"{number}{prefix}"
    return f"{n} {unit}" if unit else str(n)


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
