"""Where sharded checkpoints live: the names of the Hugging Face index layout and of a DCP folder, and sizes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from netcli.core.errors import Location, NetcliError, Problem
from netcli.io.format import SAFETENSORS

INDEX_SUFFIX = ".safetensors.index.json"
INDEX_NAME = "model" + INDEX_SUFFIX
DCP_METADATA = ".metadata"
DCP_SPEC = "netcli.yaml"
DCP_INFO = "netcli.json"
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.safetensors$")
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
    "TIB": 1 << 40,
}


def parse_size(text: str | int, where: str = "--max-shard-size") -> int:
    """Parse "5GB", "500MB", "1.5GiB" or a number of bytes (GB = 10**9 as Hugging Face counts; GiB = 2**30)."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", str(text), re.IGNORECASE)
        if m is None:
            raise NetcliError(
                Problem(
                    f"'{text}' is not a size",
                    location=Location(where),
                    hint="write a number of bytes or e.g. 4GiB, 500MiB "
                    "(GB and MB count powers of 10, as Hugging Face does)",
                )
            )
        value = int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])
    if value <= 0:
        raise NetcliError(Problem(f"the size must be positive, got '{text}'", location=Location(where)))
    return value


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
        raise NetcliError(
            Problem(f"holds {len(found)} index files", location=Location(str(p)), hint="name the index file itself")
        )
    return found[0]


def owned_name(name: str) -> bool:
    """Whether a file in a checkpoint folder is one netcli (or DCP) writes there: safe to replace."""
    return (
        name.endswith(SAFETENSORS)
        or name.endswith(INDEX_SUFFIX)
        or name.endswith(".distcp")
        or name in (DCP_METADATA, DCP_SPEC, DCP_INFO)
    )


def netcli_version() -> str:
    from netcli.core.version import VERSION

    return VERSION


def torch_version() -> str:
    import torch

    return torch.__version__
