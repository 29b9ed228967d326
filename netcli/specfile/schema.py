"""Pydantic models of the spec language (SPEC section 1): what a spec may contain.

A node is written in YAML in several short forms (`ReLU`, `{Linear: [4, 8]}`,
a list, `{use: block1}`); `to_tagged` turns each form into one tagged mapping so
that pydantic reports one error per bad node. Nothing here imports torch: which
types exist is the registry's business, checked in validate.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from netcli.core.limits import SEED_MAX, SEED_MIN

OPTIONS = ("name", "repeat", "names", "device", "frozen")
# The keys of a custom block (SPEC 1.6), beside the options: `{class: X, children: {...}, forward: "..."}`.
BLOCK_KEYS = ("children", "forward", "params", "inputs", "class")
# `${name}` left in a definition for one of its params, filled in per use (see loading.instantiate).
PARAM_TEXT = r"^\$\{[^{}]+\}$"  # a param's name, or an expression of params (SPEC 1.8)
TOP_LEVEL_KEYS = ("name", "input", "seed", "device", "vars", "plugins", "blocks", "model", "init", "shard", "extends")
RULE_KEYS = ("init", "args", "target", "params")

MAX_INPUT_NUMEL = 2**59  # a tensor's element count is an int64, and so is its size in bytes (8 per element)


ParamText = Annotated[str, Field(pattern=PARAM_TEXT)]


class NodeOptions(BaseModel):
    """Options a node may carry beside its type key (SPEC 1.1, second table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | int | None = Field(None, description="this child's name inside its parent")
    # In a definition with params, an option may be `${param}`: its value comes with each use.
    repeat: Annotated[int, Field(ge=1, le=100000)] | ParamText | None = Field(
        None, description="build this many fresh copies (of a ref: references) in a Sequential"
    )
    names: str | None = Field(None, description="with repeat: child names, '{i}' counts from 0")
    device: str | None = Field(None, description="cpu | cuda | cuda:N | auto | auto:N | meta")
    frozen: bool | ParamText = Field(False, description="its parameters take no gradients")

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
    child_names: list[str] | None = None
    spelled: bool = False  # written as {Sequential: ...} rather than a bare list


class UseNode(NodeOptions):
    """A fresh copy of a named definition: `{use: block1}`, `{use: BasicBlock, with: {planes: 128}}`.

    `with` gives the definition's params (its `__init__` arguments) for this copy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["use"] = "use"
    use: str
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="the definition's params for this copy"
    )


class RefNode(NodeOptions):
    """The one shared instance of a definition: `{ref: shared}` (tied parameters)."""

    kind: Literal["ref"] = "ref"
    ref: str


class BlockNode(NodeOptions):
    """A custom block (SPEC 1.6): children created in order, and a forward that uses them.

    Written as the hand-written class is: `children:` is what `__init__`
    creates (name -> node, registered and created in that order), `forward:`
    is its forward in a small subset of Python (build/forward_parse.py),
    `params:` its arguments with their defaults (`${name}` inside the block),
    `inputs:` the forward's arguments (default `[x]`), `class:` the name it
    prints under (default: the definition's name). Without `forward:` the
    children run in order, as a Sequential of that class.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["block"] = "block"
    children: dict[str, NodeField] = Field(
        default_factory=dict, description="name -> node, created and registered in this order"
    )
    forward: str | None = Field(None, description="the forward, in netcli's subset of Python")
    params: dict[str, Any] | list[str | dict[str, Any]] = Field(
        default_factory=dict, description="the block's arguments: {name: default}, or a list (a bare name is required)"
    )
    inputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="the forward's inputs (default [x])"
    )
    class_: str | None = Field(None, alias="class", description="the class name it prints as")

    @field_validator("params")
    @classmethod
    def _params_are_names(cls, params):
        param_defaults(params)  # raises on a bad name or one written twice
        return params

    @model_validator(mode="after")
    def _has_a_body(self):
        if not self.children and self.forward is None:
            raise PydanticCustomError("empty_block", "a custom block needs children: or forward: (or both)")
        return self


REQUIRED = object()  # a param without a default: each use must give it in `with:`


def param_defaults(params: Any) -> dict[str, Any]:
    """Return a block's params as name -> default (REQUIRED for a bare name in the list form)."""
    if params is None:
        return {}
    items: list[tuple[Any, Any]] = []
    if isinstance(params, dict):
        items = list(params.items())
    elif isinstance(params, list):
        for entry in params:
            if isinstance(entry, dict) and len(entry) == 1:
                items.append(next(iter(entry.items())))
            elif isinstance(entry, str):
                items.append((entry, REQUIRED))
            else:
                raise PydanticCustomError("param_entry", "a params entry is a name, or {{name: default}}")
    else:
        raise PydanticCustomError("params", "params is a mapping {{name: default}} or a list of names")
    out: dict[str, Any] = {}
    for name, default in items:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PydanticCustomError(
                "param_name",
                "param '{name}' is not a name (letters, digits and _, not starting with a digit)",
                {"name": str(name)},
            )
        if name in out:
            raise PydanticCustomError("param_twice", "param '{name}' is declared twice", {"name": name})
        out[name] = default
    return out


def is_block(raw: Any) -> bool:
    """Whether a written node is a custom block: a mapping with children: or forward:."""
    return isinstance(raw, dict) and ("children" in raw or "forward" in raw)


def _split_type_key(raw: dict) -> tuple[str, Any]:
    """Return the one key of `raw` that is not an option, or raise naming the problem."""
    keys = [k for k in raw if k not in OPTIONS]
    if len(keys) == 1:
        return keys[0], raw[keys[0]]
    if not keys:
        raise PydanticCustomError(
            "no_type", "this node has options but no type (write e.g. {{Linear: [4, 8]}} or {{use: NAME}})"
        )
    import difflib

    for k in keys:
        close = difflib.get_close_matches(str(k), OPTIONS + ("use", "ref"), n=1, cutoff=0.6)
        if close and str(k)[:1].islower():
            raise PydanticCustomError(
                "unknown_option", "unknown option '{key}' (did you mean '{close}'?)", {"key": k, "close": close[0]}
            )
    shown = ", ".join(f"'{k}'" for k in keys)
    raise PydanticCustomError(
        "two_types",
        "a node has exactly one type, this one has {shown} (write several layers as a list, and options as {options})",
        {"shown": shown, "options": ", ".join(OPTIONS)},
    )


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
    for key in ("forward", "params", "inputs", "class"):
        if key in raw:
            tagged[key] = raw[key]
    return tagged


def _tag(value: Any) -> str:
    return value.get("kind", "layer") if isinstance(value, dict) else getattr(value, "kind", "layer")


# How a node looks in YAML, for editors; the tagged models above are internal.
NODE_JSON_SCHEMA: dict[str, Any] = {
    "title": "Node",
    "description": "A type name (ReLU), {Type: args} ({Linear: [4, 8]}), a list of nodes "
    "(a Sequential), {use: NAME, with: {...}}, {ref: NAME}, or a custom block "
    "{children: {...}, forward: ..., params: {...}, inputs: [...], class: NAME}, with options "
    + ", ".join(OPTIONS)
    + ".",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "description": "children in order (a Sequential)"},
        {"type": "object", "minProperties": 1},
    ],
}

