"""The built-in initializers a rule may name: thin wrappers over torch.nn.init.

Each takes the tensor to fill and keyword arguments with annotated types, so a
rule's arguments are bound and checked (`rules.check_rules`) before any tensor
changes. `needs_dims` records the shapes an initializer accepts, so that
`xavier` on a 1-D bias is refused with a message rather than torch's
ValueError. Plugins add their own with `@netcli.register_init`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch.nn import init

from netcli.registry.catalog import register_init

Nonlinearity = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
Mode = Literal["fan_in", "fan_out"]


def _check_range(a: float, b: float) -> None:
    # torch checks this only on real tensors; checking here lets a dry run on meta catch it
    if a > b:
        raise ValueError(f"the range [a, b] is empty: a={a} > b={b}")


@register_init
def zeros(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with 0 (`nn.init.zeros_`)."""
    return init.zeros_(tensor)


@register_init
def ones(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with 1 (`nn.init.ones_`): the chapter's init_constant."""
    return init.ones_(tensor)


@register_init
def constant(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fill with `val` (`nn.init.constant_`); `const42` is short for `constant(42)`."""
    return init.constant_(tensor, val)


@register_init
def normal(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Draw from N(mean, std^2) (`nn.init.normal_`), e.g. `normal(std=0.01)`."""
    return init.normal_(tensor, mean=mean, std=std)


@register_init
def uniform(tensor: torch.Tensor, a: float = 0.0, b: float = 1.0) -> torch.Tensor:
    """Draw from U(a, b) (`nn.init.uniform_`), e.g. `uniform(-10, 10)`."""
    _check_range(a, b)
    return init.uniform_(tensor, a, b)


_FANS = "fan in and fan out need at least 2 dimensions"


def xavier_uniform(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Draw from Glorot's uniform distribution (`nn.init.xavier_uniform_`)."""
    return init.xavier_uniform_(tensor, gain=gain)


def xavier_normal(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Draw from Glorot's normal distribution (`nn.init.xavier_normal_`)."""
    return init.xavier_normal_(tensor, gain=gain)


def kaiming_uniform(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: Mode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
) -> torch.Tensor:
    """Draw from He's uniform distribution (`nn.init.kaiming_uniform_`)."""
    return init.kaiming_uniform_(tensor, a=a, mode=mode, nonlinearity=nonlinearity)


def kaiming_normal(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: Mode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
) -> torch.Tensor:
    """Draw from He's normal distribution (`nn.init.kaiming_normal_`)."""
    return init.kaiming_normal_(tensor, a=a, mode=mode, nonlinearity=nonlinearity)


def orthogonal(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Fill with a (semi-)orthogonal matrix (`nn.init.orthogonal_`)."""
    return init.orthogonal_(tensor, gain=gain)


@register_init
def trunc_normal(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
) -> torch.Tensor:
    """Draw from N(mean, std^2) truncated to [a, b] (`nn.init.trunc_normal_`)."""
    _check_range(a, b)
    return init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def eye(tensor: torch.Tensor) -> torch.Tensor:
    """Fill a 2-D tensor with the identity matrix (`nn.init.eye_`)."""
    return init.eye_(tensor)


def dirac(tensor: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Fill a convolution weight with the Dirac delta (`nn.init.dirac_`)."""
    return init.dirac_(tensor, groups=groups)


def default(tensor: torch.Tensor) -> torch.Tensor:
    """Re-run the owning module's own `reset_parameters()` (the rule engine calls it per module)."""
    raise NotImplementedError(
        "the rule engine calls the module's reset_parameters for 'default'"
    )


def custom(tensor: torch.Tensor, low: float = 5.0, high: float = 10.0) -> torch.Tensor:
    """Apply the chapter's custom rule: U(-high, high), then zero where |w| < low.

    With the defaults, w ~ U(5, 10) with probability 1/4, 0 with probability 1/2
    and U(-10, -5) with probability 1/4, exactly as D2L's `my_init` does:

    >>> nn.init.uniform_(m.weight, -10, 10)
    >>> m.weight.data *= m.weight.data.abs() >= 5
    """
    init.uniform_(tensor, -high, high)
    with torch.no_grad():
        tensor *= tensor.abs() >= low
    return tensor


# name(s), and what the rule engine must know before calling it: the tensor dimensions it is defined
# for (low, high, why), or that it works on the whole owning module (its reset_parameters).
for _fn, _names, _dims in [
    (xavier_uniform, ("xavier", "xavier_uniform"), (2, None, _FANS)),
    (xavier_normal, ("xavier_normal",), (2, None, _FANS)),
    (kaiming_uniform, ("kaiming", "kaiming_uniform"), (2, None, _FANS)),
    (kaiming_normal, ("kaiming_normal",), (2, None, _FANS)),
    (
        orthogonal,
        ("orthogonal",),
        (2, None, "an orthogonal matrix needs at least 2 dimensions"),
    ),
    (eye, ("eye",), (2, 2, "the identity matrix is 2-D")),
    (
        dirac,
        ("dirac",),
        (3, 5, "the Dirac delta is defined for convolution weights (3-5 dimensions)"),
    ),
    (default, ("default",), None),
    (custom, ("custom", "my_init"), None),
]:
    for _name in _names:
        register_init(
            cast(Callable[..., Any], _fn),
            name=_name,
            dims=_dims,
            module_scope=_fn is default,
        )
