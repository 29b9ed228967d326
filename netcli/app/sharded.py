"""The commands' side of SPEC §6: build or restore a network sharded over a job's ranks, save it sharded.

`--shard fsdp` (build, init, run, save, load) goes through `netcli.distributed.fsdp`;
`save --max-shard-size` and `convert` write the Hugging Face sharded layout or
a DCP folder through `netcli.io.shards`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from netcli.core.errors import Location, NetcliError, Problem

SHARD_KINDS = ("fsdp",)


def check_shard(shard: str | None) -> str | None:
    if shard is not None and shard not in SHARD_KINDS:
        raise NetcliError(
            Problem(
                f"unknown sharding '{shard}'",
                location=Location("--shard"),
                hint="the one kind is fsdp (FSDP2 fully_shard over the job's ranks)",
            )
        )
    return shard


def build(
    loaded,
    shard: str,
    *,
    device: str | None = None,
    seed: int | None = None,
    rules: Sequence[str] = (),
):
    """Build `loaded` sharded over the job's ranks (`shard="fsdp"`: FSDP2), each rank allocating only its part."""
    check_shard(shard)
    from netcli.distributed.fsdp import build_sharded

    return build_sharded(loaded, device=device, seed=seed, rules=rules)


def is_sharded(built) -> bool:
    return any(hasattr(p, "device_mesh") for p in built.net.parameters())


def save(built, output: str, *, max_shard_size: str | None = None) -> dict:
    """Save `built`: a DCP folder from every rank when sharded; the HF layout with a size; else one file."""
    from netcli.io import shards
    from netcli.io.convert import target_of

    if is_sharded(built):
        if max_shard_size is not None:
            raise NetcliError(
                Problem(
                    "with --shard the checkpoint is a DCP folder written by every rank",
                    location=Location("--max-shard-size"),
                    hint=f"convert it afterwards: netcli convert {output} -o OUT/ --max-shard-size SIZE",
                )
            )
        from netcli.distributed.fsdp import save_dcp

        return save_dcp(built, output)
    if max_shard_size is None:
        raise NetcliError("save: nothing sharded to write")  # callers save one file themselves
    target_of(output if output.endswith("/") or output.endswith(shards.INDEX_SUFFIX) else output, "hf", max_shard_size)
    ckpt = in_memory(built)
    index = shards.save_index(output, ckpt, shards.parse_size(max_shard_size))
    folder = Path(output) if not output.endswith(shards.INDEX_SUFFIX) else Path(output).parent
    files = sorted(set(index["weight_map"].values()))
    return {
        "file": output,
        "format": "safetensors-index",
        "files": files,
        "tensors": len(ckpt.infos),
        "tied": {s: [a for a, t in ckpt.aliases.items() if t == s] for s in set(ckpt.aliases.values())},
        "bytes": sum((folder / f).stat().st_size for f in files),
    }


def in_memory(built):
    """The network's tensors as a Checkpoint (each tied tensor once), for the sharded writers."""
    from netcli.core.ties import tie_groups
    from netcli.io.checkpoint import Checkpoint, TensorInfo
    from netcli.io.checkpoint_save import checkpoint_metadata

    state = built.net.state_dict()
    if any(t.is_meta for t in state.values()):
        raise NetcliError("a network on meta has no values to save", hint="build it on a real device: --device cpu")
    infos, aliases, tensors = {}, {}, {}
    for _, names in tie_groups(state.items()):
        t = state[names[0]]
        infos[names[0]] = TensorInfo(
            names[0], tuple(t.shape), str(t.dtype).removeprefix("torch."), t.numel() * t.element_size(), list(names[1:])
        )
        tensors[names[0]] = t
        aliases.update({n: names[0] for n in names[1:]})
    return Checkpoint(
        "<network>", "memory", "safetensors", infos, aliases, checkpoint_metadata(built.loaded), {}, tensors=tensors
    )


def restore(
    path: str,
    spec: str | None = None,
    *,
    shard: str,
    sets: Iterable[str] = (),
    plugins: Iterable[str] = (),
    device: str | None = None,
    strict: bool = True,
):
    """Rebuild and load a checkpoint sharded over the job's ranks: each rank reads and keeps only its part."""
    check_shard(shard)
    import time

    from netcli.builder.validate import load_spec, load_spec_text
    from netcli.distributed.fsdp import build_sharded, load_dcp
    from netcli.io import shards
    from netcli.io.checkpoint import read_checkpoint
    from netcli.io.checkpoint_load import LoadReport

    if not strict:
        raise NetcliError(Problem("--no-strict is not available with --shard", location=Location("--no-strict")))
    start = time.perf_counter()
    ckpt = read_checkpoint(path)
    if spec is None:
        if ckpt.spec_text is None:
            raise NetcliError(
                Problem(
                    "holds no spec to rebuild the network from",
                    location=Location(path),
                    hint=f"name the spec: netcli load {path} SPEC --shard fsdp",
                )
            )
        loaded = load_spec_text(ckpt.spec_text, f"{path}:spec", sets, plugins, embedded=True)
    else:
        loaded = load_spec(spec, sets, plugins)
    built = build_sharded(loaded, device=device, values=False)
    if shards.layout_of(path) == "dcp":
        load_dcp(built, path)
    else:
        load_full_into_shards(built, ckpt)
    report = LoadReport(str(path), ckpt.format, loaded=list(built.net.state_dict()), nbytes=ckpt.nbytes)
    report.seconds = time.perf_counter() - start
    return built, report


def load_full_into_shards(built, ckpt) -> None:
    """Fill a sharded network from a file of whole tensors: each rank reads a tensor, keeps its rows."""
    import torch

    from netcli.init.draws import local_part

    state = built.net.state_dict()
    names = ckpt.names
    missing = [k for k in state if k not in names]
    if missing:
        raise NetcliError(
            [Problem(f"missing key '{k}'", location=Location(ckpt.path)) for k in missing]
            + [Problem("nothing was loaded", location=Location(ckpt.path), hint="give the spec it was saved from")]
        )
    with torch.no_grad():
        for key, t in state.items():
            full = ckpt.tensor(names[key])
            if tuple(full.shape) != tuple(t.shape):
                raise NetcliError(
                    Problem(
                        f"key '{key}' has shape {list(full.shape)}, expected {list(t.shape)}",
                        location=Location(ckpt.path),
                    )
                )
            dest, start, stop = local_part(t)
            dest.copy_(full.reshape(-1)[start:stop].view(dest.shape))


def run_checkpoint(built, path: str) -> None:
    """`run --checkpoint` into a built network, sharded or not."""
    from netcli.io import shards

    if is_sharded(built):
        from netcli.distributed.fsdp import load_dcp
        from netcli.io.checkpoint import read_checkpoint

        if shards.layout_of(path) == "dcp":
            load_dcp(built, path)
        else:
            load_full_into_shards(built, read_checkpoint(path))
        return
    from netcli.io.checkpoint_load import load_into

    load_into(built, path)
