"""A DCP folder's `.metadata`, read without running code, and the reader netcli hands to `dcp.load`.

torch's `FileSystemReader.read_metadata` calls `pickle.load` on `.metadata`
unrestricted: a downloaded checkpoint folder could run any program. Here the
pickle may name only the classes DCP's metadata is made of (its dataclasses,
`torch.Size`, dtypes, layouts, the memory-format enum, paths); anything else
is refused with the global it asked for. What it builds is then checked
against the shape DCP writes (types, counts, file names inside the folder)
before anything uses it, and `dcp.load` reads through `SafeFileSystemReader`,
which uses the same unpickler and refuses the one item kind DCP would
unpickle with code (`BYTE_IO`, loaded with `torch.load(weights_only=False)`).
Its tensors are read by `dcp_read` (one positioned read per item, into the
destination); what that cannot take goes to DCP's own reader, which loads
it with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.format import DAMAGED_HINT, error_text

MAX_METADATA_BYTES = 1 << 30  # a .metadata larger than this is refused before it is read
MAX_METADATA_ITEMS = 10_000_000  # tensors + chunks + storage entries a .metadata may describe
RANK_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.distcp")  # a file inside the folder, no path

_DCP_METADATA = "torch.distributed.checkpoint.metadata"
_ALLOWED: dict[str, frozenset[str]] = {
    _DCP_METADATA: frozenset(
        {
            "Metadata",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "ChunkStorageMetadata",
            "TensorProperties",
            "MetadataIndex",
            "StorageMeta",
            "_MEM_FORMAT_ENCODING",
        }
    ),
    "torch.distributed.checkpoint.filesystem": frozenset({"_StorageInfo"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "torch": frozenset({"Size"}),  # and the dtypes, checked by value in find_class
    "pathlib": frozenset({"PosixPath", "PurePosixPath", "Path"}),
}


class _RefusedGlobal(Exception):
    """The pickle asked for a global outside the allow-list."""


class MetadataUnpickler(pickle.Unpickler):
    """Unpickle only what DCP's metadata is made of; any other global is refused, never imported."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise _RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of DCP metadata")


def _refuse(path: Path, message: str, hint: str = DAMAGED_HINT) -> NetcliError:
    return NetcliError(Problem(message, location=Location(str(path)), hint=hint))


def unpickle_metadata(path: Path, data: bytes):
    """Unpickle `data` (a `.metadata` file's bytes) with the allow-list, then check what it built."""
    from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

    try:
        meta = MetadataUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as exc:
        raise _refuse(
            path,
            f"this DCP metadata asks to load '{exc}', which DCP metadata never holds; "
            "refusing to read it (it could run code)",
            hint="a DCP folder from an untrusted source may be crafted; ask its author for a .safetensors file",
        ) from None
    except Exception as exc:  # a malformed pickle raises anything: EOFError, TypeError, KeyError, ...
        raise _refuse(path, f"not a readable DCP metadata file: {error_text(exc)}") from exc
    if type(meta) is not Metadata:
        raise _refuse(path, f"not a DCP metadata file: it holds a {type(meta).__name__}, not a Metadata")
    check_metadata(path, meta)
    if getattr(meta, "storage_meta", None) is None:
        meta.storage_meta = StorageMeta()
    return meta


