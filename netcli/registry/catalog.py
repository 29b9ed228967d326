"""The registries: which module types and initializers a spec may name.

The registry is the only door: a spec's type name is looked up here and nowhere
else, so a spec can never reach an arbitrary callable such as `os.system`.
Every public `torch.nn` module class is registered under its class name, the
chapter's blocks under theirs, and users add their own with `register_block`
and `register_init` from a plugin module.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar

from netcli.core.errors import NetcliError, Problem, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name, the object, and where it was registered."""

    name: str
    obj: T
    origin: str
    # Arguments the builder may fill in from the incoming shape (shape inference).
    inferable: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)


class Registry(Generic[T]):
    """A name -> object table that refuses duplicates and suggests close names."""

    def __init__(self, kind: str):
        self.kind = kind  # "type" or "initializer", for messages
        self._entries: dict[str, Entry[T]] = {}

    def add(
        self,
        name: str,
        obj: T,
        *,
        origin: str | None = None,
        inferable: tuple[str, ...] = (),
        **meta: Any,
    ) -> T:
        """Register `obj` under `name`; a second registration of a name is an error."""
        origin = (
            origin
            or f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', name)}"
        )
        if name in self._entries and self._entries[name].obj is not obj:
            raise NetcliError(
                f"{self.kind} '{name}' is already registered (by {self._entries[name].origin}); "
                f"{origin} cannot register it again",
                hint="choose another name",
            )
        self._entries[name] = Entry(name, obj, origin, tuple(inferable), dict(meta))
        return obj

    def entry(self, name: str) -> Entry[T]:
        """Return the entry for `name`, or raise NetcliError with a did-you-mean."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            hint = did_you_mean(str(name), self._entries)
            hint = hint or f"`netcli types` lists the registered {self.kind}s"
            raise NetcliError(f"unknown {self.kind} '{name}'", hint=hint) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry_of(self, obj: object) -> Entry[T] | None:
        """The entry that registered `obj` (under any name), or None."""
        return next((e for e in self._entries.values() if e.obj is obj), None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Within this block, entries may be added; on exit the table is as it was (tests' throwaway types)."""
        before = dict(self._entries)
        try:
            yield self
        finally:
            self._entries = before


types: Registry[type] = Registry("type")
initializers: Registry[Callable] = Registry("initializer")

# Input-size arguments of torch.nn types that shape inference may fill in.
INPUT_SIZE_ARGS = (
    "in_features",
    "in1_features",
    "in_channels",
    "num_features",
    "normalized_shape",
    "input_size",
)


def register_block(
    cls: type | None = None,
    *,
    name: str | None = None,
    inferable: tuple[str, ...] | Mapping[str, int] = (),
):
    """Register an `nn.Module` subclass as a spec type (use as a decorator).

    `inferable` names the constructor arguments shape inference may fill in
    from the input flowing into the block. As a tuple of names, each is read
    like torch's: `in_channels`/`num_features` from the channel dimension
    (N, C, ...), any other name from the last dimension (the features). As a
    mapping name -> dimension, each is read from the dimension given
    (`{"input_channels": 1}` for (N, C, H, W); negative counts from the end).

    >>> @register_block
    ... class Scale(nn.Module): ...
    >>> @register_block(inferable={"input_channels": 1})
    ... class ChannelGate(nn.Module):
    ...     def __init__(self, input_channels: int): ...
    """
    if isinstance(inferable, str):  # inferable="in_units": one name, not its letters
        inferable = (inferable,)
    dims: dict[str, int] = {}
    if isinstance(inferable, Mapping):
        dims = dict(inferable)
        for arg, dim in dims.items():
            if not isinstance(dim, int) or isinstance(dim, bool):
                raise NetcliError(
                    f"register_block(inferable=...): the dimension of '{arg}' must be an int, not {dim!r}",
                    hint="e.g. {'input_channels': 1} for (N, C, ...), -1 for the last",
                )
        inferable = tuple(dims)

    def wrap(c: type) -> type:
        import torch.nn as nn

        if not (isinstance(c, type) and issubclass(c, nn.Module)):
            raise NetcliError(f"register_block takes an nn.Module subclass, not {c!r}")
        meta: dict[str, Any] = {"inferable_dims": dims} if dims else {}
        types.add(name or c.__name__, c, inferable=tuple(inferable), **meta)
        return c

    return wrap(cls) if cls is not None else wrap


