"""What a spec may name, for `netcli types`, `netcli schema` and the shell's TAB completion.

The command line reaches the registry and the schema only through here. A TAB
answers from the shipped schema file without importing torch; the registry (and
the plugins named) is loaded only where the file cannot answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class TypeEntry:
    """One registered type: its name, where it comes from (torch.nn, a plugin), its constructor's signature."""

    name: str
    origin: str
    signature: Any  # an inspect.Signature, or None where Python cannot tell it

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "origin": self.origin, "signature": str(self.signature or "")}


def registered_types(pattern: str | None, plugins: Iterable[str] = ()) -> list[TypeEntry]:
    """The registered types whose name contains `pattern` (any case), after loading `plugins`; none is an error."""
    from netcli import registry
    from netcli.core.errors import NetcliError, did_you_mean

    registry.ensure_loaded()
    for module in plugins:
        registry.load_plugin(module)
    found = [registry.types.entry(n) for n in registry.types if pattern is None or pattern.lower() in n.lower()]
    if not found:
        raise NetcliError(
            f"no registered type matches '{pattern}'",
            hint=did_you_mean(pattern or "", registry.types.names())
            or "a plugin's types are listed once it is installed, or named with --plugin MODULE; "
            "netcli types lists them all",
        )
    return [TypeEntry(e.name, e.origin, registry.signature(e.obj)) for e in found]


def registered_names() -> tuple[list[str], list[str]]:
    """Return (type names, initializer names): from the shipped schema, else from the registry."""
    names = _from_schema()
    if names is not None:
        return names
    from netcli import registry

    registry.ensure_loaded()
    return registry.types.names(), registry.initializers.names()


def _from_schema() -> tuple[list[str], list[str]] | None:
    from netcli.specfile import jsonschema

    data = jsonschema.shipped()
    if not data or jsonschema.installed_plugins():
        return None
    try:
        return list(data["$defs"]["TypeName"]["enum"]), list(data["x-netcli"]["initializers"])
    except (KeyError, TypeError):
        return None


def schema_text(*, regenerate: bool = False, plugins: Iterable[str] = ()) -> str:
    """The spec language's JSON Schema: the shipped file while it is current, else generated from the registry."""
    from netcli.specfile.jsonschema import schema_text as text_of

    text, _ = text_of(regenerate=regenerate, plugins=plugins)
    return text
