"""Say what a tensor file holds: the data `netcli show` prints and its table (a .safetensors needs no torch)."""

from __future__ import annotations

from netcli.io.checkpoint import read_checkpoint
from netcli.io.format import META_ALIASES, META_CRC32, META_NETCLI, META_SHA256, META_SPEC, META_TORCH, numel


def describe(path, *, values: bool = False, limit: int = 100) -> dict:
    """Return what a tensor file holds, as data: kind, tensors (names, shapes, dtypes, bytes), spec."""
    ckpt = read_checkpoint(path)
    tensors = []
    for info in ckpt.infos.values():
        row = {
            "name": info.name,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "bytes": info.nbytes,
            "tied": info.tied,
        }
        if values:
            count = numel(info.shape)
            row["values"] = ckpt.tensor(info.name).tolist() if count <= limit else None
        tensors.append(row)
    meta = dict(ckpt.metadata)
    spec = None
    if META_SPEC in meta:
        spec = {
            "text": meta.pop(META_SPEC),
            "sha256": meta.pop(META_SHA256, None),
            "netcli": meta.pop(META_NETCLI, None),
            "torch": meta.pop(META_TORCH, None),
        }
    for key in (META_ALIASES, META_CRC32, "format"):
        meta.pop(key, None)
    return {
        "file": ckpt.path,
        "format": ckpt.format,
        "kind": ckpt.kind,
        "count": len(tensors),
        "total_bytes": ckpt.nbytes,
        "tensors": tensors,
        "other_values": ckpt.others,
        "checksums": META_CRC32 in ckpt.metadata,
        "metadata": meta,
        "spec": spec,
    }


def render_description(info: dict, console, *, limit: int = 100) -> None:
    """Print `describe`'s data as a rich table, the embedded spec, and small tensors' values."""
    from rich.table import Table

    from netcli.core.devices import human_bytes
    from netcli.core.terminal import escape  # every name, key and value below came from the file

    kinds = {
        "safetensors": "safetensors tensors",
        "tensor": "one tensor",
        "list": "a list",
        "tuple": "a tuple",
        "dict": "a dict",
        "state_dict": "a state_dict",
    }
    holding = "" if info["kind"] == "safetensors" else f" holding {kinds.get(info['kind'], 'a ' + info['kind'])}"
    console.print(
        f"{escape(info['file'])}: {info['format']} file{holding}, "
        f"{info['count']} tensor(s), {human_bytes(info['total_bytes'])}",
        markup=False,
    )
    table = Table(
        "name" if info["kind"] not in ("list", "tuple") else "index", "shape", "dtype", "bytes", show_footer=False
    )
    if any(t["tied"] for t in info["tensors"]):
        table.add_column("also named (tied)")
    for t in info["tensors"]:
        row = [escape(t["name"]) or "(the tensor)", str(tuple(t["shape"])), escape(t["dtype"]), f"{t['bytes']:,}"]
        if len(table.columns) > 4:
            row.append(escape(", ".join(t["tied"])))
        table.add_row(*row)
    table.add_row("total", "", "", f"{info['total_bytes']:,}", *([""] if len(table.columns) > 4 else []), style="bold")
    console.print(table)
    for name, value in info["other_values"].items():
        console.print(f"{escape(name) or '(value)'} = {escape(value)}", markup=False, highlight=False)
    if info["metadata"]:
        console.print(
            "metadata: " + ", ".join(f"{escape(k)}={escape(v)}" for k, v in info["metadata"].items()), markup=False
        )
    spec = info["spec"]
    if spec is None:
        console.print(
            "no embedded spec" + (" (a plain torch file: load it with a spec)" if info["format"] == "torch" else "")
        )
    else:
        console.print(
            f"embedded spec (sha256 {escape(spec['sha256'])}, netcli {escape(spec['netcli'])}, "
            f"torch {escape(spec['torch'])}):",
            markup=False,
        )
        for line in spec["text"].rstrip("\n").split("\n"):
            console.print("  " + escape(line), markup=False, highlight=False)
    if any("values" in t for t in info["tensors"]):
        import torch

        for t in info["tensors"]:
            label = escape(t["name"]) or "(the tensor)"
            if t["values"] is None:
                console.print(f"{label}: {numel(t['shape']):,} values, more than {limit}; not shown", markup=False)
            else:
                dtype = getattr(torch, t["dtype"], None)
                shown = torch.tensor(t["values"], dtype=dtype) if dtype is not None else t["values"]
                console.print(f"{label} = {shown}", markup=False, highlight=False)
