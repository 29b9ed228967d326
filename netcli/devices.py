"""Resolve device names (cpu, cuda:N, auto, auto:N, meta, mps) to torch devices.

One resolver for every place a device is named: the spec's `device:`, a node's
`device:` and `--device`. `auto` is D2L's `try_gpu()`: the first GPU if there
is one, else the CPU.
"""
from __future__ import annotations

import re

from netcli.errors import NetcliError

DEVICE_FORMS = "cpu, cuda, cuda:N, auto, auto:N, mps, meta"
_FORM = re.compile(r"^(cpu|cuda|auto|meta|mps)(?::(\d+))?$")


def parse_device(text: str) -> tuple[str, int | None]:
    """Split a device name into (kind, index); raise NetcliError if it is not one."""
    m = _FORM.match(str(text).strip())
    if not m or (m.group(1) in ("cpu", "meta", "mps") and m.group(2) is not None and m.group(2) != "0"):
        raise NetcliError(f"'{text}' is not a device", hint=f"use one of {DEVICE_FORMS}")
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def gpu_count() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    import torch
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(text: str | None):
    """Return the torch.device that `text` names on this machine (default: cpu)."""
    import torch
    if text is None:
        return torch.device("cpu")
    kind, index = parse_device(text)
    if kind in ("cpu", "meta"):
        return torch.device(kind)
    if kind == "mps":
        if not mps_available():
            raise NetcliError("device 'mps' is not available on this machine",
                              hint="use auto to fall back to the CPU")
        return torch.device("mps")
    count = gpu_count()
    if kind == "auto":
        want = index or 0
        return torch.device(f"cuda:{want}") if want < count else torch.device("cpu")
    want = index or 0
    if want >= count:
        seen = "no GPU is visible" if count == 0 else f"{count} GPU{'s' if count > 1 else ''} visible (cuda:0..cuda:{count - 1})"
        raise NetcliError(f"device '{text}' is not available: {seen}",
                          hint=f"use auto:{want} to fall back to the CPU")
    return torch.device(f"cuda:{want}")
