"""Which names are one tensor: tied parameters, as `ref` and weight tying make them.

One helper for every place that asks (the checkpoint writer stores a tied
tensor once, the summary and `inspect` show the groups, init rules set a
tied tensor once). Two names are tied when they hold the same memory with the
same layout; tensors without memory (meta, empty) are tied only when they are
the same object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def tensor_key(t: Any) -> Any:
    """A key equal for two tensors exactly when they are the same values in memory."""
    if (
        t.device.type == "meta" or t.numel() == 0 or hasattr(t, "_local_tensor")
    ):  # no storage address (DTensor: by object)
        return ("id", id(t))
    return (
        str(t.device),
        t.untyped_storage().data_ptr(),
        t.storage_offset(),
        tuple(t.shape),
        tuple(t.stride()),
        t.dtype,
    )


def tie_groups(named_tensors: Iterable[tuple[str, Any]]) -> list[tuple[Any, list[str]]]:
    """Group (name, tensor) pairs by tensor, in first-seen order: [(tensor, [first name, other names...])].

    Every tensor is in one group; a group of one is an untied tensor.
    """
    groups: dict[Any, tuple[Any, list[str]]] = {}
    for name, t in named_tensors:
        groups.setdefault(tensor_key(t), (t, []))[1].append(name)
    return list(groups.values())


def canonical_names(net: Any) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    """For a module's parameters: id -> first name, and id -> the other names of a tied one."""
    first: dict[int, str] = {}
    others: dict[int, tuple[str, ...]] = {}
    for t, names in tie_groups(net.named_parameters(remove_duplicate=False)):
        first[id(t)] = names[0]
        if len(names) > 1:
            others[id(t)] = tuple(names[1:])
    return first, others
