"""Building blocks shared by the generators: the spatial condition and conditional batch norm.

`Condition` is what every conditioned layer receives. It is a *mixture*: M condition
vectors per sample and, optionally, per-pixel weights over them. With no weights it is the
ordinary per-sample condition (component 0 everywhere), and layers take exactly the plain
model's code path. With weights it is the spatial class-conditional condition of sCBN: any
parameter that is linear in the condition vector (CBN gain/bias, a class-conditioned linear
stem) is computed per component and mixed per pixel, which equals feeding the per-pixel
mixed condition vector but costs M small matmuls instead of a [B, D, H, W] tensor.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import resize_weights


class Condition:
    """Per-sample or per-pixel condition passed to the stem and stages.

    vectors: `[B, M, D]` condition vectors (D may be 0 for unconditional models).
    weights: `None` (use component 0) or `[B, M, H, W]` per-pixel mixture weights summing to 1.
    truncation: the truncation the latents were drawn at (models whose statistics depend on it).
    options: the generator's typed per-call options (`Generator.call_options(**kw)`, e.g.
             StyleGAN2's noise and style mixing), or None; never stored on the module.
    variants: how many leading rows are the variants (the engine stacks reference streams of
              `variants` rows each below them), so per-variant options can be matched to
              rows; `None` means every row is a variant.
    """

    def __init__(self, vectors: torch.Tensor, weights: torch.Tensor | None = None,
                 truncation: float | None = None, options=None,
                 _pyramid: dict | None = None, variants: int | None = None):
        assert vectors.dim() == 3, "vectors must be [B, M, D]"
        if weights is not None:
            assert weights.dim() == 4 and weights.shape[:2] == vectors.shape[:2], "weights must be [B, M, H, W]"
        self.vectors = vectors
        self.weights = weights
        self.truncation = truncation
        self.options = options
        self.variants = variants
        # Resized weight maps, computed once per resolution and shared by all layers there.
        self._pyramid = {} if _pyramid is None else _pyramid

    @classmethod
    def per_sample(cls, vectors: torch.Tensor, truncation: float | None = None, options=None):
        return cls(vectors.unsqueeze(1), None, truncation, options)

    @property
    def spatial(self) -> bool:
        return self.weights is not None

    @property
    def base(self) -> torch.Tensor:
        """`[B, D]`: component 0, the per-sample condition."""
        return self.vectors[:, 0]

    def weights_at(self, size: tuple[int, int]) -> torch.Tensor:
        key = tuple(size)
        if key not in self._pyramid:
            self._pyramid[key] = resize_weights(self.weights, key)
        return self._pyramid[key]

    def narrow(self, n: int) -> "Condition":
        """The first n samples (views, pyramid included)."""
        pyr = {k: v[:n] for k, v in self._pyramid.items()}
        w = None if self.weights is None else self.weights[:n]
        v = None if self.variants is None else min(self.variants, n)
        return Condition(self.vectors[:n], w, self.truncation, self.options, pyr, variants=v)

    def project(self, fn: Callable[[torch.Tensor], torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Apply a map `fn: [N, D] -> [N, C]` that is linear (affine) in the condition.

        Returns `[B, C, 1, 1]` for a per-sample condition, `[B, C, h, w]` (contiguous NCHW) for a
        spatial one. Because fn is affine and the weights sum to one, mixing the outputs equals
        applying fn to the per-pixel mixed vector.
        """
        if self.weights is None:
            p = fn(self.base)
            return p[:, :, None, None]
        b, m, d = self.vectors.shape
        p = fn(self.vectors.reshape(b * m, d)).view(b, m, -1)          # [B, M, C]
        w = self.weights_at(size)                                     # [B, M, h, w]
        # One batched matmul straight into NCHW layout: [B, C, M] @ [B, M, h*w].
        out = torch.bmm(p.transpose(1, 2), w.reshape(b, m, -1))
        return out.view(b, -1, *w.shape[-2:])


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling, bit-identical to `F.interpolate(x, scale_factor=2)` but
    several times faster on CPU (one strided copy instead of the generic kernel)."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class ConditionalBatchNorm2d(nn.Module):
    """Class-conditional batch norm (SNGAN-projection): per-class gain and bias tables.

    The condition vector is a (soft) class vector `[n_classes]`, so gain = vector @ gammas;
    for a one-hot vector this is exactly the table lookup of the original. Running statistics
    are shared across classes; eps defaults to Chainer's 2e-5 because the paper's checkpoints
    were trained with it.
    """

    def __init__(self, num_features: int, n_classes: int, eps: float = 2e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.n_classes, self.eps, self.momentum = num_features, n_classes, eps, momentum
        self.gammas = nn.Parameter(torch.ones(n_classes, num_features))
        self.betas = nn.Parameter(torch.zeros(n_classes, num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, None, None,
                         self.training, self.momentum, self.eps)
        c = self.num_features
        # Gain and bias in one projection (one matmul per layer, also for per-pixel conditions).
        p = cond.project(lambda v: v @ torch.cat([self.gammas, self.betas], 1), x.shape[-2:])
        return torch.addcmul(p[:, c:], x, p[:, :c])
