"""DCGAN generator (Radford et al., arXiv 1511.06434), as in the PyTorch DCGAN faces tutorial.

The `faces64` zoo model (weights from the MIT-licensed `gan-face-generate` 1.1.1 wheel) uses it:
z `[B, nz]` → ConvTranspose 4×4 → BN → ReLU (the stem, 4×4), three ×2 ConvTranspose+BN+ReLU
stages (8, 16, 32), then a ×2 ConvTranspose + tanh head (64×64). Unconditional: it supports
feature blending, not label swap. Submodules keep the tutorial's `main.N` names so its
state dicts load without renaming.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..layers import Condition
from .base import Generator


@dataclass
class DCGANConfig:
    z_dim: int = 100      # nz
    ngf: int = 64         # base feature width
    n_channels: int = 3   # nc
    eps: float = 1e-5     # PyTorch BN default, as trained


class DCGANGenerator(Generator):
    architecture = "dcgan"

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        nz, ngf, nc = config.z_dim, config.ngf, config.n_channels
        chans = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0], eps=config.eps), nn.ReLU()]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b, eps=config.eps), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.z_dim, self.n_classes, self.class_names = nz, 0, []
        self.stem_resolution, self.resolution = 4, 64
        self.stage_names = ["b8", "b16", "b32"]
        self.stage_resolutions = [8, 16, 32]

    def stem(self, z, cond: Condition):
        return self.main[0:3](z.view(z.shape[0], -1, 1, 1))  # [B, 8ngf, 4, 4]

    def stage(self, i, h, cond: Condition):
        return self.main[3 + 3 * i: 6 + 3 * i](h)

    def head(self, h):
        return self.main[12:](h)
