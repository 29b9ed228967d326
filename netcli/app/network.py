"""Open what a command names: a spec (built and initialized) or a checkpoint (rebuilt and loaded).

`inspect`, `init`, `export` and `run` take either, with the same --set,
--plugin and --device handling; this is the one place that tells them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def open_spec(
    source: str | None, *, sets: Sequence[str] = (), plugins: Sequence[str] = (), notes: list[str] | None = None
):
    """The spec `source` names: the file, or the spec saved inside the checkpoint `source` (`netcli code CKPT`)."""
    if source is not None and is_checkpoint(source):
        from netcli.app.restore import embedded_spec
        from netcli.io.checkpoint import read_checkpoint

        return embedded_spec(read_checkpoint(source), source, sets, plugins)
    return load_spec(source, sets, plugins, notes=notes)


def open_network(
    source: str | None,
    *,
    sets: Sequence[str] = (),
    plugins: Sequence[str] = (),
    device: str | None = None,
    seed: int | None = None,
    rules: Sequence[str] = (),
    fast_init: bool = False,
    spec: str | None = None,
    notes: list[str] | None = None,
) -> Built:
    """Build the spec `source`, or rebuild the checkpoint `source` (from `spec` or the spec inside it)."""
    if is_checkpoint(source):
        if rules:
            raise NetcliError(
                f"{source}: --rule applies to a spec, not to a saved checkpoint",
                hint="give the spec, then save the result with -o",
            )
        from netcli.app.restore import load_checkpoint

        return load_checkpoint(source, spec, sets=sets, plugins=plugins, device=device)
    loaded = load_spec(source, sets, plugins, notes=notes)
    return build_model(loaded, device=device, seed=seed, rules=rules, fast_init=fast_init)


def build_network(
    source: str | None,
    *,
    sets: Sequence[str] = (),
    plugins: Sequence[str] = (),
    notes: list[str] | None = None,
    shard: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    rules: Sequence[str] = (),
    fast_init: bool = False,
) -> Built:
    """Read and check the spec `source`, then build it: over the job's ranks with `shard`, else in this process."""
    loaded = load_spec(source, sets, plugins, notes=notes)
    return build_loaded(loaded, shard=shard, device=device, seed=seed, rules=rules, fast_init=fast_init)


def build_loaded(
    loaded: LoadedSpec,
    *,
    shard: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    rules: Sequence[str] = (),
    fast_init: bool = False,
) -> Built:
    """Build and initialize a checked spec: sharded over the job's ranks (`shard="fsdp"`), else as build_model does."""
    if shard is None:
        return build_model(loaded, device=device, seed=seed, rules=rules, fast_init=fast_init)
    from netcli.app import sharded

    return sharded.build(loaded, shard, device=device, seed=seed, rules=rules)
