"""Read one tensor file without trusting it: safetensors (with netcli's metadata checked) or a weights-only torch file.

A `.safetensors` file netcli writes holds each tensor once (tied names are
recorded in the metadata), a crc32 of each tensor's bytes, and the resolved
spec with its sha256, so the file alone rebuilds the network. `.pt`/`.pth`/
`.params` hold what `torch.save(net.state_dict(), f)` writes; they are read
only with `weights_only=True`, after the checks that keep a damaged or hostile
file from costing time or memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.ties import tie_groups
from netcli.io.format import (
    DAMAGED_HINT,
    META_ALIASES,
    META_CRC32,
    META_NETCLI,
    META_SHA256,
    META_SPEC,
    SAFETENSORS,
    SAFETENSORS_DTYPES,
    TORCH_SUFFIXES,
    damaged,
    error_text,
    numel,
)
from netcli.io.torchfile_checks import check_zip, flatten, refuse_programs, unusual_kind


@dataclass
class TensorInfo:
    """One tensor a file holds: its name (or index), shape, dtype and size."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    tied: list[str] = field(default_factory=list)  # other names of this same tensor


class Checkpoint:
    """A tensor file opened for reading: what it holds, and its tensors on demand."""

    def __init__(
        self,
        path: str,
        fmt: str,
        kind: str,
        infos: dict[str, TensorInfo],
        aliases: dict[str, str],
        metadata: dict[str, str],
        others: dict[str, str],
        tensors: dict[str, Any] | None = None,
        crc32: dict[str, str] | None = None,
    ):
        self.path = path
        self.format = fmt  # "safetensors" | "torch"
        self.kind = kind  # "safetensors" | "tensor" | "list" | "tuple" | "dict" | "state_dict"
        self.infos = infos  # stored tensors, each once
        self.aliases = aliases  # other name -> stored name
        self.metadata = metadata
        self.others = others  # non-tensor values of a torch file: name -> repr
        self._tensors = tensors  # torch files: loaded (memory-mapped where torch can)
        self._crc32 = crc32 or {}
        self._handle: _SafetensorsReader | None = None
        self._mapped = False  # a torch zip file listed through a memory map: its values are read by a copy

    @property
    def names(self) -> dict[str, str]:
        """Every name the file answers to -> the stored tensor it reads."""
        return {**{n: n for n in self.infos}, **self.aliases}

    @property
    def nbytes(self) -> int:
        return sum(i.nbytes for i in self.infos.values())

    @property
    def spec_text(self) -> str | None:
        return self.metadata.get(META_SPEC)

    def tensor(self, name: str):
        """Read one stored tensor (CPU); check its crc32 where the file has one."""
        if self._tensors is not None and self.format == "torch" and self._mapped:
            self._tensors, self._mapped = _copy_of_mapped(self), False
        if self._tensors is not None:
            return self._tensors[name]
        if self._handle is None:  # one open file for every tensor read
            self._handle = _SafetensorsReader(self.path)
        t = self._handle.read(name, self.infos[name])
        want = self._crc32.get(name)
        if want is not None and crc32(t) != want:
            raise NetcliError(
                Problem(
                    f"tensor '{name}' does not match its checksum: the file is damaged",
                    location=Location(self.path),
                    hint="save it again from its spec",
                )
            )
        return t


