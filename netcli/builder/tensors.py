"""Tensor children of a custom block (SPEC 1.8): `nn.Parameter(torch.randn(...))` and `register_buffer`.

A `{Parameter: {randn: [4, 4]}}` child is created where `children:` writes it,
with the torch call the hand-written `__init__` makes there, so a seeded build
draws the same values; it is registered under its own name (state_dict key
`cls_token`, nothing in print). The module remembers how each was made
(`FILLS`), so that `--fast-init` can draw it again in place.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netcli.core.errors import NetcliError

FILLS = "_netcli_tensor_fills"  # module attribute: name -> TensorArgs, for --fast-init
RANDOM = {"rand": "uniform_", "randn": "normal_"}  # the fills that draw, as in-place initializers


def make_tensor(args: Any, device: torch.device) -> torch.Tensor:
    """Return the tensor `args` (a TensorArgs) describes, on `device`, as the hand-written call makes it."""
    fill, shape = args.fill, tuple(int(s) for s in args.shape)
    mask = args.bool_ is True
    dtype = torch.bool if mask else None
    if fill in ("zeros", "ones", "empty", "rand", "randn"):
        return getattr(torch, fill)(shape, device=device, dtype=dtype)
    if fill == "full":
        return torch.full(shape, args.value, device=device)
    if fill == "arange":
        return torch.arange(shape[0], device=device)
    if fill == "eye":
        return torch.eye(shape[0], device=device, dtype=dtype)
    ones = torch.ones(shape, device=device, dtype=dtype)  # tril / triu, of ones
    return torch.tril(ones) if fill == "tril" else torch.triu(ones)


def add_tensor(module: nn.Module, name: str, holder: str, args: Any, device: torch.device) -> None:
    """Create the tensor child `name` on `module`, as `self.name = nn.Parameter(...)` / `register_buffer` would."""
    try:
        value = make_tensor(args, device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise NetcliError(f"cannot make the {holder} '{name}': {exc}", hint="check its shape and value") from exc
    if holder == "Parameter":
        if not value.is_floating_point():  # `full: [4], value: 1`: a parameter holds floats
            value = value.to(torch.get_default_dtype())
        module.register_parameter(name, nn.Parameter(value, requires_grad=args.requires_grad is not False))
    else:
        module.register_buffer(name, value, persistent=args.persistent is not False)
    fills = module.__dict__.setdefault(FILLS, {})
    fills[name] = args


def fill_of(module: nn.Module, name: str) -> torch.Tensor | str | None:
    """How to fill module's tensor child `name` again (`--fast-init`): its values made on the CPU for a
    fill that draws nothing, the in-place initializer's name (`normal_`, `uniform_`) for one that does,
    None for `empty` or a tensor this module did not make."""
    args = module.__dict__.get(FILLS, {}).get(name)
    if args is None or args.fill == "empty":
        return None
    if args.fill in RANDOM:
        return RANDOM[args.fill]
    return make_tensor(args, torch.device("cpu"))


def tensor_fills(module: nn.Module) -> dict[str, Any]:
    """The tensor children a built custom block made itself: name -> how (empty for any other module)."""
    return module.__dict__.get(FILLS, {})
