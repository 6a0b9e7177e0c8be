"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al., NeurIPS 2020).

Why: with a few hundred source textures the discriminator can memorise the sources and stop
giving the generator useful gradients. Augmenting *both* real and generated images before the
discriminator (and again in the generator's step, through which gradients flow) keeps it from
memorising without teaching the generator the augmentation, because the generator never sees
an augmented target it must match.

Policies here: `translation` (shift by up to 1/8 of the side, zero fill) and `cutout` (zero a
square of half the side at a random place). Colour jitter is left out on purpose: colour is the
strongest cue that tells the materials apart, and a projection discriminator that cannot rely
on it conditions the generator more weakly.

All randomness is drawn from the `torch.Generator` passed in (a CPU stream), so training that
uses it still resumes bit for bit from a checkpointed RNG state.
"""
from __future__ import annotations

import torch

POLICIES = ("translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """`"translation,cutout"` → `("translation", "cutout")`; raises on an unknown name."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in POLICIES]
    if bad:
        raise ValueError(f"augment: unknown polic{'ies' if len(bad) > 1 else 'y'} {bad}; known: {list(POLICIES)}")
    return names


def translate(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image `[B, C, H, W]` by its own integer offset (≤ ratio·side), filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = max(1, int(h * ratio)), max(1, int(w * ratio))
    dy = torch.randint(-sy, sy + 1, (b, 1), generator=rng).to(x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1), generator=rng).to(x.device)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy))
    iy = torch.arange(h, device=x.device)[None] + sy - dy                  # [B, H] rows to read
    ix = torch.arange(w, device=x.device)[None] + sx - dx                  # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, iy[:, :, None], ix[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ratio·side at a random centre of each image (it may overhang the edge)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio), int(w * ratio)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=rng).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=rng).to(x.device)
    yy = torch.arange(h, device=x.device)[None, :, None]
    xx = torch.arange(w, device=x.device)[None, None, :]
    inside = ((yy - cy + ch // 2) >= 0) & ((yy - cy + ch // 2) < ch) & ((xx - cx + cw // 2) >= 0) & \
             ((xx - cx + cw // 2) < cw)
    return x * (~inside)[:, None].to(x.dtype)


def augment(x: torch.Tensor, policy: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    for name in policy:
        x = translate(x, rng) if name == "translation" else cutout(x, rng)
    return x
