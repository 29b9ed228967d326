"""The written forms of a node (SPEC 1.1, 1.6), turned into one tagged mapping each.

A node is written in YAML in several short forms (`ReLU`, `{Linear: [4, 8]}`,
a list, `{use: block1}`, a custom block); `to_tagged` turns each form into one
tagged mapping, so that the pydantic models in nodes.py report one error per
bad node. Which form a mapping is follows from its keys alone; nothing here
knows which types exist (the registry's business, checked in validate.py).
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

OPTIONS = ("name", "repeat", "names", "device", "frozen")
# The keys of a custom block (SPEC 1.6), beside the options: `{class: X, children: {...}, forward: "..."}`.
BLOCK_KEYS = ("children", "forward", "params", "inputs", "class", "tie")
# A tensor child (SPEC 1.8): `{Parameter: {zeros: [1, 1, 64]}}`, `{Buffer: {tril: [8, 8], persistent: false}}`.
TENSOR_HOLDERS = ("Parameter", "Buffer")
PARAMETER_FILLS = ("zeros", "ones", "empty", "rand", "randn", "full")
BUFFER_FILLS = PARAMETER_FILLS + ("arange", "eye", "tril", "triu")
TENSOR_KEYS = BUFFER_FILLS + ("value", "requires_grad", "persistent", "bool")
# Containers of modules a forward indexes or loops over, kept as the node kinds of a sequence.
CONTAINERS = ("ModuleList", "ModuleDict")


def is_block(raw: Any) -> bool:
    """Whether a written node is a custom block: a mapping with children: or forward:."""
    return isinstance(raw, dict) and ("children" in raw or "forward" in raw)


def is_keywords(item: Any) -> bool:
    """Whether the last item of an argument list is its keyword arguments (SPEC 1.8), not a node.

    `{ConvTranspose2d: [100, 64, 4, 1, 0, {bias: false}]}` is
    `nn.ConvTranspose2d(100, 64, 4, 1, 0, bias=False)`. A mapping written as a
    node (`{Linear: [4, 8]}`, `{use: ...}`, `{ref: ...}`, a custom block) stays
    a positional argument: argument names are lower-case, type names are not.
    """
    if not isinstance(item, dict) or not item:
        return False
    keys = [k for k in item if isinstance(k, str)]
    if len(keys) != len(item) or any(k in ("use", "ref") or k in BLOCK_KEYS for k in keys):
        return False
    return not any(k[:1].isupper() for k in keys)


def _split_type_key(raw: dict) -> tuple[str, Any]:
    """Return the one key of `raw` that is not an option, or raise naming the problem."""
    keys = [k for k in raw if k not in OPTIONS]
    if len(keys) == 1:
        return keys[0], raw[keys[0]]
    if not keys:
        raise PydanticCustomError(
            "no_type", "this node has options but no type (write e.g. {Linear: [4, 8]} or {use: NAME})"
        )
    import difflib

    for k in keys:
        close = difflib.get_close_matches(str(k), OPTIONS + ("use", "ref"), n=1, cutoff=0.6)
        if close and str(k)[:1].islower():
            raise PydanticCustomError(
                "unknown_option", "unknown option '{key}' (did you mean '{close}'?)", {"key": k, "close": close[0]}
            )
    types = [k for k in keys if isinstance(k, str) and k[:1].isupper()]
    if len(types) == 1 and all(isinstance(k, str) and k.isidentifier() for k in keys):
        raise _arguments_beside_type(raw, types[0], [k for k in keys if k != types[0]])
    shown = ", ".join(f"'{k}'" for k in keys)
    raise PydanticCustomError(
        "two_types",
        "a node has exactly one type, this one has {shown} (write several layers as a list, and options as {options})",
        {"shown": shown, "options": ", ".join(OPTIONS)},
    )


def _arguments_beside_type(raw: dict, type_name: str, names: list[str]) -> PydanticCustomError:
    """`{ConvTranspose2d: [...], bias: false}`: say that constructor arguments go in the value, and show it."""
    value = raw[type_name]
    extra = {k: raw[k] for k in names}
    if isinstance(value, list):
        fixed: Any = [*value[:-1], {**value[-1], **extra}] if value and is_keywords(value[-1]) else [*value, extra]
    elif isinstance(value, dict):
        fixed = {**value, **extra}
    elif value is None:
        fixed = extra
    else:
        fixed = [value, extra]
    shown = ", ".join(f"'{k}'" for k in names)
    return PydanticCustomError(
        "arguments_beside_layer",
        "{shown} beside '{type}' is not an option of a node: constructor arguments go in the value, "
        "keyword arguments as a mapping at the end of the list (write {fixed})",
        {"shown": shown, "type": type_name, "fixed": _flow({type_name: fixed}), "key": names[0]},
    )


def _flow(value: Any) -> str:
    """A value in YAML's flow style, as the user would write it (`[100, 64, {bias: false}]`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def to_tagged(raw: Any) -> Any:
    """Turn any written form of a node into the tagged mapping the models read."""
    if isinstance(raw, str):
        return {"kind": "layer", "type": raw}
    if isinstance(raw, list):
        return {"kind": "sequence", "children": raw}
    if not isinstance(raw, dict):
        raise PydanticCustomError(
            "node_type", "a node is a type name, a list or a mapping, not '{value}'", {"value": raw}
        )
    options = {k: v for k, v in raw.items() if k in OPTIONS}
    for special in ("use", "ref"):
        if special in raw:
            extra = ("with",) if special == "use" else ()
            others = [k for k in raw if k not in OPTIONS and k != special and k not in extra]
            if others:
                hint = " (with passes params to a fresh copy: {use: NAME, with: {...}})" if others[0] == "with" else ""
                raise PydanticCustomError(
                    "use_combined",
                    "'{special}' cannot be combined with '{other}' in one node" + hint,
                    {"special": special, "other": others[0], "key": others[0]},
                )
            tagged = {"kind": special, special: raw[special], **options}
            if "with" in raw:
                tagged["with"] = {} if raw["with"] is None else raw["with"]
            return tagged
    if any(k in raw for k in BLOCK_KEYS):
        return _tag_block(raw, options)
    key, value = _split_type_key(raw)
    if not isinstance(key, str):
        raise PydanticCustomError("type_name", "a type name must be text, not {key!r}", {"key": key})
    if key in TENSOR_HOLDERS:
        return _tag_tensor(key, value, options)
    if key in ("ParameterList", "ParameterDict"):
        raise PydanticCustomError(
            "parameter_list",
            "{key} is not a node: write each tensor as its own child of a custom block "
            "(children: {w0: {Parameter: {randn: [4, 4]}}, w1: ...})",
            {"key": key},
        )
    if key in CONTAINERS:
        return _tag_container(key, value, options)
    if key == "Sequential":
        if isinstance(value, dict):
            return {
                "kind": "sequence",
                "children": list(value.values()),
                "child_names": [str(k) for k in value],
                "spelled": True,
                **options,
            }
        if value is None:
            value = []
        if not isinstance(value, list):
            raise PydanticCustomError("sequential", "Sequential takes a list or a mapping of children")
        return {"kind": "sequence", "children": value, "spelled": True, **options}
    if isinstance(value, list):
        if value and is_keywords(value[-1]):  # as in a Python call: positional, then keyword arguments
            return {"kind": "layer", "type": key, "args": value[:-1], "kwargs": value[-1], **options}
        return {"kind": "layer", "type": key, "args": value, **options}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise PydanticCustomError("kwarg_name", "argument names must be text")
        return {"kind": "layer", "type": key, "kwargs": value, **options}
    if value is None:
        return {"kind": "layer", "type": key, **options}
    return {"kind": "layer", "type": key, "args": [value], **options}


