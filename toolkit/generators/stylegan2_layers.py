"""The StyleGAN2 layers (equalized learning rate, modulated convolution, noise, ToRGB, the
[1,3,3,1] FIR resampling), named as in rosinality/stylegan2-pytorch so its state dicts map key by
key. Used by `stylegan2.py`; no I/O, no per-call state."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BLUR_TAPS = (1, 3, 3, 1)     # the FIR filter of the reference, used for all up-sampling


def blur_kernel(scale: float = 1.0) -> torch.Tensor:
    """The separable [1,3,3,1] filter as a normalised 4×4 kernel (×`scale`: 4 after ×2 zero-insertion,
    which keeps the mean)."""
    k = torch.tensor(BLUR_TAPS, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum() * scale


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Zero-insertion upsampling by `up`, padding (before, after) on both axes, then a per-channel
    FIR filter (true convolution) — the reference's `upfirdn2d` with down=1, in plain PyTorch."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x[:, :, :, None, :, None], [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, k, groups=c)


# -- layers (names follow the reference so state dicts map key by key) ---------------------------
class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Equalized learning rate: weights are stored at unit scale and multiplied by
    lr_mul/√fan_in at run time (bias by lr_mul), so the stored tensors are the reference's."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activation else out


class FusedLeakyReLU(nn.Module):
    """Bias, leaky ReLU (0.2), ×√2 — the reference's `activate` (its `bias` is the conv's bias)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


class ModulatedConv2d(nn.Module):
    """Conv whose input channels are scaled per sample by a style s = A(w) (bias init 1), with
    optional demodulation (output channels rescaled to unit expected norm) and ×2 upsampling.

    Computed as scale-input → shared conv → rescale-output, which equals the reference's
    per-sample weight `(c·W·s) / sqrt(Σ(c·W·s)² + 1e-8)` but needs no grouped conv.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, k, k))
        self.scale = 1 / math.sqrt(in_ch * k * k)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1)
        self.demodulate, self.upsample, self.k = demodulate, upsample, k
        if upsample:  # transposed conv (2H+1 px), then the blur with padding (1, 1) → exactly 2H px
            self.register_buffer("blur", blur_kernel(4.0), persistent=False)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x `[N, in, H, W]`, s `[N, in]` (already modulated styles) → `[N, out, H', W']`."""
        w = self.weight[0] * self.scale                              # [out, in, k, k]
        x = x * s[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
            out = upfirdn2d(out, self.blur, pad=(1, 1))
        else:
            out = F.conv2d(x, w, padding=self.k // 2)
        if self.demodulate:
            d = torch.rsqrt(s.pow(2) @ w.pow(2).sum((2, 3)).t() + 1e-8)  # [N, out]
            out = out * d[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    def __init__(self, in_ch, out_ch, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)


class ToRGB(nn.Module):
    def __init__(self, in_ch, style_dim, upsample=True):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:   # the skip: ×2 zero-insertion, pad (2, 1), blur
            self.register_buffer("kernel", blur_kernel(4.0), persistent=False)

    def upsample_skip(self, skip: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(skip, self.kernel, up=2, pad=(2, 1))


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))
