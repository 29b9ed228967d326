"""Say what a tensor file holds: the data `netcli show` prints (a .safetensors needs no torch)."""

from __future__ import annotations

from netcli.io.checkpoint import read_checkpoint
from netcli.io.format import META_ALIASES, META_CRC32, META_NETCLI, META_SHA256, META_SPEC, META_TORCH, numel


def describe(path, *, values: bool = False, limit: int = 100) -> dict:
    """Return what a tensor file holds, as data: kind, tensors (names, shapes, dtypes, bytes), spec."""
    ckpt = read_checkpoint(path)
    tensors = []
    for info in ckpt.infos.values():
        row = {
            "name": info.name,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "bytes": info.nbytes,
            "tied": info.tied,
        }
        if values:
            count = numel(info.shape)
            row["values"] = ckpt.tensor(info.name).tolist() if count <= limit else None
        tensors.append(row)
    meta = dict(ckpt.metadata)
    spec = None
    if META_SPEC in meta:
        spec = {
            "text": meta.pop(META_SPEC),
            "sha256": meta.pop(META_SHA256, None),
            "netcli": meta.pop(META_NETCLI, None),
            "torch": meta.pop(META_TORCH, None),
        }
    for key in (META_ALIASES, META_CRC32, "format"):
        meta.pop(key, None)
    return {
        "file": ckpt.path,
        "format": ckpt.format,
        "kind": ckpt.kind,
        "count": len(tensors),
        "total_bytes": ckpt.nbytes,
        "tensors": tensors,
        "other_values": ckpt.others,
        "checksums": META_CRC32 in ckpt.metadata,
        "metadata": meta,
        "spec": spec,
    }
