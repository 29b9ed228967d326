"""Pydantic models of the spec language (SPEC section 1): what a spec may contain.

A node is written in YAML in several short forms (`ReLU`, `{Linear: [4, 8]}`,
a list, `{use: block1}`); `to_tagged` turns each form into one tagged mapping so
that pydantic reports one error per bad node. Nothing here imports torch: which
types exist is the registry's business, checked in validate.py.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      WithJsonSchema, field_validator, model_validator)
from pydantic_core import PydanticCustomError

OPTIONS = ("name", "repeat", "names", "device", "frozen")
TOP_LEVEL_KEYS = ("name", "input", "seed", "device", "vars", "plugins", "blocks", "model", "init", "shard", "extends")
RULE_KEYS = ("init", "args", "target", "params")
from netcli.core.limits import SEED_MAX, SEED_MIN
MAX_INPUT_NUMEL = 2**59  # a tensor's element count is an int64, and so is its size in bytes (8 per element)


class NodeOptions(BaseModel):
    """Options a node may carry beside its type key (SPEC 1.1, second table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Union[str, int, None] = Field(None, description="this child's name inside its parent")
    repeat: Union[Annotated[int, Field(ge=1, le=100_000)], None] = Field(
        None, description="build this many fresh copies (of a ref: references) in a Sequential")
    names: Union[str, None] = Field(None, description="with repeat: child names, '{i}' counts from 0")
    device: Union[str, None] = Field(None, description="cpu | cuda | cuda:N | auto | auto:N | meta")
    frozen: bool = Field(False, description="its parameters take no gradients")

    @model_validator(mode="after")
    def _names_need_repeat(self):
        if self.names is not None and self.repeat is None:
            raise PydanticCustomError("names_without_repeat", "'names' only applies with 'repeat'")
        return self


class LayerNode(NodeOptions):
    """A registered type and its constructor arguments: `{Linear: [20, 256]}`.

    With an input shape (`input:`), an input-size argument (in_features,
    in_channels, num_features, normalized_shape, input_size, or what a custom
    block declares) may be left out and is inferred (SPEC 1.1). A scalar or
    list value then fills the required arguments that are not inferred, in
    order: `{Linear: 10}` is out_features=10, `{Conv2d: [16, 5]}` is
    out_channels=16, kernel_size=5. Arguments written in full are taken as
    written.
    """

    kind: Literal["layer"] = "layer"
    type: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class SequenceNode(NodeOptions):
    """Children in order (a YAML list, or `Sequential:`), optionally with names."""

    kind: Literal["sequence"] = "sequence"
    children: list[NodeField]
    child_names: Union[list[str], None] = None
    spelled: bool = False  # written as {Sequential: ...} rather than a bare list


class UseNode(NodeOptions):
    """A fresh copy of a named definition: `{use: block1}`."""

    kind: Literal["use"] = "use"
    use: str


class RefNode(NodeOptions):
    """The one shared instance of a definition: `{ref: shared}` (tied parameters)."""

    kind: Literal["ref"] = "ref"
    ref: str


def _split_type_key(raw: dict) -> tuple[str, Any]:
    """Return the one key of `raw` that is not an option, or raise naming the problem."""
    keys = [k for k in raw if k not in OPTIONS]
    if len(keys) == 1:
        return keys[0], raw[keys[0]]
    if not keys:
        raise PydanticCustomError(
            "no_type", "this node has options but no type (write e.g. {{Linear: [4, 8]}} or {{use: NAME}})")
    import difflib
    for k in keys:
        close = difflib.get_close_matches(str(k), OPTIONS + ("use", "ref"), n=1, cutoff=0.6)
        if close and str(k)[:1].islower():
            raise PydanticCustomError("unknown_option", "unknown option '{key}' (did you mean '{close}'?)",
                                      {"key": k, "close": close[0]})
    shown = ", ".join(f"'{k}'" for k in keys)
    raise PydanticCustomError(
        "two_types", "a node has exactly one type, this one has {shown} "
        "(write several layers as a list, and options as {options})",
        {"shown": shown, "options": ", ".join(OPTIONS)})


def to_tagged(raw: Any) -> Any:
    """Turn any written form of a node into the tagged mapping the models read."""
    if isinstance(raw, str):
        return {"kind": "layer", "type": raw}
    if isinstance(raw, list):
        return {"kind": "sequence", "children": raw}
    if not isinstance(raw, dict):
        raise PydanticCustomError(
            "node_type", "a node is a type name, a list or a mapping, not '{value}'", {"value": raw})
    options = {k: v for k, v in raw.items() if k in OPTIONS}
    for special in ("use", "ref"):
        if special in raw:
            others = [k for k in raw if k not in OPTIONS and k != special]
            if others:
                raise PydanticCustomError(
                    "use_and_type", "'{special}' cannot be combined with '{other}' in one node",
                    {"special": special, "other": others[0]})
            return {"kind": special, special: raw[special], **options}
    key, value = _split_type_key(raw)
    if not isinstance(key, str):
        raise PydanticCustomError("type_name", "a type name must be text, not {key!r}", {"key": key})
    if key == "Sequential":
        if isinstance(value, dict):
            return {"kind": "sequence", "children": list(value.values()),
                    "child_names": [str(k) for k in value], "spelled": True, **options}
        if value is None:
            value = []
        if not isinstance(value, list):
            raise PydanticCustomError("sequential", "Sequential takes a list or a mapping of children")
        return {"kind": "sequence", "children": value, "spelled": True, **options}
    if isinstance(value, list):
        return {"kind": "layer", "type": key, "args": value, **options}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise PydanticCustomError("kwarg_name", "argument names must be text")
        return {"kind": "layer", "type": key, "kwargs": value, **options}
    if value is None:
        return {"kind": "layer", "type": key, **options}
    return {"kind": "layer", "type": key, "args": [value], **options}


def _tag(value: Any) -> str:
    return value.get("kind", "layer") if isinstance(value, dict) else getattr(value, "kind", "layer")


# How a node looks in YAML, for editors; the tagged models above are internal.
NODE_JSON_SCHEMA: dict[str, Any] = {
    "title": "Node",
    "description": "A type name (ReLU), {Type: args} ({Linear: [4, 8]}), a list of nodes "
                   "(a Sequential), {use: NAME} or {ref: NAME}, with options "
                   + ", ".join(OPTIONS) + ".",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "description": "children in order (a Sequential)"},
        {"type": "object", "minProperties": 1},
    ],
}

