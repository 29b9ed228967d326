"""Hand-written twins of the forward-language specs in test_forward_language.py, as a person writes them in torch.

Each class creates its modules and tensors in the order its spec writes
`children:` (so seeded values match) and writes the forward the spec's
`forward:` stands for: nanoGPT's layout (a ModuleDict holding a ModuleList,
causal SDPA, arange positions, the tied lm_head read as a weight), a
ViT-style token stack (a class token and position embedding, layer scale),
nested loops and a ModuleDict's values, and torchvision's `downsample`
test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.heads, self.dim = heads, dim

    def forward(self, x):
        b, t = x.shape[0], x.shape[1]
        q, k, v = self.c_attn(x).split(self.dim, dim=2)
        q = q.view(b, t, self.heads, self.dim // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, self.dim // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, self.dim // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, self.dim))


class Block(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab=32, block_size=8, dim=16, depth=2):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, dim),
                wpe=nn.Embedding(block_size, dim),
                h=nn.ModuleList([Block(dim) for _ in range(depth)]),
                ln_f=nn.LayerNorm(dim),
            )
        )
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        t = idx.shape[1]
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + F.embedding(pos, self.transformer.wpe.weight)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        return F.linear(x, self.lm_head.weight)


class Tokens(nn.Module):
    """A class token and a position embedding before a stack of layer-scaled Linear blocks (timm's layout)."""

    def __init__(self, dim=8, tokens=4, depth=2):
        super().__init__()
        self.patch = nn.Linear(6, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim))
        self.blocks = nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)])
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.patch(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = x + self.gamma * blk(x)
        return self.norm(x)[:, 0]


class Nested(nn.Module):
    """Loops inside loops, and a ModuleDict's values summed."""

    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList(
            [nn.Sequential(nn.Linear(4, 4), nn.Tanh()), nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))]
        )
        self.heads = nn.ModuleDict(dict(a=nn.Linear(4, 3), b=nn.Linear(4, 3)))

    def forward(self, x):
        for stage in self.stages:
            for layer in stage:
                x = layer(x)
        y = x[:, :3] * 0
        for head in self.heads.values():
            y = y + head(x)
        return y


class Bottleneck(nn.Module):
    """torchvision's test of an optional downsample, in a small block (downsample created first, as _make_layer)."""

    def __init__(self, inplanes, planes, downsample=None):
        super().__init__()
        self.conv = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn(self.conv(x))
        if self.downsample is not None:
            identity = self.downsample(x)
        else:
            identity = x
        return self.relu(out + identity)


def bottlenecks() -> nn.Sequential:
    down = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8))
    return nn.Sequential(Bottleneck(4, 8, down), Bottleneck(8, 8))


class Funcs(nn.Module):
    """The forward additions of SPEC 1.8 in one block: distances, factories, comparisons, //, %, masks, choices."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.register_buffer("scale", torch.full((6,), 2.0))

    def forward(self, x):
        y = self.proj(x)
        d = F.pairwise_distance(x, y) + F.cosine_similarity(x, y, dim=-1)
        z = torch.zeros(x.shape[0], 3, 6, device=x.device) + torch.ones(3, 6, dtype=x.dtype)
        z = z + torch.full((3, 6), 0.5, device=x.device)
        e = torch.eye(6, device=x.device) + torch.triu(torch.ones(6, 6, device=x.device), diagonal=1)
        keep = (y >= 0) != (y <= 0.5)
        w = (y @ e + z).masked_fill(keep, 0.0) * self.scale
        r = (y * 100).long() % 7 // 2
        g = F.gelu(w, approximate="tanh")
        return g, d, r.to(x.dtype), keep == (y < float("inf"))
