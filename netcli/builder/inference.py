"""Shape inference: which input-size arguments a spec may leave out, and their values.

A spec with `input:` may write `{Linear: 120}` where hand-written code says
`nn.Linear(16 * 5 * 5, 120)`: the builder runs the blocks built so far on the
meta device (`Flow`), reads the shape flowing into the layer, and fills in
the argument (`infer_value`) before it creates the real module, which is then
the same plain `nn.Linear(400, 120)`. Which arguments are inferable comes from
the registry (`Entry.inferable`, `register_block(inferable=...)`).
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from netcli import registry
from netcli.builder.cache import build_cache, layer_key
from netcli.core.errors import Problem, first_line

# Arguments read from the channel dimension (N, C, ...); every other inferable
# argument (in_features, in1_features, input_size, normalized_shape, a custom
# block's in_units) is the size of the last dimension, the features, unless its
# plugin gave the dimension (`register_block(inferable={"input_channels": 1})`).
CHANNEL_ARGS = ("in_channels", "num_features")
INFERRED_MARK = "[inferred]"


class InferenceError(ValueError):
    """The incoming shape does not give a value for the argument."""


class Reported(Exception):
    """Raised inside a forward on the inference pass after the problem was recorded: stop, say nothing more."""


@cache
def constructor_signature(cls: type) -> inspect.Signature | None:
    """Return the constructor's signature, looking through `*args, **kwargs` to its overloads.

    `nn.LSTM.__init__(self, *args, **kwargs)` hides its arguments; the typed
    `@overload` above it (`input_size, hidden_size, ...`) says what they are.
    """
    sig = registry.signature(cls)
    if sig is None or _named(sig):
        return sig
    init = getattr(cls, "__init__", None)
    # typing.get_overloads is new in Python 3.11; on 3.10 no overload is known and the signature stands
    get_overloads = getattr(typing, "get_overloads", None)
    for overload in get_overloads(init) if init is not None and get_overloads is not None else ():
        try:
            candidate = inspect.signature(overload)
        except (TypeError, ValueError):
            continue
        params = list(candidate.parameters.values())
        if params and params[0].name == "self":
            candidate = candidate.replace(parameters=params[1:])
        if _named(candidate):
            return candidate
    return sig


def _named(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def inferable_args(entry: registry.Entry) -> tuple[str, ...]:
    """Return the arguments of a registered type that shape inference may fill in."""
    if entry.inferable:
        return entry.inferable
    sig = constructor_signature(entry.obj) if isinstance(entry.obj, type) else None
    if sig is None:
        return ()
    return tuple(a for a in registry.INPUT_SIZE_ARGS if a in sig.parameters)


@dataclass(frozen=True)
class ArgumentPlan:
    """A layer's written arguments, and the inferable ones it leaves out."""

    args: list
    kwargs: dict
    missing: tuple[str, ...] = ()  # to be inferred from the incoming shape
    # Written positional arguments moved to keywords because an inferred one
    # precedes them ({Linear: 10} -> out_features=10): name -> index in the list.
    positions: dict[str, int] = field(default_factory=dict)
    # Positional arguments that fill every required one in torch's order, but
    # would also read as the shorter form with the input size inferred
    # ({Conv2d: [96, 11, 4]}: in_channels=96, or out_channels=96 ... stride=4):
    # that other reading, checked against the incoming shape (see `meaning_problem`).
    alternative: ArgumentPlan | None = None

    def complete(self, values: dict[str, Any]) -> tuple[list, dict]:
        """Return the full constructor call, with the inferred `values` filled in."""
        return list(self.args), {**self.kwargs, **values}


