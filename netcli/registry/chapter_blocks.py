"""The chapter's own layers and blocks ("Dive into Deep Learning", ch. 5), as spec types.

Each class builds its submodules in the order the book's code does, so a seeded
build draws the same random numbers and gets the same parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netcli.registry.catalog import register_block


@register_block
class CenteredLayer(nn.Module):
    """Subtract the mean: a layer with no parameters."""

    def forward(self, X):
        return X - X.mean()


@register_block(inferable=("in_units",))
class MyLinear(nn.Module):
    """A fully connected layer with its own weight and bias, then ReLU."""

    def __init__(self, in_units: int, units: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units))

    def forward(self, X):
        # The book uses self.weight.data here, which cuts the gradient; netcli
        # keeps the graph so a MyLinear network can be trained.
        linear = torch.matmul(X, self.weight) + self.bias
        return F.relu(linear)


@register_block
class MLP(nn.Module):
    """The book's first block: 20 -> 256 -> ReLU -> 10."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


@register_block
class FixedHiddenMLP(nn.Module):
    """A block with a constant random weight, a reused layer and a while loop."""

    def __init__(self):
        super().__init__()
        # A buffer, not a parameter: no gradient, but saved with the state_dict.
        self.register_buffer("rand_weight", torch.rand((20, 20)))
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)  # the same layer again: its parameters are shared
        while X.abs().sum() > 1:  # data-dependent control flow
            X /= 2
        return X.sum()


@register_block
class NestMLP(nn.Module):
    """A block holding a Sequential and a Linear: blocks nest."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU()
        )
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))
