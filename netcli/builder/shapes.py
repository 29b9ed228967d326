"""Run a network once with hooks to learn each block's output shape, or where it fails.

Used by `validate` (on the meta device, so no memory is spent on values) and
by `build`'s summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# Messages torch gives when a block needs real values (a `while` on a tensor).
_DATA_DEPENDENT = ("meta", "data-dependent", "item()", "Cannot copy out of meta tensor")


@dataclass
class ShapeTrace:
    """Output shapes by module name, and the block where the run stopped, if it did."""

    shapes: dict[str, tuple] = field(default_factory=dict)
    inputs: dict[str, tuple] = field(default_factory=dict)
    failed_at: str | None = None
    error: Exception | None = None
    output: object = None

    @property
    def data_dependent(self) -> bool:
        """True when the run stopped because a block needs real values, not a shape."""
        return self.error is not None and any(s in str(self.error) for s in _DATA_DEPENDENT)


def _shape(value) -> tuple | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(value[0].shape)
    return None


def trace_shapes(net: nn.Module, x) -> ShapeTrace:
    """Run `net(x)` under no_grad and record every module's output shape.

    `x` may be a tuple: the inputs of a forward that takes several (`net(*x)`).
    """
    trace = ShapeTrace()
    stack: list[str] = []
    handles = []
    names: dict[int, list[str]] = {}  # a tied module has several names
    for name, module in net.named_modules(remove_duplicate=False):
        names.setdefault(id(module), []).append(name)
    for name, module in net.named_modules():
        calls = iter(names[id(module)])  # the n-th call of a tied module is its n-th name

        def pre(mod, args, _name=name, _calls=calls):
            current = next(_calls, _name)
            stack.append(current)
            shape = _shape(args[0]) if args else None
            if shape is not None:
                trace.inputs.setdefault(current, shape)

        def post(mod, args, out):
            current = stack.pop() if stack else ""
            shape = _shape(out)
            if shape is not None:
                trace.shapes.setdefault(current, shape)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad():
            trace.output = net(*x) if isinstance(x, tuple) else net(x)
    except Exception as exc:  # any failure inside a block is reported as that block's
        trace.error = exc
        trace.failed_at = stack[-1] if stack else ""
    finally:
        for h in handles:
            h.remove()
    return trace
