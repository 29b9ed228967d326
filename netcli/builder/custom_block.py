"""The base classes of every module built from a `blocks:` definition, and one subclass per definition.

Apart from the forward compiler (forward_graph.py, which imports torch.fx):
a spec without custom blocks, and a build before its first forward is
compiled, never pays for that import.

The classes are made at run time, so pickle cannot find them by name
(`netcli.builder.custom_block.BasicBlock` does not exist). A class made for a
built network is given a picklable reference to the spec it came from
(`rebuild.tag`): its instances then pickle as "the class at this place of this
spec" plus their state, and unpickling rebuilds the class from the spec.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class Rebuilt:
    """Pickles (and deep-copies) an instance by its class's spec reference, then its state as usual.

    The reference is `_netcli_rebuild`, set on the class itself by
    `rebuild.tag`: (a module-level function, its arguments). A class without
    one pickles as any class does (by name, which fails for a run-time class).
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        reduced = super().__reduce_ex__(protocol)
        ref = type(self).__dict__.get("_netcli_rebuild")
        if ref is None:
            return reduced
        make, args = ref
        return (make, args, *reduced[2:])


class CustomBlock(Rebuilt, nn.Module):
    """Base of the modules built from a `blocks:` definition with a forward; each definition gets its own subclass."""


class SequentialBlock(Rebuilt, nn.Sequential):
    """Base of the modules built from a `blocks:` definition without forward: its children in order."""


def block_class(name: str) -> type[CustomBlock]:
    """Return a new class for one definition; its instances print as `NAME(...)`.

    One class per definition, not per name: two definitions may both print as
    `BasicBlock` and still have different forwards.
    """
    return type(name, (CustomBlock,), {"__module__": __name__, "__qualname__": name})
