"""The bytes a common torch.nn layer's parameters and buffers take, read from its constructor call.

The memory check before a build (preflight.check_memory) needs each layer's
bytes before anything is allocated. Creating the layer on the meta device
tells for any type, at about 0.1 ms a layer and a first meta use that costs
more (bench figure 9: the check was 5 ms of a 110 ms resnet18 build). For the
types below the sizes are a product of the arguments, as their `__init__`
writes them; tests/test_layer_bytes.py holds each rule to the meta count over
many argument draws, so a torch that changes a layer fails there. Any other
type, or a call this module cannot read (a dtype or device argument, a size
that is not an int), is counted on meta as before.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

_Arguments = dict[str, Any]


def _size(value: Any) -> int:
    """A size argument as an int; anything else (a float, a bool, a string) is not read here."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Unread
    return value


def _shape(value: Any, dims: int) -> int:
    """The number of elements of a kernel or normalized shape: an int per dimension, or a list of them."""
    if isinstance(value, (list, tuple)):
        if dims and len(value) != dims:
            raise _Unread
        return math.prod(_size(v) for v in value)
    return _size(value) ** max(dims, 1)


class _Unread(Exception):
    """This call's sizes are not plain ints: count the layer on meta."""


def _linear(a: _Arguments, real: int) -> int:
    n_in, n_out = _size(a["in_features"]), _size(a["out_features"])
    return real * (n_in * n_out + (n_out if a["bias"] else 0))


def _conv(dims: int) -> Callable[[_Arguments, int], int]:
    def count(a: _Arguments, real: int) -> int:
        n_in, n_out, groups = _size(a["in_channels"]), _size(a["out_channels"]), _size(a["groups"])
        if groups == 0 or n_in % groups or n_out % groups:
            raise _Unread  # the constructor refuses it: let it say so
        # Conv: (out, in / groups, *k); ConvTranspose: (in, out / groups, *k): the same count
        return real * (n_in * n_out // groups * _shape(a["kernel_size"], dims) + (n_out if a["bias"] else 0))

    return count


def _batch_norm(a: _Arguments, real: int) -> int:
    features = _size(a["num_features"])
    weights = 2 * features if a["affine"] else 0
    # running_mean, running_var, and num_batches_tracked (one int64)
    stats = 2 * features * real + torch.int64.itemsize if a["track_running_stats"] else 0
    return real * weights + stats


def _layer_norm(a: _Arguments, real: int) -> int:
    if not a["elementwise_affine"]:
        return 0
    elements = _shape(a["normalized_shape"], 0)
    return real * elements * (2 if a.get("bias", True) else 1)


def _group_norm(a: _Arguments, real: int) -> int:
    return real * 2 * _size(a["num_channels"]) if a["affine"] else 0


def _embedding(a: _Arguments, real: int) -> int:
    if a.get("_weight") is not None:
        raise _Unread
    return real * _size(a["num_embeddings"]) * _size(a["embedding_dim"])


def _nothing(a: _Arguments, real: int) -> int:
    return 0


_RULES: dict[type, Callable[[_Arguments, int], int]] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv(1),
    nn.Conv2d: _conv(2),
    nn.Conv3d: _conv(3),
    nn.ConvTranspose1d: _conv(1),
    nn.ConvTranspose2d: _conv(2),
    nn.ConvTranspose3d: _conv(3),
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.BatchNorm3d: _batch_norm,
    nn.LayerNorm: _layer_norm,
    nn.GroupNorm: _group_norm,
    nn.Embedding: _embedding,
}
# types that hold no parameter or buffer, whatever their arguments
_RULES.update(
    dict.fromkeys(
        (
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.GELU,
            nn.SiLU,
            nn.Mish,
            nn.ELU,
            nn.Sigmoid,
            nn.Tanh,
            nn.Hardswish,
            nn.Softmax,
            nn.LogSoftmax,
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.MaxPool3d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
            nn.Flatten,
            nn.Identity,
        ),
        _nothing,
    )
)


@cache
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls)


def layer_bytes(cls: type, args: Any, kwargs: dict[str, Any]) -> int | None:
    """The bytes of `cls(*args, **kwargs)`'s parameters and buffers, without creating it; None where this
    module does not know the type or cannot read the call (then count the layer on meta)."""
    rule = _RULES.get(cls)
    if rule is None or kwargs.get("dtype") is not None or kwargs.get("device") is not None:
        return None
    try:
        bound = _signature(cls).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    try:
        return rule(bound.arguments, torch.get_default_dtype().itemsize)
    except (_Unread, KeyError):
        return None