class _SafetensorsReader:
    """Read a .safetensors file's tensors with plain reads, not a memory map.

    A mapped file that another program truncates in place (`torch.save` over
    it, `cp` onto it) kills the reader with SIGBUS at the first missing page,
    which no handler can turn into an error. A read past the end is a short
    read instead: a clear error. Each tensor is read straight into its own
    buffer, so this costs no more memory than copying it out of a map.
    """

    def __init__(self, path: str):
        self.path = path
        try:
            self.file = open(path, "rb")  # noqa: SIM115 (kept open for every tensor the caller reads)
            (length,) = struct.unpack("<Q", _read_exactly(self.file, 8))
            self.header = json.loads(_read_exactly(self.file, length))
        except (OSError, ValueError, struct.error) as exc:
            raise damaged(
                path,
                f"cannot read its header again: {error_text(exc)}; it changed or was cut short while netcli read it",
            ) from exc
        self.base = 8 + length

    def read(self, name: str, info: TensorInfo):
        import torch

        entry = self.header.get(name) if isinstance(self.header, dict) else None
        code = entry.get("dtype") if isinstance(entry, dict) else None
        known = SAFETENSORS_DTYPES.get(code) if isinstance(code, str) else None
        if (
            not isinstance(entry, dict)
            or known is None
            or known[0] != info.dtype
            or tuple(entry.get("shape", ())) != tuple(info.shape)
            or not isinstance(entry.get("data_offsets"), list)
            or len(entry["data_offsets"]) != 2
        ):
            raise damaged(
                self.path,
                f"tensor '{name}' is not what its header said a moment ago: the file changed while netcli read it",
            )
        start, end = entry["data_offsets"]
        if end - start != info.nbytes:
            raise damaged(
                self.path, f"tensor '{name}' takes {end - start} bytes, not the {info.nbytes} its shape needs"
            )
        buffer = torch.empty(info.nbytes, dtype=torch.uint8)
        try:
            self.file.seek(self.base + start)
            got = self.file.readinto(buffer.numpy().data) if info.nbytes else 0
        except OSError as exc:
            raise damaged(self.path, f"cannot read tensor '{name}': {exc.strerror or exc}") from exc
        if got != info.nbytes:
            size = os.fstat(self.file.fileno()).st_size
            raise damaged(
                self.path,
                f"the file ends at byte {size:,}, inside tensor '{name}' (bytes "
                f"{self.base + start:,} to {self.base + end:,}): it was cut short, "
                "perhaps while netcli read it",
            )
        return buffer.view(getattr(torch, info.dtype)).reshape(info.shape)


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"the file ends {n - len(data)} bytes early")
    return data


def read_single(path: str | os.PathLike) -> Checkpoint:
    """Open one .safetensors or torch file, found by its first bytes, not its name."""
    path = str(path)
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(16)
    if not head:
        raise NetcliError(Problem("the file is empty", location=Location(path), hint=DAMAGED_HINT))
    if head.startswith(b"PK") or head.startswith(b"\x80"):
        return _read_torch(path, zipped=head.startswith(b"PK"))
    if head[8:9] == b"{" or p.suffix.lower() == SAFETENSORS:
        return read_safetensors(path)
    if p.suffix.lower() in TORCH_SUFFIXES:
        return _read_torch(path, zipped=False)
    raise NetcliError(
        Problem(
            "not a safetensors or torch file",
            location=Location(path),
            hint="netcli reads .safetensors files and files written by torch.save",
        )
    )


