"""Pydantic models of a node (SPEC 1.1, 1.6): layers, sequences, uses, refs and custom blocks.

Each model reads the tagged mapping that forms.to_tagged makes of a written
node; the `Node` union picks the model by its tag, so a bad node is one error
at its own location. Nothing here imports torch.
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
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from netcli.specfile.forms import OPTIONS, to_tagged

# `${name}` left in a definition for one of its params, filled in per use (see loading.instantiate).
PARAM_TEXT = r"^\$\{[^{}]+\}$"  # a param's name, or an expression of params (SPEC 1.8)

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
    """Children in order (a YAML list, or `Sequential:`), optionally with names.

    `container` says which torch container holds them: a Sequential runs them in
    order; a `ModuleList` (SPEC 1.8) holds them for a forward to loop over (an
    item with `repeat: N` stands for N items, as `[Block() for _ in range(N)]`);
    a `ModuleDict` holds them by name.
    """

    kind: Literal["sequence"] = "sequence"
    children: list[NodeField]
    child_names: list[str] | None = None
    spelled: bool = False  # written as {Sequential: ...} rather than a bare list
    container: Literal["Sequential", "ModuleList", "ModuleDict"] = "Sequential"

    @model_validator(mode="after")
    def _children_fit(self):
        for i, child in enumerate(self.children):
            key = self.child_names[i] if self.child_names is not None else i
            if self.container == "Sequential" and isinstance(child, SequenceNode) and child.container != "Sequential":
                raise PydanticCustomError(
                    "container_place",
                    "a {container} cannot run in a Sequential: it belongs in a custom block's children:, "
                    "whose forward loops over it or indexes it",
                    {"container": child.container, "key": key},
                )
            if self.container != "Sequential" and child.name is not None:
                raise PydanticCustomError(
                    "container_name",
                    "an item of a {container} is named by its {what}: remove name:",
                    {"container": self.container, "what": "key" if self.child_names else "position", "key": key},
                )
            if self.container == "ModuleList" and child.names is not None:
                raise PydanticCustomError(
                    "container_names",
                    "a ModuleList numbers its items: names: does not apply (repeat: N alone gives N items)",
                    {"key": key},
                )
        return self


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
    children: dict[str, ChildField] = Field(
        default_factory=dict, description="name -> node (or tensor), created and registered in this order"
    )
    forward: str | None = Field(None, description="the forward, in netcli's subset of Python")
    params: dict[str, Any] | list[str | dict[str, Any]] = Field(
        default_factory=dict, description="the block's arguments: {name: default}, or a list (a bare name is required)"
    )
    inputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="the forward's inputs (default [x])"
    )
    class_: str | None = Field(None, alias="class", description="the class name it prints as")
    tie: list[TieText] = Field(
        default_factory=list,
        description="parameter ties run after the children, as `self.a.weight = self.b.weight`: 'a.weight = b.weight'",
    )
    # Set when a use binds the block (never written): the children a module-valued param gives
    # (`downsample: "${downsample}"`), created at the use before the other children, in `with:` order.
    given_first: SkipJsonSchema[tuple[str, ...]] = ()
    given_at: SkipJsonSchema[tuple[tuple[str, tuple], ...]] = ()  # child -> where `with:` writes its node
    left_out: SkipJsonSchema[tuple[str, ...]] = ()  # the children a null param leaves out (`if X is not None:`)

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


# `transformer.wte.weight = lm_head.weight`: dotted paths of child names or positions, a tensor's name last.
TIE_TEXT = re.compile(r"\s*[^\s=.]+(\.[^\s=.]+)*\s*=\s*[^\s=.]+(\.[^\s=.]+)*\s*")
MAX_SIZE = 2**62


def _tie(text: Any) -> Any:
    if not isinstance(text, str) or not TIE_TEXT.fullmatch(text):
        raise PydanticCustomError(
            "tie_form",
            "a tie is 'PATH.tensor = PATH.tensor', as self.wte.weight = self.lm_head.weight is written "
            "(e.g. 'transformer.wte.weight = lm_head.weight'), not {text!r}",
            {"text": text},
        )
    return text


def _size(value: Any) -> Any:
    """One size of a tensor: a whole number from 0, or `${...}` (a param's, filled in per use)."""
    if isinstance(value, str) and re.fullmatch(PARAM_TEXT, value):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise PydanticCustomError(
            "tensor_size", "a size is a whole number from 0 (or ${...}), not {value}", {"value": value}
        )
    return value


def _shape(value: Any) -> Any:
    """A tensor's shape: a list of sizes, or one size for a 1-D tensor."""
    return [_size(v) for v in value] if isinstance(value, list) else [_size(value)]


TieText = Annotated[str, BeforeValidator(_tie)]
SizeValue = Annotated[Any, BeforeValidator(_size)]
ShapeValue = Annotated[list[Any], BeforeValidator(_shape)]


class TensorArgs(BaseModel):
    """How a tensor child's values are made (SPEC 1.8): one fill, its shape, and the holder's flags."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    zeros: ShapeValue | None = None
    ones: ShapeValue | None = None
    empty: ShapeValue | None = None
    rand: ShapeValue | None = None
    randn: ShapeValue | None = None
    full: ShapeValue | None = None
    arange: SizeValue | None = None
    eye: SizeValue | None = None
    tril: ShapeValue | None = None
    triu: ShapeValue | None = None
    value: bool | int | float | ParamText | None = Field(None, description="with full: the value")
    requires_grad: bool | ParamText = True
    persistent: bool | ParamText = True
    bool_: bool | ParamText = Field(False, alias="bool", description="a bool tensor (a mask)")

    @model_validator(mode="after")
    def _value_with_full(self):
        if self.full is not None and self.value is None:
            raise PydanticCustomError(
                "full_value", "full needs value: the number it fills with (full: [4], value: 0.5)"
            )
        if self.full is None and self.value is not None:
            raise PydanticCustomError(
                "value_without_full", "value: only goes with full: ({full: [4], value: 0.5})", {"key": "value"}
            )
        if self.bool_ is True and self.fill in ("rand", "randn", "full", "arange", "empty"):
            raise PydanticCustomError(
                "tensor_bool",
                "bool: true makes a mask of ones, zeros, eye, tril or triu, not of {fill}",
                {"fill": self.fill, "key": "bool"},
            )
        return self

    @property
    def fill(self) -> str:
        """The one fill written (forms._tag_tensor checked there is exactly one)."""
        from netcli.specfile.forms import BUFFER_FILLS

        return next(k for k in BUFFER_FILLS if getattr(self, k) is not None)

    @property
    def shape(self) -> list:
        """The tensor's shape: a fill's list, or [n] for one size (`eye: n` is [n, n])."""
        given = getattr(self, self.fill)
        sizes = list(given) if isinstance(given, list) else [given]
        return sizes * 2 if self.fill == "eye" else sizes


class TensorNode(NodeOptions):
    """A tensor child of a custom block (SPEC 1.8): `{Parameter: {randn: [4, 4]}}`, `{Buffer: {arange: 8}}`.

    Created at its place in `children:` (a randn draws there, as
    `nn.Parameter(torch.randn(4, 4))` in `__init__` does) and registered under
    its name: the state_dict key is the name itself.
    """

    kind: Literal["tensor"] = "tensor"
    holder: Literal["Parameter", "Buffer"]
    args: TensorArgs


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
                raise PydanticCustomError("param_entry", "a params entry is a name, or {name: default}")
    else:
        raise PydanticCustomError("params", "params is a mapping {name: default} or a list of names")
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


def _tag(value: Any) -> str:
    return value.get("kind", "layer") if isinstance(value, dict) else getattr(value, "kind", "layer")


# How a node looks in YAML, for editors; the tagged models above are internal.
NODE_JSON_SCHEMA: dict[str, Any] = {
    "title": "Node",
    "description": "A type name (ReLU), {Type: args} ({Linear: [4, 8]}), a list of nodes "
    "(a Sequential), {use: NAME, with: {...}}, {ref: NAME}, or a custom block "
    "{children: {...}, forward: ..., params: {...}, inputs: [...], class: NAME, tie: [...]}, "
    "{ModuleList: [...]}, {ModuleDict: {...}}, and in a block's children {Parameter: {...}} "
    "or {Buffer: {...}}, with options " + ", ".join(OPTIONS) + ".",
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
    | Annotated[BlockNode, Tag("block")]
    | Annotated[TensorNode, Tag("tensor")],
    Discriminator(_tag),
    WithJsonSchema(NODE_JSON_SCHEMA),
]


def _tagged_child(value: Any) -> Any:
    return to_tagged(value) if not isinstance(value, BaseModel) else value


def _tagged(value: Any) -> Any:
    """A node where a module goes: a tensor (a Parameter or Buffer) is refused, with where it belongs."""
    tagged = _tagged_child(value)
    if _tag(tagged) == "tensor":
        holder = tagged["holder"] if isinstance(tagged, dict) else tagged.holder
        raise PydanticCustomError(
            "tensor_place",
            "a {holder} is a tensor, not a module: it is a child of a custom block "
            "(children: {cls_token: {Parameter: {zeros: [1, 1, 64]}}}), and a forward uses it by name",
            {"holder": holder, "key": holder},
        )
    return tagged


# Every field that holds a node runs to_tagged first, through this type; a custom block's children
# may also be tensors (ChildField).
NodeField = Annotated[Node, BeforeValidator(_tagged)]
ChildField = Annotated[Node, BeforeValidator(_tagged_child)]
SequenceNode.model_rebuild()
BlockNode.model_rebuild()
