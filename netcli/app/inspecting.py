"""`netcli inspect`: one tensor, one block's state_dict, or every tensor of a network (with `grad`, its grads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.core.errors import NetcliError
from netcli.init import params


@dataclass
class Inspected:
    """What was asked for: `tensor` (`--param`), `block` (`--module`), else `inventory` (every tensor)."""

    built: Built
    grads: bool
    tensor: params.Found | None = None
    tied: list[str] = field(default_factory=list)  # every name of `tensor`, itself included, where it is tied
    block: params.Found | None = None
    block_grads: dict[str, Any] = field(default_factory=dict)  # with `grads`: each of `block`'s grads by name
    inventory: params.Inventory | None = None

    def as_json(self) -> dict[str, Any]:
        """`inspect --json`'s object for what was asked for."""
        if self.tensor is not None:
            name = self.tensor.name
            return {**params.tensor_view(self.tensor), "tied": [n for n in self.tied if n != name]}
        if self.block is not None:
            return params.state_view(self.block, grads=self.grads)
        assert self.inventory is not None
        return {"name": self.built.loaded.name, "device": str(self.built.device), **self.inventory.as_json()}


def inspect_network(
    source: str | None,
    reading: Reading,
    building: Building,
    *,
    param: str | None = None,
    module: str | None = None,
    grad: bool = False,
) -> Inspected:
    """Build the spec (or rebuild the checkpoint) `source`, find `param` or `module`; `grad` runs a backward first."""
    from netcli.app.network import open_network

    if param is not None and module is not None:
        raise NetcliError("give --param or --module, not both", hint="run inspect twice")
    built = open_network(source, reading, building)
    net = built.net
    if grad:
        if built.device.type == "meta":
            raise NetcliError("--grad needs values, and the network is on meta", hint="use --device cpu")
        from netcli.app.running import backward
        from netcli.io.inputs import make_input

        backward(built, make_input(None, built.loaded.spec.input, built.device))
    if param is not None:
        found = params.find_tensor(net, param)
        tied = next((g for g in params.inventory(net).tied if found.name in g), [])
        return Inspected(built, grad, tensor=found, tied=list(tied))
    if module is not None:
        block = params.find(net, module, tensors=False)
        block_grads = params.module_grads(block.module) if grad else {}
        return Inspected(built, grad, block=block, block_grads=block_grads)
    return Inspected(built, grad, inventory=params.inventory(net, grads=grad))
