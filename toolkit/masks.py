"""Resizing of label maps and blend masks to the resolution of each generator layer.

Why a module of its own: the label-swap weights and blend masks are drawn at image
resolution, but every conditioned layer and blend point works at its own resolution.
The rule (from the engine contract) is: shrinking averages by *covered area* (a cell's
weight is the fraction of it that the map covers, exact also for non-integer ratios),
growing repeats cells (nearest). Both are linear maps, so a resized map of weights that
sum to one still sums to one. This module does no file I/O.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=256)
def _area_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] matrix whose row i holds the overlap of output cell i with each input cell,
    divided by the output cell's width (both measured in input-pixel units)."""
    scale = n_in / n_out
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        j0, j1 = int(lo), min(n_in, int(-(-hi // 1)))
        for j in range(j0, j1):
            m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
    return (m / scale).float()


def resize_weights(w: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize maps `[..., H, W]` to `[..., h, w]`: area average when shrinking, nearest when growing."""
    h_in, w_in = w.shape[-2:]
    h_out, w_out = size
    if (h_in, w_in) == (h_out, w_out):
        return w
    lead = w.shape[:-2]
    x = w.reshape(-1, h_in, w_in)
    # Each axis independently: the 2-D area weight factorises into row overlap × column overlap.
    if h_out < h_in:
        x = torch.einsum("oh,nhw->now", _area_matrix(h_in, h_out).to(x), x)
    elif h_out > h_in:
        x = F.interpolate(x.unsqueeze(1), size=(h_out, x.shape[-1]), mode="nearest").squeeze(1)
    if w_out < w_in:
        x = torch.einsum("ow,nhw->nho", _area_matrix(w_in, w_out).to(x), x)
    elif w_out > w_in:
        x = F.interpolate(x.unsqueeze(1), size=(x.shape[-2], w_out), mode="nearest").squeeze(1)
    return x.reshape(*lead, h_out, w_out)
