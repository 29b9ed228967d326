"""`--shard fsdp`: build on meta, shard with FSDP2 over a device mesh, allocate and initialize only this rank's part.

1. Every module is created on meta (`fastinit`'s builder; a block that must be
   built for real is built whole on the CPU from its path's seed).
2. `fully_shard` (FSDP2) is applied to the units the spec's `shard:` names
   (types such as Linear, or paths such as 0 or encoder.*; default: each
   direct child of the model), then to the root, over a 1-D DeviceMesh of all ranks.
3. `to_empty` gives each rank memory for its shards only (about 1/N of the
   parameters), and `fastinit` draws the values in place: each parameter in
   seeded chunks, a rank drawing only the chunks its rows overlap, so the
   values equal a single process's `--fast-init` bit for bit at any N.

Checkpoints: `save_dcp` writes a torch.distributed.checkpoint folder from all
ranks at once into a temp folder, rank 0 adds the resolved spec and swaps it in
when every rank has finished; `load_dcp` reads one at any world size
(DCP reshards) or into an unsharded network in one process.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import torch
from torch import nn

from netcli.builder.preflight import prepare
from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.ties import canonical_names
from netcli.distributed import group
from netcli.init import fastinit
from netcli.io import shards


def shard_units(net: nn.Module, patterns: list[str]) -> list[tuple[str, nn.Module]]:
    """The modules `shard:` names (types or dotted paths, globs allowed), each once, children before parents."""
    named = list(net.named_modules())
    if not patterns:
        units = [(name, m) for name, m in net.named_children()]
    else:
        units = []
        for pattern in patterns:
            hits = [
                (name, m)
                for name, m in named
                if name and (type(m).__name__ == pattern or name == pattern or fnmatch.fnmatchcase(name, pattern))
            ]
            if not hits:
                children = ", ".join(n for n, _ in net.named_children()) or "(none)"
                raise NetcliError(
                    Problem(
                        f"shard: '{pattern}' matches no block",
                        location=Location("shard"),
                        hint=f"name a type (Linear) or a path; the root's children are {children}",
                    )
                )
            units.extend(hits)
    # a parameter tie (`wte.weight = lm_head.weight`) must stay inside one unit: a block holding a tied
    # parameter is left to the unit around it (the root's), which shards the one tensor once
    _, others = canonical_names(net)
    tied = {id(p) for p in net.parameters() if id(p) in others}
    seen, out = set(), []
    for name, m in [unit for written, module in units for unit in _callable_units(written, module)]:
        if id(m) in seen or not any(True for _ in m.parameters()) or any(id(p) in tied for p in m.parameters()):
            continue
        seen.add(id(m))
        out.append((name, m))
    out.sort(key=lambda item: -item[0].count("."))  # inner units first, as fully_shard wants
    return out


def _callable_units(name: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
    """A ModuleList or ModuleDict (no forward, which fully_shard needs) stands for its items."""
    if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return [unit for child, m in module.named_children() for unit in _callable_units(f"{name}.{child}", m)]
    return [(name, module)]


def build_sharded(loaded, *, device: str | None = None, seed: int | None = None, rules=(), values: bool = True):
    """Build `loaded` sharded over the job's ranks (see the module docstring); return a Built."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    group.join()
    dev = torch.device(group.local_device(device if device is not None else loaded.spec.device))
    if dev.type not in ("cpu", "cuda"):
        raise NetcliError(Problem(f"--shard fsdp runs on cpu or cuda, not {dev.type}", location=Location("--device")))
    _, seed, inferred = prepare(loaded, device="meta", seed=seed)
    meta = fastinit.build_on_meta(loaded, dev, seed, inferred, rules)  # the one-pass build, on meta
    built = meta.built
    built.device = dev
    mesh = init_device_mesh(dev.type, (torch.distributed.get_world_size(),))
    for _, unit in shard_units(built.net, list(loaded.spec.shard)):
        fully_shard(unit, mesh=mesh, reshard_after_forward=True)
    fully_shard(built.net, mesh=mesh)
    # blocks built for real hold their (sharded) values: keep them across to_empty
    kept = {
        name: (t.to_local() if hasattr(t, "to_local") else t).detach().clone()
        for name, t in built.net.state_dict().items()
        if not t.is_meta
    }
    built.net.to_empty(device=dev)
    if kept:
        state = built.net.state_dict()
        with torch.no_grad():
            for name, value in kept.items():
                t = state[name]
                (t.to_local() if hasattr(t, "to_local") else t).copy_(value)
    if values:
        fastinit.initialize_in_place(built.net, meta)
    built.init_report = meta.plan.report(built.net)
    return built


