"""The summary table's vocabulary: the columns `--columns` may name, and counts written as 3.64G.

The table itself is drawn by the command line (netcli/cli/render_summary.py).
"""

from __future__ import annotations

from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

# --- columns ----------------------------------------------------------------

COLUMNS = ("shape", "params", "param_mem", "trainable", "macs", "flops", "act_mem", "device")


def parse_columns(text: str | None, label: str = "--columns") -> list[str] | None:
    """Read `shape,params,flops` (or `all`); None when not given; a located error for an unknown name."""
    if text is None:
        return None
    names = [n.strip().lower().replace("-", "_") for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(COLUMNS)
    aliases = {
        "output": "shape",
        "mem": "param_mem",
        "activations": "act_mem",
        "activation": "act_mem",
        "frozen": "trainable",
        "mac": "macs",
        "flop": "flops",
        "parameters": "params",
    }
    out = []
    for name in names:
        name = aliases.get(name, name)
        if name not in COLUMNS:
            raise NetcliError(
                Problem(
                    f"unknown column '{name}'",
                    location=Location(label),
                    hint=did_you_mean(name, COLUMNS) or f"choose from {', '.join(COLUMNS)}, all",
                )
            )
        if name not in out:
            out.append(name)
    if not out:
        raise NetcliError(
            Problem("no columns named", location=Location(label), hint=f"choose from {', '.join(COLUMNS)}, all")
        )
    return out


def human_count(n: int | None, unit: str = "") -> str:
    """Format a count as 3.64G, 15.9K or 772; with a unit, as 3.64 GFLOPs or 772 FLOPs."""
    if n is None:
        return "-"
    for prefix, scale in (("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            value = n / scale
            number = f"{value:.3g}" if value < 1000 or prefix == "P" else f"{value:.0f}"
            return f"{number} {prefix}{unit}" if unit else f"{number}{prefix}"
    return f"{n} {unit}" if unit else str(n)
