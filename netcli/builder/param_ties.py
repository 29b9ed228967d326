"""Parameter-level ties (SPEC 1.8): `tie: ["transformer.wte.weight = lm_head.weight"]`.

Each entry runs as the hand-written line `self.transformer.wte.weight =
self.lm_head.weight` runs: after the block's children are created, in order,
on the module that writes it (a custom block, or the whole network for the
top-level `tie:`). Both sides are dotted paths of child names or positions
ending in a tensor's name; the tensor on the left must exist and have the
right side's shape, so a typo never silently adds an attribute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from netcli.core.errors import NetcliError, Problem, did_you_mean


def split_tie(text: str) -> tuple[str, str]:
    """`"a.weight = b.weight"` -> ("a.weight", "b.weight") (the schema checked the form)."""
    left, _, right = text.partition("=")
    return left.strip(), right.strip()


def apply_ties(root: nn.Module, ties: list[str], problem: Callable[[int, str, str], Problem]) -> None:
    """Run each tie on `root`; a side that names no tensor raises `problem(index, message, hint)`."""
    for i, text in enumerate(ties):
        left, right = split_tie(text)
        source = _tensor(root, right, lambda m, h, i=i: problem(i, m, h))
        owner_path, _, attr = left.rpartition(".")
        owner = _module(root, owner_path, lambda m, h, i=i: problem(i, m, h))
        target = _tensor(root, left, lambda m, h, i=i: problem(i, m, h))
        if attr not in owner._parameters:
            raise NetcliError(
                problem(i, f"'{left}' is a buffer: only a parameter can be tied", "tie parameters (weights, biases)")
            )
        if target.shape != source.shape:
            raise NetcliError(
                problem(
                    i,
                    f"'{left}' has shape {list(target.shape)} and '{right}' {list(source.shape)}: "
                    "a tie shares one tensor",
                    "tie tensors of the same shape (a transposed use is F.linear(x, enc.weight.t()) in a forward)",
                )
            )
        setattr(owner, attr, source)


def _module(root: nn.Module, path: str, problem) -> nn.Module:
    module = root
    for part in path.split(".") if path else ():
        child = module._modules.get(part)
        if child is None:
            names = list(module._modules)
            raise NetcliError(
                problem(
                    f"no child '{part}' in '{path}'",
                    did_you_mean(part, names) or (f"children: {', '.join(names)}" if names else "it has no children"),
                )
            )
        module = child
    return module


def _tensor(root: nn.Module, path: str, problem):
    owner_path, _, attr = path.rpartition(".")
    owner = _module(root, owner_path, problem)
    found: torch.Tensor | None = owner._parameters.get(attr)
    if found is None:
        found = owner._buffers.get(attr)
    if found is None:
        names = [n for n, t in [*owner._parameters.items(), *owner._buffers.items()] if t is not None]
        where = f"'{owner_path}'" if owner_path else "this block"
        raise NetcliError(
            problem(
                f"{where} has no tensor '{attr}'",
                did_you_mean(attr, names) or (f"its tensors: {', '.join(names)}" if names else "it holds no tensors"),
            )
        )
    return found
