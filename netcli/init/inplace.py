"""Initialize, in place, a network someone else allocated: built on meta, then `to_empty` (maybe `fully_shard`ed).

torchtitan's flow without a seed checkpoint: the user builds on meta, applies
FSDP2 (or not), calls `to_empty`, and asks netcli for the values. They are
those `--fast-init` gives (`fastinit`): each tensor drawn in seeded chunks by
its name, a DTensor shard drawing only the chunks its rows overlap, so the
values are the same bit for bit in one process and at any world size.

Blocks that `--fast-init` builds for real (a module holding tensors that its
`reset_parameters` does not set, see `fastinit.needs_real_build`) are built
again here the same way, on the CPU from their path's seed, and their values
copied into this network's (local part of the) tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from netcli.builder.meta import CPU
from netcli.core.errors import NetcliError
from netcli.init import fastinit
from netcli.init.draws import local_part
from netcli.init.plan import plan_rules
from netcli.init.rules import Touched, all_rules
from netcli.specfile.loading import LoadedSpec


def initialize_allocated(
    net: nn.Module, loaded: LoadedSpec, seed: int | None, inferred: dict[str, dict[str, Any]], rules: Sequence[str] = ()
) -> list[Touched]:
    """Set every parameter and buffer of `net` (built from `loaded`) to its `--fast-init` values under `seed`.

    Return what the spec's rules (then `rules`) set, as `init --json` reports it.
    """
    state = net.state_dict()
    on_meta = [name for name, t in state.items() if t.is_meta]
    if on_meta:
        raise NetcliError(
            f"'{on_meta[0]}' is on meta: there is no memory to initialize",
            hint="allocate the network first: net.to_empty(device=...)",
        )
    # the one-pass build of the same spec: on meta, but for the blocks it builds for real (their values)
    reference = fastinit.build_on_meta(loaded, CPU, seed, inferred, rules)
    modules = dict(net.named_modules(remove_duplicate=False))
    real = {
        id(modules[name])
        for name, module in reference.built.net.named_modules(remove_duplicate=False)
        if id(module) in reference.real and name in modules
    }
    with torch.no_grad():
        for name, value in reference.built.net.state_dict().items():
            if not value.is_meta and name in state:
                dest, start, stop = local_part(state[name])
                dest.copy_(value.reshape(-1)[start:stop].view(dest.shape))
    # the rules resolved on this network's own tensors (fully_shard replaces the Parameter objects)
    plan = plan_rules(net, all_rules(loaded, rules) if (loaded.spec.init or rules) else [])
    fastinit.initialize_in_place(net, dataclasses.replace(reference, plan=plan, real=real))
    return plan.report(net)
