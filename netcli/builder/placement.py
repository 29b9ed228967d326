"""Model parallelism (SPEC 1.1 `device:`): hooks that move a block's inputs to the device it was placed on."""

from __future__ import annotations

import torch
from torch import nn

from netcli.builder.custom_block import CustomBlock
from netcli.core.errors import NetcliError


def link_devices(
    module: nn.Module, device: torch.device, runs_on: dict, incoming: torch.device | None
) -> torch.device | None:
    """Hook each block whose input arrives from another device to move it first; return the output's device.

    A block runs on its own `device:`, else its parent's; in a Sequential each
    child's input comes from the previous child, so the network's output is on
    the device of its last block. No hook where nothing moves.
    """
    own = runs_on.get(id(module), device)
    if own != incoming:  # incoming None: not known (after a custom block with placed children)
        module.register_forward_pre_hook(_move_inputs(own))
    if isinstance(module, CustomBlock):
        # its forward decides what each child gets: a child placed elsewhere moves its inputs, and
        # the others move theirs back; the output is then where the last child that ran put it
        placed = [m for m in module.modules() if id(m) in runs_on and m is not module]
        if not placed:
            return own
        for child in module.children():
            link_devices(child, own, runs_on, None)
        return None
    if not isinstance(module, nn.Sequential):
        return own
    out = own
    for child in module:
        out = link_devices(child, own, runs_on, out)
    return out


def _move_inputs(device: torch.device):
    """Return a pre-hook that moves tensor inputs to `device` (D2L's `X.cuda(1)`)."""

    def hook(module, args):
        if device.type != "meta" and any(isinstance(a, torch.Tensor) and a.is_meta for a in args):
            raise NetcliError(
                f"a {type(module).__name__} on {device} gets its input from a block on meta, which has no values",
                hint="put the meta blocks last, or run it all with --device meta",
            )
        return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)

    return hook
