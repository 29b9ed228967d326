"""Describe a built network: per-block rows, totals, tied parameters, costs; as data and as a rich table.

The counting lives in `cost.py` (FLOPs, MACs, activation bytes, on meta); this
module gathers the rows, folds them to a depth, and renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

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
