"""How many modules a spec expands to, counted before anything is built (nested repeats multiply)."""

from __future__ import annotations

from netcli.core.errors import Problem
from netcli.specfile.loading import LoadedSpec, NodeAt, block_children, children_of, has_params
from netcli.specfile.schema import REQUIRED, BlockNode, RefNode, SequenceNode, UseNode, param_defaults

MAX_MODULES = 10_000  # repeats multiply; 10,000 Linear layers validate in about 2.5 s, 100,000 took 25-60 s


def check_size(loaded: LoadedSpec) -> list[Problem]:
    """Refuse a network that expands to more modules than MAX_MODULES (nested repeats multiply).

    Counted on the spec, before anything is built: each layer is one module, a
    sequence one plus its children, a `use` its definition, a `ref` its one
    shared instance. The problem points at the first node whose copies cross the limit.
    """
    counts: dict[int, int] = {}  # id of a (bound) definition -> its count
    culprit: list[tuple] = []

    def count(node, path) -> int:
        if isinstance(node, UseNode):
            at = loaded.instance(node, path)
            one = 1 if at is None else counts[id(at.node)] if id(at.node) in counts else define(at)
        elif isinstance(node, RefNode):
            one = 1
        elif isinstance(node, SequenceNode):
            one = 1 + sum(count(child.node, child.path) for _, child in children_of(node, path))
        elif isinstance(node, BlockNode):
            if has_params(node):
                bound = loaded.bind(NodeAt(node, path))
                node = bound.node if bound is not None else node
            one = 1 + sum(count(child.node, child.path) for _, child in block_children(node, path))
        else:
            one = 1
        repeat = node.repeat if isinstance(node.repeat, int) else None
        total = 1 + repeat * one if repeat is not None else one
        if total > MAX_MODULES and not culprit:
            culprit.append(path + ("repeat",) if repeat is not None else path)
        return min(total, MAX_MODULES + 1)  # no huge integers from deep nesting

    def define(at: NodeAt) -> int:
        counts[id(at.node)] = 0  # a cycle (reported by _check_cycles) counts as nothing
        counts[id(at.node)] = count(at.node, at.path)
        return counts[id(at.node)]

    total = count(loaded.spec.model, ("model",))
    for name, node in loaded.spec.blocks.items():
        at = NodeAt(node, ("blocks", name))
        if has_params(node):
            if any(v is REQUIRED for v in param_defaults(node.params).values()):
                continue
            at = loaded.bind(at)
        if at is not None and id(at.node) not in counts:
            define(at)
    if total <= MAX_MODULES and not culprit:
        return []
    return [
        loaded.problem(
            culprit[0] if culprit else ("model",),
            f"the network expands to more than {MAX_MODULES:,} modules",
            "repeats multiply: lower a repeat, or share one block with ref",
        )
    ]
