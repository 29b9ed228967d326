"""The node forms of the editors' JSON Schema (jsonschema.py): how each written node looks in YAML."""

from __future__ import annotations

from typing import Any

# `${name}`, or arithmetic over names (`${dim * 4}`, SPEC 1.8), may stand for any value before validation.
VAR_PATTERN = r"^\$\{[^{}]+\}$"
VAR_REF = {"$ref": "#/$defs/Var"}
NODE_REF = {"$ref": "#/$defs/Node"}
TIE_PATTERN = r"^\s*[^\s=.]+(\.[^\s=.]+)*\s*=\s*[^\s=.]+(\.[^\s=.]+)*\s*$"


def node_forms(type_names: list[str], options: dict) -> dict:
    """The node forms other than a layer: a type name, a list, use, ref, a custom block, a Sequential."""
    from netcli.specfile.schema import BLOCK_KEYS

    forms: dict[str, Any] = {}
    forms["Var"] = {
        "type": "string",
        "pattern": VAR_PATTERN,
        "description": "${name}: the value of vars.name; ${dim * 4}: computed from vars and params",
    }
    forms["TypeName"] = {
        "type": "string",
        "enum": type_names,
        "description": "a registered type with no arguments, e.g. ReLU",
    }
    forms["Sequence"] = {
        "type": "array",
        "items": NODE_REF,
        "description": "children in order, named 0, 1, ... (nn.Sequential)",
    }
    forms["UseNode"] = node_object(
        "use",
        {"type": "string", "description": "a definition under blocks:"},
        {
            **options,
            "with": {
                "type": "object",
                "description": "the definition's params for this copy, e.g. {planes: 128, stride: 2}",
            },
        },
        "a fresh copy of a definition under blocks:",
    )
    forms["BlockNode"] = _block_node(options)
    assert set(forms["BlockNode"]["properties"]) >= set(BLOCK_KEYS)
    forms["RefNode"] = node_object(
        "ref",
        {"type": "string", "description": "a definition under blocks:"},
        options,
        "the one shared instance of a definition (tied parameters)",
    )
    forms["SequentialNode"] = node_object(
        "Sequential",
        {
            "anyOf": [
                {"$ref": "#/$defs/Sequence"},
                {"type": "object", "additionalProperties": NODE_REF, "description": "named children"},
                {"type": "null"},
            ]
        },
        options,
        "nn.Sequential: a list of children, or a mapping of named children",
    )
    forms["ModuleListNode"] = node_object(
        "ModuleList",
        {"anyOf": [{"$ref": "#/$defs/Sequence"}, {"type": "null"}]},
        options,
        "nn.ModuleList: items a forward loops over; an item with repeat: N is N items",
    )
    forms["ModuleDictNode"] = node_object(
        "ModuleDict",
        {"anyOf": [{"type": "object", "additionalProperties": NODE_REF}, {"type": "null"}]},
        options,
        "nn.ModuleDict: items by name",
    )
    forms["TensorNode"] = _tensor_node()
    return forms


def _tensor_node() -> dict:
    """`{Parameter: {randn: [4, 4]}}` / `{Buffer: {tril: [8, 8]}}`: a tensor child of a custom block."""
    from netcli.specfile.forms import BUFFER_FILLS, TENSOR_KEYS

    size = {"anyOf": [{"type": "integer", "minimum": 0}, VAR_REF]}
    shape = {"anyOf": [size, {"type": "array", "items": size}]}
    props: dict[str, object] = {k: shape for k in BUFFER_FILLS}
    props.update(
        value={"anyOf": [{"type": "number"}, {"type": "boolean"}, VAR_REF], "description": "with full: the value"},
        requires_grad={"type": "boolean", "description": "a Parameter's: false for a constant"},
        persistent={"type": "boolean", "description": "a Buffer's: false keeps it out of the state_dict"},
        bool={"type": "boolean", "description": "a Buffer's: a bool mask"},
    )
    assert set(props) == set(TENSOR_KEYS)
    args = {"type": "object", "properties": props, "additionalProperties": False, "minProperties": 1}
    return {
        "type": "object",
        "description": "a tensor child of a custom block: nn.Parameter(torch.zeros(...)) or register_buffer",
        "oneOf": [
            {"properties": {"Parameter": args}, "required": ["Parameter"], "additionalProperties": False},
            {"properties": {"Buffer": args}, "required": ["Buffer"], "additionalProperties": False},
        ],
    }


def _block_node(options: dict) -> dict:
    return {
        "type": "object",
        "description": "a custom block (a hand-written nn.Module): the children __init__ creates, in order, "
        "and its forward; params are its arguments, ${name} inside it",
        "properties": {
            "children": {
                "type": "object",
                "additionalProperties": {"anyOf": [NODE_REF, {"$ref": "#/$defs/TensorNode"}]},
                "description": "name -> node or tensor, created and registered in this order",
            },
            "tie": {
                "type": "array",
                "items": {"type": "string", "pattern": TIE_PATTERN},
                "description": "parameter ties after the children, e.g. 'transformer.wte.weight = lm_head.weight'",
            },
            "forward": {
                "type": "string",
                "description": "the forward in netcli's subset of Python: assignments, "
                "one return, calls of children and listed functions",
            },
            "params": {
                "anyOf": [
                    {"type": "object", "description": "name -> default"},
                    {
                        "type": "array",
                        "items": {
                            "anyOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1}]
                        },
                        "description": "names (required) or {name: default}",
                    },
                ]
            },
            "inputs": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "the forward's inputs (default [x])",
            },
            "class": {"type": "string", "description": "the class name it prints as (default: the definition's name)"},
            **options,
        },
        "anyOf": [{"required": ["children"]}, {"required": ["forward"]}],
        "additionalProperties": False,
    }


def node_union(layer_refs: list[dict]) -> dict:
    from netcli.specfile.schema import OPTIONS

    return {
        "title": "Node",
        "description": "A type name (ReLU), {Type: args} ({Linear: [4, 8]}), a list of nodes "
        "(a Sequential), {use: NAME, with: {...}} or {ref: NAME}, a custom block "
        "{children: {...}, forward: ...}, with options " + ", ".join(OPTIONS) + ".",
        "anyOf": [
            {"$ref": "#/$defs/TypeName"},
            VAR_REF,
            {"$ref": "#/$defs/Sequence"},
            {"$ref": "#/$defs/UseNode"},
            {"$ref": "#/$defs/RefNode"},
            {"$ref": "#/$defs/BlockNode"},
            {"$ref": "#/$defs/SequentialNode"},
            {"$ref": "#/$defs/ModuleListNode"},
            {"$ref": "#/$defs/ModuleDictNode"},
            *layer_refs,
        ],
    }


def node_object(key: str, value: dict, options: dict, description: str) -> dict:
    return {
        "type": "object",
        "description": description,
        "properties": {key: value, **options},
        "required": [key],
        "additionalProperties": False,
    }
