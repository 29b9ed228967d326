"""Small pieces of the ejected code: a Sequential's call, names, lists as tuples, whether a class imports."""

from __future__ import annotations

import importlib
import re
from typing import Any

from netcli.app.eject.source import Call, Code, Items, is_identifier, string


def sequential(exprs: list, names: list[str]) -> Call:
    """nn.Sequential of the children; an OrderedDict when they have names other than their positions."""
    if names == [str(i) for i in range(len(names))]:
        return Call("nn.Sequential", tuple(exprs))
    if all(is_identifier(n) for n in names):
        return Call("nn.Sequential", (Call("OrderedDict", (), tuple(zip(names, exprs, strict=False))),))
    pairs = Items(tuple(Items((Code(string(n)), e), "()") for n, e in zip(names, exprs, strict=False)), "[]")
    return Call("nn.Sequential", (Call("OrderedDict", (pairs,)),))


def flat_text(e: Any) -> str:
    from netcli.app.eject.source import flat

    return flat(e)


def render_kind(node: Any) -> str:
    return getattr(node, "kind", type(node).__name__)


def importable(cls: type) -> str | None:
    """Why `cls` cannot be imported by its module and name, or None when it can."""
    module, qual = cls.__module__, cls.__qualname__
    if module == "__main__" or "<" in qual:
        inside = " inside a function" if "<" in qual else ""
        return f"its class {qual} is defined in {module}{inside}, where an import cannot reach it"
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # any failure means: not importable by name
        return f"its class {qual} cannot be imported from {module} ({type(exc).__name__}: {exc})"
    if obj is not cls:
        return f"{module}.{qual} is another object than the registered class"
    return None


def _snake(name: str) -> str:
    """`BasicBlock` -> `basic_block`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _tuples(value: Any) -> Any:
    """Lists as tuples, as the builder passes them to a constructor (a hand-written call's `(1, 1)`)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
