"""The functions and classes that stand for definitions, written once every use of them is known.

Uses that write the same code share one function (`def block1():`) or class
(`class BasicBlock(nn.Module):`). A size shape inference filled in that is the
same at every use is written as its number; one that differs is the param
whose value it equals at every use (`nn.BatchNorm2d(planes)`), else a new
argument with the first use's value as its default. A `ref`'s shared object
used inside is an argument too. Inner definitions are finished first, so an
outer one sees the arguments its calls of them take.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

from netcli.app.eject.blocks import param_names
from netcli.app.eject.source import Code, Def, Deferred, Inferred, Return, flat, identifier, literal, string
from netcli.app.eject.walk import SharedName, Use, Writer
from netcli.specfile.schema import REQUIRED


def definitions(w: Writer) -> list:
    """Return the factory functions and classes the walk called, inner ones first."""
    out = []
    own_names = {
        key[1]
        for key, uses in w.uses.items()
        if key[:1] == ("blocks",) and uses[0].kind == "class" and uses[0].printed == key[1]
    }
    for key, uses in w.uses.items():
        groups: dict[str, list[Use]] = {}
        for use in uses:
            groups.setdefault(_shape(use), []).append(use)
        for group in groups.values():
            out.append(_define(w, key, group, own_names))
    return out


def _define(w: Writer, key: tuple, group: list[Use], own_names: set[str]):
    first = group[0]
    sizes = [_inferred(u.body) for u in group]
    varying = [k for k in range(len(sizes[0])) if len({repr(s[k].value) for s in sizes}) > 1]
    shared = list(dict.fromkeys(_shared_names(first.body)))
    names = param_names(first.declared)
    taken = set(shared) | set(names.values()) | {"self"}
    swap, extra = {}, {}
    for k in varying:
        match = next(
            (
                p
                for p in first.declared
                if all(u.params and u.params.get(p) == s[k].value for u, s in zip(group, sizes, strict=False))
            ),
            None,
        )
        if match is not None:
            swap[id(sizes[0][k])] = Code(names[match])
        else:
            extra[k] = identifier(sizes[0][k].arg, taken)
            swap[id(sizes[0][k])] = Code(extra[k])
    body = _substitute(first.body, swap)
    name = _name(w, key, first, own_names)
    by_name = bool(first.declared) or first.kind == "class"
    for use, size in zip(group, sizes, strict=False):
        use.call.func = name
        use.call.args = [SharedName(v) for v in shared] + ([] if by_name else [size[k] for k in extra])
        use.call.kwargs = list(use.call.kwargs) + ([(extra[k], size[k]) for k in extra] if by_name else [])
    signature = _signature(shared, first.declared, names, {extra[k]: sizes[0][k].value for k in extra}, by_name)
    if first.kind == "factory":
        return Def(f"def {name}", None, list(body[:-1]) + [Return(body[-1])], signature)
    methods: list = [Def("def __init__", None, body, ["self", *signature])]
    if first.forward:
        from netcli.app.eject.source import Text

        methods.append(Text(first.forward))
    doc = None
    if name != first.printed:  # two definitions print as one class (the spec's class:), Python needs two names
        doc = (
            f"The spec's {first.name}; it prints as {first.printed}, as its class: says."
            if first.name != first.printed
            else f"The spec's {first.name} where its uses build other children; it prints as {first.printed}."
        )
        methods.append(Def("def _get_name(self)", None, [Return(Code(string(first.printed)))]))
    return Def(f"class {name}({first.base})", doc, methods)


def _name(w: Writer, key: tuple, use: Use, own_names: set[str]) -> str:
    if use.kind == "factory":
        return identifier(use.name, w.taken)
    wanted = use.printed
    if wanted in w.taken or (wanted in own_names and use.name != wanted):
        wanted = use.name  # another definition prints as itself under this name
    return identifier(wanted, w.taken)


def _signature(shared: list[str], declared: dict, names: dict, extra: dict, by_name: bool) -> list[str]:
    """The parameters: shared objects first, then the params with their defaults, then the extra sizes."""
    parts, keyword_only, defaults = [], False, False
    for param, default in declared.items():
        if _required(default):
            keyword_only = keyword_only or defaults  # a required param after a default: keyword-only (after *)
            parts.append(names[param])
        else:
            defaults = True
            parts.append(f"{names[param]}={flat(literal(_tuples(default)))}")
    parts += [f"{name}={flat(literal(value))}" if by_name else name for name, value in extra.items()]
    return list(shared) + (["*"] if keyword_only else []) + parts


def _required(default: Any) -> bool:
    return default is REQUIRED


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


# --- walking the written code ---------------------------------------------------------


def _children(obj: Any) -> list:
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, Deferred):
        return list(obj.args) + [v for _, v in obj.kwargs]  # the body is its own definition's
    if is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in fields(obj)]
    return []


def _inferred(obj: Any) -> list[Inferred]:
    """Every inferred size in the written tree, in order (those passed to inner calls included)."""
    if isinstance(obj, Inferred):
        return [obj]
    return [i for child in _children(obj) for i in _inferred(child)]


def _shared_names(obj: Any) -> list[str]:
    if isinstance(obj, SharedName):
        return [obj.text]
    return [n for child in _children(obj) for n in _shared_names(child)]


def _shape(use: Use) -> str:
    """What a use writes, its inferred sizes left out: uses alike in this share a function or class."""

    def blank(obj):
        if isinstance(obj, Inferred):
            return "?"
        if isinstance(obj, Deferred):
            return f"{obj.func}({blank(obj.args)};{blank(obj.kwargs)};{blank(obj.body)})"
        if isinstance(obj, (list, tuple)):
            return "[" + ",".join(blank(c) for c in obj) + "]"
        if is_dataclass(obj) and not isinstance(obj, type):
            return f"{type(obj).__name__}(" + ",".join(blank(getattr(obj, f.name)) for f in fields(obj)) + ")"
        return repr(obj)

    return blank((use.kind, use.body, use.forward, use.base, sorted(use.declared)))


def _substitute(obj: Any, swap: dict[int, Any]) -> Any:
    """A copy of the written tree with the objects in `swap` (by id) replaced."""
    if id(obj) in swap:
        return swap[id(obj)]
    if isinstance(obj, Deferred):
        return Deferred(
            obj.func,
            [_substitute(a, swap) for a in obj.args],
            [(k, _substitute(v, swap)) for k, v in obj.kwargs],
            obj.body,
        )
    if isinstance(obj, list):
        return [_substitute(c, swap) for c in obj]
    if isinstance(obj, tuple):
        return tuple(_substitute(c, swap) for c in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: _substitute(getattr(obj, f.name), swap) for f in fields(obj)})
    return obj
