"""SNGAN projection discriminator (Miyato & Koyama, ICLR 2018) for training the shipped generators.

Pre-activation residual blocks with average-pool downsampling, spectral norm on every weight
(`torch.nn.utils.parametrizations.spectral_norm`), global sum pooling, and the projection
term `<embed(y), h>` that makes the class condition a dot product rather than an input channel.
Only training uses it; it is never shipped.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(c_in: int, c_out: int, k: int) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    nn.init.xavier_uniform_(conv.weight, gain=2 ** 0.5 if k == 3 else 1.0)
    nn.init.zeros_(conv.bias)
    return spectral_norm(conv)


class DBlock(nn.Module):
    """ReLU→conv→ReLU→conv (→avgpool) plus a 1×1 shortcut; `first` skips the leading ReLU on RGB input."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False):
        super().__init__()
        self.c1, self.c2 = _sn_conv(c_in, c_out, 3), _sn_conv(c_out, c_out, 3)
        self.c_sc = _sn_conv(c_in, c_out, 1) if (c_in != c_out or downsample) else None
        self.downsample, self.first = downsample, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        sc = x
        if self.first:              # pool before the 1×1 conv: same result, 4× cheaper
            sc = self.c_sc(F.avg_pool2d(sc, 2) if self.downsample else sc)
        elif self.c_sc is not None:
            sc = self.c_sc(sc)
            sc = F.avg_pool2d(sc, 2) if self.downsample else sc
        return h + sc


class ProjectionDiscriminator(nn.Module):
    """`forward(x [B,3,R,R], y [B]) → [B]` scores; channels[i] is block i's width."""

    def __init__(self, n_classes: int, channels: list[int], resolution: int):
        super().__init__()
        n_down = resolution.bit_length() - 1 - 2          # down to 4×4
        if len(channels) < n_down:
            raise ValueError(f"{len(channels)} blocks cannot downsample {resolution}px to 4px")
        blocks, c_in = [], 3
        for i, c in enumerate(channels):
            blocks.append(DBlock(c_in, c, downsample=i < n_down, first=i == 0))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.l_out = spectral_norm(nn.Linear(c_in, 1))
        nn.init.xavier_uniform_(self.l_out.parametrizations.weight.original)
        self.embed = spectral_norm(nn.Embedding(n_classes, c_in)) if n_classes else None
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.parametrizations.weight.original)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))        # [B, C]
        out = self.l_out(h)[:, 0]
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out
