"""netcli: build, inspect, initialize, run, save and load PyTorch networks from YAML specs.

Importing netcli does not import torch; `netcli.register_block` and
`netcli.register_init` (for plugins) load the registry on first use.
"""

from __future__ import annotations

from netcli.core.version import VERSION as __version__

__all__ = ["register_block", "register_init", "__version__"]


def __getattr__(name: str):
    if name in ("register_block", "register_init"):
        from netcli import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'netcli' has no attribute {name!r}")
