"""The spec's example inputs (`input:`, SPEC 1.1 and 1.6): a shape, or entries with a dtype and a range."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

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
