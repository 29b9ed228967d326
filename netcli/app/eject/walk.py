"""Walk a spec as the builder walks it (build/builder.py) and write each node as a Python expression.

Each node becomes a `Piece`: the statements that must run before it (a block
created under `with torch.device(...)`, a pre-hook that moves its inputs) and the
expression that creates it. A `use` of a definition, and every custom block,
becomes a call (`block1()`, `BasicBlock(planes=128)`) whose function or class
is written once all its uses are known (defs.py). Values written as
`${param}` inside a definition stay the param's name; sizes shape inference
filled in are `Inferred` numbers, or arguments where they differ between uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from netcli.app.eject.chapter import CHAPTER_CLASSES, CHAPTER_MODULE
from netcli.app.eject.exprs import _snake, _tuples, flat_text, importable, render_kind, sequential
from netcli.app.eject.source import (
    Assign,
    Attr,
    Block,
    Call,
    Code,
    Deferred,
    Do,
    Gen,
    Items,
    identifier,
    is_identifier,
    literal,
    string,
)
from netcli.core.devices import parse_device
from netcli.core.errors import NetcliError
from netcli.core.qualnames import join
from netcli.specfile.loading import LoadedSpec, NodeAt, children_of, doc_get, type_path
from netcli.specfile.params import module_children
from netcli.specfile.schema import LayerNode, SequenceNode, UseNode
from netcli.specfile.tree import Walker, is_custom_block, referenced_definitions, repeat_names

# Names the generated module defines or imports itself: a spec name never takes one of them.
RESERVED = {
    "torch",
    "nn",
    "F",
    "OrderedDict",
    "math",
    "build",
    "init_weights",
    "net",
    "seed",
    "try_gpu",
    "move_inputs_to",
    "my_init",
    "name",
    "param",
    "m",
    "block",
    "tensor",
    "device",
    "i",
    "_",
    "self",
}
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SharedName(Code):
    """The variable holding a `ref` definition's one instance."""


@dataclass
class Piece:
    """A node written out: statements that must run first, the expression, the device its output is on."""

    stmts: list
    expr: Any
    out: str | None


@dataclass
class Use:
    """One use of a definition (or one custom block): what it writes there, and the call that stands for it."""

    kind: str  # "factory" (a function returning the module) or "class" (an nn.Module subclass)
    name: str  # the definition's name, or the block's class name
    printed: str  # what the module prints as (classes)
    body: list  # factory: statements then Return; class: __init__'s statements
    call: Deferred
    params: dict | None = None  # the params' values at this use (a definition with params)
    declared: dict = field(default_factory=dict)  # param -> default (REQUIRED: none), as written
    base: str = "nn.Module"
    forward: str | None = None  # the forward method's text


