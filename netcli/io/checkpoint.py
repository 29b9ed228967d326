"""Open any checkpoint netcli reads, by what it is: one tensor file, the Hugging Face sharded layout, a DCP folder.

The formats live below (`tensorfile` reads one file, `shards_hf` and
`shards_dcp` the sharded layouts, all on `tensorfile`'s Checkpoint); this
module tells them apart, so none of them imports another back.
"""

from __future__ import annotations

import os
from pathlib import Path

from netcli.core.errors import Location, NetcliError, Problem
from netcli.io import shards
from netcli.io.tensorfile import Checkpoint, TensorInfo, crc32, read_safetensors, read_single, tied_names

__all__ = ["Checkpoint", "TensorInfo", "crc32", "read_checkpoint", "read_safetensors", "tied_names"]


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Open a .safetensors or torch file (found by its first bytes, not its name) and list what it holds.

    A folder or index file of the Hugging Face sharded layout, or a DCP
    folder, opens as one checkpoint too (netcli.io.shards).
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise NetcliError(
            Problem("no such file", location=Location(path), hint="give a .safetensors, .pt, .pth or .params file")
        )
    layout = shards.layout_of(p)
    if layout == "index":  # the Hugging Face sharded layout: model.safetensors.index.json + shards
        return shards.read_index(p)
    if layout == "dcp":  # a torch.distributed.checkpoint folder
        return shards.read_dcp(p)
    if p.is_dir():
        raise NetcliError(
            Problem(
                "is a folder, not a tensor file",
                location=Location(path),
                hint="a checkpoint folder holds model.safetensors.index.json or a DCP .metadata",
            )
        )
    if not p.is_file():  # a FIFO would block the first read forever; a device never ends
        raise NetcliError(
            Problem(
                "is not a regular file (a FIFO, device or socket)",
                location=Location(path),
                hint="give the checkpoint's file itself",
            )
        )
    return read_single(path)
