"""What a command is given besides its spec: how to read the spec, and how to build the network.

Every command that reads a spec takes --set and --plugin; every one that
builds takes --device, --seed, and most --rule, --fast-init and --shard
(SPEC §2). They travel together, as two values, from the command line to
the function that uses them, instead of as seven keywords through each
function on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reading:
    """How to read a spec: --set overrides (applied to the YAML before validation), --plugin modules, and
    where a note on which spec was used goes (`notes`; None: nowhere, the caller does not show it)."""

    sets: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    notes: list[str] | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls, sets: Sequence[str] | None = None, plugins: Sequence[str] | None = None, notes: list[str] | None = None
    ) -> Reading:
        """From the command line's lists (typer gives None for an option not given)."""
        return cls(tuple(sets or ()), tuple(plugins or ()), notes)


@dataclass(frozen=True)
class Building:
    """How to build and initialize: on `device` (default: the spec's), from `seed` (default: the spec's),
    the spec's init rules then `rules` (--rule texts), in one pass (`fast_init`), or sharded over the
    ranks of a torchrun job (`shard="fsdp"`, which always initializes in one pass)."""

    device: str | None = None
    seed: int | None = None
    rules: tuple[str, ...] = ()
    fast_init: bool = False
    shard: str | None = None

    @classmethod
    def of(
        cls,
        device: str | None = None,
        seed: int | None = None,
        rules: Sequence[str] | None = None,
        fast_init: bool = False,
        shard: str | None = None,
    ) -> Building:
        """From the command line's values (typer gives None for a list option not given)."""
        return cls(device, seed, tuple(rules or ()), fast_init, shard)
