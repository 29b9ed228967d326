"""Failures whose torch message names a symptom: say the cause and the fix instead.

A forward that fails in a block is reported at that block (build.validate for
the shape check, app.running for a run). For a few failures torch's own words
describe what went wrong inside the kernel, not why: those are translated here,
once, for both places.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from netcli.core.devices import human_bytes
from netcli.core.errors import Location, first_line

_BATCH_STATS = "Expected more than 1 value per channel when training"


def explain(
    module: nn.Module | None, exc: BaseException, shape: Sequence[int] | None, example: Sequence[int] | None = None
) -> tuple[str, str] | None:
    """(message, hint) for a failure with a known cause, else None (the caller words it as before).

    `shape` is the failing block's input shape, `example` the network's input shape (for the fix).
    """
    text = first_line(exc)
    if _BATCH_STATS in text:
        return _batch_of_one(module, shape, example)
    if out_of_memory(exc):
        got = f" (its input has shape {list(shape)})" if shape is not None else ""
        asked = re.search(r"allocate (\d+) bytes", text) or re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)
        size = (human_bytes(int(asked.group(1))) if asked.group(1).isdigit() else asked.group(1)) if asked else None
        return (
            f"{type(module).__name__} ran out of memory{got}"
            + (f": it asked for {size}, more than the device could give" if size else ""),
            "give a smaller input (fewer samples in a batch), or --device meta to see the shapes without values",
        )
    return None


def out_of_memory(exc: BaseException | None) -> bool:
    """True for an allocation the device refused (CPU or GPU), whatever torch calls it."""
    import torch

    if exc is None:
        return False
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return "can't allocate memory" in text or "not enough memory" in text or "out of memory" in text.lower()


def _batch_of_one(module: Any, shape: Sequence[int] | None, example: Sequence[int] | None) -> tuple[str, str]:
    """BatchNorm in training mode normalizes with the batch's own mean and variance: one value has no variance."""
    kind = type(module).__name__ if isinstance(module, nn.modules.batchnorm._BatchNorm) else "BatchNorm"
    got = f" has shape {list(shape)}:" if shape is not None else " has"
    bigger = f"e.g. input: [{', '.join(map(str, [2, *list(example)[1:]]))}]" if example else "e.g. input: [2, ...]"
    message = (
        f"{kind} in training mode normalizes with the batch's own statistics, and its input{got} "
        "one value per channel, whose variance is undefined"
    )
    hint = (
        f"give the example input a batch of 2 or more, {bigger}; or run the network in eval mode, "
        "where it uses its running statistics, as load and export do"
    )
    return message, hint


_SHOWN: set[tuple] = set()  # the warnings re-issued at spec lines


@contextlib.contextmanager
def located_warnings(place: Callable[[], tuple[Location, str]]):
    """Report the warnings a constructor gives (torch's LSTM dropout note) at the spec's line that wrote it.

    Left alone, Python shows them at torch's own file (or netcli's builder),
    where the user can change nothing; re-issued here with the spec's file and
    line, the default display shows that line under the message. `place()`
    gives (location, where) and is asked only when there is a warning.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if not caught:
        return
    location, where = place()
    for w in caught:
        if location.line is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        message = f"{where}: {w.message}" if where else str(w.message)
        key = (message, w.category, location.source, location.line)
        if key in _SHOWN:  # once per spec line and message, however many builds meet it (the check, then the run)
            continue
        _SHOWN.add(key)
        warnings.warn_explicit(message, w.category, location.source, location.line, module="netcli.spec")
