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
folder is written from one process here (`convert`); `netcli.dist` writes one
from every rank of a job.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import Any, Callable

from netcli.core.atomic import atomic_dir, atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.format import (DAMAGED_HINT, META_ALIASES, META_CRC32, META_NETCLI, META_SHA256, META_SPEC,
                               META_TORCH, SAFETENSORS, ST_CODES, TORCH_SUFFIXES, numel)

INDEX_SUFFIX = ".safetensors.index.json"
INDEX_NAME = "model" + INDEX_SUFFIX
DCP_METADATA = ".metadata"
DCP_SPEC = "netcli.yaml"
DCP_INFO = "netcli.json"
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.safetensors$")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


def parse_size(text: str | int, where: str = "--max-shard-size") -> int:
    """Parse "5GB", "500MB", "1.5GiB" or a number of bytes (GB = 10**9 as Hugging Face counts; GiB = 2**30)."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", str(text), re.IGNORECASE)
        if m is None:
            raise NetcliError(Problem(f"'{text}' is not a size", location=Location(where),
                                      hint="write a number of bytes or e.g. 4GiB, 500MiB (GB and MB count powers of 10, as Hugging Face does)"))
        value = int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])
    if value <= 0:
        raise NetcliError(Problem(f"the size must be positive, got '{text}'", location=Location(where)))
    return value


# ---------------------------------------------------------------- what a path is


def layout_of(path: str | os.PathLike) -> str | None:
    """Return "index" (HF sharded layout), "dcp" (a DCP folder), or None (a single file / nothing)."""
    p = Path(path)
    if p.name.endswith(INDEX_SUFFIX) and p.is_file():
        return "index"
    if p.is_dir():
        if (p / DCP_METADATA).exists() or (p / DCP_SPEC).exists() and not list(p.glob("*" + INDEX_SUFFIX)):
            return "dcp"
        if list(p.glob("*" + INDEX_SUFFIX)):
            return "index"
    return None


def index_file(path: str | os.PathLike) -> Path:
    """The index file of an HF layout given as the file or its folder."""
    p = Path(path)
    if p.is_file():
        return p
    found = sorted(p.glob("*" + INDEX_SUFFIX))
    if (p / INDEX_NAME) in found:
        return p / INDEX_NAME
    if len(found) != 1:
        raise NetcliError(Problem(f"holds {len(found)} index files", location=Location(str(p)),
                                  hint="name the index file itself"))
    return found[0]


def owned_name(name: str) -> bool:
    """Whether a file in a checkpoint folder is one netcli (or DCP) writes there: safe to replace."""
    return (name.endswith(SAFETENSORS) or name.endswith(INDEX_SUFFIX) or name.endswith(".distcp")
            or name in (DCP_METADATA, DCP_SPEC, DCP_INFO))


# ---------------------------------------------------------------- reading


def read_index(path: str | os.PathLike):
    """Open an HF index layout as one Checkpoint: every shard's tensors, read on demand."""
    from netcli.io.checkpoint import Checkpoint, TensorInfo, damaged, read_safetensors
    index = index_file(path)
    label = str(index)
    try:
        doc = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(label, f"not a readable index file: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        raise damaged(label, "an index file needs a \"weight_map\" object")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict):
        raise damaged(label, "its \"metadata\" is not an object")
    infos, where, shard_meta = {}, {}, {}
    shards = sorted(set(doc["weight_map"].values()))
    for shard in shards:
        if not isinstance(shard, str) or "/" in shard or shard.startswith("."):
            raise damaged(label, f"its weight_map names a file outside the folder: {shard!r}")
        file = index.parent / shard
        if not file.exists():
            raise NetcliError(Problem(f"the shard '{shard}' it names is missing", location=Location(label),
                                      hint=DAMAGED_HINT))
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


