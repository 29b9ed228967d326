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