def read_safetensors(path: str) -> Checkpoint:
    from safetensors import safe_open

    try:
        # safe_open memory-maps the file: listing it reads only the header (and needs no torch)
        with safe_open(path, framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            infos = {}
            for name in f.keys():
                sl = f.get_slice(name)
                dtype, size = SAFETENSORS_DTYPES.get(sl.get_dtype(), (sl.get_dtype().lower(), 1))
                shape = tuple(int(s) for s in sl.get_shape())
                infos[name] = TensorInfo(name, shape, dtype, numel(shape) * size)
    except NetcliError:
        raise
    except Exception as exc:
        raise damaged(path, f"not a readable safetensors file: {error_text(exc)}") from exc
    ours = (META_SPEC, META_SHA256, META_NETCLI, META_ALIASES, META_CRC32)
    if any(k in metadata for k in ours) and not all(k in metadata for k in ours):
        # a damaged key must not switch the checks off: netcli writes all of them, always
        lost = ", ".join(k for k in ours if k not in metadata)
        raise damaged(path, f"netcli wrote it, but its metadata lacks {lost}")
    try:
        aliases = json.loads(metadata.get(META_ALIASES, "{}"))
        sums = json.loads(metadata[META_CRC32]) if META_CRC32 in metadata else None
    except json.JSONDecodeError as exc:
        raise damaged(path, f"its netcli metadata is not valid JSON ({exc.msg})") from exc
    if not isinstance(aliases, dict) or any(not isinstance(v, str) or v not in infos for v in aliases.values()):
        raise damaged(path, "its tied names point at tensors it does not hold")
    shadowing = sorted(a for a in aliases if a in infos)
    if shadowing:  # `show` would list the stored tensor and `load` give the alias's: one name, two values
        raise damaged(path, f"its tied name '{shadowing[0]}' is also a stored tensor")
    if sums is not None and (not isinstance(sums, dict) or set(sums) != set(infos)):
        raise damaged(path, "its checksums do not name the tensors it holds")
    text = metadata.get(META_SPEC)
    if text is not None and META_SHA256 in metadata:
        if hashlib.sha256(text.encode()).hexdigest() != metadata[META_SHA256]:
            raise damaged(path, "the embedded spec does not match its sha256")
    for alias, stored in aliases.items():
        infos[stored].tied.append(alias)
    return Checkpoint(path, "safetensors", "safetensors", infos, aliases, metadata, {}, crc32=sums)


def _read_torch(path: str, *, zipped: bool) -> Checkpoint:
    import torch

    if zipped:
        check_zip(path)
        refuse_programs(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # torch names what the pickle asked for: a global (a function or class) or an object to build
        wanted = re.search(r"GLOBAL (\S+)", text) or re.search(
            r"(?:Can only create new object|Can only build).*got (.+)", text
        )
        if "Weights only load failed" in text and wanted:
            raise NetcliError(
                Problem(
                    "not a weights-only checkpoint (it would run code on load); refusing to read it",
                    location=Location(path),
                    hint=f"it asks for {wanted.group(1)}; if you trust it, load it in Python and save tensors only: "
                    "torch.save(net.state_dict(), FILE)",
                )
            ) from None
        if "Weights only load failed" in text:
            operand = re.search(r"Unsupported operand (\S+)", text)
            raise damaged(
                path,
                "not a readable torch file: its pickle is malformed"
                + (f" (unsupported operand {operand.group(1)})" if operand else ""),
            ) from exc
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc
    except Exception as exc:
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc
    kind, flat, others = flatten(obj, path)
    for name, t in flat.items():
        odd = unusual_kind(t)
        if odd is not None:
            raise NetcliError(
                Problem(
                    f"tensor '{name or '(the tensor)'}' is {odd}; netcli reads plain dense tensors",
                    location=Location(path),
                    hint="convert it in Python first (t.to_dense(), t.dequantize()) and save again",
                )
            )
    state = {n: t for n, t in flat.items()}
    infos: dict[str, TensorInfo] = {}
    aliases: dict[str, str] = {}
    for names in tied_names(state):
        t = state[names[0]]
        infos[names[0]] = TensorInfo(
            names[0], tuple(t.shape), str(t.dtype).removeprefix("torch."), t.numel() * t.element_size(), list(names[1:])
        )
        aliases.update({other: names[0] for other in names[1:]})
    ckpt = Checkpoint(path, "torch", kind, infos, aliases, {}, others, tensors=state)
    ckpt._mapped = zipped
    return ckpt


def _copy_of_mapped(ckpt: Checkpoint) -> dict:
    """The values of a torch zip file listed through a memory map, read again with plain reads.

    Listing through a map reads no values (`show` of a large file stays cheap);
    touching a mapped value after another program truncated the file in place
    would kill the process with SIGBUS. So values are read with torch's file
    reads, where a short file is an error, and must be what the listing saw.
    """
    import torch

    check_zip(ckpt.path)  # the file may have been replaced since: the same checks before reading it
    refuse_programs(ckpt.path)
    try:
        obj = torch.load(ckpt.path, map_location="cpu", weights_only=True, mmap=False)
        _, flat, _ = flatten(obj, ckpt.path)
    except NetcliError:
        raise
    except Exception as exc:
        raise damaged(
            ckpt.path, f"cannot read its values: {error_text(exc)}; it changed or was cut short while netcli read it"
        ) from exc
    for name, info in ckpt.infos.items():
        t = flat.get(name)
        if t is None or tuple(t.shape) != info.shape or str(t.dtype).removeprefix("torch.") != info.dtype:
            raise damaged(
                ckpt.path, f"tensor '{name}' is not what the file held a moment ago: it changed while netcli read it"
            )
    return flat


def crc32(t) -> str:
    """Return the crc32 of a CPU tensor's bytes as 8 hex digits."""
    import torch

    flat = t.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return f"{0:08x}"
    return f"{zlib.crc32(flat.view(torch.uint8).numpy()) & 0xFFFFFFFF:08x}"


def tied_names(state: dict) -> list[list[str]]:
    """The state_dict's names grouped by tensor, in state_dict order; a file stores each group's first name."""
    return [names for _, names in tie_groups(state.items())]