def check_dcp(path: str | os.PathLike):
    """Read a DCP folder's metadata and check every file it names is there and long enough; return it."""
    from torch.distributed.checkpoint import FileSystemReader
    p = Path(path)
    if not (p / DCP_METADATA).exists():
        raise NetcliError(Problem(f"a DCP checkpoint folder needs its {DCP_METADATA} file, and it is missing",
                                  location=Location(str(p / DCP_METADATA)), hint=DAMAGED_HINT))
    try:
        meta = FileSystemReader(str(p)).read_metadata()
    except Exception as exc:
        raise NetcliError(Problem(f"not a readable DCP metadata file: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                  location=Location(str(p / DCP_METADATA)), hint=DAMAGED_HINT)) from exc
    need: dict[str, int] = {}
    for info in (meta.storage_data or {}).values():
        need[info.relative_path] = max(need.get(info.relative_path, 0), info.offset + info.length)
    for rel, end in sorted(need.items()):
        file = p / rel
        if not file.exists():
            raise NetcliError(Problem("a rank's file of this DCP checkpoint is missing", location=Location(str(file)),
                                      hint="the save did not finish on every rank; save it again"))
        size = file.stat().st_size
        if size < end:
            raise NetcliError(Problem(f"a rank's file is cut short ({size:,} bytes, {end:,} expected)",
                                      location=Location(str(file)), hint=DAMAGED_HINT))
    return meta


def read_dcp(path: str | os.PathLike):
    """Open a DCP folder as one Checkpoint: its tensors (global shapes), each read alone on demand."""
    import torch
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    from netcli.io.checkpoint import Checkpoint, TensorInfo
    p = Path(path)
    meta = check_dcp(p)
    infos, dtypes = {}, {}
    for name, md in meta.state_dict_metadata.items():
        if not isinstance(md, TensorStorageMetadata):
            continue
        dtype = md.properties.dtype
        shape = tuple(md.size)
        infos[name] = TensorInfo(name, shape, str(dtype).removeprefix("torch."),
                                 numel(shape) * torch.empty((), dtype=dtype).element_size())
        dtypes[name] = dtype
    extra = read_sidecar(p)
    aliases = {a: s for a, s in extra.get("aliases", {}).items() if s in infos and a != s}
    for alias, stored in aliases.items():  # a tied name DCP stored twice (a job's save) is read once
        infos.pop(alias, None)
        infos[stored].tied.append(alias)
    metadata = {}
    if (p / DCP_SPEC).exists():
        metadata[META_SPEC] = (p / DCP_SPEC).read_text()
    for key, meta_key in (("spec_sha256", META_SHA256), ("netcli", META_NETCLI), ("torch", META_TORCH)):
        if key in extra:
            metadata[meta_key] = extra[key]

    class DcpCheckpoint(Checkpoint):
        def tensor(self, name: str):
            info = self.infos[name]
            out = torch.empty(info.shape, dtype=dtypes[name])
            load_dcp_state({name: out}, p)
            return out

    return DcpCheckpoint(str(p), "dcp", "safetensors", infos, aliases, metadata, {})


def read_sidecar(path: Path) -> dict:
    file = Path(path) / DCP_INFO
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NetcliError(Problem(f"not readable JSON: {exc}", location=Location(str(file)), hint=DAMAGED_HINT))
    return data if isinstance(data, dict) else {}


def load_dcp_state(state: dict, path: str | os.PathLike) -> None:
    """`dcp.load(state, ...)` from `path` (in a job: collective; alone: no process group), errors named."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
            dcp.load(state, storage_reader=dcp.FileSystemReader(str(path)),
                     no_dist=not (dist.is_available() and dist.is_initialized()))
    except NetcliError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        missing = re.search(r"No such file or directory: '([^']+)'", str(exc))
        where = missing.group(1) if missing else str(path)
        raise NetcliError(Problem(f"cannot read the DCP checkpoint: {text[-1] if text else type(exc).__name__}",
                                  location=Location(where), hint=DAMAGED_HINT)) from exc


def sidecar(loaded_text: str | None, sha256: str | None, aliases: dict[str, str]) -> dict[str, str]:
    """The files netcli puts beside a DCP checkpoint: the resolved spec and what DCP does not keep."""
    import torch
    from netcli.core.version import VERSION
    files = {DCP_INFO: json.dumps({"format": "netcli-dcp", "spec_sha256": sha256, "netcli": VERSION,
                                   "torch": torch.__version__, "aliases": aliases}, indent=1, sort_keys=True)}
    if loaded_text is not None:
        files[DCP_SPEC] = loaded_text
    return files


# ---------------------------------------------------------------- writing


def write_stream(path, names: list[str], infos: dict, read: Callable[[str], Any], metadata: dict[str, str],
                 bar=None) -> None:
    """Write a .safetensors file tensor by tensor: each is read, written, checksummed and dropped.

    The header (shapes, dtypes, offsets) comes from `infos`, so no tensor is
    held while another is written; the crc32s are filled into the header at the end.
    """
    entries, offset = {}, 0
    for name in names:
        info = infos[name]
        if info.dtype not in ST_CODES:
            raise NetcliError(Problem(f"tensor '{name}' has dtype {info.dtype}, which safetensors cannot hold",
                                      location=Location(str(path))))
        entries[name] = {"dtype": ST_CODES[info.dtype], "shape": list(info.shape),
                         "data_offsets": [offset, offset + info.nbytes]}
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
                raise NetcliError(Problem(f"tensor '{name}' read back with shape {list(t.shape)}",
                                          location=Location(str(path))))
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
        base.setdefault(META_NETCLI, _version())
        base.setdefault(META_TORCH, _torch_version())
        if META_SHA256 not in base and META_SPEC in base:
            import hashlib
            base[META_SHA256] = hashlib.sha256(base[META_SPEC].encode()).hexdigest()
    weight_map = {name: files[i] for i, shard in enumerate(shards) for name in shard}
    index = {"metadata": {"total_size": sum(ckpt.infos[x].nbytes for x in names),
                          META_ALIASES: dict(sorted(ckpt.aliases.items())), **base},
             "weight_map": weight_map}
    with atomic_dir(dest, allowed=owned_name) as tmp:
        for file, shard in zip(files, shards):
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
        metadata.update({META_SPEC: text, META_SHA256: ckpt.metadata.get(META_SHA256)
                         or hashlib.sha256(text.encode()).hexdigest(),
                         META_NETCLI: ckpt.metadata.get(META_NETCLI, _version()),
                         META_TORCH: ckpt.metadata.get(META_TORCH, _torch_version()),
                         META_ALIASES: json.dumps(ckpt.aliases, sort_keys=True)})
    atomic_write(dest, lambda p: write_stream(p, list(ckpt.infos), ckpt.infos, ckpt.tensor, metadata, bar))


def save_dcp_single(dest, ckpt) -> None:
    """Write `ckpt`'s tensors as a DCP folder from this one process, the spec beside it, atomically.

    DCP writes a state_dict in one call, so the tensors are all read first
    (the one conversion that is not streamed one tensor at a time).
    """
    import torch.distributed.checkpoint as dcp
    state = {name: ckpt.tensor(name) for name in ckpt.infos}
    with atomic_dir(dest, allowed=owned_name) as tmp:
        import warnings
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
            dcp.save(state, storage_writer=dcp.FileSystemWriter(str(tmp)), no_dist=True)
        for name, text in sidecar(ckpt.metadata.get(META_SPEC), ckpt.metadata.get(META_SHA256),
                                  ckpt.aliases).items():
            (tmp / name).write_text(text)


def target_of(dst: str, to: str | None, max_shard_size) -> str:
    """What to write at `dst`: "safetensors", "index", "dcp" or "torch" (from --to, the name, --max-shard-size)."""
    if to is not None:
        kinds = {"safetensors": "safetensors", "hf": "index", "index": "index", "dcp": "dcp", "torch": "torch"}
        if to not in kinds:
            raise NetcliError(Problem(f"unknown target '{to}'", location=Location("--to"),
                                      hint="one of safetensors, hf, dcp, torch"))
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
        raise NetcliError(Problem("cannot tell what to write from this name", location=Location(dst),
                                  hint="end it with .safetensors, .safetensors.index.json or / (a folder), "
                                       "or say --to safetensors|hf|dcp"))
    if kind == "index" and dst.lower().endswith(SAFETENSORS):
        raise NetcliError(Problem("the sharded layout is a folder of files", location=Location(dst),
                                  hint=f"give a folder: -o {Path(dst).stem}/"))
    if max_shard_size is not None and kind != "index":
        raise NetcliError(Problem(f"--max-shard-size applies to the sharded safetensors layout, not to {kind}",
                                  location=Location("--max-shard-size")))
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
    report: dict[str, Any] = {"source": src, "source_format": ckpt.format, "output": dst, "format": kind,
                              "tensors": len(ckpt.infos), "bytes": ckpt.nbytes}
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


def _version() -> str:
    from netcli.core.version import VERSION
    return VERSION


def _torch_version() -> str:
    import torch
    return torch.__version__
