"""The chapter's registered blocks (registry/chapter_blocks.py) written out as the classes `netcli code` emits.

`inspect.getsource` of the registered classes would carry their registration
decorators and netcli's own line lengths, so the classes are written out here,
laid out as ruff format lays them out. tests/test_eject.py checks that each one
builds, prints, draws and computes what the registered class does.
"""
from __future__ import annotations

CHAPTER_CLASSES: dict[str, str] = {
    "CenteredLayer": '''
class CenteredLayer(nn.Module):
    """Subtract the mean: a layer with no parameters."""

    def forward(self, X):
        return X - X.mean()
''',
    "MyLinear": '''
class MyLinear(nn.Module):
    """A fully connected layer with its own weight and bias, then ReLU."""

    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units))

    def forward(self, X):
        linear = torch.matmul(X, self.weight) + self.bias
        return F.relu(linear)
''',
    "MLP": '''
class MLP(nn.Module):
    """The book's first block: 20 -> 256 -> ReLU -> 10."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))
''',
    "FixedHiddenMLP": '''
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
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
''',
    "NestMLP": '''
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
''',
}

CHAPTER_MODULE = "netcli.registry.chapter_blocks"
