"""`netcli init`: build a spec (or rebuild a checkpoint), apply its init rules, say what each rule set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.core.atomic import refuse_overwriting_inputs


@dataclass
class Initialized:
    """The network, what each rule set in order, with `explain` the rule that last set each tensor, and the file."""

    built: Built
    touched: list[Any]
    explained: list[dict[str, Any]] | None
    output: str | None

    def as_json(self) -> dict[str, Any]:
        """`init --json`'s object."""
        data: dict[str, Any] = {
            "name": self.built.loaded.name,
            "device": str(self.built.device),
            "touched": [t.as_json() for t in self.touched],
            "output": self.output,
        }
        if self.explained is not None:
            data["explain"] = self.explained
        return data


def init_network(
    spec: str | None,
    reading: Reading,
    building: Building,
    *,
    explain: bool = False,
    output: str | None = None,
) -> Initialized:
    """Build and initialize `spec` (sharded over the job's ranks with `shard`); write it to `output` if given."""
    from netcli.app.network import build_network, open_network
    from netcli.app.saving import write_built
    from netcli.init.apply import explain as explain_rules

    refuse_overwriting_inputs(output, spec)
    if building.shard is not None:  # a spec only: a checkpoint is rebuilt sharded by `load --shard`
        built = build_network(spec, reading, building)
    else:
        built = open_network(spec, reading, building)
    touched = built.init_report
    explained = explain_rules(built.net, touched) if explain else None
    if output is not None:
        write_built(built, output, shard=building.shard)
    return Initialized(built, touched, explained, output)
