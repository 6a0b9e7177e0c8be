"""Input-conditioned DCGAN ("cDCGAN"): the class one-hot is concatenated to z before the first layer.

Radford et al.'s DCGAN (arXiv 1511.06434) made conditional the way most tutorials and many
research cGANs do it (Mirza & Osindero, arXiv 1411.1784): `[z; onehot(y)]` at 1×1 goes through
ConvTranspose 4×4 → BN → ReLU (→ Dropout, optional), then ×2 ConvTranspose+BN+ReLU blocks, then
a ×2 ConvTranspose + tanh. The `eyes128` zoo model (the `omniart-eye-generator` 0.1 wheel) is one:
z 100 + 8 classes → 1024 channels at 4×4, stages at 8, 16, 32, 64, head at 128. Submodules keep
the usual `main.N` names so such state dicts load without renaming.

Label swap. The class enters nowhere but the first layer, and that layer is linear in its input:
on a 1×1 input, ConvTranspose(4, stride 1) is `x @ W.view(D, C·16)`. Splitting W into its z rows
and its class rows, the stem output is `z·W_z + c·W_c`; a spatial condition replaces `c·W_c` at
each of the 16 output pixels by `Σ_k w_k(p)·(c_k·W_c)(p)`, which equals feeding the per-pixel mixed
class vector (the mixture weights sum to one). That is exact, and the *only* place the class acts:
the swap therefore has the first layer's spatial resolution, 4×4 (each cell is 1/4 of the image
side; at 128×128 a cell covers 32×32 pixels). Stages after the stem are not class-conditioned, so
`LabelSwap.stages` matters only through stage 0 (which includes the stem). For finer edits the
engine's `LabelSwap(transplant=...)` also pastes the same latent rendered with the target class
at later blend points inside the swap map (see docs/EYES128.md).

Nothing here does I/O; weights are loaded by `toolkit.zoo` / `toolkit.checkpoints`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..layers import Condition
from .base import Generator


@dataclass
class CDCGANConfig:
    z_dim: int = 100                 # nz, before the class one-hot is appended
    n_classes: int = 8
    resolution: int = 128            # 4·2^k; stages run at 8 … resolution/2, the head doubles once more
    ngf: int = 64                    # width of the last stage; the stem has ngf·resolution/8 channels
    n_channels: int = 3
    dropout: float | None = 0.2      # after the stem's ReLU (identity in eval mode); None: no Dropout layer,
                                     # as in most tutorials, which shifts every later `main.N` index by one
    eps: float = 1e-5                # PyTorch BN default, as trained
    class_names: list[str] = field(default_factory=list)   # empty: "0", "1", ...


class CDCGANGenerator(Generator):
    architecture = "cdcgan"

    def __init__(self, config: CDCGANConfig):
        super().__init__()
        self.config = config
        res = config.resolution
        n_up = int(round(math.log2(res / 4)))
        if res < 8 or 4 * 2 ** n_up != res:
            raise ValueError(f"cDCGAN resolution must be 4·2^k ≥ 8 (8, 16, …, 128, 256), got {res}")
        if config.class_names and len(config.class_names) != config.n_classes:
            raise ValueError(f"{len(config.class_names)} class names given for {config.n_classes} classes")
        nz, nc, ngf = config.z_dim, config.n_classes, config.ngf
        chans = [ngf * 2 ** (n_up - 1 - i) for i in range(n_up)]       # e.g. 1024, 512, 256, 128, 64
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz + nc, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0], eps=config.eps), nn.ReLU()]
        if config.dropout is not None:
            layers.append(nn.Dropout(config.dropout))
        self._first_stage = len(layers)     # index in `main` of the first stage's ConvTranspose
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b, eps=config.eps), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], config.n_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.z_dim, self.n_classes, self.resolution = nz, nc, res
        self.class_names = list(config.class_names) or [str(i) for i in range(nc)]
        self.stem_resolution = 4
        self.stage_resolutions = [8 * 2 ** i for i in range(n_up - 1)]
        self.stage_names = [f"b{r}" for r in self.stage_resolutions]

    def config_dict(self) -> dict:
        d = dict(self.config.__dict__)
        d["class_names"] = list(d["class_names"])
        return d

    # -- the pieces ----------------------------------------------------------------------------------
    def first_layer(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """The first ConvTranspose's output `[B, C, 4, 4]`, before BN.

        Per-sample condition: the original module on `[z; c]` (bit-identical to the plain model).
        Spatial condition: z's part once, the class part per mixture component, mixed per pixel
        at 4×4 — the `Condition.project` trick, except that here the projected vector itself
        varies over the 4×4 output, so the mixing is per pixel of each component's output.
        """
        conv = self.main[0]
        b = z.shape[0]
        if not cond.spatial:
            return conv(torch.cat([z, cond.base], 1)[:, :, None, None])
        w = conv.weight.flatten(1)                                  # [nz + nc, C·16]
        c, k = conv.out_channels, conv.kernel_size
        hz = z @ w[:self.z_dim]                                     # [B, C·16]
        _, m, d = cond.vectors.shape
        hc = (cond.vectors.reshape(b * m, d) @ w[self.z_dim:]).view(b, m, c, k[0] * k[1])   # [B, M, C, 16]
        mix = cond.weights_at(k).reshape(b, m, 1, k[0] * k[1])     # [B, M, 1, 16]
        return (hz.view(b, c, -1) + (hc * mix).sum(1)).view(b, c, *k)

    def stem(self, z, cond: Condition):
        return self.main[1:self._first_stage](self.first_layer(z, cond))   # [B, C, 4, 4]

    def stage(self, i, h, cond: Condition):
        k = self._first_stage + 3 * i
        return self.main[k: k + 3](h)

    def head(self, h):
        return self.main[self._first_stage + 3 * self.n_stages:](h)
