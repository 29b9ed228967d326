"""Building on the meta device: structure and shapes with no memory and no random draws."""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

META = torch.device("meta")
CPU = torch.device("cpu")


# In-place random fills: on a meta tensor they have no values to draw, only a cost
# (torch runs normal_'s meta kernel in Python, and its first use imports torch._dynamo: ~1.7 s).
RANDOM_FILLS = frozenset({"normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_",
                          "log_normal_", "cauchy_"})


class SkipMetaFills(TorchFunctionMode):
    """Skip in-place random fills of meta tensors while modules are created on meta.

    A constructor's `reset_parameters()` then costs nothing on meta, where it
    could not set any value anyway; every other operation runs as usual.

    >>> with torch.device("meta"), SkipMetaFills():
    ...     emb = nn.Embedding(32000, 8192)  # no torch._dynamo import for normal_
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in RANDOM_FILLS:
            # Tensor.normal_(t, ...) passes the tensor first; nn.init.normal_ passes it as tensor=
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)
