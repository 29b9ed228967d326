"""`validate`: check each spec fully without running it, collecting every problem of every file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netcli.builder.shape_check import check_shapes
from netcli.builder.validate import load_spec
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
    used: str | None = None  # with no spec named: which one was checked (NETCLI_SPEC, ./netcli.yaml, the default)

    def inferred_text(self) -> str:
        """What shape inference filled in, as the text line prints it: `0.in_features=20, ...`."""
        from netcli.builder.inference import format_inferred

        return format_inferred(self.inferred)

    def as_json(self) -> dict[str, Any]:
        """`validate --json`'s object for this file."""
        return {
            "file": self.file,
            "ok": self.ok,
            "problems": [p.as_json() for p in self.problems],
            "note": self.note,
            "used": self.used,
            **({"inferred": self.inferred} if self.ok else {}),
        }


def validate_spec(
    spec: str | None,
    sets: Sequence[str] = (),
    plugins: Sequence[str] = (),
    device: str | None = None,
    notes: list[str] | None = None,
) -> Validated:
    """Check structure, types, arguments, definitions, shapes and init rules; never raise for the spec's faults.

    With no spec named, the result says which one was checked (`used`); `notes`
    gets the same line, as other commands print it.
    """
    said: list[str] = []
    try:
        loaded = load_spec(spec, sets, plugins, notes=said)
        if device is not None:
            resolve_device(device, where="--device")
        _, built, note = check_shapes(loaded)
        if loaded.spec.init:
            check_rules(built.net, spec_rules(loaded))
        result = Validated(spec or loaded.doc.source, True, note=note, inferred=built.inferred)
    except NetcliError as exc:
        result = Validated(spec or "<default>", False, list(exc.problems))
    if spec is None and said:
        result.used = _used(said[0])
    if notes is not None:
        notes.extend(said)
    return result


def _used(note: str) -> str:
    """Which spec `validate` with no argument checked, said so that an OK cannot be mistaken for the user's file."""
    note = note.removeprefix("netcli: ")
    if "built-in default" in note:
        return (
            "no spec given, so this checked netcli's built-in default [Linear(4, 8), ReLU, Linear(8, 1)], "
            "not a file of yours (name a spec, set NETCLI_SPEC, or write ./netcli.yaml)"
        )
    return note
