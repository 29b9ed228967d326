"""Save and load checkpoints: safetensors with the spec inside, or plain torch state_dicts.

A `.safetensors` file netcli writes holds each tensor once (tied names are
recorded in the metadata and tied again on load), a crc32 of each tensor's
bytes, and the resolved spec with its sha256, so the file alone rebuilds the
network. `.pt`/`.pth`/`.params` hold what `torch.save(net.state_dict(), f)`
writes. torch files are read only with `weights_only=True`.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from netcli.core.atomic import atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.progress import Progress
from netcli.core.ties import tensor_key, tie_groups

from netcli.io.format import (DAMAGED_HINT, FORMATS, META_ALIASES, META_CRC32, META_NETCLI, META_SHA256, META_SPEC,
                               META_TORCH, SAFETENSORS, SAFETENSORS_DTYPES, ST_CODES, TORCH_SUFFIXES, numel)


# ---------------------------------------------------------------- data


@dataclass
class TensorInfo:
    """One tensor a file holds: its name (or index), shape, dtype and size."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    tied: list[str] = field(default_factory=list)  # other names of this same tensor


@dataclass
class LoadReport:
    """What a load did: which names it filled, which it skipped and why."""

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per key that did not fit (--no-strict)
    tied: list[list[str]] = field(default_factory=list)
    nbytes: int = 0
    seconds: float = 0.0
    spec_note: str | None = None  # when the given spec differs from the one inside the file

    def as_json(self) -> dict:
        return {"file": self.path, "format": self.format, "loaded": self.loaded, "skipped": self.skipped,
                "tied": self.tied, "bytes": self.nbytes, "seconds": round(self.seconds, 4),
                "spec_note": self.spec_note}


@dataclass
class SaveReport:
    """What a save wrote: the file, its format, the tensors stored and the tied names stored once."""

    path: str
    format: str
    tensors: int
    tied: dict[str, list[str]]  # stored name -> the other names of that tensor
    nbytes: int = 0

    def written(self) -> "SaveReport":
        self.nbytes = os.path.getsize(self.path)
        return self


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
        if self._tensors is not None:
            return self._tensors[name]
        try:
            if self._handle is None:  # one memory-mapped handle for every tensor read
                from safetensors import safe_open
                self._handle = safe_open(self.path, framework="pt", device="cpu")
            t = self._handle.get_tensor(name)
        except Exception as exc:
            raise _damaged(self.path, f"cannot read tensor '{name}': {_first_line(exc)}") from exc
        want = self._crc32.get(name)
        if want is not None and crc32(t) != want:
            raise NetcliError(Problem(f"tensor '{name}' does not match its checksum: the file is damaged",
                                      location=Location(self.path), hint="save it again from its spec"))
        return t


# ---------------------------------------------------------------- saving


def format_of(path: str | os.PathLike) -> str:
    """Return "safetensors" or "torch" for a file name to write; refuse other extensions."""
    suffix = Path(path).suffix.lower()
    if suffix == SAFETENSORS:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise NetcliError(Problem(f"unknown checkpoint format '{suffix or '(no extension)'}'",
                              location=Location(str(path)),
                              hint=f"end the name with one of {', '.join(FORMATS)} (.safetensors keeps the spec)"))


def save_checkpoint(built, path: str | os.PathLike) -> "SaveReport":
    """Write the network's parameters and persistent buffers to `path`, atomically.

    The format follows the extension: `.safetensors` (tied tensors stored once,
    the resolved spec in the metadata) or `.pt`/`.pth`/`.params` (a plain
    state_dict, as `torch.save(net.state_dict(), path)` writes it).
    """
    import torch
    fmt = format_of(path)
    state = built.net.state_dict()
    if built.device.type == "meta" or any(t.device.type == "meta" for t in state.values()):
        raise NetcliError(Problem("a network on meta has no values to save", location=Location(str(path)),
                                  hint="build it on a real device: --device cpu"))
    groups = _tied_names(state)
    total = sum(state[names[0]].numel() * state[names[0]].element_size() for names in groups)
    report = SaveReport(str(path), "torch" if fmt == "torch" else "safetensors", len(groups),
                        {names[0]: names[1:] for names in groups if len(names) > 1})
    with Progress(f"saving {path}", total) as bar:
        if fmt == "torch":
            cpu = _to_cpu(state)
            bar.restart(f"writing {path}", total)
            atomic_write(path, lambda p: (bar.watch(p), _writing(p, torch.save, cpu, p)))
            return report.written()
        from safetensors.torch import save_file
        from netcli.io import stwriter
        tensors, aliases, sums, seen = {}, {}, {}, set()
        for names in groups:
            t = state[names[0]].detach().to("cpu").contiguous()
            if t.numel() and t.untyped_storage().data_ptr() in seen:
                t = t.clone()  # overlapping views of one storage: safetensors stores disjoint bytes
            if t.numel():
                seen.add(t.untyped_storage().data_ptr())
            tensors[names[0]] = t
            aliases.update({other: names[0] for other in names[1:]})
        metadata = checkpoint_metadata(built.loaded)
        metadata[META_ALIASES] = json.dumps(aliases, sort_keys=True)
        if sys.byteorder == "little" and all(str(t.dtype).removeprefix("torch.") in ST_CODES for t in tensors.values()):
            bar.restart(f"writing {path}", total)
            atomic_write(path, lambda p: stwriter.write_safetensors(p, tensors, metadata, bar))
            return report.written()
        for name, t in tensors.items():
            sums[name] = crc32(t)
            bar.advance(t.numel() * t.element_size())
        metadata[META_CRC32] = json.dumps(sums, sort_keys=True)
        # save_file lays the whole file out in memory, then writes it, releasing the GIL:
        # the bar can only pulse while it runs.
        bar.restart(f"writing {path}", None)
        atomic_write(path, lambda p: _writing(p, save_file, tensors, str(p), metadata=metadata))
        return report.written()


