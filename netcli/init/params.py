"""Find and list a network's parameters and buffers: paths, tied groups, the data `inspect` shows.

A path is dot-separated, each step a child's name or its position among the
children, as `net[0][1][0].bias` is written in Python: in rgnet, `0.1.0.bias`
and `0.block 1.0.bias` reach the same tensor. Tied tensors (one module used
twice) are one row, listed under every name, and counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netcli.core.errors import NetcliError
from netcli.core.qualnames import join


@dataclass(frozen=True)
class Found:
    """What a path reached: a module, or one of its parameters/buffers (`attr`)."""

    module: nn.Module
    name: str  # the canonical qualified name, e.g. "0.block 1.0" or "0.block 1.0.bias"
    attr: str | None = None

    @property
    def tensor(self) -> torch.Tensor | None:
        return None if self.attr is None else getattr(self.module, self.attr)


class PathError(NetcliError):
    """A path that leads nowhere; the message lists what exists where it stopped."""

    level: str = ""  # what exists where the path stopped
    parent: str = ""  # the name of the module where it stopped


def children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return (name, child) in order, keeping a module used twice at both positions."""
    # named_children() drops repeats, which would shift the positions of a
    # Sequential that holds one shared layer twice (configs/shared.yaml).
    return [(n, m) for n, m in module._modules.items() if m is not None]


def own_tensors(module: nn.Module) -> list[str]:
    """Return the names of the module's own parameters, then its buffers."""
    return [n for n, p in module._parameters.items() if p is not None] + [
        n for n, b in module._buffers.items() if b is not None
    ]


def describe_level(module: nn.Module, name: str) -> str:
    """Say what exists under `module`: its children and its own parameters/buffers."""
    who = f"'{name}'" if name else "the root"
    kids = [n for n, _ in children(module)]
    tensors = own_tensors(module)
    parts = []
    if kids:
        parts.append(
            f"the children of {who} are {', '.join(kids)}" if name else f"the root's children are {', '.join(kids)}"
        )
    if tensors:
        parts.append(f"the tensors of {who} are {', '.join(tensors)}")
    if not parts:
        return f"{who} ({type(module).__name__}) has no children and no tensors"
    return "; ".join(parts)


def find(net: nn.Module, path: str, *, tensors: bool = True) -> Found:
    """Walk `path` from the root: names first, then positions; the last step may be a tensor."""
    path = path.strip()
    if path in ("", "."):
        return Found(net, "")
    module, name = net, ""
    steps = path.split(".")
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        kids = children(module)
        names = [n for n, _ in kids]
        child = module._modules.get(step)
        if child is not None:
            module, name = child, join(name, step)
            continue
        if step.lstrip("-").isdigit() and -len(kids) <= int(step) < len(kids):
            child_name, module = kids[int(step)]
            name = join(name, child_name)
            continue
        if tensors and last and step in own_tensors(module):
            return Found(module, join(name, step), step)
        if last and step in own_tensors(module):  # where only blocks are wanted
            raise PathError(f"'{join(name, step)}' is a tensor, not a block", hint=f"the block is '{name or '(root)'}'")
        if step in own_tensors(module):  # a tensor in the middle of the path
            raise PathError(
                f"'{join(name, step)}' is a tensor, so '{'.'.join(steps[i + 1 :])}' cannot follow it",
                hint=f"end the path at '{join(name, step)}'",
            )
        what = "child or parameter" if tensors else "child"
        level = describe_level(module, name)
        error = PathError(
            f"'{path}' matches nothing; {level}",
            hint=f"{_where(name)} has no {what} '{step}': write a name or a position "
            f"{'0..' + str(len(names) - 1) if names else ''}".rstrip()
            + " from that list",
        )
        error.level, error.parent = level, name
        try:
            raise error
        finally:  # the frame would hold its own exception: a cycle keeping the whole network alive until gc
            del error
    return Found(module, name)


def _where(name: str) -> str:
    return f"'{name}'" if name else "the root"


@dataclass
class TensorRow:
    """One tensor of the state_dict: a parameter or persistent buffer, under all its names."""

    names: list[str]
    kind: str  # "parameter" or "buffer"
    shape: list[int]
    dtype: str
    device: str
    requires_grad: bool
    numel: int
    bytes: int
    grad_norm: float | None = None  # with grads=True: the L2 norm of .grad (None where there is none)
    with_grad: bool = False

    @property
    def name(self) -> str:
        return self.names[0]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tied": self.names[1:],
            "kind": self.kind,
            "shape": self.shape,
            "dtype": self.dtype,
            "device": self.device,
            "requires_grad": self.requires_grad,
            "numel": self.numel,
            "bytes": self.bytes,
            **({"grad_norm": self.grad_norm} if self.with_grad else {}),
        }


