"""Recover the constructor call of a registered module from the module itself: `nn.Linear(4, 8, bias=False)`.

torch's layers keep their constructor arguments as attributes of the same
name (`in_features`, `kernel_size`, `eps`); a few keep them inside their
children (`TransformerEncoderLayer`'s `d_model` is its attention's
`embed_dim`) or as the presence of a parameter (`bias`). Each recovered call
is then checked by doing it on the meta device and comparing the result's
print and tensor shapes with the module's: a call that does not rebuild the
module is an error, never a silently different network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netcli.core.errors import NetcliError, Problem

_MISSING = object()
_SKIPPED = frozenset({"device", "dtype", "_weight", "_freeze", "factory_kwargs"})


def _activation_name(fn: Any) -> Any:
    import torch.nn.functional as F

    named = {F.relu: "relu", F.gelu: "gelu"}
    return named.get(fn, _MISSING)


def _derived(m: Any) -> dict[str, Callable[[Any], Any]]:
    """Arguments a torch layer keeps somewhere other than an attribute of their own name."""
    import torch.nn as nn

    def bias_of(*names: str) -> Callable[[Any], Any]:
        def read(mod: Any) -> Any:
            for name in names:
                t = getattr(mod, name, _MISSING)
                if t is not _MISSING:
                    return t is not None
            return _MISSING

        return read

    table: dict[type, dict[str, Callable[[Any], Any]]] = {
        nn.MultiheadAttention: {
            "bias": lambda mod: mod.out_proj.bias is not None,
            "add_bias_kv": lambda mod: mod.bias_k is not None,
        },
        nn.TransformerEncoderLayer: {
            "d_model": lambda mod: mod.self_attn.embed_dim,
            "nhead": lambda mod: mod.self_attn.num_heads,
            "dim_feedforward": lambda mod: mod.linear1.out_features,
            "dropout": lambda mod: mod.dropout.p,
            "activation": lambda mod: _activation_name(mod.activation),
            "layer_norm_eps": lambda mod: mod.norm1.eps,
            "batch_first": lambda mod: mod.self_attn.batch_first,
            "bias": lambda mod: mod.linear1.bias is not None,
        },
        nn.TransformerDecoderLayer: {
            "d_model": lambda mod: mod.self_attn.embed_dim,
            "nhead": lambda mod: mod.self_attn.num_heads,
            "dim_feedforward": lambda mod: mod.linear1.out_features,
            "dropout": lambda mod: mod.dropout.p,
            "activation": lambda mod: _activation_name(mod.activation),
            "layer_norm_eps": lambda mod: mod.norm1.eps,
            "batch_first": lambda mod: mod.self_attn.batch_first,
            "bias": lambda mod: mod.linear1.bias is not None,
        },
        nn.TransformerEncoder: {
            "encoder_layer": lambda mod: mod.layers[0],
            "num_layers": lambda mod: len(mod.layers),
        },
        nn.TransformerDecoder: {
            "decoder_layer": lambda mod: mod.layers[0],
            "num_layers": lambda mod: len(mod.layers),
        },
    }
    for cls in type(m).__mro__:
        if cls in table:
            return table[cls]
    return {"bias": bias_of("bias")}


def _simplify(value: Any) -> Any:
    """A value as a person writes it: (3, 3) as 3 where every entry is equal."""
    if isinstance(value, tuple) and len(value) > 1 and all(type(v) is int and v == value[0] for v in value):
        return value[0]
    return value


def _same(a: Any, b: Any) -> bool:
    """True where a recovered value is the parameter's default (a tensor or module never is)."""
    if type(a) is not type(b) or not isinstance(a, int | float | str | bool | tuple | type(None)):
        return False
    return bool(a == b)


def recover_call(m: Any, cls: type, *, simplify: bool = True) -> tuple[list[Any], dict[str, Any]]:
    """Return (positional, keyword) arguments that rebuild `m`: the required ones by position, the rest by name."""
    from netcli.builder.inference import constructor_signature  # sees through nn.LSTM's *args

    sig = constructor_signature(cls)
    params = sig.parameters if sig is not None else {}
    derived = _derived(m)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for p in params.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _SKIPPED:
            continue
        value = derived[p.name](m) if p.name in derived else getattr(m, p.name, _MISSING)
        if value is _MISSING:
            if p.default is p.empty:
                raise NetcliError(
                    Problem(
                        f"cannot tell the argument '{p.name}' of {cls.__name__} from the module",
                        hint=f"keep {cls.__name__} as a plugin type with --leaf {cls.__name__}",
                    )
                )
            continue
        if simplify:
            value = _simplify(value)
        if p.default is not p.empty and (_same(value, p.default) or _same(value, _simplify(p.default))):
            continue
        if p.default is p.empty and p.kind != p.KEYWORD_ONLY and not keywords:
            positional.append(value)
        else:
            keywords[p.name] = value
    return positional, keywords


def rebuilds(m: Any, cls: type, positional: list, keywords: dict) -> str | None:
    """Call `cls` with the recovered arguments on meta; None when it prints and shapes as `m`, else the difference."""
    import torch

    try:
        with torch.device("meta"):
            twin = cls(*positional, **keywords)
    except Exception as exc:
        return f"{cls.__name__}(...) with the recovered arguments fails: {type(exc).__name__}: {exc}"
    if repr(twin) != repr(m):
        return f"it prints as {repr(twin).splitlines()[0]}, the module as {repr(m).splitlines()[0]}"
    mine = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    if mine != theirs:
        return "its tensors' names or shapes differ"
    return None
