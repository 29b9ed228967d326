"""SPEC 1.8's forms as the code a person writes: ModuleList/ModuleDict, tensor children, parameter ties.

`nn.ModuleList(Block(dim) for _ in range(depth))` where one item repeats,
`nn.ModuleDict(dict(wte=..., h=...))` as nanoGPT writes it, `self.cls_token =
nn.Parameter(torch.zeros(1, 1, dim))`, `self.register_buffer("mask", ...,
persistent=False)`, and `self.wte.weight = self.lm_head.weight` after the
children.
"""

from __future__ import annotations

import keyword
from typing import Any

from netcli.app.eject.exprs import flat_text
from netcli.app.eject.source import Assign, Call, Code, Do, Gen, Items, is_identifier, string
from netcli.core.qualnames import join
from netcli.specfile.loading import children_of, doc_get
from netcli.specfile.tree import list_items


def write_container(w, node: Any, path: tuple, qualname: str, own: str):
    """Return the Piece that creates a ModuleList or ModuleDict node, its items in order."""
    from netcli.app.eject.walk import Piece

    written = list(children_of(node, path))
    if node.container == "ModuleList" and len(written) == 1 and written[0][1].node.repeat is not None:
        child = written[0][1]
        one = child.node.model_copy(update={"repeat": None})
        copies = [w.node(one, child.path, join(qualname, str(i)), own, own) for i in range(child.node.repeat)]
        if all(not c.stmts and repr(c.expr) == repr(copies[0].expr) for c in copies):
            raw = doc_get(w.loaded.doc.data, child.path + ("repeat",))
            count = w.param_value(child.node.repeat, raw, child.node, child.path)
            loop = Gen(copies[0].expr, f"for _ in range({flat_text(count)})", bare=True)
            return Piece([], Call("nn.ModuleList", (loop,)), own)
    names, pieces = [], []
    items = list_items(node, path) if node.container == "ModuleList" else written
    for name, child in items:
        names.append(name)
        pieces.append(w.node(child.node, child.path, join(qualname, name), own, own))
    stmts = w.in_order(pieces, names)
    exprs = [p.expr for p in pieces]
    if node.container == "ModuleList":
        return Piece(stmts, Call("nn.ModuleList", (Items(tuple(exprs), "[]"),)), own)
    if all(is_identifier(n) and not keyword.iskeyword(n) for n in names):
        return Piece(stmts, Call("nn.ModuleDict", (Call("dict", (), tuple(zip(names, exprs, strict=True))),)), own)
    pairs = Items(tuple(Items((Code(string(n)), e), "()") for n, e in zip(names, exprs, strict=True)), "[]")
    return Piece(stmts, Call("nn.ModuleDict", (pairs,)), own)


def tensor_statement(w, name: str, node: Any, path: tuple):
    """`self.NAME = nn.Parameter(torch....)` or `self.register_buffer("NAME", torch...., persistent=False)`."""
    args, fill = node.args, node.args.fill
    raw = doc_get(w.loaded.doc.data, path + (node.holder, fill))
    given = getattr(args, fill)
    given = given if isinstance(given, list) else [given]  # arange: N, eye: N
    raws = raw if isinstance(raw, list) else [raw]
    sizes = tuple(w.param_value(v, r, node, path) for v, r in zip(given, raws + [None] * len(given), strict=False))
    dtype = (("dtype", Code("torch.bool")),) if args.bool_ is True else ()
    if fill in ("zeros", "ones", "empty", "rand", "randn"):
        made = Call(f"torch.{fill}", sizes, dtype)
    elif fill == "full":
        value = args.value
        if node.holder == "Parameter" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # a parameter holds floats, as the build makes it
        raw_value = doc_get(w.loaded.doc.data, path + (node.holder, "value"))
        made = Call("torch.full", (Items(sizes, "()"), w.param_value(value, raw_value, node, path)))
    elif fill in ("arange", "eye"):
        made = Call(f"torch.{fill}", sizes, dtype)
    else:  # tril / triu of ones
        made = Call(f"torch.{fill}", (Call("torch.ones", sizes, dtype),))
    if node.holder == "Parameter":
        frozen = (("requires_grad", Code("False")),) if args.requires_grad is False else ()
        value = Call("nn.Parameter", (made,), frozen)
        if is_identifier(name) and not keyword.iskeyword(name):
            return Assign(f"self.{name}", value)
        return Do(Call("self.register_parameter", (Code(string(name)), value)))
    persistent = (("persistent", Code("False")),) if args.persistent is False else ()
    return Do(Call("self.register_buffer", (Code(string(name)), made), persistent))


def tie_statements(base: str, ties: list[str]) -> list:
    """Each tie as its hand-written line: `self.transformer.wte.weight = self.lm_head.weight`."""
    from netcli.builder.param_ties import split_tie

    out = []
    for text in ties:
        left, right = split_tie(text)
        out.append(Assign(_python_path(base, left), Code(_python_path(base, right))))
    return out


def _python_path(base: str, dotted: str) -> str:
    """`transformer.h.0.attn.weight` as `self.transformer.h[0].attn.weight` (get_submodule where names are odd)."""
    parts = dotted.split(".")
    if all(p.isdigit() or (is_identifier(p) and not keyword.iskeyword(p)) for p in parts) and not parts[-1].isdigit():
        return base + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)
    owner, _, attr = dotted.rpartition(".")
    return f"{base}.get_submodule({string(owner)}).{attr}"
