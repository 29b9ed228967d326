"""A spec's node tree: each node with its document path, its children, every node of a spec in turn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netcli.specfile.schema import BlockNode, LayerNode, RefNode, SequenceNode, UseNode
from netcli.specfile.yamldoc import Path, render_path


@dataclass
class NodeAt:
    """A node and its path in the document (and, for a bound block, its params' values)."""

    node: Any
    path: Path
    params: dict | None = None
    via: str = ""  # under a use's bound copy: "with planes=128, from model.layer2[0]", for messages


def children_of(node: SequenceNode, path: Path) -> Iterator[tuple[str, NodeAt]]:
    """Yield (child name, child) for a sequence node, with each child's document path."""
    base = path + (node.container,) if node.spelled else path
    for i, child in enumerate(node.children):
        if node.child_names is not None:
            key = node.child_names[i]
            name = key if child.name is None else str(child.name)
            yield name, NodeAt(child, base + (key,))
        else:
            yield (str(i) if child.name is None else str(child.name)), NodeAt(child, base + (i,))


def list_items(node: SequenceNode, path: Path) -> Iterator[tuple[str, NodeAt]]:
    """Yield (position, item) for a ModuleList: an item with `repeat: N` is N items, numbered on.

    As `nn.ModuleList([Block() for _ in range(N)])`: each copy is the node
    without its repeat, at the written item's path.
    """
    index = 0
    for _, child in children_of(node, path):
        if child.node.repeat is None:
            yield str(index), child
            index += 1
            continue
        one = child.node.model_copy(update={"repeat": None})
        for _ in range(child.node.repeat):
            yield str(index), NodeAt(one, child.path, child.params, child.via)
            index += 1


def block_children(node: BlockNode, path: Path) -> Iterator[tuple[str, NodeAt]]:
    """Yield (child name, child) for a custom block, in the order `children:` writes them."""
    given_at = dict(node.given_at)  # a module a use gives: where its `with:` writes it
    for name, child in node.children.items():
        yield name, NodeAt(child, given_at.get(name, path + ("children", name)))


def node_children(at: NodeAt) -> Iterator[tuple[str, NodeAt]]:
    """The children a node writes: a sequence's or a custom block's (nothing for other nodes)."""
    if isinstance(at.node, SequenceNode):
        return children_of(at.node, at.path)
    if isinstance(at.node, BlockNode):
        return block_children(at.node, at.path)
    return iter(())


def has_params(node: Any) -> bool:
    return isinstance(node, BlockNode) and bool(node.params)


def walk_tree(loaded: Any, at: NodeAt, *, templates: bool = False, done: set[int] | None = None) -> Iterator[NodeAt]:
    """Yield `at` and every node under it; a `use` of a definition with params goes on into its bound copy
    (each copy once per `done`), an inline block with params is bound to its defaults (see walk_nodes)."""
    done = set() if done is None else done
    if not templates and has_params(at.node) and at.params is None:
        bound = loaded.bind(at)  # an inline block with params: its defaults
        if bound is None:
            return
        at = NodeAt(bound.node, bound.path, bound.params, at.via)
    yield at
    for _, child in node_children(at):
        child.via = at.via
        yield from walk_tree(loaded, child, templates=templates, done=done)
    if not templates and isinstance(at.node, UseNode):
        bound = loaded.instance(at.node, at.path)
        if bound is not None and bound.params is not None and id(bound) not in done:
            done.add(id(bound))
            given = ", ".join(
                f"{k}={v!r}" if not isinstance(v, (list, dict)) else f"{k}=..." for k, v in at.node.with_.items()
            )
            via = f"with {given}, from {render_path(at.path)}" if given else at.via
            yield from walk_tree(
                loaded, NodeAt(bound.node, bound.path, bound.params, via), templates=templates, done=done
            )


def walk_nodes(loaded: Any, *, templates: bool = False) -> Iterator[NodeAt]:
    """Yield every node of the spec (definitions, then the model) with its path.

    A definition with params is walked once per distinct set of values it is
    used with (each bound copy, see LoadedSpec.instance), and once with its
    defaults when it has a default for each; `templates=True` walks each
    definition once as written instead (for checks that must not expand, such
    as finding cycles). Problems binding a copy go to `loaded.instance_problems`.
    """
    done: set[int] = set()

    def walk(at: NodeAt) -> Iterator[NodeAt]:
        return walk_tree(loaded, at, templates=templates, done=done)

    for name, node in loaded.spec.blocks.items():
        at = NodeAt(node, ("blocks", name))
        if not templates and has_params(node):
            from netcli.specfile.schema import REQUIRED, param_defaults

            if any(v is REQUIRED for v in param_defaults(node.params).values()):
                yield at  # checked through each use, which gives its values
                continue
            at = loaded.bind(at)
            if at is None or id(at) in done:
                continue
            done.add(id(at))
        yield from walk(at)
    yield from walk(NodeAt(loaded.spec.model, ("model",)))


def type_path(node: Any, path: Path) -> Path:
    """The document path of a node's type key (`model.1.Linear`), for messages."""
    if isinstance(node, LayerNode):
        return path + (node.type,)
    if isinstance(node, (UseNode, RefNode)):
        return path + (node.kind,)
    return path
