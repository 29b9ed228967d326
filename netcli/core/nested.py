"""Walk what a module takes or returns: a tensor, or tuples, lists and dicts of them, nested."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def leaves(value: Any) -> Iterator[Any]:
    """Yield the values inside nested tuples, lists and dicts (dicts by value), in order."""
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    else:
        yield value