def _writing(path, write, *args, **kwargs) -> None:
    """Call a library's writer; turn its own error for a failed write (a full disk) into OSError.

    safetensors raises SafetensorError ("I/O error: No space left on device"),
    torch a RuntimeError from its zip writer; atomic_path reports an OSError
    as a clear error and removes the temp file.
    """
    import errno
    import shutil
    try:
        write(*args, **kwargs)
    except OSError as exc:
        # numpy's "262144 requested and 65504 written" carries no errno: a short write on a full disk
        if exc.errno is None and shutil.disk_usage(Path(path).parent).free < (1 << 16):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
        raise
    except Exception as exc:
        text = _first_line(exc)
        code = re.search(r"os error (\d+)", text)
        if code:
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from exc
        if shutil.disk_usage(Path(path).parent).free < (1 << 16):  # torch's writer hides the errno
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
        raise OSError(f"the write failed ({text})") from exc


def checkpoint_metadata(loaded) -> dict[str, str]:
    """Return the metadata a .safetensors checkpoint carries: spec, sha256, versions."""
    import torch
    from netcli.core.version import VERSION
    return {"format": "pt", META_SPEC: loaded.resolved_text, META_SHA256: loaded.sha256,
            META_NETCLI: VERSION, META_TORCH: torch.__version__}


def _tied_names(state: dict) -> list[list[str]]:
    """The state_dict's names grouped by tensor, in state_dict order; a file stores each group's first name."""
    return [names for _, names in tie_groups(state.items())]


def _to_cpu(state: dict) -> dict:
    """Copy a state_dict to the CPU, keeping tied entries one tensor (torch.save keeps the sharing)."""
    from collections import OrderedDict
    out, done = OrderedDict(), {}
    for name, t in state.items():
        key = tensor_key(t)
        if key not in done:
            done[key] = t.detach().cpu()
        out[name] = done[key]
    if hasattr(state, "_metadata"):
        out._metadata = state._metadata  # keeps the state_dict's module versions, as torch.save would
    return out


def crc32(t) -> str:
    """Return the crc32 of a CPU tensor's bytes as 8 hex digits."""
    import torch
    flat = t.detach().contiguous().reshape(-1)
    if flat.numel() == 0:
        return f"{0:08x}"
    return f"{zlib.crc32(flat.view(torch.uint8).numpy()) & 0xFFFFFFFF:08x}"


# ---------------------------------------------------------------- reading


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
        return _read_safetensors(path)
    if p.suffix.lower() in TORCH_SUFFIXES:
        return _read_torch(path, zipped=False)
    raise NetcliError(Problem("not a safetensors or torch file", location=Location(path),
                              hint="netcli reads .safetensors files and files written by torch.save"))


