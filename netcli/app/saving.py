"""`netcli save` and `netcli init -o`: build and initialize a spec, write its tensors, say what was written.

The paths (one file; the Hugging Face sharded layout with a size; a DCP folder
from every rank of a `--shard` job) are told apart here, once, so the command
line only hands over its options and renders the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from netcli.app import sharded
from netcli.app.network import build_loaded
from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.builder.validate import load_spec
from netcli.core.atomic import refuse_overwriting_inputs
from netcli.io.checkpoint_save import SaveReport, format_of, save_checkpoint


@dataclass
class Saved:
    """What `save` wrote: `data` is `--json`'s object; `report` the one file's (None for a folder)."""

    output: str
    sha256: str
    data: dict[str, Any] = field(default_factory=dict)
    report: SaveReport | None = None

    def as_json(self) -> dict[str, Any]:
        """`save --json`'s object."""
        return self.data


def save_network(
    spec: str | None,
    output: str | None,
    reading: Reading,
    building: Building,
    *,
    max_shard_size: str | None = None,
) -> Saved:
    """Build and initialize `spec` (its `init:`, then `building.rules`) and write it to `output` (default: from its
    name).

    A bad output (an unknown extension, a bad shard size, a file the run reads) is refused before anything is built.
    """
    loaded = load_spec(spec, reading.sets, reading.plugins, notes=reading.notes)
    shard = building.shard
    if shard is not None or max_shard_size is not None:
        output = output or f"{loaded.name}/"
        if max_shard_size is not None and shard is None:
            from netcli.io.convert import target_of
            from netcli.io.shards import parse_size

            target_of(output, "hf", max_shard_size)
            parse_size(max_shard_size)
        built = build_loaded(loaded, building)
        start = time.perf_counter()
        data = sharded.save(built, output, max_shard_size=max_shard_size)
        data.update(spec_sha256=loaded.sha256, seconds=round(time.perf_counter() - start, 4))
        return Saved(output, loaded.sha256, data)
    output = output or f"{loaded.name}.safetensors"
    format_of(output)  # refuse an unknown extension before building anything
    refuse_overwriting_inputs(output, spec)
    built = build_loaded(loaded, building)
    start = time.perf_counter()
    report = save_checkpoint(built, output)
    data = {
        "file": output,
        "format": report.format,
        "tensors": report.tensors,
        "tied": report.tied,
        "bytes": report.nbytes,
        "spec_sha256": loaded.sha256,
        "seconds": round(time.perf_counter() - start, 4),
        "rules": [t.as_json() for t in built.init_report],
    }
    return Saved(output, loaded.sha256, data, report)


def write_built(built: Built, output: str, *, shard: str | None) -> None:
    """Write a built network's tensors: a DCP folder from every rank with `shard`, else one file."""
    if shard is not None:
        sharded.save(built, output)
    else:
        save_checkpoint(built, output)
