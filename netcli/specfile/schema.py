"""Pydantic models of the spec language (SPEC section 1): what a spec may contain.

The whole file (`Spec`) and its init rules live here; a node's written forms
are in forms.py, its models in nodes.py, the example inputs in
example_inputs.py (all re-exported here, the one name the rest of netcli
imports). Nothing here imports torch: which types exist is the registry's
business, checked in validate.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from netcli.core.limits import SEED_MAX, SEED_MIN
from netcli.specfile.example_inputs import (
    INPUT_DTYPE_ALIASES,
    INPUT_DTYPES,
    InputEntry,
    InputField,
    first_shape,
    input_entries,
)
from netcli.specfile.forms import BLOCK_KEYS, OPTIONS, is_block, to_tagged
from netcli.specfile.nodes import (
    NODE_JSON_SCHEMA,
    PARAM_TEXT,
    REQUIRED,
    BlockNode,
    LayerNode,
    Node,
    NodeField,
    NodeOptions,
    RefNode,
    SequenceNode,
    TensorNode,
    TieText,
    UseNode,
    param_defaults,
)

__all__ = [
    "BLOCK_KEYS",
    "INPUT_DTYPES",
    "INPUT_DTYPE_ALIASES",
    "MAX_INPUT_NUMEL",
    "NODE_JSON_SCHEMA",
    "OPTIONS",
    "PARAM_TEXT",
    "REQUIRED",
    "RULE_KEYS",
    "TOP_LEVEL_KEYS",
    "ApplyRuleSpec",
    "BlockNode",
    "InitRuleField",
    "InitRuleSpec",
    "InputEntry",
    "LayerNode",
    "Node",
    "NodeField",
    "NodeOptions",
    "RefNode",
    "SequenceNode",
    "Spec",
    "TensorNode",
    "UseNode",
    "first_shape",
    "input_entries",
    "is_block",
    "json_schema",
    "param_defaults",
    "to_tagged",
]

TOP_LEVEL_KEYS = (
    "name",
    "input",
    "seed",
    "device",
    "vars",
    "plugins",
    "blocks",
    "model",
    "tie",
    "init",
    "shard",
    "extends",
)
RULE_KEYS = ("init", "args", "target", "params", "apply")

MAX_INPUT_NUMEL = 2**59  # a tensor's element count is an int64, and so is its size in bytes (8 per element)


class InitRuleSpec(BaseModel):
    """The long form of an init rule (SPEC 1.4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: str = Field(description="a registered initializer, e.g. xavier, normal, const42")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the initializer")
    target: str = Field("*", description="*, a path (0.1.0, 2.bias), a type name (Linear) or a glob (*.bias)")
    params: Literal["weight", "bias", "all"] | None = Field(
        None, description="on a module target: which parameters (default: weights)"
    )


class ApplyRuleSpec(BaseModel):
    """An `apply` rule (SPEC 1.8): `net.apply(fn)` where fn initializes each module by its first matching type.

    `{apply: {Conv2d: "normal(0, 0.02):weight", BatchNorm2d: ["normal(1, 0.02):weight", "zeros:bias"]}}`
    is the hand-written `if isinstance(m, nn.Conv2d): ... elif isinstance(m, nn.BatchNorm2d): ...`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    apply: dict[str, str | list[str]] = Field(
        description="type -> INIT:PARAM (or a list of them), tried in order; PARAM is weight, bias, all "
        "or a glob of parameter names within the module"
    )


def _rule_tag(value: Any) -> str:
    if isinstance(value, ApplyRuleSpec) or (isinstance(value, dict) and "apply" in value):
        return "apply"
    return "text" if isinstance(value, str) or not isinstance(value, (dict, InitRuleSpec)) else "long"


# A rule is text (`xavier:0`), the long mapping or an `apply`; tagging them gives one error per bad rule.
InitRuleField = Annotated[
    Annotated[str, Tag("text")] | Annotated[InitRuleSpec, Tag("long")] | Annotated[ApplyRuleSpec, Tag("apply")],
    Discriminator(_rule_tag),
]


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
    tie: list[TieText] = Field(
        default_factory=list,
        description="parameter ties run after the model is built, as `net.a.weight = net.b.weight`: "
        "'a.weight = b.weight'",
    )
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

    @field_validator("model")
    @classmethod
    def _model_runs(cls, model):
        if isinstance(model, SequenceNode) and model.container != "Sequential":
            raise PydanticCustomError(
                "container_place",
                "a {container} cannot be the network: it does not run; put it in a custom block's children:, "
                "whose forward loops over it",
                {"container": model.container, "key": model.container},
            )
        return model

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