def plan_arguments(entry: registry.Entry, args: list, kwargs: dict, *, shift: bool = True) -> ArgumentPlan:
    """Decide which inferable arguments a layer leaves out.

    Arguments written in full are taken as written. Otherwise (with `shift`,
    i.e. when an input shape is known) a left-out inferable argument does not
    take a position: the written positional values fill the other parameters
    in order, so `{Linear: 10}` is out_features=10 and `{Conv2d: [16, 5]}` is
    out_channels=16, kernel_size=5.
    """
    written = ArgumentPlan(list(args), dict(kwargs))
    inferable = inferable_args(entry)
    sig = constructor_signature(entry.obj) if inferable else None
    if sig is None:
        return written
    required = [p.name for p in _named(sig) if p.default is p.empty]
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return written  # bind_arguments reports it
    missing = [n for n in required if n not in bound.arguments]
    if not missing:
        if shift and args and any(n in inferable and n not in kwargs for n in list(bound.arguments)[: len(args)]):
            other = _shifted(sig, args, kwargs, inferable, required)
            if other is not None:
                return ArgumentPlan(list(args), dict(kwargs), alternative=other)
        return written
    if all(n in inferable for n in missing):
        return ArgumentPlan(list(args), dict(kwargs), tuple(missing))
    if not shift:
        return written
    left_out = {n for n in required if n in inferable and n not in kwargs}
    return _reading_without(sig, args, kwargs, left_out, inferable, required) or written


def _reading_without(
    sig: inspect.Signature, args: list, kwargs: dict, left_out: set, inferable, required
) -> ArgumentPlan | None:
    """`args` read in order over the parameters but `left_out`, if what is then missing can be inferred."""
    order = [p.name for p in _named(sig) if p.kind is not p.KEYWORD_ONLY and p.name not in left_out]
    if len(args) > len(order) or any(order[i] in kwargs for i in range(len(args))):
        return None
    moved = {order[i]: value for i, value in enumerate(args)}
    missing = [n for n in required if n not in moved and n not in kwargs]
    if not missing or not all(n in inferable for n in missing):
        return None
    return ArgumentPlan([], {**moved, **kwargs}, tuple(missing), {n: i for i, n in enumerate(moved)})


def _shifted(sig: inspect.Signature, args: list, kwargs: dict, inferable, required) -> ArgumentPlan | None:
    """The shorter reading of `args` (inferable input sizes left out), if its values fit their parameters."""
    params = {p.name: p for p in _named(sig)}
    plan = _reading_without(sig, args, kwargs, {n for n in required if n in inferable}, inferable, required)
    if plan is None:
        return None
    for name in plan.positions:
        value = plan.kwargs[name]  # strict: 1 is not a bool, 3 is not a string, 2.5 is not an int
        default = params[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            return None
        if isinstance(default, str) and not isinstance(value, str):
            return None
        if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, (int, list)):
            return None
        if isinstance(default, float) and not isinstance(value, float):  # {BatchNorm2d: 64} is not eps=64
            return None
        if params[name].default is params[name].empty and isinstance(value, bool):
            return None
    return plan


def meaning_problem(type_name: str, plan: ArgumentPlan, cls: type, shape: tuple[int, ...]) -> str | None:
    """Say why a positional reading contradicts the incoming shape, or None when it fits.

    `{Conv2d: [96, 11, 4]}` is in_channels=96, out_channels=11, kernel_size=4
    in torch's order; `{Conv2d: [96, 11]}` would be out_channels=96,
    kernel_size=11 with in_channels inferred. When the input then does not
    have 96 channels, the user meant the other reading: neither is guessed.
    """
    other = plan.alternative
    if other is None:
        return None
    sig = constructor_signature(cls)
    bound = sig.bind_partial(*plan.args, **plan.kwargs).arguments if sig is not None else {}
    for arg in other.missing:
        if arg not in bound:
            continue
        try:
            actual = infer_value(cls, arg, shape, type_name)
        except InferenceError:
            return None
        if bound[arg] != actual:
            torch_reading = ", ".join(f"{k}={v!r}" for k, v in bound.items())
            named = ", ".join(f"{k}: {v!r}" for k, v in other.kwargs.items())
            return (
                f"{list(plan.args)} reads {torch_reading} in torch's order, but its input has "
                f"{arg}={actual} (shape {list(shape)}); name the arguments: {{{type_name}: {{{named}}}}} "
                f"infers {arg}, or write {arg}: {bound[arg]!r} by name to keep torch's reading"
            )
    return None


