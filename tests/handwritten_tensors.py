"""Hand-written twins of the tensor, container and tie forms of SPEC 1.8, as a person writes them in torch.

Each class creates its modules and tensors in the order the matching spec in
test_tensors_containers.py writes its `children:`; the specs must build the
same print, state_dict keys and, under the same seed, the same values.
"""

from __future__ import annotations

import torch
from torch import nn


class Tensors(nn.Module):
    """Every Parameter and Buffer fill, between two Linear layers (a randn draws where it is written)."""

    def __init__(self, dim=8):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.noise = nn.Parameter(torch.randn(dim, 4))
        self.frozen = nn.Parameter(torch.rand(3), requires_grad=False)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))  # ConvNeXt's layer scale
        self.scale = nn.Parameter(torch.ones(dim))
        self.fc = nn.Linear(dim, 4)
        self.register_buffer("mask", torch.tril(torch.ones(4, 4, dtype=torch.bool)), persistent=False)
        self.register_buffer("positions", torch.arange(16))
        self.register_buffer("ident", torch.eye(3))
        self.register_buffer("upper", torch.triu(torch.ones(3, 3)))
        self.register_buffer("table", torch.full((2, 2), 5.0))

    def forward(self, x):
        return self.fc(self.proj(x))


class Layer(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Containers(nn.Module):
    """nanoGPT's layout: a ModuleDict holding an Embedding and a ModuleList of blocks, then a head."""

    def __init__(self, vocab=16, dim=8, depth=3):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, dim),
                h=nn.ModuleList([Layer(dim) for _ in range(depth)]),
                ln_f=nn.LayerNorm(dim),
            )
        )
        self.extra = nn.ModuleList([nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)])
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx):
        x = self.transformer.wte(idx)
        return self.lm_head(self.transformer.ln_f(self.transformer.h[0](x)))


class Tied(Containers):
    """Containers with nanoGPT's weight tying, written after the children."""

    def __init__(self):
        super().__init__()
        self.transformer.wte.weight = self.lm_head.weight


class Bottleneck(nn.Module):
    """torchvision's Bottleneck shape: `downsample` is made by the caller, before the block, registered last."""

    expansion = 4

    def __init__(self, inplanes=8, planes=4, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes * self.expansion, kernel_size=3, stride=stride, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        return self.relu(self.conv2(self.bn1(self.conv1(x))))


def bottlenecks() -> nn.Sequential:
    """As torchvision's _make_layer: the downsample first, then the block that holds it, then one without."""
    downsample = nn.Sequential(nn.Conv2d(8, 16, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(16))
    return nn.Sequential(Bottleneck(8, 4, 2, downsample), Bottleneck(16, 4))
