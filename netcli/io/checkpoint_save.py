"""Write a network's tensors, atomically: safetensors (tied tensors once, the spec inside) or a plain state_dict."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from netcli.core.atomic import atomic_write
from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.progress import Progress
from netcli.core.ties import tensor_key
from netcli.io.checkpoint import crc32, tied_names
from netcli.io.format import (
    FORMATS,
    META_ALIASES,
    META_CRC32,
    META_NETCLI,
    META_SHA256,
    META_SPEC,
    META_TORCH,
    SAFETENSORS,
    ST_CODES,
    TORCH_SUFFIXES,
    error_text,
)


@dataclass
class SaveReport:
    """What a save wrote: the file, its format, the tensors stored and the tied names stored once."""

    path: str
    format: str
    tensors: int
    tied: dict[str, list[str]]  # stored name -> the other names of that tensor
    nbytes: int = 0

    def written(self) -> SaveReport:
        self.nbytes = os.path.getsize(self.path)
        return self


def format_of(path: str | os.PathLike) -> str:
    """Return "safetensors" or "torch" for a file name to write; refuse other extensions."""
    suffix = Path(path).suffix.lower()
    if suffix == SAFETENSORS:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise NetcliError(
        Problem(
            f"unknown checkpoint format '{suffix or '(no extension)'}'",
            location=Location(str(path)),
            hint=f"end the name with one of {', '.join(FORMATS)} (.safetensors keeps the spec)",
        )
    )


def save_checkpoint(built, path: str | os.PathLike) -> SaveReport:
    """Write the network's parameters and persistent buffers to `path`, atomically.

    The format follows the extension: `.safetensors` (tied tensors stored once,
    the resolved spec in the metadata) or `.pt`/`.pth`/`.params` (a plain
    state_dict, as `torch.save(net.state_dict(), path)` writes it).
    """
    import torch

    fmt = format_of(path)
    state = built.net.state_dict()
    if built.device.type == "meta" or any(t.device.type == "meta" for t in state.values()):
        raise NetcliError(
            Problem(
                "a network on meta has no values to save",
                location=Location(str(path)),
                hint="build it on a real device: --device cpu",
            )
        )
    groups = tied_names(state)
    total = sum(state[names[0]].numel() * state[names[0]].element_size() for names in groups)
    report = SaveReport(
        str(path),
        "torch" if fmt == "torch" else "safetensors",
        len(groups),
        {names[0]: names[1:] for names in groups if len(names) > 1},
    )
    with Progress(f"saving {path}", total) as bar:
        if fmt == "torch":
            cpu = _to_cpu(state)
            bar.restart(f"writing {path}", total)

            def write(p: Path) -> None:
                bar.watch(p)
                call_writer(p, torch.save, cpu, p)

            atomic_write(path, write)
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
        atomic_write(path, lambda p: call_writer(p, save_file, tensors, str(p), metadata=metadata))
        return report.written()


def call_writer(path, write, *args, **kwargs) -> None:
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
        text = error_text(exc)
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

    return {
        "format": "pt",
        META_SPEC: loaded.resolved_text,
        META_SHA256: loaded.sha256,
        META_NETCLI: VERSION,
        META_TORCH: torch.__version__,
    }


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
        out._metadata = state._metadata  # type: ignore[attr-defined]  # keeps the state_dict's module versions, as torch.save would
    return out
