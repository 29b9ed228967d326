"""What every build of one loaded spec shares: one typed field per kind of entry.

A spec is often built more than once in a process (the inference pass on
meta, the memory count, the real build; `netcli.build` of a spec it has
already read), and each of those builds would otherwise look up the same
types, bind the same constructor calls, parse the same forwards and make the
same block classes again. Each kind of entry has its own field, keyed by what
decides its value, so a reader finds at once who writes what; the cache lives
on the `LoadedSpec` (`build_cache` makes it there on first use) and goes away
with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from netcli.builder.forward_ir import ForwardProgram
    from netcli.specfile.loading import LoadedSpec

# A layer as written: its type and the repr of its written arguments (alike layers share entries).
LayerKey = tuple[str, str, str]


@dataclass
class BuildCache:
    """The build layer's memory of one spec; see the module docstring for why each entry is kept."""

    # the definitions some `ref` names (created first, in declaration order); None: not yet walked
    referenced: frozenset[str] | None = None
    # (some layer leaves out an inferable size, some positional reading awaits the input's check): shape
    # inference runs only then (inference.needs_inference); None: not yet asked
    needs_inference: tuple[bool, bool] | None = None
    # the spec's `init:` entries, parsed and located (init.rules.spec_rules); None: not yet parsed
    init_rules: tuple[Any, ...] | None = None
    # layer as written -> its registered class and its inference.ArgumentPlan (what is given, what is
    # inferred); typed loosely: inference uses this module, which must not import it back
    plans: dict[LayerKey, tuple[type, Any]] = field(default_factory=dict)
    # (type, repr of the full args, repr of the full kwargs) -> the checked constructor call (args, kwargs)
    calls: dict[LayerKey, tuple[Any, Any]] = field(default_factory=dict)
    # document path of an argument written as a node (encoder_layer) -> that node, parsed once
    arguments: dict[tuple, Any] = field(default_factory=dict)
    # (block path, class name, without forward) -> the block's run-time class, one per definition
    classes: dict[tuple[tuple, str, bool], type] = field(default_factory=dict)
    # (block path, forward text, inputs, children) -> the forward, parsed and checked once
    programs: dict[tuple[tuple, str | None, tuple[str, ...], tuple[str, ...]], ForwardProgram] = field(
        default_factory=dict
    )
    # (id of a program, class, names of the modules under an instance) -> the class with the forward compiled
    compiled: dict[tuple[int, type, tuple[str, ...]], type] = field(default_factory=dict)
    # (device, repr of the inferred sizes) -> bytes of parameters and buffers per device (the memory check)
    needed: dict[tuple[str, str], dict[torch.device, int]] = field(default_factory=dict)
    # layer (its full call, left-out sizes filled in) -> bytes of its parameters and buffers
    layer_bytes: dict[LayerKey, int] = field(default_factory=dict)


def build_cache(loaded: LoadedSpec) -> BuildCache:
    """The spec's build cache, made on first use (the spec layer holds it and never reads it)."""
    cache = loaded.build_cache
    if not isinstance(cache, BuildCache):
        cache = loaded.build_cache = BuildCache()
    return cache


def layer_key(type_name: str, args: Any, kwargs: Any) -> LayerKey:
    """The key of a layer's entries: its type and its arguments' repr (equal reprs build equal layers)."""
    return (type_name, repr(args), repr(kwargs))