@dataclass
class Inventory:
    """Every parameter and persistent buffer, tied ones grouped, with totals counted once."""

    rows: list[TensorRow] = field(default_factory=list)

    @property
    def tied(self) -> list[list[str]]:
        return [r.names for r in self.rows if len(r.names) > 1]

    def totals(self) -> dict[str, int]:
        params = [r for r in self.rows if r.kind == "parameter"]
        return {
            "parameters": sum(r.numel for r in params),
            "trainable": sum(r.numel for r in params if r.requires_grad),
            "buffers": sum(r.numel for r in self.rows if r.kind == "buffer"),
            "tensors": len(self.rows),
            "bytes": sum(r.bytes for r in self.rows),
        }

    def as_json(self) -> dict[str, Any]:
        return {"tensors": [r.as_json() for r in self.rows], "tied": self.tied, "totals": self.totals()}


def inventory(module: nn.Module, prefix: str = "", *, grads: bool = False) -> Inventory:
    """List the module's state_dict tensors (parameters and persistent buffers), tied ones once.

    With `grads`, each row also carries the norm of the tensor's `.grad` (`inspect --grad`).
    """
    rows: dict[int, TensorRow] = {}
    for key, t in module.state_dict(keep_vars=True).items():
        name = join(prefix, key)
        if id(t) in rows:  # the same tensor under another name: tied
            rows[id(t)].names.append(name)
            continue
        is_param = isinstance(t, nn.Parameter)
        rows[id(t)] = TensorRow(
            names=[name],
            kind="parameter" if is_param else "buffer",
            shape=list(t.shape),
            dtype=str(t.dtype).removeprefix("torch."),
            device=str(t.device),
            requires_grad=bool(t.requires_grad) if is_param else False,
            numel=t.numel(),
            bytes=t.numel() * t.element_size(),
            with_grad=grads,
        )
        if grads and is_param and t.grad is not None and t.device.type != "meta":
            rows[id(t)].grad_norm = float(t.grad.detach().double().norm())
    return Inventory(list(rows.values()))


def find_tensor(module: nn.Module, path: str) -> Found:
    """Like `find`, for a path that must end at a tensor (`--param`); a block is an error that says so."""
    found = find(module, path)
    if found.attr is None:
        raise NetcliError(
            f"--param {path}: '{found.name or '(root)'}' is a block, not a tensor",
            hint=f"use --module {path}, or --param {found.name + '.' if found.name else ''}"
            f"{(own_tensors(found.module) or ['weight'])[0]}",
        )
    return found


def state_view(found: Found, *, grads: bool = False) -> dict[str, Any]:
    """Describe one block's state_dict (`--module`): each tensor's shape, dtype and values; with `grads`, its grad."""

    def view(v: torch.Tensor) -> dict[str, Any]:
        out = {
            "shape": list(v.shape),
            "dtype": str(v.dtype).removeprefix("torch."),
            "value": None if v.device.type == "meta" else v.detach().cpu().tolist(),
        }
        if grads:
            g = v.grad if isinstance(v, nn.Parameter) else None
            out["grad"] = None if g is None or g.device.type == "meta" else g.detach().cpu().tolist()
        return out

    return {
        "module": found.name,
        "type": type(found.module).__name__,
        "state_dict": {k: view(v) for k, v in found.module.state_dict(keep_vars=True).items()},
    }


def module_grads(module: nn.Module) -> dict[str, torch.Tensor | None]:
    """Each parameter's `.grad` by its state_dict name (`inspect --module M --grad`)."""
    return {
        k: (v.grad if isinstance(v, nn.Parameter) else None)
        for k, v in module.state_dict(keep_vars=True).items()
        if isinstance(v, nn.Parameter)
    }


def tensor_view(found: Found) -> dict[str, Any]:
    """Describe one tensor as the chapter prints it: class, value, grad."""
    t = found.tensor
    assert t is not None
    on_meta = t.device.type == "meta"
    grad = t.grad if isinstance(t, nn.Parameter) else None
    return {
        "name": found.name,
        "class": f"{type(t).__module__}.{type(t).__qualname__}",
        "kind": "parameter" if isinstance(t, nn.Parameter) else "buffer",
        "shape": list(t.shape),
        "dtype": str(t.dtype).removeprefix("torch."),
        "device": str(t.device),
        "requires_grad": bool(t.requires_grad),
        "value": None if on_meta else t.detach().cpu().tolist(),
        "grad": None if grad is None or on_meta else grad.detach().cpu().tolist(),
    }


def run_backward(net: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
    """Run one forward pass and backpropagate the sum of the output, so every used parameter has a grad.

    `x` may be a tuple: the inputs of a forward that takes several.
    """
    out = net(*x) if isinstance(x, tuple) else net(x)
    first = out
    while isinstance(first, (tuple, list)) and first:  # e.g. an LSTM's (output, (h, c))
        first = first[0]
    if not isinstance(first, torch.Tensor) or not first.requires_grad:
        raise NetcliError(
            "the network's output does not depend on any trainable parameter",
            hint="--grad needs at least one parameter with requires_grad",
        )
    first.sum().backward()
