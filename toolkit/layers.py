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
        self._swap_pyramid: dict = {}   # the swap components alone (1..M-1), for `modulate`
        self._plans: dict = {}      # where the swap touches, per resolution (see `_swap_plan`)

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

    def swap_at(self, size: tuple[int, int]) -> torch.Tensor:
        """`[B, M-1, h, w]`: the weights of components 1.. (the swapped classes) resized to `size`."""
        key = tuple(size)
        if key not in self._swap_pyramid:
            self._swap_pyramid[key] = resize_weights(self.weights[:, 1:], key)
        return self._swap_pyramid[key]

    def narrow(self, n: int) -> "Condition":
        """The first n samples (views, pyramids included)."""
        pyr = {k: v[:n] for k, v in self._pyramid.items()}
        w = None if self.weights is None else self.weights[:n]
        v = None if self.variants is None else min(self.variants, n)
        out = Condition(self.vectors[:n], w, self.truncation, self.options, pyr, variants=v)
        out._swap_pyramid = {k: t[:n] for k, t in self._swap_pyramid.items()}
        return out

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

    def modulate(self, x_hat: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor],
                 apply: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A conditioned norm's affine step in *delta form*: `apply(x̂, fn(base)[..., None, None])`
        everywhere, plus the label swap's correction where the swap touches.

        fn: `[N, D] -> [N, 2C]`, gain over bias, affine in the condition vector. apply: the layer's
        own per-sample op (e.g. `x̂·γ + β`). The base term is exactly the plain model's code path,
        so pixels (and variants) without a swap are bit-identical to plain generation; inside a
        swapped region the sum `Σ_k w_k·((γ_k − γ_0)·x̂ + (β_k − β_0))` is added, which equals
        mixing the per-class parameters per pixel (`(1 − Σ w_k)·γ_0 + Σ w_k·γ_k`) up to rounding.
        The correction runs only on the bounding box of the swapped pixels (the union of the
        variants' boxes): for a small region the swap costs about what plain generation does.
        x̂ must be the layer's own temporary: without autograd it is used as scratch space.
        """
        p0 = fn(self.base)                                                # [N, 2C]
        out = apply(x_hat, p0[:, :, None, None])
        if self.weights is None:
            return out
        plan = self._swap_plan(tuple(x_hat.shape[-2:]))
        if plan is None:
            return out
        b, m, d = self.vectors.shape
        delta = (fn(self.vectors[:, 1:].reshape(-1, d)).view(b, m - 1, -1) - p0[:, None])  # [N, K, 2C]
        c = delta.shape[-1] // 2
        w = self.swap_at(x_hat.shape[-2:])                              # [N, K, h, w]
        rows, (r0, r1, c0, c1) = plan
        region = (rows, slice(None), slice(r0, r1), slice(c0, c1))
        _add_swap_term(out[region], x_hat[region], w[region], delta[rows], c)   # in place, a view of out
        return out

    def _swap_plan(self, size: tuple[int, int]):
        """Where the swap weights at `size` are non-zero, computed once per resolution (three small
        device syncs): None (nowhere), or `(rows, (r0, r1, c0, c1))`, the range of rows that have a swap and
        the union of their bounding boxes. Rows and pixels inside it without a swap weight add an
        exact zero. One box for all rows keeps the correction to a few large strided kernels; a
        gather of the touched tiles per variant measured 2× slower than the union box covering the
        whole image on CPU (docs/PERFORMANCE.md), so variants with different boxes share the union."""
        if size in self._plans:
            return self._plans[size]
        touched = (self.swap_at(size) > 0).any(1)                        # [N, h, w]
        rows_hit = touched.any(2).any(0), touched.any(1).any(0), touched.flatten(1).any(1)   # [h], [w], [N]
        hit = [t.nonzero().flatten() for t in rows_hit]
        plan = None
        if hit[2].numel():
            (r0, r1), (c0, c1), (n0, n1) = [(int(t[0]), int(t[-1]) + 1) for t in hit]
            plan = (slice(n0, n1), (r0, r1, c0, c1))
        self._plans[size] = plan
        return plan


def _add_swap_term(out: torch.Tensor, x_hat: torch.Tensor, w: torch.Tensor, delta: torch.Tensor,
                   c: int) -> torch.Tensor:
    """`out += Σ_k w_k·(Δγ_k·x̂ + Δβ_k)` in place, for x̂ and out `[n, C, h, w]`, weights
    `[n, K, h, w]`, deltas `[n, K, 2C]`; returns out. Without autograd x̂ is overwritten."""
    k = w.shape[1]
    if k <= 2:
        # Per class: one fused multiply-add into a temporary, one into out (no [n, 2C, h, w] maps).
        # Without autograd the last class reuses x̂'s memory: a fresh large tensor costs page faults.
        for i in range(k):
            scratch = x_hat if i == k - 1 and not torch.is_grad_enabled() else None
            t = torch.addcmul(delta[:, i, c:, None, None], x_hat, delta[:, i, :c, None, None], out=scratch)
            out.addcmul_(t, w[:, i:i + 1])
        return out
    # Many classes: mix the per-class deltas per pixel in one batched matmul, then one multiply-add.
    n, _, h, ww = w.shape
    mixed = torch.bmm(delta.transpose(1, 2), w.reshape(n, k, h * ww)).view(n, 2 * c, h, ww)
    return out.add_(torch.addcmul(mixed[:, c:], x_hat, mixed[:, :c]))


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
        # Gain and bias in one projection; a label swap adds its delta only where it touches.
        table = torch.cat([self.gammas, self.betas], 1)
        return cond.modulate(x, lambda v: v @ table, lambda x_hat, p: torch.addcmul(p[:, c:], x_hat, p[:, :c]))