def _read_safetensors(path: str) -> Checkpoint:
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
        raise _damaged(path, f"not a readable safetensors file: {_first_line(exc)}") from exc
    ours = (META_SPEC, META_SHA256, META_NETCLI, META_ALIASES, META_CRC32)
    if any(k in metadata for k in ours) and not all(k in metadata for k in ours):
        # a damaged key must not switch the checks off: netcli writes all of them, always
        lost = ", ".join(k for k in ours if k not in metadata)
        raise _damaged(path, f"netcli wrote it, but its metadata lacks {lost}")
    try:
        aliases = json.loads(metadata.get(META_ALIASES, "{}"))
        sums = json.loads(metadata[META_CRC32]) if META_CRC32 in metadata else None
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"its netcli metadata is not valid JSON ({exc.msg})") from exc
    if not isinstance(aliases, dict) or any(not isinstance(v, str) or v not in infos for v in aliases.values()):
        raise _damaged(path, "its tied names point at tensors it does not hold")
    shadowing = sorted(a for a in aliases if a in infos)
    if shadowing:  # `show` would list the stored tensor and `load` give the alias's: one name, two values
        raise _damaged(path, f"its tied name '{shadowing[0]}' is also a stored tensor")
    if sums is not None and (not isinstance(sums, dict) or set(sums) != set(infos)):
        raise _damaged(path, "its checksums do not name the tensors it holds")
    text = metadata.get(META_SPEC)
    if text is not None and META_SHA256 in metadata:
        if hashlib.sha256(text.encode()).hexdigest() != metadata[META_SHA256]:
            raise _damaged(path, "the embedded spec does not match its sha256")
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
            raise _damaged(path, "not a readable torch file: its pickle is malformed"
                           + (f" (unsupported operand {operand.group(1)})" if operand else "")) from exc
        raise _damaged(path, f"not a readable torch file: {_first_line(exc)}") from exc
    except Exception as exc:
        raise _damaged(path, f"not a readable torch file: {_first_line(exc)}") from exc
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
    for names in _tied_names(state):
        t = state[names[0]]
        infos[names[0]] = TensorInfo(names[0], tuple(t.shape), str(t.dtype).removeprefix("torch."),
                                     t.numel() * t.element_size(), list(names[1:]))
        aliases.update({other: names[0] for other in names[1:]})
    return Checkpoint(path, "torch", kind, infos, aliases, {}, others, tensors=state)


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
                raise _damaged(path, f"its zip directory lists {len(entries):,} entries "
                                     f"(more than {MAX_ZIP_ENTRIES:,})")
            size = os.path.getsize(path)
            declared = sum(i.file_size for i in entries)
            if declared > size + ZIP_SLACK:
                raise _damaged(path, f"its zip entries declare {declared:,} bytes of data in a file of {size:,} "
                                     "bytes (torch stores entries uncompressed); refusing to inflate it")
            spans = sorted((i.header_offset, i.header_offset + 30 + len(i.filename.encode()) + i.compress_size)
                           for i in entries)
            if any(start < previous_end for (_, previous_end), (start, _) in zip(spans, spans[1:])):
                raise _damaged(path, "two of its zip entries share the same bytes; refusing to inflate it")
            with Progress(f"checking {path}", sum(i.file_size for i in entries)) as bar:
                for info in entries:
                    with zf.open(info) as f:  # reading to the end checks the entry's crc32
                        while chunk := f.read(1 << 24):
                            bar.advance(len(chunk))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, UnicodeDecodeError, ValueError,
            NotImplementedError, RuntimeError, zlib.error) as exc:  # unknown version or method, "encrypted"
        raise _damaged(path, f"not a readable torch file: {_first_line(exc)}") from exc


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
            raise _damaged(path, f"holds more than {MAX_ENTRIES:,} values; refusing to list them")
        if depth > MAX_NESTING:
            raise _damaged(path, f"its values nest deeper than {MAX_NESTING} levels; refusing to list them")
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


# ---------------------------------------------------------------- loading