def _tag_block(raw: dict, options: dict) -> dict:
    import difflib

    others = [k for k in raw if k not in OPTIONS and k not in BLOCK_KEYS]
    if others:
        close = difflib.get_close_matches(str(others[0]), BLOCK_KEYS + OPTIONS, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise PydanticCustomError(
            "block_key",
            "a custom block has the keys {keys} and the options; '{other}' is neither" + hint,
            {"keys": ", ".join(BLOCK_KEYS), "other": others[0], "key": others[0]},
        )
    children = raw.get("children")
    if children is None:
        children = {}
    if isinstance(children, dict):
        named: dict[str, Any] = {}
        for k, v in children.items():
            if str(k) in named:
                raise PydanticCustomError("child_twice", "two children are named '{name}'", {"name": str(k), "key": k})
            named[str(k)] = v
        children = named
    tagged = {"kind": "block", "children": children, **options}
    for key in ("forward", "params", "inputs", "class", "tie"):
        if key in raw:
            tagged[key] = raw[key]
    return tagged


def _tag_tensor(holder: str, value: Any, options: dict) -> dict:
    """`{Parameter: {randn: [4, 4], requires_grad: false}}` as a tensor node; the holder's own faults here."""
    example = "{Parameter: {zeros: [1, 1, 64]}}" if holder == "Parameter" else "{Buffer: {tril: [8, 8]}}"
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "tensor_form",
            "a {holder} says how its values are made: a mapping such as {example}",
            {"holder": holder, "example": example, "key": holder},
        )
    if options:
        raise PydanticCustomError(
            "tensor_option",
            "a {holder} is a tensor, not a module: it takes no option '{option}' "
            "(requires_grad: false goes inside, as nn.Parameter(..., requires_grad=False) takes it)",
            {"holder": holder, "option": next(iter(options)), "key": next(iter(options))},
        )
    fills = BUFFER_FILLS if holder == "Buffer" else PARAMETER_FILLS
    for key in value:
        if holder == "Parameter" and key in ("arange", "eye", "tril", "triu", "persistent", "bool"):
            raise PydanticCustomError(
                "tensor_key",
                "'{key}' is a Buffer's: a Parameter is made by {fills} (write {Buffer: {{key}: ...}})",
                {"key": key, "fills": ", ".join(PARAMETER_FILLS)},
            )
        if holder == "Buffer" and key == "requires_grad":
            raise PydanticCustomError(
                "tensor_key",
                "a Buffer takes no gradient: requires_grad is a Parameter's (persistent: false keeps it out of "
                "the state_dict)",
                {"key": key},
            )
    given = [k for k in value if k in fills]
    if len(given) != 1:
        raise PydanticCustomError(
            "tensor_fill",
            "a {holder} is made by exactly one of {fills}, this one has {given}",
            {"holder": holder, "fills": ", ".join(fills), "given": ", ".join(map(str, given)) or "none", "key": holder},
        )
    return {"kind": "tensor", "holder": holder, "args": value}


def _tag_container(key: str, value: Any, options: dict) -> dict:
    """`{ModuleList: [node, ...]}` and `{ModuleDict: {name: node}}` as sequence nodes of that container."""
    if key == "ModuleList":
        if value is None:
            value = []
        if not isinstance(value, list):
            raise PydanticCustomError(
                "container",
                "ModuleList takes a list of nodes ({ModuleList: [{use: Block, repeat: 4}]})",
                {"key": key},
            )
        return {"kind": "sequence", "container": key, "children": value, "spelled": True, **options}
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "container",
            "ModuleDict takes a mapping name -> node ({ModuleDict: {wte: {Embedding: [64, 32]}}})",
            {"key": key},
        )
    return {
        "kind": "sequence",
        "container": key,
        "children": list(value.values()),
        "child_names": [str(k) for k in value],
        "spelled": True,
        **options,
    }