def aliases_of(net: nn.Module) -> dict[str, str]:
    """Tied names -> the first name of their tensor (parameters and buffers)."""
    first, others = canonical_names(net)
    out = {}
    for key, names in others.items():
        out.update({n: first[key] for n in names})
    return out


def full_state(built) -> dict:
    """The network's state_dict, DTensors left as they are (DCP saves each rank's shards)."""
    return built.net.state_dict()


def save_dcp(built, dest: str | os.PathLike) -> dict:
    """Write a DCP folder from every rank at once; rank 0 adds the spec and swaps it in at the end."""
    import torch.distributed.checkpoint as dcp

    from netcli.core.atomic import atomic_dir

    dest = Path(str(dest).rstrip("/") or "/")
    state = full_state(built)
    if any(t.is_meta for t in state.values()):
        raise NetcliError(
            Problem(
                "a network on meta has no values to save",
                location=Location(str(dest)),
                hint="build it on a real device: --device cpu",
            )
        )
    me = group.rank()
    ctx = atomic_dir(dest, allowed=shards.owned_name) if me == 0 else None
    tmp = None
    error = None
    if ctx is not None:
        try:
            tmp = ctx.__enter__()
        except NetcliError as exc:
            error = "; ".join(str(p) for p in exc.problems)
    tmp, error = group.broadcast_object((str(tmp) if tmp is not None else None, error))
    if error is not None:
        raise NetcliError(error)
    try:
        with shards.without_record_checksums():
            dcp.save(state, storage_writer=dcp.FileSystemWriter(tmp, sync_files=True))
        group.barrier()
        if me == 0:
            for name, text in shards.sidecar(
                built.loaded.resolved_text, built.loaded.sha256, aliases_of(built.net)
            ).items():
                (Path(tmp) / name).write_text(text)
    except BaseException as exc:
        if ctx is not None:
            ctx.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if ctx is not None:
        ctx.__exit__(None, None, None)
    group.barrier()  # no rank reports success before the folder is in place
    files = sorted(os.listdir(dest)) if me == 0 else []
    return {
        "file": str(dest),
        "format": "dcp",
        "files": files,
        "bytes": sum((dest / f).stat().st_size for f in files) if me == 0 else 0,
    }


def load_dcp(built, path: str | os.PathLike) -> None:
    """Load a DCP folder into `built` (sharded or not), resharding as DCP does; names the missing keys."""
    meta = shards.check_dcp(path)
    state = built.net.state_dict()
    stored = set(meta.state_dict_metadata)
    aliases = aliases_of(built.net)
    want = {k: v for k, v in state.items() if k in stored or aliases.get(k) not in stored}
    missing = sorted(k for k in want if k not in stored)
    extra = sorted(k for k in stored if k not in state)
    problems = [
        Problem(f"missing key '{k}', expected shape {list(want[k].shape)}", location=Location(str(path)))
        for k in missing
    ]
    for k in want:
        if k in stored and tuple(meta.state_dict_metadata[k].size) != tuple(want[k].shape):
            problems.append(
                Problem(
                    f"key '{k}' has shape {list(meta.state_dict_metadata[k].size)}, expected {list(want[k].shape)}",
                    location=Location(str(path)),
                )
            )
    problems += [Problem(f"unexpected key '{k}'", location=Location(str(path))) for k in extra if k not in aliases]
    if problems:
        raise NetcliError(
            problems
            + [
                Problem(
                    "the checkpoint does not fit the spec; nothing was loaded",
                    location=Location(str(path)),
                    hint="give the spec it was saved from",
                )
            ]
        )
    shards.load_dcp_state(want, path)
    # DCP reads in place: a value the state_dict shares with the network is loaded already (copying it
    # again cost a pass over every rank's shard); only one the state_dict made anew is copied in
    live = built.net.state_dict()
    copied = {k: v for k, v in want.items() if _storage_of(live[k]) != _storage_of(v)}
    copied.update({a: want[s] for a, s in aliases.items() if a not in want and s in copied})
    if copied:
        built.net.load_state_dict(copied, strict=False)


def _storage_of(t) -> tuple[int, int]:
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.data_ptr(), local.numel()
