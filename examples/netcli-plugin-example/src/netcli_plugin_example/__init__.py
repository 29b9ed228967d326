"""An example netcli plugin: a learnable `Scale` block and a `scaled_normal` initializer.

Installed (`pip install examples/netcli-plugin-example`), netcli loads it
through its `netcli.plugins` entry point; not installed, name it with
`--plugin netcli_plugin_example` or in a spec's `plugins:` list.
"""

import math

import torch
from torch import nn

import netcli


@netcli.register_block
class Scale(nn.Module):
    """Multiply the input by one learnable scalar, which starts at `init`.

    >>> Scale(0.5)(torch.ones(2))
    tensor([0.5000, 0.5000], grad_fn=<MulBackward0>)
    """

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(init)))

    def forward(self, X):
        return X * self.weight  # (B, ...) * () -> (B, ...)


@netcli.register_init(name="scaled_normal")
def scaled_normal_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Fill the tensor from N(0, std^2) with std = gain / sqrt(fan_in) (LeCun normal when gain is 1)."""
    fan_in = tensor.shape[1] * tensor[0][0].numel() if tensor.dim() > 1 else tensor.shape[0]
    return nn.init.normal_(tensor, 0.0, gain / math.sqrt(max(fan_in, 1)))
