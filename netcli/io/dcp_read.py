"""A DCP folder's tensors read at the disk's speed: one positioned read per item, straight into its destination.

DCP's `FileSystemReader` reads each item (a tensor written by `torch.save`,
a small zip archive inside the rank's file) into memory, `torch.load`s it from
there, then copies the part it needs into the destination: three copies and
Python-level reads per tensor. Here each rank file is opened once, its items
taken in file order, and each item's raw bytes located from its zip directory
(the stored record, uncompressed, as torch writes it) and read with one
`preadv` into the destination tensor's own memory.

Nothing from the file runs: the item's `data.pkl` (how the stored tensor
lies in its storage) is read by an unpickler that knows only
`_rebuild_tensor_v2`, `OrderedDict` and the storage types, each replaced by a
recorder of its arguments. An item this path cannot take whole (another zip
layout, a strided or offset region, a dtype to convert, a transformed
stream) is handed back for DCP's own reader; pickled-bytes items never reach
here (`dcp_metadata.SafeFileSystemReader` refuses them).
"""

from __future__ import annotations

import collections
import ctypes
import io
import os
import pickle
import struct
import sys
from typing import Any, NamedTuple

_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_MAX_PICKLE = 1 << 20  # a one-tensor data.pkl is a few hundred bytes


class _NotPlain(Exception):
    """The item is not a plain stored tensor: DCP's own reader takes it."""


class _StorageType(NamedTuple):
    dtype: Any


class _StorageRef(NamedTuple):
    dtype: Any
    key: str
    numel: int


