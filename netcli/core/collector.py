"""Pause Python's cyclic garbage collector while netcli's first call sets itself up.

In a process that has imported torch, the collector tracks about a million objects,
and each full collection walks them all. netcli's first call imports its modules
(pydantic and the spec models, yaml, the builder) and checks a spec: a burst of
long-lived objects (classes, schemas, compiled forwards) that triggers several
full collections, about 60 ms of a first `netcli.build` (bench figure 13). None of
them can be garbage yet, so the collector is paused for that first call and set back
as it was, enabled or not; later calls run under the user's own settings.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_first_done = False


@contextmanager
def paused_on_first_use() -> Iterator[None]:
    """Within the first use of netcli in this process, run without cyclic collections."""
    global _first_done
    if _first_done or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _first_done = True
        gc.enable()
