"""torch.distributed.checkpoint (DCP) folders: `.metadata`, one `__R_0.distcp` per rank, and netcli's sidecar files.

Beside what DCP writes, `netcli.yaml` holds the resolved spec and
`netcli.json` the sha256, versions and tied names, so the folder alone
rebuilds the network at any world size.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from netcli.core.atomic import atomic_dir
from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.dcp_metadata import read_metadata_file, refuse_pickled_items, safe_reader
from netcli.io.format import DAMAGED_HINT, META_NETCLI, META_SHA256, META_SPEC, META_TORCH, numel
from netcli.io.shards_layout import DCP_INFO, DCP_METADATA, DCP_SPEC, owned_name


def check_dcp(path: str | os.PathLike):
    """Read a DCP folder's metadata and check every file it names is there and long enough; return it."""
    p = Path(path)
    if not (p / DCP_METADATA).exists():
        raise NetcliError(
            Problem(
                f"a DCP checkpoint folder needs its {DCP_METADATA} file, and it is missing",
                location=Location(str(p / DCP_METADATA)),
                hint=DAMAGED_HINT,
            )
        )
    meta = read_metadata_file(p / DCP_METADATA)
    need: dict[str, int] = {}
    for info in (meta.storage_data or {}).values():
        need[info.relative_path] = max(need.get(info.relative_path, 0), info.offset + info.length)
    for rel, end in sorted(need.items()):
        file = p / rel
        if not file.exists():
            raise NetcliError(
                Problem(
                    "a rank's file of this DCP checkpoint is missing",
                    location=Location(str(file)),
                    hint="the save did not finish on every rank; save it again",
                )
            )
        size = file.stat().st_size
        if size < end:
            raise NetcliError(
                Problem(
                    f"a rank's file is cut short ({size:,} bytes, {end:,} expected)",
                    location=Location(str(file)),
                    hint=DAMAGED_HINT,
                )
            )
    return meta


def read_dcp(path: str | os.PathLike):
    """Open a DCP folder as one Checkpoint: its tensors (global shapes), each read alone on demand."""
    import torch
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    from netcli.io.tensorfile import Checkpoint, TensorInfo

    p = Path(path)
    meta = check_dcp(p)
    infos, dtypes = {}, {}
    for name, md in meta.state_dict_metadata.items():
        if not isinstance(md, TensorStorageMetadata):
            continue
        dtype = md.properties.dtype
        shape = tuple(md.size)
        infos[name] = TensorInfo(
            name, shape, str(dtype).removeprefix("torch."), numel(shape) * torch.empty((), dtype=dtype).element_size()
        )
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
        raise NetcliError(
            Problem(f"not readable JSON: {exc}", location=Location(str(file)), hint=DAMAGED_HINT)
        ) from exc
    return data if isinstance(data, dict) else {}


def load_dcp_state(state: dict, path: str | os.PathLike) -> None:
    """`dcp.load(state, ...)` from `path` (in a job: collective; alone: no process group), errors named."""
    import warnings

    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    refuse_pickled_items(path, state)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
            dcp.load(
                state, storage_reader=safe_reader(path), no_dist=not (dist.is_available() and dist.is_initialized())
            )
    except NetcliError:
        raise
    except (Exception, CheckpointException) as exc:  # DCP's own error is a BaseException: it wraps each rank's
        found = [getattr(e, "exception", e) for e in (getattr(exc, "failures", {}) or {}).values()]
        ours = next((e for e in found if isinstance(e, NetcliError)), None)  # failure, the safe reader's among them
        if ours is not None:
            raise ours from None
        first = next((e for e in found if isinstance(e, BaseException)), exc)
        text = f"{type(first).__name__}: {first}".strip().splitlines()
        missing = re.search(r"No such file or directory: '([^']+)'", str(exc))
        where = missing.group(1) if missing else str(path)
        raise NetcliError(
            Problem(
                f"cannot read the DCP checkpoint: {text[-1] if text else type(exc).__name__}",
                location=Location(where),
                hint=DAMAGED_HINT,
            )
        ) from exc


@contextlib.contextmanager
def without_record_checksums():
    """torch.save without a CRC-32 of each zip record, for DCP's writer, restored after.

    DCP stores each tensor as a `torch.save` zip inside the rank's file;
    torch computes a CRC-32 of every record by default, which takes most of a
    save's time (a 128 MiB tensor: 1.3 s with it, 0.12 s without, on the
    benchmark machine), and neither torch.load nor DCP's reader checks it.
    """
    from torch.utils.serialization import config

    before = config.save.compute_crc32
    config.save.compute_crc32 = False
    try:
        yield
    finally:
        config.save.compute_crc32 = before


def sidecar(loaded_text: str | None, sha256: str | None, aliases: dict[str, str]) -> dict[str, str]:
    """The files netcli puts beside a DCP checkpoint: the resolved spec and what DCP does not keep."""
    import torch

    from netcli.core.version import VERSION

    files = {
        DCP_INFO: json.dumps(
            {
                "format": "netcli-dcp",
                "spec_sha256": sha256,
                "netcli": VERSION,
                "torch": torch.__version__,
                "aliases": aliases,
            },
            indent=1,
            sort_keys=True,
        )
    }
    if loaded_text is not None:
        files[DCP_SPEC] = loaded_text
    return files


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
            with without_record_checksums():
                dcp.save(state, storage_writer=dcp.FileSystemWriter(str(tmp)), no_dist=True)
        for name, text in sidecar(ckpt.metadata.get(META_SPEC), ckpt.metadata.get(META_SHA256), ckpt.aliases).items():
            (tmp / name).write_text(text)