def load_into(built, path, *, strict: bool = True, assign: bool = False) -> LoadReport:
    """Load a checkpoint's tensors into an already built network.

    Everything is checked before anything is copied: a file that does not fit
    (missing, unexpected or mis-shaped keys) changes nothing and raises
    NetcliError listing each mismatch. With `strict=False` the keys that fit
    are loaded and the others listed in the report's `skipped`. Tied
    parameters stay one tensor: the values are copied into the existing tensors.
    With `assign=True` (a network built for this load, its tensors never
    initialized) a tensor read on the same device and dtype becomes the
    parameter itself, as `load_state_dict(assign=True)`: no second copy in memory.
    """
    import torch
    start = time.perf_counter()
    ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(path)
    label = ckpt.path
    if ckpt.kind in ("tensor", "list", "tuple"):
        raise NetcliError(Problem(f"holds a {ckpt.kind}, not a state_dict: there is nothing to load into a network",
                                  location=Location(label), hint=f"see what it holds: netcli show {label}"))
    target = built.net.state_dict(keep_vars=True)
    if any(t.device.type == "meta" for t in target.values()):
        raise NetcliError(Problem("cannot load values into a network on meta", location=Location(label),
                                  hint="load it on a real device: --device cpu"))
    found = ckpt.names
    groups = _tied_names(target)
    plan: list[tuple[list[str], str]] = []  # (target names, stored name to read)
    problems: list[Problem] = []
    for names in groups:
        want = tuple(target[names[0]].shape)
        present = [n for n in names if n in found]
        shown = names[0] + (f" (tied: {', '.join(names[1:])})" if len(names) > 1 else "")
        if not present:
            problems.append(Problem(f"missing key '{shown}', expected shape {_shape(want)}",
                                    location=Location(label)))
            continue
        stored = found[present[0]]
        got = ckpt.infos[stored].shape
        if got != want:
            problems.append(Problem(f"key '{present[0]}' has shape {_shape(got)}, expected {_shape(want)}",
                                    location=Location(label)))
            continue
        plan.append((names, stored))
    targets = {n for names in groups for n in names}
    for name in found:
        if name not in targets:
            problems.append(Problem(f"unexpected key '{name}', shape {_shape(ckpt.infos[found[name]].shape)}",
                                    location=Location(label)))
    if ckpt.others and ckpt.kind != "state_dict":
        problems.extend(Problem(f"unexpected non-tensor value '{n}' = {v}", location=Location(label))
                        for n, v in ckpt.others.items())
    if problems and (strict or not plan):
        renamed = _renamed_hint(target, groups, ckpt, found)
        if renamed:
            problems.append(Problem(renamed, location=Location(label)))
        what = "nothing in it fits" if not plan else f"{len(problems)} key(s) do not fit"
        problems.append(Problem(f"{what}; nothing was loaded", location=Location(label),
                                hint="give the spec it was saved from" + ("" if not plan or not strict else
                                     ", or --no-strict to load the keys that fit")))
        raise NetcliError(problems)
    report = LoadReport(label, ckpt.format, skipped=[p.message for p in problems],
                        tied=[names for names in groups if len(names) > 1])
    # Read (and verify) every tensor before copying any, so a damaged file changes nothing.
    total = sum(ckpt.infos[stored].nbytes for _, stored in plan)
    values = {}
    with Progress(f"loading {label}", total) as bar:
        for _, stored in plan:
            if stored not in values:
                values[stored] = ckpt.tensor(stored)
                bar.advance(ckpt.infos[stored].nbytes)
    # A tied group the file holds as separate tensors (saved by other code) must agree.
    for names, stored in list(plan):
        copies = {found[n] for n in names if n in found} - {stored}
        for other in sorted(copies):
            if ckpt.infos[other].shape != ckpt.infos[stored].shape or not torch.equal(ckpt.tensor(other), values[stored]):
                message = f"keys '{stored}' and '{other}' are one tied tensor in the network but differ in the file"
                if strict:
                    raise NetcliError(Problem(message + "; nothing was loaded", location=Location(label),
                                              hint="give the spec it was saved from"))
                report.skipped.append(message + f"; loaded '{stored}'")
    assigned = {}
    with torch.no_grad():
        for names, stored in plan:
            t, v = target[names[0]], values[stored]
            # a memory-mapped tensor off torch's 64-byte alignment would take other kernels' paths
            # (bit-different outputs): such a tensor is copied instead
            if assign and t.device == v.device and t.dtype == v.dtype and t.shape == v.shape \
                    and t.stride() == v.stride() and v.data_ptr() % 64 == 0:
                assigned.update({n: v for n in names})  # every tied name gets the one tensor
            else:
                t.copy_(v)  # tied names share this tensor: one copy fills all
            report.loaded.extend(names)
    if assigned:
        built.net.load_state_dict(assigned, strict=False, assign=True)  # keeps each requires_grad
    report.nbytes = total
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------- helpers


def _renamed_hint(target: dict, groups: list[list[str]], ckpt: Checkpoint, found: dict) -> str | None:
    """Say so when the file holds the same shapes in the same order under other names."""
    want = [tuple(target[names[0]].shape) for names in groups]
    stored = [n for n in found if found[n] == n]
    got = [ckpt.infos[n].shape for n in stored]
    if want and want == got and [names[0] for names in groups] != stored:
        return (f"the file holds the same shapes in the same order under other names "
                f"({stored[0]} where the spec has {groups[0][0]}): the spec names its children differently")
    return None


def _damaged(path: str, message: str) -> NetcliError:
    return NetcliError(Problem(message, location=Location(str(path)), hint=DAMAGED_HINT))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0]
    return text.split(". This is an internal miniz error")[0]


def _shape(shape) -> str:
    return str(list(shape))


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