def infer_value(cls: type, arg: str, shape: tuple[int, ...], type_name: str | None = None) -> int:
    """Return the value of input-size argument `arg` of `cls` for an input of `shape`.

    `type_name` is the name the spec wrote (a class may be registered under
    several names, each with its own `inferable` dimensions).

    >>> infer_value(nn.Conv2d, "in_channels", (1, 6, 14, 14))
    6
    """
    shape = tuple(shape)
    name = cls.__name__
    if not shape:
        raise InferenceError(f"{name} gets a 0-d input, which has no size to read {arg} from")
    known = type_name is not None and type_name in registry.types
    entry = registry.types.entry(type_name) if known and type_name is not None else registry.types.entry_of(cls)
    dim = (entry.meta.get("inferable_dims") or {}).get(arg) if entry is not None else None
    if dim is not None:  # the plugin said where: register_block(inferable={"input_channels": 1})
        if not -len(shape) <= dim < len(shape):
            raise InferenceError(f"{name} reads {arg} from dimension {dim}, but its input has shape {list(shape)}")
        return int(shape[dim])
    if arg not in CHANNEL_ARGS:
        return int(shape[-1])  # (..., features): Linear, LayerNorm, RNN/LSTM/GRU either batch_first
    return int(shape[_channel_dim(cls, arg, shape)])


def _channel_dim(cls: type, arg: str, shape: tuple[int, ...]) -> int:
    """Return where the channels are in `shape`: 1 in (N, C, ...), 0 in an unbatched (C, ...)."""
    name = cls.__name__
    match = re.search(r"([123])d$", name)
    spatial = int(match.group(1)) if match else None
    if "BatchNorm" in name:
        allowed = {1: (2, 3), 2: (4,), 3: (5,)}.get(spatial or 0, tuple(range(2, 6)))
        if len(shape) not in allowed:
            raise InferenceError(
                f"{name} expects a {' or '.join(f'{n}-d' for n in allowed)} input "
                f"(N, C, ...), but its input has shape {list(shape)}"
            )
        return 1
    if spatial is not None:  # Conv*, ConvTranspose*, InstanceNorm*: batched or not
        if len(shape) == spatial + 2:
            return 1
        if len(shape) == spatial + 1:
            return 0
        raise InferenceError(
            f"{name} expects a {spatial + 2}-d (N, C, ...) or {spatial + 1}-d (C, ...) "
            f"input, but its input has shape {list(shape)}"
        )
    if len(shape) < 2:
        raise InferenceError(f"{name} reads {arg} from dimension 1, but its input has shape {list(shape)}")
    return 1


class Flow:
    """The value flowing through the network as it is built, on the meta device.

    `advance(module)` runs the module just built on it, as the forward pass
    would. The shape is known while that value is one tensor: after a block
    that returns a tuple (an LSTM's `(output, (h, c))`) it is unknown until a
    block turns it back into a tensor; after a block that cannot run on meta,
    it stays unknown. `stopped` says why it is unknown.
    """

    def __init__(self, example):
        """`example`: a shape, or the spec's input entries (several for a forward with several inputs)."""
        import torch

        self.shape_given = example is not None
        self.value: Any = None
        self.spread = False  # the value is the network's several inputs: the first block takes them as arguments
        if example is not None:
            if all(isinstance(s, int) for s in example):
                self.value = torch.empty(*example, device="meta")
            else:
                values = tuple(torch.empty(*e.shape, dtype=getattr(torch, e.dtype), device="meta") for e in example)
                self.value = values[0] if len(values) == 1 else values
                self.spread = len(values) > 1
        self._reason = None if example is not None else "there is no input shape to infer it from"
        self._last = ""
        self.problems: list[Problem] = []

    @property
    def shape(self) -> tuple[int, ...] | None:
        import torch

        return tuple(self.value.shape) if isinstance(self.value, torch.Tensor) else None

    @property
    def stopped(self) -> str | None:
        """Why the shape is unknown, or None while it is known."""
        if self.value is None:
            return self._reason
        if self.shape is None:
            return (
                f"block {self._last} returns a {type(self.value).__name__}, not one tensor, "
                "so the shape after it is unknown"
            )
        return None

    def advance(self, module, name: str) -> None:
        """Run `module` (built on meta) on the flowing value; its output flows on."""
        import torch
        from torch import nn

        if self.value is None:
            return
        x = self.value
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and isinstance(x, torch.Tensor):
            x = x.long()  # indices, as the real input would be
        label = f"'{name or '(root)'}' ({type(module).__name__})"
        try:
            with torch.no_grad():
                self.value = module(*x) if self.spread else module(x)
        except Reported:
            self.stop(f"the shape after block {label} is unknown")
        except Exception as exc:
            from netcli.builder.forward import failure_location
            from netcli.builder.shapes import ShapeTrace

            text = first_line(exc)
            at = failure_location(exc)
            where = f" (in its forward at {at})" if at is not None else ""
            if ShapeTrace(error=exc).data_dependent:
                self.stop(f"block {label} needs real values to run, so the shape after it is unknown")
            else:
                self.stop(f"the shapes stop fitting at block {label}{where}: {text}")
        self.spread = False
        self._last = label

    def stop(self, reason: str) -> None:
        self.value, self._reason = None, reason


