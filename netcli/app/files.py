"""`netcli show` and `netcli convert`: what a tensor file holds, and a checkpoint written in another layout."""

from __future__ import annotations

from typing import Any


def describe_file(path: str, *, values: bool = False, limit: int = 100) -> dict[str, Any]:
    """What a tensor file holds, as data (`show --json`): kind, tensors, other values, metadata, embedded spec."""
    from netcli.io.show import describe

    return describe(path, values=values, limit=limit)


def convert_file(
    source: str, output: str, *, to: str | None = None, max_shard_size: str | None = None
) -> dict[str, Any]:
    """Write the checkpoint `source` as `output` (one .safetensors, the HF layout, a DCP folder or .pt); say what."""
    from netcli.core.atomic import refuse_overwriting_inputs
    from netcli.io.convert import convert

    refuse_overwriting_inputs(output, source)
    return convert(source, output, to=to, max_shard_size=max_shard_size)
