"""The chapter's hand-written PyTorch for each shipped config, written as the book writes it."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def mlp():
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))


def rgnet():
    def block1():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

    def block2():
        net = nn.Sequential()
        for i in range(4):
            net.add_module(f"block {i}", block1())
        return net

    return nn.Sequential(block2(), nn.Linear(4, 1))


def shared():
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))


class NestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


class FixedHiddenMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand((20, 20)))
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


def chimera():
    return nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


def mlp_block():
    return MLP()


def named():
    return nn.Sequential(OrderedDict([("hidden", nn.Linear(20, 256)), ("act", nn.ReLU()),
                                      ("output", nn.Linear(256, 10))]))


class CenteredLayer(nn.Module):
    def forward(self, X):
        return X - X.mean()


def centered():
    return nn.Sequential(nn.Linear(8, 128), CenteredLayer())


class MyLinear(nn.Module):
    def __init__(self, in_units, units):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units))
        self.bias = nn.Parameter(torch.randn(units,))

    def forward(self, X):
        return F.relu(torch.matmul(X, self.weight.data) + self.bias.data)


def mylinear():
    return nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))


def frozen():
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    net[0].requires_grad_(False)
    return net


def devices():
    # auto:0 and auto:1 are the CPU on a machine without GPUs
    return nn.Sequential(nn.Sequential(nn.Linear(20, 256), nn.ReLU()), nn.Linear(256, 10))


def mlp_wide():
    # configs/mlp_wide.yaml: extends mlp.yaml, with 1024 hidden units
    return nn.Sequential(nn.Linear(20, 1024), nn.ReLU(), nn.Linear(1024, 10))


def resnet34():
    # configs/resnet34.yaml extends resnet18.yaml: torchvision's resnet34(), 21,797,672 parameters
    from handwritten_nets import BasicBlock, ResNet
    return ResNet(BasicBlock, [3, 4, 6, 3])


# config stem -> hand-written builder; every shipped config must appear here
HANDWRITTEN = {
    "mlp": mlp, "rgnet": rgnet, "shared": shared, "chimera": chimera, "mlp_block": mlp_block,
    "named": named, "centered": centered, "mylinear": mylinear, "frozen": frozen, "devices": devices,
    "mlp_wide": mlp_wide, "resnet34": resnet34,
}


def lenet():
    # D2L 7.6; configs/lenet.yaml writes none of the input sizes (shape inference, issue 6)
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


HANDWRITTEN["lenet"] = lenet
