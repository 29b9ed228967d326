"""netcli: build, inspect, initialize, run, save and load PyTorch networks from YAML specs.

From Python (the functions the commands use):

    net = netcli.build("configs/resnet18.yaml", seed=0)   # an nn.Module
    netcli.save(net, "r18.safetensors")                    # the spec inside
    net = netcli.load("r18.safetensors")

Importing netcli does not import torch: each name below is imported on first
use (`netcli.register_block` and `netcli.register_init`, for plugins, load
the registry then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcli.core.errors import SpecError
from netcli.core.version import VERSION as __version__

if TYPE_CHECKING:  # the real signatures, for type checkers; at run time they come from __getattr__
    from netcli.app.api import build, initialize, load, save, spec_of, summary
    from netcli.registry import register_block, register_init

__all__ = [
    "SpecError",
    "__version__",
    "build",
    "initialize",
    "load",
    "register_block",
    "register_init",
    "save",
    "spec_of",
    "summary",
]

_API = ("build", "initialize", "load", "save", "spec_of", "summary")


def __getattr__(name: str) -> Any:
    if name in _API:
        from netcli.core.collector import paused_on_first_use

        with paused_on_first_use():
            from netcli.app import api
        return getattr(api, name)
    if name in ("register_block", "register_init"):
        from netcli import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'netcli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