Node = Annotated[
    Annotated[LayerNode, Tag("layer")]
    | Annotated[SequenceNode, Tag("sequence")]
    | Annotated[UseNode, Tag("use")]
    | Annotated[RefNode, Tag("ref")]
    | Annotated[BlockNode, Tag("block")],
    Discriminator(_tag),
    WithJsonSchema(NODE_JSON_SCHEMA),
]


def _tagged(value: Any) -> Any:
    return to_tagged(value) if not isinstance(value, BaseModel) else value


# Every field that holds a node runs to_tagged first, through this type.
NodeField = Annotated[Node, BeforeValidator(_tagged)]
SequenceNode.model_rebuild()
BlockNode.model_rebuild()


class InitRuleSpec(BaseModel):
    """The long form of an init rule (SPEC 1.4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: str = Field(description="a registered initializer, e.g. xavier, normal, const42")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the initializer")
    target: str = Field("*", description="*, a path (0.1.0, 2.bias), a type name (Linear) or a glob (*.bias)")
    params: Literal["weight", "bias", "all"] | None = Field(
        None, description="on a module target: which parameters (default: weights)"
    )


# A rule is text (`xavier:0`) or the long mapping; tagging them gives one error per bad rule.
InitRuleField = Annotated[
    Annotated[str, Tag("text")] | Annotated[InitRuleSpec, Tag("long")],
    Discriminator(lambda v: "text" if isinstance(v, str) or not isinstance(v, (dict, InitRuleSpec)) else "long"),
]


INPUT_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
INPUT_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32"}
ShapeList = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class InputEntry(BaseModel):
    """One example input: its shape, dtype and value range (`{shape: [2, 16], dtype: int64, high: 100}`).

    A float input is drawn as `torch.rand` draws it (uniform in [low, high),
    default [0, 1)); an integer input (token ids for an Embedding) uniformly
    from the integers in [low, high), low defaulting to 0, high required.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: ShapeList = Field(description="the input's shape, e.g. [2, 16]")
    dtype: str = Field(
        "float32", description="float32 (default), float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool"
    )
    low: int | float | None = Field(None, description="the smallest value (default 0)")
    high: int | float | None = Field(None, description="values stay below it (float default 1; required for integers)")

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, dtype):
        name = INPUT_DTYPE_ALIASES.get(dtype.removeprefix("torch."), dtype.removeprefix("torch."))
        if name not in INPUT_DTYPES:
            import difflib

            close = difflib.get_close_matches(name, INPUT_DTYPES, n=1)
            raise PydanticCustomError(
                "input_dtype",
                "unknown input dtype '{dtype}'{hint}",
                {
                    "dtype": dtype,
                    "hint": f" (did you mean '{close[0]}'?)" if close else f" (one of {', '.join(INPUT_DTYPES)})",
                },
            )
        return name

    @model_validator(mode="after")
    def _range(self):
        integer = self.dtype not in ("float32", "float64", "float16", "bfloat16")
        if integer and self.dtype != "bool" and self.high is None:
            raise PydanticCustomError(
                "input_high",
                "an integer input needs high: its values are drawn from "
                "[low, high) (e.g. high: the Embedding's num_embeddings)",
            )
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise PydanticCustomError("input_range", "low must be below high")
        return self

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float64", "float16", "bfloat16")