class Writer(Walker[Piece]):
    """Walks a spec as the builder does (a client of the spec walker, specfile/tree.py) and writes each node
    as an expression: `node` handles a node's options, `dispatch` calls the `visit_*` method of its kind."""

    def __init__(
        self, loaded: LoadedSpec, inferred: dict, device: str | None, *, write_block, layer_call, write_container
    ):
        # The writers of custom blocks, layers and containers live in their own modules, which use this
        # one; they are passed in (by the package) so that nothing here imports them back.
        self.write_block = write_block
        self.layer_call = layer_call
        self.write_container = write_container
        self.loaded = loaded
        self.inferred = inferred
        self.device = device
        self.meta = device is not None and parse_device(device)[0] == "meta"
        self.root = device or "cpu"
        self.taken = set(RESERVED)
        self.shared: dict[str, str] = {}  # definition -> variable of its one instance
        self.prologue: list = []  # statements creating the shared instances, in creation order
        self.uses: dict[tuple, list[Use]] = {}  # definition path -> its uses, inner definitions first
        self.classes: dict[str, str] = {}  # chapter class name -> its source, in order of first use
        self.plugin_imports: dict[str, str] = {}  # import line -> its comment
        self.needs: set[str] = set()  # helpers: try_gpu, move_inputs_to
        self.scope: dict[str, str] = {}  # the params `${name}` may name here -> their Python names
        self._types: dict[type, str] = {}

    # --- the walk -------------------------------------------------------------------

    def network(self) -> Piece:
        """Write the whole network; the `ref` definitions first, as builder.create_shared creates them."""
        referenced = referenced_definitions(self.loaded)
        for name in self.loaded.spec.blocks:
            if name in referenced:
                self.shared_instance(name)
        return self.node(self.loaded.spec.model, ("model",), "", self.root, self.root)

    def shared_instance(self, name: str) -> str:
        if name not in self.shared:
            at = self.shared_definition(name)  # the one shared instance takes the defaults
            saved, self.scope = self.scope, {}
            piece = self.node(at.node, at.path, f"<{name}>", self.root, self.root, params=at.params)
            self.scope = saved
            # a block's one instance is a variable, not its class's name: `pair = Pair()`
            var = identifier(_snake(name) if is_custom_block(at.node) else name, self.taken)
            self.shared[name] = var
            self.prologue += piece.stmts + [Assign(var, piece.expr)]
        return self.shared[name]

    def node(
        self,
        node: Any,
        path: tuple,
        qualname: str,
        parent: str,
        incoming: str | None,
        with_: list | None = None,
        params: dict | None = None,
    ) -> Piece:
        """Write one node with its options: repeat, frozen, device (and the input move it needs)."""
        own = node.device if node.device is not None and not self.meta else parent
        if node.repeat is not None:
            piece = self.repeat(node, path, qualname, own)
        else:
            piece = self.one(node, path, qualname, own, with_, params)
        if node.frozen:
            piece.expr = Call(Attr(piece.expr, "requires_grad_"), (Code("False"),))
        if own != parent:  # created on its device, as the builder creates it
            piece = self.hoist(piece, qualname, own)
        if own != incoming and not self.meta:  # builder.link_devices: the input comes from another device
            piece = self.hoist(piece, qualname, None)
            self.needs.add("move_inputs_to")
            piece.stmts.append(
                Do(
                    Call(
                        Attr(piece.expr, "register_forward_pre_hook"),
                        (Call("move_inputs_to", (self.device_expr(own),)),),
                    )
                )
            )
        return piece

    def one(
        self, node: Any, path: tuple, qualname: str, own: str, with_: list | None = None, params: dict | None = None
    ) -> Piece:
        """Write one node without its options (a `params` bound block: this use's values)."""
        return self.dispatch(NodeAt(node, path, params), qualname, own, with_ or [])

    def visit_ref(self, at: NodeAt, qualname: str, own: str, with_: list) -> Piece:
        return Piece([], SharedName(self.shared_instance(at.node.ref)), own)

    def visit_use(self, at: NodeAt, bound: Any, qualname: str, own: str, with_: list) -> Piece:
        return self.use(at.node, at.path, qualname, own, bound)

    def visit_container(self, at: NodeAt, qualname: str, own: str, with_: list) -> Piece:
        return self.write_container(self, at.node, at.path, qualname, own)

    def visit_sequence(self, at: NodeAt, qualname: str, own: str, with_: list) -> Piece:
        return self.sequence(at.node, at.path, qualname, own)

    def visit_layer(self, at: NodeAt, qualname: str, own: str, with_: list) -> Piece:
        return self.layer(at.node, at.path, qualname, own)

    def visit_block(self, at: NodeAt, qualname: str, own: str, with_: list) -> Piece:
        return self.write_block(self, at.node, at.path, qualname, own, with_, at.params)

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> Piece:
        raise NetcliError(
            self.loaded.problem(
                at.path, f"netcli code cannot write a '{at.node.kind}' node", "build it with netcli build instead"
            )
        )

    def use(self, node: UseNode, path: tuple, qualname: str, own: str, at: NodeAt) -> Piece:
        """A fresh copy of a definition (`at`, bound to this use's values): a call of its factory, or of its
        class (with `with:` as arguments)."""
        # a module-valued param (`with: {downsample: [...]}`) is written as the argument's expression,
        # created at the call before the block's own children, as the builder creates it
        modules = module_children(doc_get(self.loaded.doc.data, at.path), node.with_)
        with_, stmts = [], []
        for k, v in node.with_.items():
            if k in modules and v is not None and modules[k] in getattr(at.node, "children", {}):
                piece = self.node(
                    at.node.children[modules[k]], path + ("with", k), join(qualname, modules[k]), own, own
                )
                stmts += piece.stmts
                with_.append((k, piece.expr))
            else:
                with_.append((k, self.param_value(v, doc_get(self.loaded.doc.data, path + ("with", k)), node, path)))
        saved, self.scope = self.scope, {}  # a definition sees its own params only
        inner = self.node(at.node, at.path, qualname, own, own, with_=with_, params=at.params)
        self.scope = saved
        if is_custom_block(at.node):
            return Piece(stmts + inner.stmts, inner.expr, inner.out)  # the block's own call stands for the use
        call = Deferred(node.use, body=(inner.stmts, inner.expr))
        self.record(at.path, Use("factory", node.use, node.use, inner.stmts + [inner.expr], call))
        return Piece([], call, inner.out)

    def record(self, key: tuple, use: Use) -> None:
        self.uses.setdefault(key, []).append(use)

    def sequence(self, node: SequenceNode, path: tuple, qualname: str, own: str) -> Piece:
        pieces: list[Piece] = []
        incoming: str | None = own  # where the previous item's output is (None: not known)
        names = []
        for name, child in children_of(node, path):
            piece = self.node(child.node, child.path, join(qualname, name), own, incoming)
            names.append(name)
            pieces.append(piece)
            incoming = piece.out
        stmts = self.in_order(pieces, names)
        return Piece(stmts, sequential([p.expr for p in pieces], names), incoming)

    def in_order(self, pieces: list[Piece], names: list[str]) -> list:
        """Return the statements the pieces need, with every earlier sibling hoisted before them (creation order)."""
        last = max((i for i, p in enumerate(pieces) if p.stmts), default=-1)
        stmts: list = []
        for i, (piece, name) in enumerate(zip(pieces, names, strict=False)):
            stmts += piece.stmts
            if i < last and not isinstance(piece.expr, Code):
                var = self.variable(name)
                stmts.append(Assign(var, piece.expr))
                piece.expr = Code(var)
        return stmts

    def repeat(self, node: Any, path: tuple, qualname: str, own: str) -> Piece:
        """`repeat: N`: a generator when the copies are alike, else each copy written out."""
        names = repeat_names(node)
        copies = [self.one(node, path, join(qualname, n), own) for n in names]
        alike = all(not c.stmts and repr(c.expr) == repr(copies[0].expr) for c in copies)
        if not alike:
            return Piece(self.in_order(copies, names), sequential([c.expr for c in copies], names), copies[-1].out)
        count = self.param_value(node.repeat, doc_get(self.loaded.doc.data, path + ("repeat",)), node, path)
        if node.names is None:
            loop = Gen(copies[0].expr, f"for _ in range({flat_text(count)})", star=True)
            return Piece([], Call("nn.Sequential", (loop,)), copies[-1].out)
        pair = Items((Code("f" + string(node.names)), copies[0].expr), "()")
        loop = Gen(pair, f"for i in range({flat_text(count)})", bare=True)
        return Piece([], Call("nn.Sequential", (Call("OrderedDict", (loop,)),)), copies[-1].out)

    def hoist(self, piece: Piece, qualname: str, device: str | None) -> Piece:
        """Assign the piece to a variable (under `with torch.device(...)` when `device` is given)."""
        if isinstance(piece.expr, Code):  # a name: nothing to create
            return piece
        var = self.variable(qualname.rsplit(".", 1)[-1] if qualname else "net_part")
        body = piece.stmts + [Assign(var, piece.expr)]
        if device is not None:
            body = [Block("with ", Call("torch.device", (self.device_expr(device),)), body)]
        return Piece(body, Code(var), piece.out)

    def variable(self, name: str) -> str:
        return identifier(name if is_identifier(name) else f"block_{name}", self.taken)

    def device_expr(self, text: str):
        kind, index = parse_device(text)
        if kind == "auto":
            self.needs.add("try_gpu")
            return Call("try_gpu", (Code(str(index)),) if index else ())
        return Code(string(text))

    # --- values -------------------------------------------------------------------------

    def param_value(self, value: Any, raw: Any, node: Any, path: tuple, *, tuples: bool = True):
        """A value as the code writes it: the param's name where the spec writes `${param}`, else the value.

        `tuples`: lists become tuples, as the builder passes them to a constructor.
        """
        if isinstance(raw, str) and self.scope:
            whole = _PARAM.fullmatch(raw)
            if whole and whole.group(1) in self.scope:
                return Code(self.scope[whole.group(1)])
            if any(m.group(1) in self.scope for m in _PARAM.finditer(raw)):
                return Code("f" + string(self.fstring(raw)))
        return self.value(_tuples(value) if tuples else value, node, path)

    def fstring(self, raw: str) -> str:
        """The body of an f-string for text with `${param}` in it: `"block ${n}"` -> `block {n}`."""

        def escape(text: str) -> str:
            return text.replace("{", "{{").replace("}", "}}")

        out, pos = [], 0
        for m in _PARAM.finditer(raw):
            name = m.group(1)
            out += [
                escape(raw[pos : m.start()]),
                "{" + self.scope[name] + "}" if name in self.scope else escape(m.group(0)),
            ]
            pos = m.end()
        return "".join(out) + escape(raw[pos:])

    def value(self, value: Any, node: Any, path: tuple):
        try:
            return literal(value)
        except ValueError as exc:
            what = getattr(node, "type", None) or render_kind(node)
            raise NetcliError(
                self.loaded.problem(
                    type_path(node, path),
                    f"cannot write {what} as code: {exc}",
                    "write the argument as a number, text or list",
                )
            ) from None

    # --- layers -----------------------------------------------------------------------

    def layer(self, node: LayerNode, path: tuple, qualname: str, own: str) -> Piece:
        """A registered type's constructor call, written as the spec writes it, inferred sizes filled in."""
        return self.layer_call(self, node, path, qualname, own)

    def type_expr(self, cls: type, node: Any = None, path: tuple = ()) -> str:
        """How the code names a registered class: nn.Linear, a chapter class written out, a plugin's import."""
        if cls in self._types:
            return self._types[cls]
        import torch.nn as nn

        name = cls.__name__
        if getattr(nn, name, None) is cls:
            text = f"nn.{name}"
        elif cls.__module__ == CHAPTER_MODULE and name in CHAPTER_CLASSES:
            self.classes[name] = CHAPTER_CLASSES[name]
            self.taken.add(name)
            text = name
        else:
            text = self.plugin_type(cls, node, path)
        self._types[cls] = text
        return text

    def class_expr(self, cls: type) -> str | None:
        """The class as the code names it, for init rules on a type; None for one the code does not name."""
        return self._types.get(cls)

    def plugin_type(self, cls: type, node: Any, path: tuple) -> str:
        module, qual = cls.__module__, cls.__qualname__
        problem = importable(cls)
        if problem:
            where = type_path(node, path) if node is not None else path
            raise NetcliError(
                self.loaded.problem(
                    where,
                    f"cannot write '{getattr(node, 'type', cls.__name__)}' as code: {problem}",
                    "define the class at the top level of an importable module (a plugin), or replace the block",
                )
            )
        top = qual.split(".")[0]
        alias = top if top not in self.taken else identifier(f"{top}_{module.split('.')[0]}", self.taken)
        self.taken.add(alias)
        line = f"from {module} import {top}" + (f" as {alias}" if alias != top else "")
        self.plugin_imports[line] = "netcli plugin type"
        return alias + qual[len(top) :]