Node = Annotated[
    Union[
        Annotated[LayerNode, Tag("layer")],
        Annotated[SequenceNode, Tag("sequence")],
        Annotated[UseNode, Tag("use")],
        Annotated[RefNode, Tag("ref")],
    ],
    Discriminator(_tag),
    WithJsonSchema(NODE_JSON_SCHEMA),
]


def _tagged(value: Any) -> Any:
    return to_tagged(value) if not isinstance(value, BaseModel) else value


# Every field that holds a node runs to_tagged first, through this type.
NodeField = Annotated[Node, BeforeValidator(_tagged)]
SequenceNode.model_rebuild()


class InitRuleSpec(BaseModel):
    """The long form of an init rule (SPEC 1.4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: str = Field(description="a registered initializer, e.g. xavier, normal, const42")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the initializer")
    target: str = Field("*", description="*, a path (0.1.0, 2.bias), a type name (Linear) or a glob (*.bias)")
    params: Literal["weight", "bias", "all"] | None = Field(
        None, description="on a module target: which parameters (default: weights)")


# A rule is text (`xavier:0`) or the long mapping; tagging them gives one error per bad rule.
InitRuleField = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[InitRuleSpec, Tag("long")]],
    Discriminator(lambda v: "text" if isinstance(v, str) or not isinstance(v, (dict, InitRuleSpec)) else "long"),
]


class Spec(BaseModel):
    """A whole spec file (SPEC 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="netcli spec")

    name: Union[str, None] = Field(None, description="default: the file's stem")
    input: Union[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)], None] = Field(
        None, description="an example input shape, e.g. [2, 4]")
    seed: Union[Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)], None] = Field(
        None, description="build and init are then bit-reproducible")
    device: Union[str, None] = Field(None, description="cpu | cuda | cuda:N | auto | auto:N | meta")
    vars: dict[str, Any] = Field(default_factory=dict, description="values that ${name} stands for")
    plugins: list[str] = Field(default_factory=list, description="Python modules that register types")
    blocks: dict[str, NodeField] = Field(default_factory=dict, description="named definitions")
    model: NodeField = Field(description="the network")
    init: list[InitRuleField] = Field(
        default_factory=list, description="rules INIT:TARGET applied in order after building")
    shard: list[str] = Field(
        default_factory=list, description="with --shard fsdp: the blocks FSDP2 shards as units, by type (Linear) "
                                          "or path (0, encoder.*); default: each direct child of the model")
    # Resolved when the file is read (spec/compose.py), so a validated document no longer has it.
    extends: Union[str, list[str], None] = Field(
        None, description="base spec file(s), relative to this file, merged in order with this file on top: "
                          "mappings merge, lists and values replace, KEY+=: [...] appends to a base's list, "
                          "KEY: ~ deletes a base's key")

    @field_validator("extends")
    @classmethod
    def _extends_is_resolved_first(cls, value):
        if value is not None:  # only --set can write it after the file was read
            raise PydanticCustomError("extends_late", "'extends' is resolved when the file is read, before --set "
                                      "applies (name the base in the spec file)")
        return value

    @field_validator("input")
    @classmethod
    def _input_fits_a_tensor(cls, shape):
        numel = 1
        for size in shape or ():
            numel *= size
        if numel > MAX_INPUT_NUMEL or any(size > MAX_INPUT_NUMEL for size in shape or ()):
            raise PydanticCustomError("input_too_large", "an input of shape {shape} has more elements than "
                                      "a tensor can hold", {"shape": shape})
        return shape


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("$defs", {})["Node"] = NODE_JSON_SCHEMA
    return schema
