"""`netcli load`: rebuild a checkpoint's network (sharded over a job's ranks or not), optionally run it on an input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.io.checkpoint_load import LoadReport


@dataclass
class Reloaded:
    """The network in eval mode, what the load did, and the output for `--input` (None without one)."""

    built: Built
    report: LoadReport
    output: Any = None


def load_network(
    file: str,
    reading: Reading,
    building: Building,
    *,
    spec: str | None = None,
    strict: bool = True,
    inputs: Sequence[str] | None = None,
) -> Reloaded:
    """Rebuild the network from `spec` (or the spec inside `file`), load the tensors, put it in eval mode.

    `reading.notes` gets, before any input is run, a differing spec's note and each key a
    non-strict load skipped (`note: ...`, `skipped: ...`). With `inputs`, the
    network runs once under no_grad (after seeding torch with `building.seed`).
    Sharded over the job's ranks with `building.shard`.
    """
    sets, plugins, device, notes = reading.sets, reading.plugins, building.device, reading.notes
    if building.shard is None:
        from netcli.app.restore import restore

        built, report = restore(file, spec, sets=sets, plugins=plugins, device=device, strict=strict)
    else:
        from netcli.app import sharded

        built, report = sharded.restore(
            file, spec, shard=building.shard, sets=sets, plugins=plugins, device=device, strict=strict
        )
    built.net.eval()  # as net_clone.eval() after loading
    if notes is not None:
        if report.spec_note:
            notes.append(f"note: {report.spec_note}")
        for line in report.skipped:
            notes.append(f"skipped: {line}")
    if inputs is None:
        return Reloaded(built, report)
    import torch

    from netcli.app.running import forward_inputs
    from netcli.io.inputs import call, make_input

    if building.seed is not None:
        torch.manual_seed(building.seed)
    x = make_input(inputs, built.loaded.spec.input, built.device, forward_inputs(built.loaded))
    with torch.no_grad():
        y = call(built.net, x)
    return Reloaded(built, report, y)
