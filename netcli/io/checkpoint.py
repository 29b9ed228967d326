"""Read a checkpoint without trusting it: safetensors (with netcli's metadata checked) or a weights-only torch file.

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
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.progress import Progress
from netcli.core.ties import tie_groups

from netcli.io.format import (DAMAGED_HINT, META_ALIASES, META_CRC32, META_NETCLI, META_SHA256, META_SPEC,
                               SAFETENSORS, SAFETENSORS_DTYPES, TORCH_SUFFIXES, numel)



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

    def __init__(self, path: str, fmt: str, kind: str, infos: dict[str, TensorInfo],
                 aliases: dict[str, str], metadata: dict[str, str], others: dict[str, str],
                 tensors: dict[str, Any] | None = None, crc32: dict[str, str] | None = None):
        self.path = path
        self.format = fmt          # "safetensors" | "torch"
        self.kind = kind           # "safetensors" | "tensor" | "list" | "tuple" | "dict" | "state_dict"
        self.infos = infos         # stored tensors, each once
        self.aliases = aliases     # other name -> stored name
        self.metadata = metadata
        self.others = others       # non-tensor values of a torch file: name -> repr
        self._tensors = tensors    # torch files: loaded (memory-mapped where torch can)
        self._crc32 = crc32 or {}
        self._handle = None
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
            raise NetcliError(Problem(f"tensor '{name}' does not match its checksum: the file is damaged",
                                      location=Location(self.path), hint="save it again from its spec"))
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
            raise damaged(path, f"cannot read its header again: {error_text(exc)}; "
                                "it changed or was cut short while netcli read it") from exc
        self.base = 8 + length

    def read(self, name: str, info: TensorInfo):
        import torch
        entry = self.header.get(name) if isinstance(self.header, dict) else None
        code = entry.get("dtype") if isinstance(entry, dict) else None
        known = SAFETENSORS_DTYPES.get(code) if isinstance(code, str) else None
        if (known is None or known[0] != info.dtype or tuple(entry.get("shape", ())) != tuple(info.shape)
                or not isinstance(entry.get("data_offsets"), list) or len(entry["data_offsets"]) != 2):
            raise damaged(self.path, f"tensor '{name}' is not what its header said a moment ago: "
                                     "the file changed while netcli read it")
        start, end = entry["data_offsets"]
        if end - start != info.nbytes:
            raise damaged(self.path, f"tensor '{name}' takes {end - start} bytes, not the {info.nbytes} its shape needs")
        buffer = torch.empty(info.nbytes, dtype=torch.uint8)
        try:
            self.file.seek(self.base + start)
            got = self.file.readinto(memoryview(buffer.numpy())) if info.nbytes else 0
        except OSError as exc:
            raise damaged(self.path, f"cannot read tensor '{name}': {exc.strerror or exc}") from exc
        if got != info.nbytes:
            size = os.fstat(self.file.fileno()).st_size
            raise damaged(self.path, f"the file ends at byte {size:,}, inside tensor '{name}' (bytes "
                                     f"{self.base + start:,} to {self.base + end:,}): it was cut short, "
                                     "perhaps while netcli read it")
        return buffer.view(getattr(torch, info.dtype)).reshape(info.shape)


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"the file ends {n - len(data)} bytes early")
    return data


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Open a .safetensors or torch file (found by its first bytes, not its name) and list what it holds.

    A folder or index file of the Hugging Face sharded layout, or a DCP
    folder, opens as one checkpoint too (netcli.io.shards).
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise NetcliError(Problem("no such file", location=Location(path),
                                  hint="give a .safetensors, .pt, .pth or .params file"))
    from netcli.io import shards
    layout = shards.layout_of(p)
    if layout == "index":  # the Hugging Face sharded layout: model.safetensors.index.json + shards
        return shards.read_index(p)
    if layout == "dcp":  # a torch.distributed.checkpoint folder
        return shards.read_dcp(p)
    if p.is_dir():
        raise NetcliError(Problem("is a folder, not a tensor file", location=Location(path),
                                  hint="a checkpoint folder holds model.safetensors.index.json or a DCP .metadata"))
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
    raise NetcliError(Problem("not a safetensors or torch file", location=Location(path),
                              hint="netcli reads .safetensors files and files written by torch.save"))


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
        _check_zip(path)
        _refuse_programs(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # torch names what the pickle asked for: a global (a function or class) or an object to build
        wanted = re.search(r"GLOBAL (\S+)", text) or re.search(r"(?:Can only create new object|Can only build).*got (.+)", text)
        if "Weights only load failed" in text and wanted:
            raise NetcliError(Problem(
                "not a weights-only checkpoint (it would run code on load); refusing to read it",
                location=Location(path),
                hint=f"it asks for {wanted.group(1)}; if you trust it, load it in Python and save tensors only: "
                     "torch.save(net.state_dict(), FILE)")) from None
        if "Weights only load failed" in text:
            operand = re.search(r"Unsupported operand (\S+)", text)
            raise damaged(path, "not a readable torch file: its pickle is malformed"
                           + (f" (unsupported operand {operand.group(1)})" if operand else "")) from exc
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc
    except Exception as exc:
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc
    kind, flat, others = _flatten(obj, path)
    for name, t in flat.items():
        odd = _unusual(t)
        if odd is not None:
            raise NetcliError(Problem(f"tensor '{name or '(the tensor)'}' is {odd}; netcli reads plain dense tensors",
                                      location=Location(path),
                                      hint="convert it in Python first (t.to_dense(), t.dequantize()) and save again"))
    state = {n: t for n, t in flat.items()}
    infos: dict[str, TensorInfo] = {}
    aliases: dict[str, str] = {}
    for names in tied_names(state):
        t = state[names[0]]
        infos[names[0]] = TensorInfo(names[0], tuple(t.shape), str(t.dtype).removeprefix("torch."),
                                     t.numel() * t.element_size(), list(names[1:]))
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
    _check_zip(ckpt.path)  # the file may have been replaced since: the same checks before reading it
    _refuse_programs(ckpt.path)
    try:
        obj = torch.load(ckpt.path, map_location="cpu", weights_only=True, mmap=False)
        _, flat, _ = _flatten(obj, ckpt.path)
    except NetcliError:
        raise
    except Exception as exc:
        raise damaged(ckpt.path, f"cannot read its values: {error_text(exc)}; it changed or was cut short "
                                 "while netcli read it") from exc
    for name, info in ckpt.infos.items():
        t = flat.get(name)
        if t is None or tuple(t.shape) != info.shape or str(t.dtype).removeprefix("torch.") != info.dtype:
            raise damaged(ckpt.path, f"tensor '{name}' is not what the file held a moment ago: "
                                     "it changed while netcli read it")
    return flat


def _refuse_programs(path: str) -> None:
    """Say what a TorchScript or torch.export archive is, instead of torch's advice to unpickle it with code."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    if any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in names):
        what, load = "a TorchScript archive", "torch.jit.load"
    elif any(n.endswith("archive_format") or "/serialized_exported_program" in n for n in names):
        what, load = "a torch.export program (.pt2)", "torch.export.load"
    else:
        return
    raise NetcliError(Problem(f"this is {what}, not a state_dict", location=Location(path),
                              hint=f"netcli reads tensors; open it with {load}, or save the network's "
                                   "state_dict: torch.save(net.state_dict(), FILE)"))