def register_init(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    dims: tuple[int, int | None, str] | None = None,
    module_scope: bool = False,
):
    """Register an initializer `fn(tensor, **args)` that fills a tensor in place.

    `dims=(low, high, why)`: it is defined only for tensors with low..high
    dimensions (high None: no upper bound), so a rule on another tensor is
    refused with `why` before anything runs. `module_scope=True`: the engine
    calls the owning module's `reset_parameters()` instead of `fn`.
    """

    def wrap(f: Callable) -> Callable:
        initializers.add(
            name or f.__name__.rstrip("_"), f, dims=dims, module_scope=module_scope
        )
        return f

    return wrap(fn) if fn is not None else wrap


@cache
def parameters(cls: type) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return {}


@cache
def signature(cls: type) -> inspect.Signature | None:
    """Return the constructor's signature, or None where Python cannot tell it."""
    try:
        return inspect.signature(cls)
    except (TypeError, ValueError):
        return None


@cache
def type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(getattr(cls, "__init__"))  # noqa: B009 (mypy: __init__ of a class object)
    except Exception:  # unresolvable annotations: skip type checks, binding still runs
        return {}


@cache
def type_adapter(hint: Any):
    from pydantic import ConfigDict, TypeAdapter

    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:
        return None


def _is_dtype_arg(name: str) -> bool:
    return name == "dtype"


def convert_dtype(value: Any) -> Any:
    """Turn a dtype written as text ("float64", "torch.float16") into a torch.dtype."""
    import torch

    if not isinstance(value, str):
        return value
    name = value.removeprefix("torch.")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        choices = [
            n for n in dir(torch) if isinstance(getattr(torch, n, None), torch.dtype)
        ]
        raise NetcliError(
            f"unknown dtype '{value}'",
            hint=did_you_mean(name, choices) or "e.g. float32",
        )
    return dtype


def bind_arguments(
    cls: type, args: list, kwargs: dict
) -> tuple[list, dict, list[tuple[str | int, Problem]]]:
    """Check arguments against `cls`'s constructor without building anything.

    Return the (possibly converted) arguments and a list of (argument, problem)
    pairs: the argument is a keyword name or a positional index.
    """
    problems: list[tuple[str | int, Problem]] = []
    sig = signature(cls)
    if sig is None:
        return args, kwargs, problems
    params = sig.parameters
    accepts_any_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [
        n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    for key in kwargs:
        if key not in params and not accepts_any_kw:
            problems.append(
                (
                    key,
                    Problem(
                        f"unknown argument '{key}'",
                        hint=did_you_mean(key, named)
                        or f"{cls.__name__} takes {', '.join(named) or 'no arguments'}",
                    ),
                )
            )
    if problems:
        return args, kwargs, problems
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        text = str(exc)
        hint = ", ".join(_describe(p) for p in params.values()) or "no arguments"
        where: str | int = len(args) - 1 if "too many positional" in text else ""
        problems.append((where, Problem(text, hint=f"{cls.__name__} takes {hint}")))
        return args, kwargs, problems
    hints = type_hints(cls)
    converted = dict(bound.arguments)
    for name, value in bound.arguments.items():
        param = params[name]
        if _is_dtype_arg(name) and isinstance(value, str):
            try:
                converted[name] = convert_dtype(value)
            except NetcliError as exc:
                problems.append((_arg_key(bound, name, args), exc.problems[0]))
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name not in hints:
            continue
        adapter = type_adapter(hints[name])
        if adapter is None:
            continue
        try:
            out = adapter.validate_python(value)
        except Exception:
            problems.append(
                (
                    _arg_key(bound, name, args),
                    Problem(
                        f"argument '{name}' must be {_type_name(hints[name])}, not {value!r}",
                        hint="in ${...}, // divides to a whole number (/ gives a float)"
                        if isinstance(value, float)
                        else None,
                    ),
                )
            )
            continue
        if isinstance(value, str) and not isinstance(out, str):
            problems.append(
                (
                    _arg_key(bound, name, args),
                    Problem(
                        f"argument '{name}' must be {_type_name(hints[name])}, not the text {value!r}",
                        hint="write the value without quotes",
                    ),
                )
            )
        elif isinstance(value, float) and type(out) is int:
            converted[name] = out
    new_args, new_kwargs = _rebind(sig, converted)
    return new_args, new_kwargs, problems


def _rebind(sig: inspect.Signature, arguments: dict) -> tuple[list, dict]:
    ba = inspect.BoundArguments(sig, arguments)
    return list(ba.args), dict(ba.kwargs)


def _arg_key(bound: inspect.BoundArguments, name: str, args: list) -> str | int:
    names = list(bound.signature.parameters)
    index = names.index(name)
    return index if index < len(args) else name


def _describe(p: inspect.Parameter) -> str:
    if p.kind is p.VAR_POSITIONAL:
        return f"*{p.name}"
    if p.kind is p.VAR_KEYWORD:
        return f"**{p.name}"
    return p.name if p.default is p.empty else f"{p.name}={p.default!r}"


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
