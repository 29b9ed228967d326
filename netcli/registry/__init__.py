"""The registries: which module types and initializers a spec may name.

The registry is the only door: a spec's type name is looked up here and nowhere
else, so a spec can never reach an arbitrary callable such as `os.system`.
`catalog` holds the tables; this module fills them on first use with every
public `torch.nn` module class, netcli's built-in blocks and initializers, and
the installed plugins.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from netcli.core.errors import NetcliError
from netcli.registry.catalog import (
    INPUT_SIZE_ARGS,
    Entry,
    Registry,
    bind_arguments,
    convert_dtype,
    initializers,
    parameters,
    register_block,
    register_init,
    signature,
    type_adapter,
    type_hints,
    types,
)

__all__ = [
    "INPUT_SIZE_ARGS",
    "Entry",
    "Registry",
    "bind_arguments",
    "convert_dtype",
    "ensure_loaded",
    "get_type",
    "initializers",
    "list_types",
    "load_plugin",
    "parameters",
    "register_block",
    "register_init",
    "signature",
    "type_adapter",
    "type_hints",
    "types",
]

_loaded = False


def ensure_loaded() -> None:
    """Register torch.nn's public modules, the chapter's blocks and installed plugins."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import torch.nn as nn

    for attr in sorted(dir(nn)):
        obj = getattr(nn, attr)
        if (
            not attr.startswith("_")
            and isinstance(obj, type)
            and issubclass(obj, nn.Module)
            and obj is not nn.Module
        ):
            cls: Any = obj
            inferable = tuple(
                a for a in INPUT_SIZE_ARGS if a in _init_argument_names(cls)
            )
            types.add(attr, obj, origin=f"torch.nn.{attr}", inferable=inferable)
    from netcli.registry import builtin_initializers, chapter_blocks  # noqa: F401  (they register on import)

    _load_entry_points()


def _init_argument_names(cls: type) -> Collection[str]:
    """The names `cls(...)` takes, read from its `__init__`'s code where that is plain Python.

    Every command registers torch.nn's ~160 classes; `inspect.signature` of each costs about
    4 ms of start-up, the code object's names about 0.3 ms. A wrapped or compiled `__init__`
    falls back to the signature.
    """
    init = type.__getattribute__(
        cls, "__init__"
    )  # what `cls(...)` runs, inherited or its own
    code = getattr(init, "__code__", None)
    if code is None or hasattr(init, "__wrapped__"):
        return parameters(cls)
    return code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="netcli.plugins"):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break netcli
            raise NetcliError(
                f"plugin entry point '{ep.name}' ({ep.value}) failed to load: {exc}",
                hint="fix or uninstall that package",
            ) from exc


def load_plugin(module: str) -> None:
    """Import a plugin module by its explicit name, so that it registers its types."""
    if not isinstance(module, str) or not all(
        p.isidentifier() for p in module.split(".")
    ):
        raise NetcliError(
            f"'{module}' is not a Python module name", hint="write e.g. my_pkg.layers"
        )
    if module.endswith(
        ".py"
    ):  # a file name: importing it would import the module 'X' first, then fail
        raise NetcliError(
            f"'{module}' is a file name, not a module name",
            hint=f"write the module's name, {module[:-3]}, and put its folder on PYTHONPATH",
        )
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise NetcliError(
            f"plugin '{module}' cannot be imported: {exc}",
            hint="install it, or put it on PYTHONPATH",
        ) from exc


def get_type(name: str) -> type:
    """Return the registered class called `name`."""
    ensure_loaded()
    return types.get(name)


def list_types() -> list[str]:
    ensure_loaded()
    return types.names()