class _Stored(NamedTuple):
    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild(storage, storage_offset, size, stride, *rest):
    if not isinstance(storage, _StorageRef):
        raise _NotPlain("not a storage")
    return _Stored(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _TensorPickle(pickle.Unpickler):
    """The data.pkl of one `torch.save`d tensor, its few globals replaced by recorders (nothing imported)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch":
            from torch.storage import _dtype_to_storage_type_map

            dtype = {v: k for k, v in _dtype_to_storage_type_map().items()}.get(name)
            if dtype is not None:
                return _StorageType(dtype)
        raise _NotPlain(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType):
            return _StorageRef(pid[1].dtype, str(pid[2]), int(pid[4]))
        raise _NotPlain("persistent id")


def _pread(fd: int, size: int, at: int) -> bytes:
    data = os.pread(fd, size, at)
    if len(data) != size:
        raise _NotPlain("short read")
    return data


def locate(fd: int, base: int, length: int) -> tuple[_Stored, int]:
    """The tensor stored in the item at [base, base+length) and the file offset of its storage's bytes."""
    if length < 22:
        raise _NotPlain("too short")
    tail = _pread(fd, 22, base + length - 22)
    count, cd_size, cd_off = struct.unpack("<HII", tail[10:20])
    if tail[:4] != _EOCD or cd_off + cd_size > length or cd_size > _MAX_PICKLE:
        raise _NotPlain("no plain zip directory")
    cd = _pread(fd, cd_size, base + cd_off)
    records: dict[str, tuple[int, int]] = {}
    p = 0
    for _ in range(count):
        if cd[p : p + 4] != _CENTRAL:
            raise _NotPlain("central directory")
        method, size, nlen, elen, clen, local = (
            struct.unpack("<H", cd[p + 10 : p + 12])[0],
            struct.unpack("<I", cd[p + 24 : p + 28])[0],
            *struct.unpack("<HHH", cd[p + 28 : p + 34]),
            struct.unpack("<I", cd[p + 42 : p + 46])[0],
        )
        name = cd[p + 46 : p + 46 + nlen].decode("utf-8", "replace")
        p += 46 + nlen + elen + clen
        if method != 0:
            raise _NotPlain("compressed record")
        head = _pread(fd, 30, base + local)
        if head[:4] != _LOCAL:
            raise _NotPlain("local header")
        start = local + 30 + sum(struct.unpack("<HH", head[26:30]))
        if start + size > length:
            raise _NotPlain("record past the item")
        records[name.rpartition("/")[2] if name.endswith("/data.pkl") else name] = (base + start, size)
    if "data.pkl" not in records or records["data.pkl"][1] > _MAX_PICKLE:
        raise _NotPlain("no data.pkl")
    at, size = records["data.pkl"]
    stored = _TensorPickle(io.BytesIO(_pread(fd, size, at))).load()
    if not isinstance(stored, _Stored):
        raise _NotPlain("not one tensor")
    data = next((v for k, v in records.items() if k.endswith(f"/data/{stored.storage.key}")), None)
    itemsize = _element_size(stored.storage.dtype)
    if data is None or data[1] < stored.storage.numel * itemsize:
        raise _NotPlain("no storage record")
    return stored, data[0]


def _element_size(dtype) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()


def _contiguous(size: tuple, stride: tuple) -> bool:
    expect = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        if n != 1 and s != expect:
            return False
        expect *= n
    return True


def read_into(fd: int, stored: _Stored, data_at: int, offsets, lengths, target) -> bool:
    """Read the region (offsets, lengths) of `stored` into `target` with one preadv; False if it cannot."""
    size = stored.size
    if (
        sys.byteorder != "little"
        or target.dtype != stored.storage.dtype
        or target.device.type != "cpu"
        or not target.is_contiguous()
        or tuple(target.shape) != tuple(lengths)
        or len(size) != len(offsets)
        or not _contiguous(size, stored.stride)
    ):
        return False
    inner = next((d for d in range(len(size)) if lengths[d] != 1), len(size))  # dims before it: one index each
    if any(offsets[d] != 0 or lengths[d] != size[d] for d in range(inner + 1, len(size))):
        return False  # the region is not one run of bytes
    itemsize = target.element_size()
    first = stored.offset + sum(o * s for o, s in zip(offsets, stored.stride, strict=True))
    nbytes = target.numel() * itemsize
    if (first * itemsize + nbytes) > stored.storage.numel * itemsize or first < 0:
        return False
    if not nbytes:
        return True
    view = memoryview((ctypes.c_char * nbytes).from_address(target.data_ptr())).cast("B")
    done, at = 0, data_at + first * itemsize
    while done < nbytes:
        got = os.preadv(fd, [view[done:]], at + done)
        if got <= 0:
            raise OSError(f"the file ends before the tensor's {nbytes:,} bytes")
        done += got
    return True


def read_plan_items(folder: str, storage_data: dict, items, planner) -> list:
    """Read `items` (DCP ReadItems of tensors) file by file in offset order; return those left for DCP's reader."""
    per_file: dict[str, list] = {}
    for item in items:
        info = storage_data[item.storage_index]
        if getattr(info, "transform_descriptors", None):
            per_file.setdefault("", []).append(item)  # a transformed stream: DCP's reader
        else:
            per_file.setdefault(info.relative_path, []).append(item)
    left = per_file.pop("", [])
    for rel, reqs in per_file.items():
        reqs.sort(key=lambda r: storage_data[r.storage_index].offset)
        fd = os.open(os.path.join(folder, rel), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            located: dict[int, tuple[_Stored, int] | None] = {}
            for req in reqs:
                info = storage_data[req.storage_index]
                if info.offset not in located:
                    try:
                        located[info.offset] = locate(fd, info.offset, info.length)
                    except (_NotPlain, pickle.UnpicklingError, EOFError, ValueError, struct.error):
                        located[info.offset] = None
                where = located[info.offset]
                target = planner.resolve_tensor(req).detach()
                if where is None or not read_into(fd, where[0], where[1], req.storage_offsets, req.lengths, target):
                    left.append(req)
                    continue
                planner.commit_tensor(req, target)
        finally:
            os.close(fd)
    return left
