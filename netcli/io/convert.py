"""`netcli convert`: between one .safetensors, the HF sharded layout, a DCP folder and a torch file, streamed.

Each tensor is read, written and dropped before the next (peak memory: the
largest tensor plus buffers); only a DCP folder takes one whole state_dict,
as `dcp.save` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netcli.core.atomic import atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.checkpoint import read_checkpoint
from netcli.io.format import SAFETENSORS, TORCH_SUFFIXES
from netcli.io.shards import INDEX_SUFFIX, parse_size, save_dcp_single, save_index, save_single


def target_of(dst: str, to: str | None, max_shard_size) -> str:
    """What to write at `dst`: "safetensors", "index", "dcp" or "torch" (from --to, the name, --max-shard-size)."""
    if to is not None:
        kinds = {"safetensors": "safetensors", "hf": "index", "index": "index", "dcp": "dcp", "torch": "torch"}
        if to not in kinds:
            raise NetcliError(
                Problem(f"unknown target '{to}'", location=Location("--to"), hint="one of safetensors, hf, dcp, torch")
            )
        kind = kinds[to]
    elif dst.endswith(INDEX_SUFFIX):
        kind = "index"
    elif dst.endswith("/") or os.path.isdir(dst):
        kind = "index" if max_shard_size is not None else "dcp"
    elif dst.lower().endswith(SAFETENSORS):
        kind = "index" if max_shard_size is not None else "safetensors"
    elif Path(dst).suffix.lower() in TORCH_SUFFIXES:
        kind = "torch"
    else:
        raise NetcliError(
            Problem(
                "cannot tell what to write from this name",
                location=Location(dst),
                hint="end it with .safetensors, .safetensors.index.json or / (a folder), "
                "or say --to safetensors|hf|dcp",
            )
        )
    if kind == "index" and dst.lower().endswith(SAFETENSORS):
        raise NetcliError(
            Problem(
                "the sharded layout is a folder of files",
                location=Location(dst),
                hint=f"give a folder: -o {Path(dst).stem}/",
            )
        )
    if max_shard_size is not None and kind != "index":
        raise NetcliError(
            Problem(
                f"--max-shard-size applies to the sharded safetensors layout, not to {kind}",
                location=Location("--max-shard-size"),
            )
        )
    return kind


def convert(src: str, dst: str, *, to: str | None = None, max_shard_size: str | None = None) -> dict:
    """Convert between one .safetensors, the HF sharded layout, a DCP folder and a torch file."""
    from netcli.core.progress import Progress

    kind = target_of(dst, to, max_shard_size)
    ckpt = read_checkpoint(src)
    if ckpt.kind not in ("safetensors", "state_dict", "dict"):
        raise NetcliError(Problem(f"holds a {ckpt.kind}, not named tensors", location=Location(src)))
    if os.path.abspath(src.rstrip("/")) == os.path.abspath(dst.rstrip("/")):
        raise NetcliError(Problem("the source and the destination are the same", location=Location(dst)))
    report: dict[str, Any] = {
        "source": src,
        "source_format": ckpt.format,
        "output": dst,
        "format": kind,
        "tensors": len(ckpt.infos),
        "bytes": ckpt.nbytes,
    }
    with Progress(f"converting {src}", ckpt.nbytes) as bar:
        if kind == "index":
            index = save_index(dst, ckpt, parse_size(max_shard_size) if max_shard_size else 5 * 10**9, bar=bar)
            report["shards"] = sorted(set(index["weight_map"].values()))
        elif kind == "safetensors":
            save_single(dst, ckpt, bar)
        elif kind == "dcp":
            save_dcp_single(dst, ckpt)
        else:
            import torch

            from netcli.io.checkpoint_save import call_writer

            state = {name: ckpt.tensor(name) for name in ckpt.infos}
            for alias, stored in ckpt.aliases.items():
                state[alias] = state[stored]
            atomic_write(dst, lambda p: call_writer(p, torch.save, state, p))
    return report
