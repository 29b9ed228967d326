"""Pydantic's validation errors as located problems: each traced back through the written YAML.

The models read tagged nodes (forms.to_tagged); an error's location passes
through those tags, and is mapped back here to the key or value the user wrote,
so that it reads FILE:LINE:COL: where: what (hint).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from netcli.core.errors import Problem, did_you_mean
from netcli.specfile.forms import CONTAINERS, TENSOR_HOLDERS, TENSOR_KEYS
from netcli.specfile.schema import OPTIONS, RULE_KEYS, TOP_LEVEL_KEYS
from netcli.specfile.yamldoc import Document, Path, render_path

_SPELLED = ("Sequential", *CONTAINERS)  # the keys a sequence's children are written under


def _raw_at(data: Any, loc: tuple) -> tuple[Path, bool]:
    """Follow a pydantic error location through the raw document.

    Pydantic's locations pass through the tagged node models (`sequence`,
    `children`, `layer`, ...); this maps them back to the YAML path. Returns
    the path and whether its last step is a mapping key (so point at the key).
    """
    node: Any = data
    path: Path = ()
    is_key = False
    for part in loc:  # a part that names no step (a tag, a union member) keeps the place found so far
        if isinstance(node, dict):
            if part in node:
                node, path, is_key = node[part], path + (part,), True
            elif part == "children" and (spelled := next((k for k in _SPELLED if k in node), None)):
                node, path, is_key = node[spelled], path + (spelled,), False
            elif (
                isinstance(part, int) and all(isinstance(k, str) for k in node) and not any(k in node for k in _SPELLED)
            ):
                keys = list(node)
                if 0 <= part < len(keys):  # a named child: children[i] is the i-th key
                    node, path, is_key = node[keys[part]], path + (keys[part],), False
            elif part in ("args", "kwargs", "type"):
                key = next((k for k in node if k not in OPTIONS), None)
                if key is not None:
                    node, path, is_key = node[key], path + (key,), False
            continue
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node, path, is_key = node[part], path + (part,), False
    return path, is_key


def _problem_from_pydantic(doc: Document, err: ErrorDetails, *, data: Any = None, prefix: Path = ()) -> Problem:
    """A pydantic error as a located problem; `data` at `prefix` is the part of the document validated."""
    loc = tuple(err["loc"])
    path, is_key = _raw_at(doc.data if data is None else data, loc)
    path = tuple(prefix) + path
    kind, message, hint = err["type"], err["msg"], None
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1]
        valid: tuple[str, ...]
        if len(path) == 1:
            valid = TOP_LEVEL_KEYS
            message = f"unknown top-level key '{key}'"
        elif path and path[0] == "init":
            valid = RULE_KEYS
            message = f"unknown key '{key}' in an init rule"
        elif len(path) >= 2 and path[-2] in TENSOR_HOLDERS:
            valid = TENSOR_KEYS
            message = f"unknown key '{key}' of a {path[-2]}"
        else:
            valid = OPTIONS
            message = f"unknown option '{key}'"
        hint = did_you_mean(str(key), valid) or f"valid keys: {', '.join(valid)}"
        return Problem(message, render_path(path[:-1]), doc.locate(path, key=True), hint)
    if "(did you mean" in message:
        message, _, rest = message.partition(" (")
        hint = rest.rstrip(")")
    if "key" in ctx:
        path, is_key = _at_key(doc_get(doc.data, path), path, ctx["key"], is_key)
    if kind == "literal_error" and isinstance(err.get("input"), str):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(err["input"], choices)
    if kind == "missing":
        message = f"missing required key '{loc[-1]}'"
        if loc == ("model",):
            hint = "a spec needs model: the network, e.g. model: [{Linear: [4, 8]}, ReLU]"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message.rstrip('.')}, got {err.get('input')!r}"
    return Problem(message, render_path(path), doc.locate(path, key=is_key), hint)


def _at_key(node: Any, path: Path, key: Any, is_key: bool) -> tuple[Path, bool]:
    """The place of `key` that an error names: in the node, or in its one type key's value
    (`{Parameter: {arange: 4}}`, `{ModuleList: [item, ...]}`); else the node itself."""
    if isinstance(node, dict) and key in node:
        return path + (key,), True
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return path + (key,), False
    if isinstance(node, dict):
        inner = [k for k in node if k not in OPTIONS]
        if len(inner) == 1 and isinstance(node[inner[0]], (dict, list)):
            found, found_key = _at_key(node[inner[0]], path + (inner[0],), key, is_key)
            if len(found) > len(path) + 1:
                return found, found_key
    return path, is_key


def pydantic_errors(exc: ValidationError) -> list[ErrorDetails]:
    """The errors to report: without the `${param}` alternative an option also accepts (it is never the fix)."""
    from netcli.specfile.schema import PARAM_TEXT

    errors = exc.errors()
    kept = [
        e
        for e in errors
        if not (e["type"] == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == PARAM_TEXT)
    ]
    return kept or errors


def doc_get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
