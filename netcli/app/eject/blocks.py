"""A custom block (SPEC 1.6) written as the class a person would write.

`params:` become `__init__` arguments with their defaults (a `${param}` inside
stays the argument's name), the children are assigned in order
(`self.conv1 = nn.Conv2d(...)`), and the forward is the checked program written
back as Python (build/forward_ir.py `to_python`). A block without a forward is
an `nn.Sequential` of its class; `class: Sequential` is a plain `nn.Sequential`,
built by a function that takes the params.
"""

from __future__ import annotations

from typing import Any

from netcli.app.eject.containers import tensor_statement, tie_statements
from netcli.app.eject.exprs import sequential
from netcli.app.eject.source import Assign, Call, Code, Deferred, Do, identifier, is_identifier, string
from netcli.app.eject.walk import Piece, Use, Writer
from netcli.builder.blocks import program_for
from netcli.builder.forward import to_python
from netcli.core.errors import NetcliError
from netcli.core.qualnames import join
from netcli.specfile.loading import NodeAt, doc_get, node_children
from netcli.specfile.params import declared as written_params
from netcli.specfile.params import module_children
from netcli.specfile.tree import block_members, class_name


def write_block(w: Writer, node: Any, path: tuple, qualname: str, own: str, with_: list, params: dict | None) -> Piece:
    """Write the block at `path` (bound to this use's params); return the call that creates it."""
    declared = declared_params(w, path)
    printed = class_name(node, path)
    saved, w.scope = w.scope, param_names(declared)
    chained = node.forward is None  # a Sequential: each child's input comes from the one before
    placed = _placed(w, node, path)
    pieces: list[Piece] = []
    names: list[str] = []
    incoming: str | None = own  # the device the previous child's output is on (None: not known)
    tensors: dict[int, list] = {}  # position among the module children -> the tensor children created before it
    given = {child: param for param, child in module_children(doc_get(w.loaded.doc.data, path), declared).items()}
    bound = {name: (child, tensor) for name, child, tensor in block_members(node, path)}
    written = doc_get(w.loaded.doc.data, path + ("children",)) or {}
    for name in [str(k) for k in written] if given else bound:
        if name in given:  # a module-valued param: `self.downsample = downsample`, whatever this use gives
            pieces.append(Piece([], Code(w.scope[given[name]]), own))
            names.append(name)
            continue
        child, tensor = bound[name]
        if tensor is not None:
            tensors.setdefault(len(pieces), []).append(tensor_statement(w, name, tensor, child.path))
            continue
        piece = w.node(child.node, child.path, join(qualname, name), own, incoming if chained or not placed else None)
        pieces.append(piece)
        names.append(name)
        incoming = piece.out if chained else incoming
    w.scope = saved
    out = incoming if chained else (None if placed else own)
    definition = path[:1] == ("blocks",) and len(path) == 2
    if chained and printed == "Sequential" and (tensors or node.tie):
        raise NetcliError(
            w.loaded.problem(
                path + ("class",),
                "netcli code writes class: Sequential as a plain nn.Sequential, which has no place for "
                "tensor children or ties",
                "give the block a class name of its own, e.g. class: Stem",
            )
        )
    if chained and printed == "Sequential":
        stmts = w.in_order(pieces, names)
        expr = sequential([p.expr for p in pieces], names)
        if not definition:
            return Piece(stmts, expr, out)
        call = Deferred(str(path[1]), kwargs=list(with_), body=(stmts, expr))
        w.record(path, Use("factory", str(path[1]), printed, stmts + [expr], call, params, declared))
        return Piece([], call, out)
    body: list = [Do(Call("super().__init__"))]
    for i, (name, piece) in enumerate(zip(names, pieces, strict=False)):
        body += tensors.pop(i, [])
        body += piece.stmts
        if is_identifier(name) and name not in ("forward", "training"):
            body.append(Assign(f"self.{name}", piece.expr))
        else:
            body.append(Do(Call("self.add_module", (Code(string(name)), piece.expr))))
    body += [stmt for stmts in tensors.values() for stmt in stmts] + tie_statements(
        "self", node.tie
    )  # tensors after the last module, then ties
    forward = forward_text(w, node, path)
    call = Deferred(printed, kwargs=list(with_), body=(body, forward))  # the body tells unlike uses apart
    w.record(
        path,
        Use(
            "class",
            str(path[1]) if definition else printed,
            printed,
            body,
            call,
            params,
            declared,
            "nn.Sequential" if chained else "nn.Module",
            forward,
        ),
    )
    return Piece([], call, out)


def forward_text(w: Writer, node: Any, path: tuple) -> str | None:
    """The block's forward as a method (`def forward(self, x): ...`), or None without one."""
    if node.forward is None:
        return None
    return to_python(program_for(w.loaded, node, path), self_name="self")


def declared_params(w: Writer, path: tuple) -> dict[str, Any]:
    """The params the block at `path` declares, as written: name -> default (REQUIRED for none)."""
    return written_params(doc_get(w.loaded.doc.data, path))


def param_names(declared: dict) -> dict[str, str]:
    """Each param's name in Python (a keyword or `self` gets a suffix)."""
    taken = {"self"}
    return {name: identifier(name, taken) for name in declared}


def _placed(w: Writer, node: Any, path: tuple) -> bool:
    """Whether a block under this one has its own `device:` (the builder then moves inputs per child)."""
    if w.meta:
        return False
    stack, seen = [NodeAt(node, path)], 0
    while stack and seen < 10_000:
        at = stack.pop()
        seen += 1
        for _, child in node_children(at):
            if child.node.device is not None:
                return True
            stack.append(child)
    return False
