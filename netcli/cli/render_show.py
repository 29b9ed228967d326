"""`netcli show`'s table: what a tensor file holds, its embedded spec, small tensors' values."""

from __future__ import annotations

import math


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
                count = math.prod(int(n) for n in t["shape"])
                console.print(f"{label}: {count:,} values, more than {limit}; not shown", markup=False)
            else:
                dtype = getattr(torch, t["dtype"], None)
                shown = torch.tensor(t["values"], dtype=dtype) if dtype is not None else t["values"]
                console.print(f"{label} = {shown}", markup=False, highlight=False)
