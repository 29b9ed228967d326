"""Complete registered names on the shell's TAB: types, initializers, devices.

Names come from netcli.app.registered: the shipped schema file, so a TAB
answers in a fraction of a second without importing torch; only where
installed plugins add names that the file cannot know is the registry loaded.
"""

from __future__ import annotations

DEVICES = ("cpu", "cuda", "cuda:0", "cuda:1", "auto", "auto:0", "auto:1", "mps", "meta")


def _matching(names: list[str], incomplete: str) -> list[str]:
    first = [n for n in names if n.startswith(incomplete)]
    return first or [n for n in names if incomplete.lower() in n.lower()]


def complete_type(incomplete: str) -> list[str]:
    """Return the registered type names that start with (else contain) `incomplete`."""
    from netcli.app.registered import registered_names

    return _matching(registered_names()[0], incomplete)


def complete_rule(incomplete: str) -> list[str]:
    """Return `INIT:` prefixes of rules for the initializer names that fit `incomplete`."""
    if ":" in incomplete:
        return []
    from netcli.app.registered import registered_names

    return [f"{n}:" for n in _matching(registered_names()[1], incomplete)]


def complete_device(incomplete: str) -> list[str]:
    """Return the device forms that start with `incomplete`."""
    return [d for d in DEVICES if d.startswith(incomplete)]
