"""The Hugging Face sharded layout: `model-0000i-of-0000n.safetensors` files and `model.safetensors.index.json`.

Shards are filled greedily in key order up to `--max-shard-size`; a tensor
larger than the limit sits alone in its shard. Tied tensors are stored once;
their other names are in the index's metadata ("netcli.aliases"), as in a
single netcli .safetensors file. Each shard is itself a netcli .safetensors
file (spec, sha256, crc32s), written one tensor at a time.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netcli.core.atomic import atomic_dir, atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.format import (
    DAMAGED_HINT,
    META_ALIASES,
    META_CRC32,
    META_NETCLI,
    META_SHA256,
    META_SPEC,
    META_TORCH,
    ST_CODES,
)
from netcli.io.shards_layout import INDEX_SUFFIX, index_file, netcli_version, owned_name, torch_version


def read_index(path: str | os.PathLike):
    """Open an HF index layout as one Checkpoint: every shard's tensors, read on demand."""
    from netcli.io.format import damaged
    from netcli.io.tensorfile import Checkpoint, TensorInfo, read_safetensors

    index = index_file(path)
    label = str(index)
    try:
        doc = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(label, f"not a readable index file: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        raise damaged(label, 'an index file needs a "weight_map" object')
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict):
        raise damaged(label, 'its "metadata" is not an object')
    infos, where, shard_meta = {}, {}, {}
    shards = sorted(set(doc["weight_map"].values()))
    for shard in shards:
        if not isinstance(shard, str) or "/" in shard or shard.startswith("."):
            raise damaged(label, f"its weight_map names a file outside the folder: {shard!r}")
        if "\0" in shard or len(shard.encode("utf-8", "surrogatepass")) > 255:  # a name no file system holds
            raise damaged(label, f"its weight_map names a file that cannot exist: {shard[:80]!r}...")
        file = index.parent / shard
        try:
            present = file.is_file()
        except OSError as exc:  # e.g. a name the file system refuses
            raise damaged(label, f"its weight_map names a file that cannot be read: {exc.strerror}") from None
        if not present:
            raise NetcliError(
                Problem(
                    f"the shard '{shard}' it names is missing or not a file",
                    location=Location(label),
                    hint=DAMAGED_HINT,
                )
            )
        ck = read_safetensors(str(file))
        shard_meta[shard] = ck
        for name, info in ck.infos.items():
            if doc["weight_map"].get(name) == shard:
                infos[name] = TensorInfo(name, info.shape, info.dtype, info.nbytes)
                where[name] = ck
    lost = sorted(n for n in doc["weight_map"] if n not in infos)
    if lost:
        raise damaged(label, f"tensor '{lost[0]}' is in its weight_map but not in {doc['weight_map'][lost[0]]}")
    aliases = meta.get(META_ALIASES, {})
    if isinstance(aliases, str):
        aliases = json.loads(aliases)
    if not isinstance(aliases, dict) or any(v not in infos for v in aliases.values()):
        raise damaged(label, "its tied names point at tensors it does not hold")
    for alias, stored in aliases.items():
        infos[stored].tied.append(alias)
    total = meta.get("total_size")
    if total is not None and total != sum(i.nbytes for i in infos.values()):
        raise damaged(label, f"its total_size ({total}) is not the sum of its tensors' bytes")
    metadata = {k: v for k, v in meta.items() if isinstance(v, str)}
    if META_SPEC not in metadata and shards:  # an index written by other tools: a shard may carry the spec
        first = shard_meta[shards[0]].metadata
        for key in (META_SPEC, META_SHA256, META_NETCLI, META_TORCH):
            if key in first:
                metadata[key] = first[key]

    class IndexCheckpoint(Checkpoint):
        def tensor(self, name: str):
            return where[name].tensor(name)

    return IndexCheckpoint(label, "safetensors-index", "safetensors", infos, dict(aliases), metadata, {})


