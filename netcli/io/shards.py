"""Sharded checkpoints: the Hugging Face index layout and torch.distributed.checkpoint (DCP) folders.

- The HF layout: `model-00001-of-00003.safetensors` ... and
  `model.safetensors.index.json` ({"metadata": {"total_size": N, ...},
  "weight_map": {name: shard file}}). Shards are filled greedily in key order
  up to `--max-shard-size`; a tensor larger than the limit sits alone in its
  shard. Tied tensors are stored once; their other names are in the index's
  metadata ("netcli.aliases"), as in a single netcli .safetensors file. Each
  shard is itself a netcli .safetensors file (spec, sha256, crc32s).
- A DCP folder: what `torch.distributed.checkpoint.save` writes (`.metadata`
  and one `__R_0.distcp` file per rank), plus `netcli.yaml` (the resolved
  spec) and `netcli.json` (sha256, versions, tied names) beside it.

Conversions stream one tensor at a time: each tensor is read, written and
dropped before the next (peak memory: the largest tensor plus buffers). A DCP
folder is written from one process here (`convert`); `netcli.distributed` writes one
from every rank of a job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netcli.core.atomic import atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.format import SAFETENSORS, TORCH_SUFFIXES
from netcli.io.shards_dcp import check_dcp, load_dcp_state, read_dcp, read_sidecar, save_dcp_single, sidecar
from netcli.io.shards_hf import plan_shards, read_index, save_index, save_single, write_stream
from netcli.io.shards_layout import (
    DCP_INFO,
    DCP_METADATA,
    DCP_SPEC,
    INDEX_NAME,
    INDEX_SUFFIX,
    index_file,
    layout_of,
    owned_name,
    parse_size,
)

__all__ = [
    "DCP_INFO",
    "DCP_METADATA",
    "DCP_SPEC",
    "INDEX_NAME",
    "INDEX_SUFFIX",
    "check_dcp",
    "convert",
    "index_file",
    "layout_of",
    "load_dcp_state",
    "open_any",
    "owned_name",
    "parse_size",
    "plan_shards",
    "read_dcp",
    "read_index",
    "read_sidecar",
    "save_dcp_single",
    "save_index",
    "save_single",
    "sidecar",
    "target_of",
    "write_stream",
]


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


def open_any(src: str):
    """Open any checkpoint netcli reads: a file, an HF index (file or folder), a DCP folder."""
    from netcli.io.checkpoint import read_checkpoint

    return read_checkpoint(src)


def convert(src: str, dst: str, *, to: str | None = None, max_shard_size: str | None = None) -> dict:
    """Convert between one .safetensors, the HF sharded layout, a DCP folder and a torch file."""
    from netcli.core.progress import Progress

    kind = target_of(dst, to, max_shard_size)
    ckpt = open_any(src)
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