def _input_tag(value: Any) -> str:
    if isinstance(value, (dict, InputEntry)):
        return "entry"
    if isinstance(value, list) and any(isinstance(v, (list, dict, InputEntry)) for v in value):
        return "entries"
    return "shape"


InputField = Annotated[
    Annotated[ShapeList, Tag("shape")]
    | Annotated[InputEntry, Tag("entry")]
    | Annotated[Annotated[list[ShapeList | InputEntry], Field(min_length=1)], Tag("entries")],
    Discriminator(_input_tag),
]


def input_entries(value: Any) -> list[InputEntry] | None:
    """The spec's `input:` as a list of entries, one per forward input (None without one).

    `[2, 4]` is one float input of that shape; `{shape: ..., dtype: ...}` one
    entry; a list of shapes or entries is a forward with several inputs.
    """
    if value is None:
        return None
    if isinstance(value, InputEntry):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [InputEntry(shape=value)]
    return [v if isinstance(v, InputEntry) else InputEntry(shape=v) for v in value]


def first_shape(value: Any) -> list[int] | None:
    """The shape of the first example input, or None without one."""
    entries = input_entries(value)
    return list(entries[0].shape) if entries else None


class Spec(BaseModel):
    """A whole spec file (SPEC 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="netcli spec")

    name: str | None = Field(None, description="default: the file's stem")
    input: InputField | None = Field(
        None,
        description="an example input: a shape ([2, 4]), {shape, dtype, low, high}, or a list of "
        "those for a forward with several inputs",
    )
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] | None = Field(
        None, description="build and init are then bit-reproducible"
    )
    device: str | None = Field(None, description="cpu | cuda | cuda:N | auto | auto:N | meta")
    vars: dict[str, Any] = Field(default_factory=dict, description="values that ${name} stands for")
    plugins: list[str] = Field(default_factory=list, description="Python modules that register types")
    blocks: dict[str, NodeField] = Field(default_factory=dict, description="named definitions")
    model: NodeField = Field(description="the network")
    init: list[InitRuleField] = Field(
        default_factory=list, description="rules INIT:TARGET applied in order after building"
    )
    shard: list[str] = Field(
        default_factory=list,
        description="with --shard fsdp: the blocks FSDP2 shards as units, by type (Linear) "
        "or path (0, encoder.*); default: each direct child of the model",
    )
    # Resolved when the file is read (spec/compose.py), so a validated document no longer has it.
    extends: str | list[str] | None = Field(
        None,
        description="base spec file(s), relative to this file, merged in order with this file on top: "
        "mappings merge, lists and values replace, KEY+=: [...] appends to a base's list, "
        "KEY: ~ deletes a base's key",
    )

    @field_validator("extends")
    @classmethod
    def _extends_is_resolved_first(cls, value):
        if value is not None:  # only --set can write it after the file was read
            raise PydanticCustomError(
                "extends_late",
                "'extends' is resolved when the file is read, before --set applies (name the base in the spec file)",
            )
        return value

    @field_validator("input")
    @classmethod
    def _input_fits_a_tensor(cls, value):
        for entry in input_entries(value) or ():
            shape = entry.shape
            numel = 1
            for size in shape:
                numel *= size
            if numel > MAX_INPUT_NUMEL or any(size > MAX_INPUT_NUMEL for size in shape):
                raise PydanticCustomError(
                    "input_too_large",
                    "an input of shape {shape} has more elements than a tensor can hold",
                    {"shape": shape},
                )
        return value

    @property
    def inputs(self) -> list[InputEntry] | None:
        """The example inputs, one entry per forward input (None without `input:`)."""
        return input_entries(self.input)

    @property
    def input_shape(self) -> list[int] | None:
        """The first example input's shape (None without `input:`)."""
        return first_shape(self.input)


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("$defs", {})["Node"] = NODE_JSON_SCHEMA
    return schema
