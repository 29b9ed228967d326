"""Describe a built network: per-block rows, totals, tied parameters, as data and as rich output."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from netcli.core.devices import human_bytes


@dataclass
class BlockRow:
    """One module of the network, for the summary."""

    name: str
    type: str
    depth: int
    params: int  # its own and its children's, each tensor counted once
    shape: tuple | None
    device: str
    inferred: dict = field(default_factory=dict)  # arguments shape inference filled in
    arguments: str | None = None  # with inferred ones: "in_features=400 [inferred], ..."


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

    def as_json(self) -> dict:
        return {
            "blocks": [{"name": r.name or "(root)", "type": r.type, "depth": r.depth, "params": r.params,
                        "output_shape": list(r.shape) if r.shape is not None else None, "device": r.device,
                        **({"inferred": r.inferred} if r.inferred else {})}
                       for r in self.rows],
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "param_bytes": self.total_bytes, "buffer_bytes": self.buffers_bytes,
            "tied": self.tied,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "note": self.shape_note,
        }


def tied_groups(net: nn.Module) -> list[list[str]]:
    """Return groups of parameter/buffer names that are the same tensor (tied)."""
    by_id: dict[int, list[str]] = {}
    for name, t in list(net.named_parameters(remove_duplicate=False)) + list(net.named_buffers(remove_duplicate=False)):
        by_id.setdefault(id(t), []).append(name)
    return [names for names in by_id.values() if len(names) > 1]


def _unique_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields each tensor once


def summarize(net: nn.Module, shapes: dict[str, tuple] | None = None, note: str | None = None,
              output_shape: tuple | None = None, inferred: dict[str, dict] | None = None) -> Summary:
    from netcli.build.inference import describe_inferred
    shapes, inferred = shapes or {}, inferred or {}
    rows, seen = [], {}
    for name, module in net.named_modules(remove_duplicate=False):
        depth = 0 if not name else name.count(".") + 1
        first = next(iter(module.parameters(recurse=True)), None)
        if first is None:
            first = next(iter(module.buffers()), None)
        parent = name.rpartition(".")[0] if name else None
        # a block without tensors runs where its parent's tensors are
        device = str(first.device) if first is not None else seen.get(parent, "-")
        seen[name] = device
        rows.append(BlockRow(name, type(module).__name__, depth, _unique_count(module),
                             shapes.get(name), device, inferred.get(name, {}),
                             describe_inferred(inferred[name]) if name in inferred else None))
    params = list(net.parameters())
    buffers = [b for b in net.buffers()]
    return Summary(
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_bytes=sum(p.numel() * p.element_size() for p in params),
        buffers_bytes=sum(b.numel() * b.element_size() for b in buffers),
        tied=tied_groups(net), output_shape=output_shape, shape_note=note)


def render(summary: Summary, title: str, console) -> None:
    """Print the summary as a rich tree and a totals line."""
    from rich.markup import escape
    from rich.tree import Tree
    tree = Tree(f"[bold]{title}[/]")
    stack = [(-1, tree)]
    for row in summary.rows:
        label = f"[cyan]{row.name.rsplit('.', 1)[-1] or '(root)'}[/]: {row.type}"
        if row.arguments is not None:  # Linear(in_features=400 [inferred], ...)
            label += "(" + escape(row.arguments) + ")"
        details = [f"{row.params:,} params"] if row.params else []
        if row.shape is not None:
            details.append("→ [" + ", ".join(map(str, row.shape)) + "]")
        if row.device not in ("-", "cpu"):
            details.append(row.device)
        if details:
            label += "  [dim]" + ", ".join(details) + "[/]"
        while stack[-1][0] >= row.depth:
            stack.pop()
        branch = stack[-1][1].add(label)
        stack.append((row.depth, branch))
    console.print(tree)
    console.print(f"[bold]parameters[/]: {summary.total_params:,} ({summary.trainable_params:,} trainable), "
                  f"{human_bytes(summary.total_bytes)}"
                  + (f"; buffers {human_bytes(summary.buffers_bytes)}" if summary.buffers_bytes else ""))
    for group in summary.tied:
        console.print(f"[bold]tied[/]: {' = '.join(group)} (one tensor, counted once)")
    if summary.shape_note:
        console.print(f"[yellow]note[/]: {summary.shape_note}")
