"""`validate`: check each spec fully without running it, collecting every problem of every file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from netcli.build.validate import check_shapes, load_spec
from netcli.core.devices import resolve_device
from netcli.core.errors import NetcliError, Problem
from netcli.init.plan import check_rules
from netcli.init.rules import spec_rules


@dataclass
class Validated:
    """One file's verdict: OK (with what shape inference filled in) or its problems."""

    file: str
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    note: str | None = None
    inferred: dict[str, Any] = field(default_factory=dict)


def validate_spec(spec: str | None, sets: Sequence[str] = (), plugins: Sequence[str] = (),
                  device: str | None = None, notes: list[str] | None = None) -> Validated:
    """Check structure, types, arguments, definitions, shapes and init rules; never raise for the spec's faults."""
    try:
        loaded = load_spec(spec, sets, plugins, notes=notes)
        if device is not None:
            resolve_device(device, where="--device")
        _, built, note = check_shapes(loaded)
        if loaded.spec.init:
            check_rules(built.net, spec_rules(loaded))
        return Validated(spec or loaded.doc.source, True, note=note, inferred=built.inferred)
    except NetcliError as exc:
        return Validated(spec or "<default>", False, list(exc.problems))
