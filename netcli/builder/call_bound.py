"""A bound on the module calls one forward makes, counted on the built network before anything runs.

Calls multiply: a forward that calls its child 1,000 times, whose forward calls
its own child 1,000 times, ... four levels deep is 10^12 calls, and the shape
check (or a run) would never end. Each custom block's compiled forward lists
the children it calls (`_netcli_calls`, one entry per call site, loops
unrolled); any other module calls each of its children once at most. The
product is counted with a cap, and a network over `MAX_CALLS` is refused at
the innermost block whose forward goes over it.
"""

from __future__ import annotations

from torch import nn

from netcli.builder.origins import origin_of
from netcli.core.errors import NetcliError
from netcli.specfile.loading import LoadedSpec

MAX_CALLS = 20_000  # module calls in one forward: the shape check on meta runs about 4,000 a second


def count_calls(net: nn.Module) -> dict[int, int]:
    """Module id -> the calls one call of it makes (itself included), each capped at MAX_CALLS + 1."""
    memo: dict[int, int] = {}

    def calls(module: nn.Module) -> int:
        key = id(module)
        if key in memo:
            return memo[key]
        memo[key] = MAX_CALLS + 1  # a module reached again while counting it: treat as too many
        targets = getattr(type(module), "_netcli_calls", None)
        if targets is not None:
            parts = (calls(module.get_submodule(t)) for t in targets)
        else:
            parts = (calls(child) for child in module.children())
        total = 1
        for n in parts:
            total = min(total + n, MAX_CALLS + 1)
        memo[key] = total
        return total

    calls(net)
    return memo


def check_calls(loaded: LoadedSpec, net: nn.Module, origins: dict) -> None:
    """Raise a located NetcliError when one forward of `net` would call more than MAX_CALLS modules."""
    counts = count_calls(net)
    if counts.get(id(net), 0) <= MAX_CALLS:
        return
    culprit = ""  # the innermost block over the bound: later in named_modules is deeper
    for name, module in net.named_modules():
        if counts.get(id(module), 0) > MAX_CALLS and getattr(type(module), "_netcli_calls", None) is not None:
            culprit = name
    module = net.get_submodule(culprit) if culprit else net
    per_call = len(getattr(type(module), "_netcli_calls", ()) or ())
    path = origin_of(origins, culprit)
    raise NetcliError(
        loaded.problem(
            path + ("forward",) if per_call else path,
            f"one forward of '{culprit or '(root)'}' ({type(module).__name__}) calls more than {MAX_CALLS:,} "
            f"modules" + (f" ({per_call:,} calls in its forward, each calling more)" if per_call else ""),
            "calls multiply through nested forwards: call a child fewer times, or nest fewer such blocks",
        )
    )
