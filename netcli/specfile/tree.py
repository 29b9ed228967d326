"""A spec's node tree and the one walker over it: each node with its document path, its children, every node
of a spec in turn, and `Walker`, whose `dispatch` is the only place that tells the kinds of node apart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from netcli.core.errors import NetcliError
from netcli.specfile.schema import (
    REQUIRED,
    BlockNode,
    LayerNode,
    RefNode,
    SequenceNode,
    TensorNode,
    UseNode,
    param_defaults,
)
from netcli.specfile.yamldoc import Path, render_path

R = TypeVar("R")
DEFAULT_CLASS = "Block"  # the class an inline block without `class:` prints as


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


def is_custom_block(node: Any) -> bool:
    """Whether the node is a custom block (a class of its own, where other nodes are a type's call or a container)."""
    return isinstance(node, BlockNode)


def has_params(node: Any) -> bool:
    """Whether the node is a block that declares params (a template: each use binds its own copy)."""
    return isinstance(node, BlockNode) and bool(node.params)


def declared_params(node: Any) -> dict[str, Any]:
    """A node's params as name -> default (REQUIRED for none): a block's, nothing for any other node."""
    return param_defaults(node.params) if isinstance(node, BlockNode) else {}


def required_params(node: Any) -> list[str]:
    """The params a block declares without a default: each use must give them (and no `ref` can)."""
    return [name for name, default in declared_params(node).items() if default is REQUIRED]


def block_members(node: BlockNode, path: Path) -> Iterator[tuple[str, NodeAt, TensorNode | None]]:
    """Yield (name, child, tensor) for a custom block's children in order: `tensor` is the child itself
    when it is a Parameter or Buffer (made and registered in place), None for a module."""
    for name, child in block_children(node, path):
        yield name, child, child.node if isinstance(child.node, TensorNode) else None


def named_definition(node: Any) -> str | None:
    """The definition a `use` or `ref` names; None for any other node."""
    if isinstance(node, UseNode):
        return node.use
    if isinstance(node, RefNode):
        return node.ref
    return None


def class_name(node: Any, path: Path, default: str = DEFAULT_CLASS) -> str:
    """The name a custom block prints as: its `class:`, else its definition's name (SPEC 1.6), else `default`."""
    if isinstance(node, BlockNode) and node.class_:
        return node.class_
    if path[:1] == ("blocks",) and len(path) == 2:
        return str(path[1])
    return default


def repeat_names(node: Any) -> list[str]:
    """The names of a node's `repeat:` copies: `names:` formatted with each index, else 0, 1, ..."""
    return [node.names.format(i=i) if node.names else str(i) for i in range(node.repeat)]


def cannot_bind(loaded: Any, at: NodeAt) -> NoReturn:
    """Raise the problems that kept a block from being bound (check_spec reports them first)."""
    problems = list(loaded.instance_problems.values()) or [
        loaded.problem(at.path, "this block's params cannot be bound")
    ]
    raise NetcliError(problems)


class Walker(Generic[R]):
    """The one walk over a spec's nodes: `dispatch` tells the kinds apart, a client writes one method per kind.

    The builder, eject's writer, the size check, the registry checks and
    `walk_tree` are all walkers. `dispatch` is the only place that looks at a
    node's kind, and it resolves what each kind means once for all of them: a
    `use` arrives with the bound copy it builds (its definition's params filled
    in from `with:`), an inline block with params arrives bound to its defaults,
    a ModuleList/ModuleDict arrives apart from a Sequential. A client recurses by
    calling `dispatch` (or its own wrapper that handles the node's options) on
    the children that `children_of`, `list_items` and `block_members` yield.
    Extra arguments of `dispatch` are passed on to the method. `binds = False`
    walks the nodes as written (uses arrive with None, blocks unbound).
    """

    loaded: Any  # the LoadedSpec walked
    binds: bool = True

    def dispatch(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        node = at.node
        if isinstance(node, RefNode):
            return self.visit_ref(at, *args, **kwargs)
        if isinstance(node, UseNode):
            bound = self.loaded.instance(node, at.path) if self.binds else None
            if bound is None and self.binds:
                return self.unbound(at, *args, **kwargs)
            return self.visit_use(at, bound, *args, **kwargs)
        if isinstance(node, BlockNode):
            if self.binds and has_params(node) and at.params is None:  # an inline block with params: its defaults
                bound = self.loaded.bind(at)
                if bound is None:
                    return self.unbound(at, *args, **kwargs)
                at = NodeAt(bound.node, bound.path, bound.params, at.via)
            return self.visit_block(at, *args, **kwargs)
        if isinstance(node, SequenceNode):
            if node.container != "Sequential":
                return self.visit_container(at, *args, **kwargs)
            return self.visit_sequence(at, *args, **kwargs)
        if isinstance(node, TensorNode):
            return self.visit_tensor(at, *args, **kwargs)
        return self.visit_layer(at, *args, **kwargs)

    def shared_definition(self, name: str) -> NodeAt:
        """The definition a `ref` names, as its one shared instance is made: bound to its params' defaults."""
        at = NodeAt(self.loaded.spec.blocks[name], ("blocks", name))
        if has_params(at.node):
            bound = self.loaded.bind(at)
            if bound is None:
                cannot_bind(self.loaded, at)
            at = bound
        return at

    def unbound(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        """A `use` or inline block whose params cannot be bound: raise its problems (a client may go on)."""
        cannot_bind(self.loaded, at)

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        """A kind this client does not handle: by default it cannot be here."""
        raise NetcliError(self.loaded.problem(at.path, f"a '{at.node.kind}' node cannot be here"))

    def visit_layer(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)

    def visit_sequence(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)

    def visit_container(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)

    def visit_use(self, at: NodeAt, bound: Any, *args: Any, **kwargs: Any) -> R:
        """A `use` and the bound copy it builds (None when `binds` is False)."""
        return self.other(at, *args, **kwargs)

    def visit_ref(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)

    def visit_block(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)

    def visit_tensor(self, at: NodeAt, *args: Any, **kwargs: Any) -> R:
        return self.other(at, *args, **kwargs)


class _Tree(Walker[Iterator[NodeAt]]):
    """A node and every node under it, for walk_tree."""

    def __init__(self, loaded: Any, *, templates: bool, done: set[int]):
        self.loaded, self.binds, self.done = loaded, not templates, done

    def unbound(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[NodeAt]:
        if isinstance(at.node, UseNode):  # the use itself is checked; its problems are recorded
            yield at

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[NodeAt]:
        yield at

    def _under(self, at: NodeAt, children: Iterator[tuple[str, NodeAt]]) -> Iterator[NodeAt]:
        yield at
        for _, child in children:
            child.via = at.via
            yield from self.dispatch(child)

    def visit_sequence(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[NodeAt]:
        return self._under(at, children_of(at.node, at.path))

    visit_container = visit_sequence

    def visit_block(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[NodeAt]:
        return self._under(at, block_children(at.node, at.path))

    def visit_use(self, at: NodeAt, bound: NodeAt | None, *args: Any, **kwargs: Any) -> Iterator[NodeAt]:
        yield at
        if bound is not None and bound.params is not None and id(bound) not in self.done:
            self.done.add(id(bound))
            given = ", ".join(
                f"{k}={v!r}" if not isinstance(v, (list, dict)) else f"{k}=..." for k, v in at.node.with_.items()
            )
            via = f"with {given}, from {render_path(at.path)}" if given else at.via
            yield from self.dispatch(NodeAt(bound.node, bound.path, bound.params, via))


def node_children(at: NodeAt) -> Iterator[tuple[str, NodeAt]]:
    """The children a node writes: a sequence's or a custom block's (nothing for other nodes)."""
    return _Children().dispatch(at)


class _Children(Walker[Iterator[tuple[str, NodeAt]]]):
    """The children a node writes, as written (for node_children)."""

    binds = False

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[tuple[str, NodeAt]]:
        return iter(())

    def visit_sequence(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[tuple[str, NodeAt]]:
        return children_of(at.node, at.path)

    visit_container = visit_sequence

    def visit_block(self, at: NodeAt, *args: Any, **kwargs: Any) -> Iterator[tuple[str, NodeAt]]:
        return block_children(at.node, at.path)


def walk_tree(loaded: Any, at: NodeAt, *, templates: bool = False, done: set[int] | None = None) -> Iterator[NodeAt]:
    """Yield `at` and every node under it; a `use` of a definition with params goes on into its bound copy
    (each copy once per `done`), an inline block with params is bound to its defaults (see walk_nodes)."""
    return _Tree(loaded, templates=templates, done=set() if done is None else done).dispatch(at)


def referenced_definitions(loaded: Any) -> frozenset[str]:
    """The definitions some `ref` names: each is made once, before the network, as its one shared instance."""
    return frozenset(at.node.ref for at in walk_nodes(loaded) if isinstance(at.node, RefNode))


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
            if required_params(node):
                yield at  # checked through each use, which gives its values
                continue
            at = loaded.bind(at)
            if at is None or id(at) in done:
                continue
            done.add(id(at))
        yield from walk(at)
    yield from walk(NodeAt(loaded.spec.model, ("model",)))


def walk_layers(loaded: Any) -> Iterator[LayerNode]:
    """Every layer of the spec (a registered type and its arguments), as walk_nodes meets them."""
    return (at.node for at in walk_nodes(loaded) if isinstance(at.node, LayerNode))


def model_inputs(loaded: Any) -> list[str] | None:
    """The names of the network's forward inputs when its top is a custom block (or a `use` of one), else None."""
    node = loaded.spec.model
    if isinstance(node, UseNode):
        node = loaded.spec.blocks.get(node.use)
    if isinstance(node, BlockNode):
        return list(node.inputs or ["x"])
    return None


def type_path(node: Any, path: Path) -> Path:
    """The document path of a node's type key (`model.1.Linear`), for messages."""
    if isinstance(node, LayerNode):
        return path + (node.type,)
    if isinstance(node, (UseNode, RefNode)):
        return path + (node.kind,)
    return path
