"""A custom block's params (SPEC 1.6): `${name}` inside a definition, filled in per use.

`params: {planes: 64, stride: 1}` declares a definition's arguments and their
defaults; `{use: BasicBlock, with: {planes: 128}}` passes others. Loading
leaves a param's `${planes}` in the document (a param shadows a global var of
the same name); `bind` writes one use's values into a copy of the block's
YAML and validates that copy as a node, so every value is checked where it is
written, and the builder sees plain nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from netcli.core.errors import Problem, did_you_mean
from netcli.specfile.arithmetic import REFERENCE, ExpressionError, Unknown, compute, is_plain_name, parse, partial
from netcli.specfile.schema import REQUIRED, is_block, param_defaults

MAX_INSTANCES = 10_000  # distinct (definition, params) copies in one spec


def declared(raw: Any) -> dict[str, Any]:
    """The params a written block declares (name -> default or REQUIRED); {} when none or unreadable."""
    if not is_block(raw) or "params" not in raw:
        return {}
    try:
        return param_defaults(raw["params"])
    except Exception:  # the schema reports a bad params: entry
        given = raw["params"]
        names = given if isinstance(given, (list, dict)) else ()  # `params: -1`: no names to shadow vars
        return {n: REQUIRED for n in names if isinstance(n, str)}


def substitute(raw: Any, values: dict[str, Any]) -> Any:
    """Return a copy of `raw` (the block's YAML) with `${name}` of each param in `values` filled in.

    A whole `${planes}` keeps the value's type; inside a longer string it is
    text. A nested block that declares a param of the same name shadows it. The
    block's own `params:` entry is dropped: the copy is bound.
    """

    def fill(value: Any, scope: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            inner = scope
            own = declared(value)
            if own and value is not raw:
                inner = {k: v for k, v in scope.items() if k not in own}
            return {
                k: (fill(v, scope) if k == "params" else fill(v, inner))
                for k, v in value.items()
                if not (value is raw and k == "params")
            }
        if isinstance(value, list):
            return [fill(v, scope) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _reference(whole.group(1), scope)

        def one(m: Any) -> str:
            found = _reference(m.group(1), scope)
            return found if isinstance(found, str) and found.startswith("${") else str(found)

        return REFERENCE.sub(one, value)

    return fill(raw, dict(values))


def _reference(inner: str, scope: dict[str, Any]) -> Any:
    """One `${...}` with the params in `scope`: a param's value, an expression's number, or the text left."""
    if is_plain_name(inner):
        name = inner.strip()
        return _lookup(name, scope) if _known(name, scope) else "${" + inner + "}"
    try:
        tree = parse(inner)
    except ExpressionError:
        return "${" + inner + "}"  # reported where the spec was read

    def look(name: str) -> Any:
        if not _known(name, scope):
            raise Unknown(name)
        return _lookup(name, scope)

    try:
        return compute(tree, look)
    except Unknown:
        return "${" + partial(tree, look) + "}"
    except ExpressionError:
        return "${" + inner + "}"  # the value's check names it, at its place


def _known(name: str, scope: dict[str, Any]) -> bool:
    head, _, rest = name.partition(".")
    if head not in scope:
        return False
    value = scope[head]
    for part in rest.split(".") if rest else ():
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _lookup(name: str, scope: dict[str, Any]) -> Any:
    head, _, rest = name.partition(".")
    value = scope[head]
    for part in rest.split(".") if rest else ():
        value = value[part]
    return value


def resolve_values(
    defaults: dict[str, Any],
    given: dict[str, Any],
    *,
    block: str,
    at_given: Callable[[str, str, str | None], Problem],
    at_use: Callable[[str, str | None], Problem],
) -> tuple[dict[str, Any], list[Problem]]:
    """Return the values of one use: the defaults, overridden by `with:`; and its problems.

    An argument the block does not declare (`at_given(name, message, hint)`)
    or a required one left out (`at_use(message, hint)`) is a located problem
    with a suggestion.
    """
    problems: list[Problem] = []
    for name in given:
        if name not in defaults:
            hint = did_you_mean(str(name), defaults) or (
                f"{block} takes {', '.join(defaults)}" if defaults else f"{block} declares no params"
            )
            problems.append(at_given(str(name), f"unknown param '{name}' of {block}", hint))
    values = {k: v for k, v in defaults.items() if v is not REQUIRED}
    values.update({k: v for k, v in given.items() if k in defaults})
    missing = [k for k, v in defaults.items() if v is REQUIRED and k not in given]
    if missing:
        shown = ", ".join(f"{k}: ..." for k in missing)
        problems.append(
            at_use(
                f"{block} needs the param{'s' if len(missing) > 1 else ''} {', '.join(repr(k) for k in missing)}",
                f"pass it: with: {{{shown}}}",
            )
        )
    return values, problems


def instance_key(name: str, values: dict[str, Any]) -> str:
    """A stable key for one (definition, values) pair: equal values share one checked copy."""
    return name + "\0" + json.dumps(values, sort_keys=True, default=repr)


def param_names(raw: Any) -> Iterable[str]:
    return declared(raw).keys()


def module_children(raw: Any, params: Iterable[str]) -> dict[str, str]:
    """Param -> child name, for each child written as a whole `${param}` (`downsample: "${downsample}"`)."""
    children = raw.get("children") if is_block(raw) else None
    if not isinstance(children, dict):
        return {}
    names, out = set(params), {}
    for child, value in children.items():
        whole = REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if whole and is_plain_name(whole.group(1)) and whole.group(1).strip() in names:
            out[whole.group(1).strip()] = str(child)
    return out


def module_params(raw: Any, values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The children a block's module-valued params give: (given, left out), as child names.

    A child written as a whole `${param}` (`downsample: "${downsample}"`) is the
    module that param holds: a node passed in `with:` (created at the use,
    before the block's own children, as `Bottleneck(..., downsample=nn.Sequential(...))`
    creates it), or nothing when the param is null (`downsample=None` registers nothing).
    """
    by_param = module_children(raw, values)
    given = [by_param[p] for p in values if p in by_param and values[p] is not None]
    left_out = [by_param[p] for p in values if p in by_param and values[p] is None]
    return given, left_out
