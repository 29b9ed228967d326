"""How many modules a spec expands to, counted before anything is built (nested repeats multiply)."""

from __future__ import annotations

from typing import Any

from netcli.core.errors import Problem
from netcli.specfile.loading import LoadedSpec, NodeAt, block_children, children_of
from netcli.specfile.tree import Walker, has_params, required_params

MAX_MODULES = 10_000  # repeats multiply; 10,000 Linear layers validate in about 2.5 s, 100,000 took 25-60 s


def check_size(loaded: LoadedSpec) -> list[Problem]:
    """Refuse a network that expands to more modules than MAX_MODULES (nested repeats multiply).

    Counted on the spec, before anything is built: each layer is one module, a
    sequence one plus its children, a `use` its definition, a `ref` its one
    shared instance. The problem points at the first node whose copies cross the limit.
    """
    counter = _Count(loaded)
    total = counter.dispatch(NodeAt(loaded.spec.model, ("model",)))
    for name, node in loaded.spec.blocks.items():
        at: NodeAt | None = NodeAt(node, ("blocks", name))
        if has_params(node):
            if required_params(node):
                continue
            at = loaded.bind(NodeAt(node, ("blocks", name)))
        if at is not None and id(at.node) not in counter.counts:
            counter.define(at)
    if total <= MAX_MODULES and not counter.culprit:
        return []
    return [
        loaded.problem(
            counter.culprit[0] if counter.culprit else ("model",),
            f"the network expands to more than {MAX_MODULES:,} modules",
            "repeats multiply: lower a repeat, or share one block with ref",
        )
    ]


class _Count(Walker[int]):
    """Each node's module count, with its repeat: a walker client (specfile/tree.py)."""

    def __init__(self, loaded: LoadedSpec):
        self.loaded = loaded
        self.counts: dict[int, int] = {}  # id of a (bound) definition -> its count
        self.culprit: list[tuple] = []

    def times(self, at: NodeAt, one: int) -> int:
        """`one` module count of the node at `at` times its repeat (a repeat is a Sequential of the copies)."""
        repeat = at.node.repeat if isinstance(at.node.repeat, int) else None
        total = 1 + repeat * one if repeat is not None else one
        if total > MAX_MODULES and not self.culprit:
            self.culprit.append(at.path + ("repeat",) if repeat is not None else at.path)
        return min(total, MAX_MODULES + 1)  # no huge integers from deep nesting

    def define(self, at: NodeAt) -> int:
        self.counts[id(at.node)] = 0  # a cycle (reported by check_cycles) counts as nothing
        self.counts[id(at.node)] = self.dispatch(at)
        return self.counts[id(at.node)]

    def _within(self, at: NodeAt, children: Any) -> int:
        return self.times(at, 1 + sum(self.dispatch(child) for _, child in children))

    def visit_use(self, at: NodeAt, bound: Any) -> int:
        one = self.counts[id(bound.node)] if id(bound.node) in self.counts else self.define(bound)
        return self.times(at, one)

    def unbound(self, at: NodeAt, *args: Any, **kwargs: Any) -> int:
        return self.times(at, 1)  # its problems are reported instead

    def visit_sequence(self, at: NodeAt) -> int:
        return self._within(at, children_of(at.node, at.path))

    visit_container = visit_sequence

    def visit_block(self, at: NodeAt) -> int:
        return self._within(at, block_children(at.node, at.path))

    def visit_layer(self, at: NodeAt) -> int:
        return self.times(at, 1 + stacked_layers(at.node))

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> int:
        return self.times(at, 1)  # a ref (its one shared instance), a tensor


# torch.nn layers that build a stack of layers from one argument (LSTM/GRU/RNN, TransformerEncoder/Decoder,
# Transformer): `num_layers: 9223372036854775808` made `validate` build on meta without end
STACKED = ("num_layers", "num_encoder_layers", "num_decoder_layers")


def stacked_layers(node: Any) -> int:
    """How many layers a torch.nn layer stacks inside itself, read from its arguments before it is built.

    Both readings of a positional list count (torch's order, and with the input size left out for
    shape inference to fill), so a size that could be either is bounded either way.
    """
    from netcli import registry

    if not isinstance(node.type, str) or node.type not in registry.types:
        return 0
    from netcli.builder.inference import constructor_signature  # reads the @overload of GRU(*args, **kwargs)

    sig = constructor_signature(registry.types.get(node.type))
    readings: list[dict[str, Any]] = [dict(node.kwargs)]
    if sig is not None:
        for args in (list(node.args), [None, *node.args]):  # torch's order; the first argument inferred
            try:
                readings.append(dict(sig.bind_partial(*args, **node.kwargs).arguments))
            except TypeError:
                pass
    counts = [
        sum(v for name, v in reading.items() if name in STACKED and type(v) is int and v > 0) for reading in readings
    ]
    return max(counts)