def check_metadata(path: Path, meta) -> None:
    """Refuse metadata whose parts are not what DCP writes (types, counts, files outside the folder).

    The walk follows the fixed layout of DCP's dataclasses, never a generic
    recursion, and counts items as it goes: a small pickle that shares one
    list of chunks among many tensors stops at MAX_METADATA_ITEMS.
    """
    import torch
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import (
        BytesStorageMetadata,
        ChunkStorageMetadata,
        Metadata,
        MetadataIndex,
        StorageMeta,
        TensorProperties,
        TensorStorageMetadata,
    )

    def bad(what: str) -> NetcliError:
        return _refuse(path, f"not a DCP metadata file netcli can read: {what}")

    def is_size(value: Any, rank: int | None = None) -> bool:
        return (
            type(value) is torch.Size
            and all(type(d) is int and d >= 0 for d in value)
            and (rank is None or len(value) == rank)
        )

    def part(obj: Any, name: str, optional: bool = False) -> Any:
        """A field of one of DCP's dataclasses; a pickle that renamed or dropped it is refused, not followed."""
        try:
            return object.__getattribute__(obj, name)
        except AttributeError:
            if optional:
                return None
            raise bad(f"its {type(obj).__name__} has no '{name}'") from None

    def complete(obj: Any) -> None:
        """Every field of the dataclass is there: DCP's readers use them all."""
        import dataclasses

        for f in dataclasses.fields(obj):
            part(obj, f.name)

    if type(meta) is not Metadata:
        raise bad(f"it holds a {type(meta).__name__}, not DCP's Metadata")
    complete(meta)
    count = 0

    def counted(n: int) -> None:
        nonlocal count
        count += n
        if count > MAX_METADATA_ITEMS:
            raise bad(f"it describes more than {MAX_METADATA_ITEMS:,} items")

    entries = part(meta, "state_dict_metadata")
    if type(entries) is not dict:
        raise bad("state_dict_metadata is not a dict")
    counted(len(entries))
    for name, md in entries.items():
        if type(name) is not str:
            raise bad(f"a key is a {type(name).__name__}, not a name")
        if type(md) is BytesStorageMetadata:
            continue
        if type(md) is not TensorStorageMetadata:
            raise bad(f"'{name[:200]}' is described by a {type(md).__name__}")
        props = part(md, "properties")
        if (
            type(props) is not TensorProperties
            or not isinstance(part(props, "dtype"), torch.dtype)
            or not is_size(part(md, "size"))
            or type(part(md, "chunks")) is not list
        ):
            raise bad(f"'{name[:200]}' has no dtype, size or chunk list")
        complete(md)
        complete(props)
        counted(len(md.chunks))
        for chunk in md.chunks:
            if (
                type(chunk) is not ChunkStorageMetadata
                or not is_size(part(chunk, "offsets"), len(md.size))
                or not is_size(part(chunk, "sizes"), len(md.size))
            ):
                raise bad(f"a chunk of '{name[:200]}' is not offsets and sizes of its rank")
            complete(chunk)
    storage = part(meta, "storage_data", optional=True)
    if storage is not None:
        if type(storage) is not dict:
            raise bad("storage_data is not a dict")
        counted(len(storage))
        for index, info in storage.items():
            if type(index) is not MetadataIndex or type(part(index, "fqn")) is not str:
                raise bad("a storage key is not a MetadataIndex")
            if (
                type(info) is not _StorageInfo
                or type(part(info, "relative_path")) is not str
                or type(part(info, "offset")) is not int
                or type(part(info, "length")) is not int
                or info.offset < 0
                or info.length < 0
            ):
                raise bad(f"the storage entry of '{index.fqn[:200]}' is not a file, offset and length")
            complete(index)
            complete(info)
            if not RANK_FILE.fullmatch(info.relative_path):
                raise bad(
                    f"the storage entry of '{index.fqn[:200]}' names the file "
                    f"{info.relative_path[:200]!r}, not a .distcp file inside the folder"
                )
            descriptors = part(info, "transform_descriptors", optional=True)
            if descriptors is not None and (
                not isinstance(descriptors, (list, tuple)) or any(type(d) is not str for d in descriptors)
            ):
                raise bad(f"the storage entry of '{index.fqn[:200]}' has malformed transforms")
    planner = part(meta, "planner_data", optional=True)
    if planner is not None:
        if type(planner) is not dict:
            raise bad("planner_data is not a dict")
        counted(len(planner))
        for key, value in planner.items():
            if type(key) is not str or not isinstance(value, (list, tuple)):
                raise bad("planner_data is not a mapping of names to key paths")
            counted(len(value))
            if any(type(v) not in (str, int) for v in value):
                raise bad("planner_data is not a mapping of names to key paths")
    storage_meta = part(meta, "storage_meta", optional=True)
    if storage_meta is not None:
        if type(storage_meta) is not StorageMeta:
            raise bad("storage_meta is not a StorageMeta")
        complete(storage_meta)
    if part(meta, "version", optional=True) is not None and type(meta.version) is not str:
        raise bad("version is not text")


def read_metadata_file(file: str | os.PathLike):
    """Read a `.metadata` file with the restricted unpickler, its size bounded first."""
    path = Path(file)
    try:
        size = path.stat().st_size
        if size > MAX_METADATA_BYTES:
            raise _refuse(
                path, f"a DCP metadata file of {size:,} bytes (more than {MAX_METADATA_BYTES:,}); refusing to read it"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot read the DCP metadata file: {error_text(exc)}") from exc
    return unpickle_metadata(path, data)


def refuse_pickled_items(folder: str | os.PathLike, names) -> None:
    """Refuse a load of `names` where the metadata stores one of them as pickled bytes, before DCP reads it."""
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    entries = read_metadata_file(Path(folder) / ".metadata").state_dict_metadata
    for name in names:
        if type(entries.get(name)) is BytesStorageMetadata:
            raise _pickled_item(Path(folder), name)


def _pickled_item(folder: Path, name: str) -> NetcliError:
    return _refuse(
        folder,
        f"the DCP metadata stores '{name[:200]}' as pickled bytes, not a tensor; "
        "refusing to unpickle it (it could run code)",
        hint="a DCP folder from an untrusted source may be crafted; ask its author for a .safetensors file",
    )


def safe_reader(folder: str | os.PathLike):
    """A `FileSystemReader` for `folder` whose metadata goes through the restricted unpickler."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.planner import LoadItemType

    class SafeFileSystemReader(FileSystemReader):
        """DCP's file reader, minus the two places it unpickles with code."""

        def read_metadata(self, *args: Any, **kwargs: Any):
            from torch.distributed.checkpoint.metadata import StorageMeta

            meta = read_metadata_file(self._get_metadata_path(kwargs.get("rank")))
            if meta.storage_meta is None:  # allowed by check_metadata; torch's reader makes one the same way
                meta.storage_meta = StorageMeta()
            meta.storage_meta.load_id = self.load_id
            return meta

        def read_data(self, plan, planner):
            import dataclasses

            from netcli.io.dcp_read import read_plan_items

            for item in plan.items:
                if item.type == LoadItemType.BYTE_IO:  # DCP loads these with torch.load(weights_only=False)
                    raise _pickled_item(Path(self.path), item.dest_index.fqn)
            # tensors: one positioned read each, into the destination; what that cannot take, DCP's own reader
            left = read_plan_items(str(self.path), self.storage_data, plan.items, planner)
            return super().read_data(dataclasses.replace(plan, items=left), planner)

    return SafeFileSystemReader(str(folder))