MAX_ZIP_ENTRIES = 1_000_000
ZIP_SLACK = 1 << 26  # inflated bytes allowed beyond the file's own size (64 MiB)


def _check_zip(path: str) -> None:
    """Check every entry's crc32 in a torch zip file (torch's reader does not), with progress.

    torch writes its entries uncompressed, one after another, so the data it
    declares cannot be much larger than the file, and no two entries share
    bytes. A zip bomb breaks both (2,000 directory entries pointing at one
    1 GiB deflated entry), and is refused before anything is inflated.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
            if len(entries) > MAX_ZIP_ENTRIES:
                raise damaged(path, f"its zip directory lists {len(entries):,} entries "
                                     f"(more than {MAX_ZIP_ENTRIES:,})")
            size = os.path.getsize(path)
            declared = sum(i.file_size for i in entries)
            if declared > size + ZIP_SLACK:
                raise damaged(path, f"its zip entries declare {declared:,} bytes of data in a file of {size:,} "
                                     "bytes (torch stores entries uncompressed); refusing to inflate it")
            spans = sorted((i.header_offset, i.header_offset + 30 + len(i.filename.encode()) + i.compress_size)
                           for i in entries)
            if any(start < previous_end for (_, previous_end), (start, _) in zip(spans, spans[1:])):
                raise damaged(path, "two of its zip entries share the same bytes; refusing to inflate it")
            with Progress(f"checking {path}", sum(i.file_size for i in entries)) as bar:
                for info in entries:
                    with zf.open(info) as f:  # reading to the end checks the entry's crc32
                        while chunk := f.read(1 << 24):
                            bar.advance(len(chunk))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, UnicodeDecodeError, ValueError,
            NotImplementedError, RuntimeError, zlib.error) as exc:  # unknown version or method, "encrypted"
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc


def _unusual(t) -> str | None:
    """Say what kind of tensor this is when it is not a plain dense one with values, else None."""
    import torch
    if getattr(t, "is_nested", False):
        return "a nested tensor"
    if t.layout != torch.strided:
        return f"a {str(t.layout).removeprefix('torch.').removesuffix('_coo')} tensor ({t.layout})"
    if t.is_quantized:
        return f"quantized ({str(t.dtype).removeprefix('torch.')})"
    if t.device.type == "meta":
        return "on meta (it holds no values)"
    if t.device.type != "cpu":
        return f"on {t.device}"
    return None


MAX_ENTRIES = 1_000_000  # names a torch file may hold (tensors and other values)
MAX_NESTING = 100  # containers inside containers: a state_dict is one level


def _flatten(obj, path: str = "") -> tuple[str, dict, dict]:
    """Return (kind, {name: tensor}, {name: repr of other values}) for what torch.load returned.

    A pickle can share one container many times (`x = [x, x]` sixty times is
    2 KB and 2**60 paths): each container is walked once, and a later
    reference to it is listed as `(same as NAME)`. The walk uses its own stack
    (no recursion limit on a deep file) and stops past MAX_ENTRIES names.
    """
    import torch
    tensors: dict[str, Any] = {}
    others: dict[str, str] = {}
    seen: dict[int, str] = {}
    stack = [(obj, "", 0)]
    count = 0
    while stack:
        value, name, depth = stack.pop()
        count += 1
        if count > MAX_ENTRIES:
            raise damaged(path, f"holds more than {MAX_ENTRIES:,} values; refusing to list them")
        if depth > MAX_NESTING:
            raise damaged(path, f"its values nest deeper than {MAX_NESTING} levels; refusing to list them")
        if isinstance(value, torch.Tensor):
            tensors[name] = value
            continue
        if isinstance(value, (dict, list, tuple)):
            if value and id(value) in seen:  # (empty ones may be one shared object: `()`)
                others[name] = f"(same as {seen[id(value)] or 'the whole'})"
                continue
            seen[id(value)] = name
            items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
            for k, v in reversed(items):
                stack.append((v, f"{name}.{k}" if name else str(k), depth + 1))
            continue
        others[name] = _short_repr(value)
    if isinstance(obj, torch.Tensor):
        kind = "tensor"
    elif isinstance(obj, dict):
        kind = "state_dict" if hasattr(obj, "_metadata") else "dict"
    else:
        kind = type(obj).__name__
    return kind, tensors, others


def _short_repr(value, limit: int = 200) -> str:
    """A value's repr, cut short: a 100 MB string in a pickle should not be printed whole."""
    try:
        text = repr(value) if not isinstance(value, (str, bytes)) or len(value) <= limit else repr(value[:limit])
    except Exception as exc:  # noqa: BLE001 - a repr that fails says what it is instead
        text = f"<{type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


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


def damaged(path: str, message: str) -> NetcliError:
    return NetcliError(Problem(message, location=Location(str(path)), hint=DAMAGED_HINT))


def error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0]
    return text.split(". This is an internal miniz error")[0]