def write_stream(
    path, names: list[str], infos: dict, read: Callable[[str], Any], metadata: dict[str, str], bar=None
) -> None:
    """Write a .safetensors file tensor by tensor: each is read, written, checksummed and dropped.

    The header (shapes, dtypes, offsets) comes from `infos`, so no tensor is
    held while another is written; the crc32s are filled into the header at the end.
    """
    entries, offset = {}, 0
    for name in names:
        info = infos[name]
        if info.dtype not in ST_CODES:
            raise NetcliError(
                Problem(
                    f"tensor '{name}' has dtype {info.dtype}, which safetensors cannot hold",
                    location=Location(str(path)),
                )
            )
        entries[name] = {
            "dtype": ST_CODES[info.dtype],
            "shape": list(info.shape),
            "data_offsets": [offset, offset + info.nbytes],
        }
        offset += info.nbytes

    def header(sums: dict[str, str]) -> bytes:
        meta = {**metadata, META_CRC32: json.dumps(sums, sort_keys=True)}
        raw = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % 64)
        return len(raw).to_bytes(8, "little") + raw

    first = header({n: "0" * 8 for n in names})
    sums: dict[str, str] = {}
    import torch

    with open(path, "wb") as f:
        f.write(first)
        for name in names:
            t = read(name).detach().to("cpu").contiguous()
            if tuple(t.shape) != tuple(infos[name].shape):
                raise NetcliError(
                    Problem(f"tensor '{name}' read back with shape {list(t.shape)}", location=Location(str(path)))
                )
            data = memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else memoryview(b"")
            sums[name] = f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"
            f.write(data)
            if bar is not None:
                bar.advance(len(data))
            del t, data
        final = header(sums)
        assert len(final) == len(first)
        f.seek(0)
        f.write(final)


def plan_shards(names: list[str], infos: dict, limit: int) -> list[list[str]]:
    """Greedy in key order: a shard takes tensors until the next would pass `limit`; a bigger tensor is alone."""
    shards: list[list[str]] = []
    size = 0
    for name in names:
        n = infos[name].nbytes
        if not shards or (size + n > limit and shards[-1]):
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += n
    return shards or [[]]


def save_index(dest, ckpt, limit: int, *, prefix: str = "model", bar=None) -> dict:
    """Write `ckpt`'s tensors as an HF sharded layout in the folder `dest`, atomically; return the index."""
    dest = Path(dest)
    if dest.name.endswith(INDEX_SUFFIX):
        prefix = dest.name[: -len(INDEX_SUFFIX)]
        dest = dest.parent
    names = list(ckpt.infos)
    shards = plan_shards(names, ckpt.infos, limit)
    n = len(shards)
    files = [f"{prefix}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    base = {k: v for k, v in ckpt.metadata.items() if k in (META_SPEC, META_SHA256, META_NETCLI, META_TORCH)}
    if base:
        base.setdefault(META_NETCLI, netcli_version())
        base.setdefault(META_TORCH, torch_version())
        if META_SHA256 not in base and META_SPEC in base:
            import hashlib

            base[META_SHA256] = hashlib.sha256(base[META_SPEC].encode()).hexdigest()
    weight_map = {name: files[i] for i, shard in enumerate(shards) for name in shard}
    index = {
        "metadata": {
            "total_size": sum(ckpt.infos[x].nbytes for x in names),
            META_ALIASES: dict(sorted(ckpt.aliases.items())),
            **base,
        },
        "weight_map": weight_map,
    }
    with atomic_dir(dest, allowed=owned_name) as tmp:
        for file, shard in zip(files, shards, strict=False):
            aliases = {a: s for a, s in ckpt.aliases.items() if s in shard}
            metadata = {"format": "pt", **base}
            if base:
                metadata[META_ALIASES] = json.dumps(aliases, sort_keys=True)
            write_stream(tmp / file, shard, ckpt.infos, ckpt.tensor, metadata, bar)
        (tmp / f"{prefix}{INDEX_SUFFIX}").write_text(json.dumps(index, indent=2) + "\n")
    return index


def save_single(dest, ckpt, bar=None) -> None:
    """Write `ckpt`'s tensors as one netcli .safetensors file, streaming, atomically."""
    metadata = {"format": "pt"}
    if META_SPEC in ckpt.metadata:
        import hashlib

        text = ckpt.metadata[META_SPEC]
        metadata.update(
            {
                META_SPEC: text,
                META_SHA256: ckpt.metadata.get(META_SHA256) or hashlib.sha256(text.encode()).hexdigest(),
                META_NETCLI: ckpt.metadata.get(META_NETCLI, netcli_version()),
                META_TORCH: ckpt.metadata.get(META_TORCH, torch_version()),
                META_ALIASES: json.dumps(ckpt.aliases, sort_keys=True),
            }
        )
    atomic_write(dest, lambda p: write_stream(p, list(ckpt.infos), ckpt.infos, ckpt.tensor, metadata, bar))
