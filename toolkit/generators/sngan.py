"""SNGAN-projection ResNet generator — the architecture of the Neural Collage paper.

Miyato & Koyama, "cGANs with Projection Discriminator" (ICLR 2018) define it; Suzuki et al.,
"Collaging on Internal Representations" (arXiv 1811.10153) edit it with spatial CBN.
`l1` linear → reshape to a 4×4 map → upsampling ResNet blocks (`block2`, `block3`, …) with
class-conditional BN `b1`/`b2`, 3×3 convs `c1`/`c2`, a 1×1 shortcut `c_sc`, nearest ×2
upsampling before `c1` and `c_sc` → plain BN → ReLU → 3×3 conv → tanh.

Parameter names follow the Chainer originals (`block2.b1.gammas`, `l1.weight`, …) so that the
released `ResNetGenerator_*.npz` files map onto this module key by key (see checkpoints.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import Condition, ConditionalBatchNorm2d, upsample2x
from .base import Generator


@dataclass
class SNGANConfig:
    z_dim: int = 128                 # latent size
    n_classes: int = 143             # 0 = unconditional (plain BN)
    bottom_width: int = 4            # side of the first feature map
    channels: list[int] = field(default_factory=lambda: [1024, 1024, 512, 256, 128, 64])
    # channels[0] is the stem's output; block i maps channels[i] -> channels[i+1] (×2 resolution)
    eps: float = 2e-5                # Chainer's BN eps: the released weights were trained with it
    class_names: list[str] | None = None


class Block(nn.Module):
    """Pre-activation upsampling residual block with (conditional) BN."""

    def __init__(self, c_in: int, c_out: int, n_classes: int, eps: float):
        super().__init__()
        bn = (lambda c: ConditionalBatchNorm2d(c, n_classes, eps)) if n_classes else \
             (lambda c: nn.BatchNorm2d(c, eps=eps))
        self.b1, self.b2 = bn(c_in), bn(c_out)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1)
        self.conditional = bool(n_classes)

    def _bn(self, bn, x, cond):
        return bn(x, cond) if self.conditional else bn(x)

    def forward(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        h = F.relu(self._bn(self.b1, x, cond))
        h = self.c1(upsample2x(h))
        h = F.relu(self._bn(self.b2, h, cond))
        h = self.c2(h)
        # A 1×1 conv commutes with nearest upsampling: convolve first, on 4× fewer pixels.
        return h + upsample2x(self.c_sc(x))


class SNGANGenerator(Generator):
    architecture = "sngan"

    def __init__(self, config: SNGANConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.z_dim, self.n_classes = config.z_dim, config.n_classes
        self.stem_resolution = config.bottom_width
        self.resolution = config.bottom_width * 2 ** (len(c) - 1)
        self.class_names = list(config.class_names or [f"class {i}" for i in range(config.n_classes)])
        if len(self.class_names) != config.n_classes:
            raise ValueError(f"config has {config.n_classes} classes but {len(self.class_names)} class names")
        n_blocks = len(c) - 1
        # Chainer numbering: block2..block{n+1}, then b{n+2}/l{n+2} for the head.
        self.block_names = [f"block{i + 2}" for i in range(n_blocks)]
        self.l1 = nn.Linear(config.z_dim, config.bottom_width ** 2 * c[0])
        for i, name in enumerate(self.block_names):
            self.add_module(name, Block(c[i], c[i + 1], config.n_classes, config.eps))
        self.head_index = n_blocks + 2
        self.add_module(f"b{self.head_index}", nn.BatchNorm2d(c[-1], eps=config.eps))
        self.add_module(f"l{self.head_index}", nn.Conv2d(c[-1], 3, 3, padding=1))
        self.stage_names = [f"b{config.bottom_width * 2 ** (i + 1)}" for i in range(n_blocks)]
        self.stage_resolutions = [config.bottom_width * 2 ** (i + 1) for i in range(n_blocks)]

    def stem(self, z, cond):
        h = self.l1(z)                                   # [B, bw*bw*C]
        return h.view(z.shape[0], -1, self.config.bottom_width, self.config.bottom_width)  # [NCHW]

    def stage(self, i, h, cond):
        return getattr(self, self.block_names[i])(h, cond)

    def head(self, h):
        h = F.relu(getattr(self, f"b{self.head_index}")(h))
        return torch.tanh(getattr(self, f"l{self.head_index}")(h))


def tiny_config() -> SNGANConfig:
    """A 32×32, 5-class toy configuration for fast tests (seconds on a CPU)."""
    return SNGANConfig(z_dim=16, n_classes=5, channels=[32, 32, 16, 8],
                       class_names=["red", "green", "blue", "yellow", "purple"])


@torch.no_grad()
def randomize(gen: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights *and* non-trivial BN statistics and gains, so tests exercise every term."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda t, scale, offset=0.0: t.copy_(offset + scale * torch.randn(t.shape, generator=g))
    for m in gen.modules():
        if isinstance(m, (nn.BatchNorm2d, ConditionalBatchNorm2d)):
            rand(m.running_mean, 0.2)
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            gain, bias = (m.gammas, m.betas) if isinstance(m, ConditionalBatchNorm2d) else (m.weight, m.bias)
            rand(gain, 0.3, 1.0)
            rand(bias, 0.1)
        elif isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            fan_in = m.weight[0].numel()
            rand(m.weight, fan_in ** -0.5)
            if m.bias is not None:
                rand(m.bias, 0.1)
    return gen
