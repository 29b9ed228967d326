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

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> int:
        return self.times(at, 1)  # a layer, a ref (its one shared instance), a tensor
