"""`netcli build`: build a spec (sharded or not) and describe it, block by block, as `netcli.summary` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcli.app.options import Building, Reading
from netcli.app.summary import Summary, describe
from netcli.builder.builder import Built


@dataclass
class Described:
    """A built network and its summary (None where only the network was asked for), with the table's columns."""

    built: Built
    summary: Summary | None
    columns: list[str] | None = None  # None: the columns worth showing for this summary
    backward: bool = False

    def as_json(self) -> dict[str, Any]:
        """`build --json`'s object, the one `netcli.summary` returns: name, device, rows, totals."""
        if self.summary is None:
            raise ValueError("built without a summary")
        return {"name": self.built.loaded.name, "device": str(self.built.device), **self.summary.as_json()}


def described(built: Built, *, backward: bool = False, depth: int | None = None, columns=None) -> Described:
    """`built` with its summary: costs of one forward (and with `backward` its backward), blocks down to `depth`."""
    return Described(built, describe(built.loaded, built, backward=backward, depth=depth), columns, backward)


def build_described(
    spec: str | None,
    reading: Reading,
    building: Building,
    *,
    summarize: bool = True,
    columns: str | None = None,
    depth: int | None = None,
    backward: bool = False,
) -> Described:
    """Build `spec` and, with `summarize`, describe it; a bad column name fails before anything is built."""
    from netcli.app.network import build_network
    from netcli.app.summary_table import parse_columns

    chosen = parse_columns(columns)
    built = build_network(spec, reading, building)
    if not summarize:
        return Described(built, None)
    return described(built, backward=backward, depth=depth, columns=chosen)
