"""The base class of every module built from a `blocks:` definition, and one subclass per definition.

Apart from the forward compiler (forward_graph.py, which imports torch.fx):
a spec without custom blocks, and a build before its first forward is
compiled, never pays for that import.
"""

from __future__ import annotations

from torch import nn


class CustomBlock(nn.Module):
    """Base of the modules built from a `blocks:` definition; each definition gets its own subclass."""


def block_class(name: str) -> type[CustomBlock]:
    """Return a new class for one definition; its instances print as `NAME(...)`.

    One class per definition, not per name: two definitions may both print as
    `BasicBlock` and still have different forwards.
    """
    return type(name, (CustomBlock,), {"__module__": __name__, "__qualname__": name})
