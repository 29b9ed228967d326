"""Open what a command names: a spec (built and initialized) or a checkpoint (rebuilt and loaded).

`inspect`, `init`, `export` and `run` take either, with the same --set,
--plugin and --device handling; this is the one place that tells them apart.
"""

from __future__ import annotations

from pathlib import Path

from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.builder.validate import load_spec
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model
from netcli.io.format import FORMATS
from netcli.io.shards_layout import layout_of
from netcli.specfile.loading import LoadedSpec


def is_checkpoint(path: str | None) -> bool:
    """True for a name with a checkpoint's suffix (.safetensors, .pt, .pth, .params; any case) or a sharded folder."""
    if path is None:
        return False
    return Path(path).suffix.lower() in FORMATS or (Path(path).is_dir() and layout_of(path) is not None)


def open_spec(source: str | None, reading: Reading):
    """The spec `source` names: the file, or the spec saved inside the checkpoint `source` (`netcli code CKPT`)."""
    if source is not None and is_checkpoint(source):
        from netcli.app.restore import embedded_spec
        from netcli.io.checkpoint import read_checkpoint

        return embedded_spec(read_checkpoint(source), source, reading.sets, reading.plugins)
    return load_spec(source, reading.sets, reading.plugins, notes=reading.notes)


def open_network(source: str | None, reading: Reading, building: Building, *, spec: str | None = None) -> Built:
    """Build the spec `source`, or rebuild the checkpoint `source` (from `spec` or the spec inside it).

    A checkpoint is rebuilt in this process (`building.shard` is for specs: `load --shard` reshards one).
    """
    if is_checkpoint(source):
        if building.rules:
            raise NetcliError(
                f"{source}: --rule applies to a spec, not to a saved checkpoint",
                hint="give the spec, then save the result with -o",
            )
        from netcli.app.restore import load_checkpoint

        return load_checkpoint(source, spec, sets=reading.sets, plugins=reading.plugins, device=building.device)
    loaded = load_spec(source, reading.sets, reading.plugins, notes=reading.notes)
    return build_loaded(loaded, building)


def build_network(source: str | None, reading: Reading, building: Building) -> Built:
    """Read and check the spec `source`, then build it: over the job's ranks with `shard`, else in this process."""
    loaded = load_spec(source, reading.sets, reading.plugins, notes=reading.notes)
    return build_loaded(loaded, building)


def build_loaded(loaded: LoadedSpec, building: Building) -> Built:
    """Build and initialize a checked spec: sharded over the job's ranks (`shard="fsdp"`), else as build_model does."""
    if building.shard is None:
        return build_model(
            loaded,
            device=building.device,
            seed=building.seed,
            rules=building.rules,
            fast_init=building.fast_init,
        )
    from netcli.app import sharded

    return sharded.build(loaded, building.shard, device=building.device, seed=building.seed, rules=building.rules)
