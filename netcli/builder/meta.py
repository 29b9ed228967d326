"""Building on the meta device: structure and shapes with no memory and no random draws."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

META = torch.device("meta")
CPU = torch.device("cpu")


# In-place random fills: on a meta tensor they have no values to draw, only a cost
# (torch runs normal_'s meta kernel in Python, and its first use imports torch._dynamo: ~1.7 s).
RANDOM_FILLS = frozenset(
    {"normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_", "log_normal_", "cauchy_"}
)


# torch.nn.init's initializers: each hands itself to a torch-function mode when given a meta tensor.
INIT_FUNCTIONS = frozenset(
    {
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "trunc_normal_",
        "orthogonal_",
        "sparse_",
        "uniform_",
        "normal_",
    }
)


class SkipMetaFills(TorchFunctionMode):
    """Skip in-place random fills of meta tensors while modules are created on meta.

    A constructor's `reset_parameters()` then costs nothing on meta, where it
    could not set any value anyway; every other operation runs as usual.

    >>> with torch.device("meta"), SkipMetaFills():
    ...     emb = nn.Embedding(32000, 8192)  # no torch._dynamo import for normal_
    """

    def __init__(self, *, whole_inits: bool = False):
        """`whole_inits`: also skip torch.nn.init's initializers themselves on meta (kaiming_uniform_
        computes its bound, then fills through an inner call this mode cannot see): for building."""
        super().__init__()
        self.skipped = RANDOM_FILLS | INIT_FUNCTIONS if whole_inits else RANDOM_FILLS

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self.skipped:
            # Tensor.normal_(t, ...) passes the tensor first; nn.init.normal_ passes it as tensor=
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                _check_range(name, args[1:], kwargs)
                return tensor
        return func(*args, **kwargs)


def _check_range(name: str, args: tuple, kwargs: dict) -> None:
    """The argument checks the skipped fill would have made (an init rule's dry run relies on them)."""
    if name == "normal_":
        std = args[1] if len(args) > 1 else kwargs.get("std", 1.0)
        if isinstance(std, (int, float)) and std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    elif name == "uniform_":
        low = args[0] if args else kwargs.get("from", kwargs.get("a", 0.0))
        high = args[1] if len(args) > 1 else kwargs.get("to", kwargs.get("b", 1.0))
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={low} > to={high}")
