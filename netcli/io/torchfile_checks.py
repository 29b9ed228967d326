"""What a torch file must pass before `torch.load` reads it, and what it may hold after.

A file anyone may have written is checked first: its zip directory (entries,
declared sizes, shared bytes: a zip bomb is refused before anything is
inflated) and its pickle (a program is refused); then what it holds is walked
once, bounded in values and nesting, and unusual tensors are named.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import Any

from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.progress import Progress
from netcli.io.format import damaged, error_text


def refuse_programs(path: str) -> None:
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
    raise NetcliError(
        Problem(
            f"this is {what}, not a state_dict",
            location=Location(path),
            hint=f"netcli reads tensors; open it with {load}, or save the network's "
            "state_dict: torch.save(net.state_dict(), FILE)",
        )
    )


MAX_ZIP_ENTRIES = 1_000_000
ZIP_SLACK = 1 << 26  # inflated bytes allowed beyond the file's own size (64 MiB)


def check_zip(path: str) -> None:
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
                raise damaged(path, f"its zip directory lists {len(entries):,} entries (more than {MAX_ZIP_ENTRIES:,})")
            size = os.path.getsize(path)
            declared = sum(i.file_size for i in entries)
            if declared > size + ZIP_SLACK:
                raise damaged(
                    path,
                    f"its zip entries declare {declared:,} bytes of data in a file of {size:,} "
                    "bytes (torch stores entries uncompressed); refusing to inflate it",
                )
            spans = sorted(
                (i.header_offset, i.header_offset + 30 + len(i.filename.encode()) + i.compress_size) for i in entries
            )
            if any(start < previous_end for (_, previous_end), (start, _) in zip(spans, spans[1:], strict=False)):
                raise damaged(path, "two of its zip entries share the same bytes; refusing to inflate it")
            with Progress(f"checking {path}", sum(i.file_size for i in entries)) as bar:
                for info in entries:
                    with zf.open(info) as f:  # reading to the end checks the entry's crc32
                        while chunk := f.read(1 << 24):
                            bar.advance(len(chunk))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        UnicodeDecodeError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        zlib.error,
    ) as exc:  # unknown version or method, "encrypted"
        raise damaged(path, f"not a readable torch file: {error_text(exc)}") from exc


def unusual_kind(t) -> str | None:
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


def flatten(obj, path: str = "") -> tuple[str, dict, dict]:
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