def needs_inference(loaded, *, readings: bool = True) -> bool:
    """Return True when a pass on meta must run before the build (asked once per spec).

    It must when some layer leaves out an inferable argument. With `readings`,
    also when a layer's positional list fills every argument in torch's order
    while an input-size argument could be inferred instead (`{Conv2d: [64, 128,
    1, 2]}` with an `input:`): only the flowing shape tells whether the input
    agrees with torch's reading (`meaning_problem`).
    """
    memo = build_cache(loaded)
    if memo.needs_inference is None:
        memo.needs_inference = _needs_inference(loaded)
    missing, ambiguous = memo.needs_inference
    return missing or (readings and ambiguous)


def _needs_inference(loaded) -> tuple[bool, bool]:
    """(some size is left out, some positional reading awaits the input's check)."""
    from netcli.specfile.tree import walk_layers

    registry.ensure_loaded()
    plans = build_cache(loaded).plans  # the builder reads the same plans, made once here
    ambiguous = False
    for node in walk_layers(loaded):
        if node.type in registry.types:
            key = layer_key(node.type, node.args, node.kwargs)
            found = plans.get(key)
            if found is None:
                entry = registry.types.entry(node.type)
                found = plans[key] = (entry.obj, plan_arguments(entry, node.args, node.kwargs))
            plan = found[1]
            if plan.missing:
                return True, ambiguous
            ambiguous = ambiguous or (plan.alternative is not None and loaded.spec.input is not None)
    return False, ambiguous


def cannot_infer_hint(type_name: str, plan: ArgumentPlan, *, no_input: bool = False) -> str:
    """Say what to write instead: the argument, by name (and `input:` when there is none)."""
    args = ", ".join(f"{a}: N" for a in plan.missing)
    written = ", ".join(f"{k}: {v!r}" for k, v in plan.kwargs.items())
    return (
        f"write {' and '.join(plan.missing)}, e.g. {{{type_name}: {{{args}"
        f"{', ' + written if written else ''}}}}}"
        + (", or give the spec an input: shape such as [2, ...]" if no_input else "")
    )


def describe_inferred(values: dict[str, Any]) -> str:
    """Return the inferred arguments as a summary shows them inside `Type(...)`.

    >>> describe_inferred({"in_features": 400})
    'in_features=400 [inferred], ...'
    """
    return ", ".join([f"{arg}={value} {INFERRED_MARK}" for arg, value in values.items()] + ["..."])


def format_inferred(inferred: dict[str, dict[str, Any]]) -> str:
    """Return `0.in_channels=1, 7.in_features=400`: every inferred argument, by module name."""
    return ", ".join(
        f"{name + '.' if name else ''}{arg}={value}"
        for name, values in inferred.items()
        for arg, value in values.items()
        if not name.startswith("<")
    )  # a shared block's own entry: listed where it is used
