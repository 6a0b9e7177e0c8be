"""A demo collage: what the README's first command renders (no recipe needed).

For an unconditional model (the default faces64): a source face, a reference face, and the
reference's eye band and mouth pasted into the source at three layer choices. For a
class-conditional model: label swaps of a central region at early, middle and late stages.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import Blend, LabelSwap, load_generator, render, sample_classes, sample_latents
from .images import grid, save_png, to_pil


def region(res: int, top: float, bottom: float, left: float, right: float) -> torch.Tensor:
    m = torch.zeros(res, res)
    m[int(top * res):int(bottom * res), int(left * res):int(right * res)] = 1
    return m


def layer_presets(n_points: int) -> dict[str, list[float]]:
    """Strength per blend point for three common choices: everything from the stem on (shape and
    detail), middle points only (parts), last points only (texture/colour)."""
    mid = n_points // 2
    return {
        "all points": [1.0] * n_points,
        "middle": [1.0 if 1 <= i <= mid else 0.0 for i in range(n_points)],
        "late": [1.0 if i > mid else 0.0 for i in range(n_points)],
    }


def render_demo(out: str, model: str = "faces64", device: str = "auto") -> Path:
    gen = load_generator(model, device)
    res = gen.resolution
    if gen.n_classes:
        seeds = [1, 2, 3]
        z, y = sample_latents(gen, seeds), sample_classes(gen, seeds)
        w = region(res, 0.25, 0.75, 0.25, 0.75)[None]
        target = [(int(c) + 1) % gen.n_classes for c in y.tolist()]
        rows, labels = [to_pil(render(gen, z, y))], ["source"]
        n = gen.n_stages
        for name, st in [("early", range(0, n)), ("middle", range(n // 2, n)), ("late", range(n - 1, n))]:
            swap = LabelSwap(torch.tensor(target)[:, None], w.expand(len(seeds), 1, res, res), st)
            rows.append(to_pil(render(gen, z, y, swap=swap)))
            labels.append(f"swap {name}")
        sheet = grid(list(map(list, zip(*rows))), col_labels=labels, scale=max(1, 128 // res))
    else:
        z_src, z_ref = sample_latents(gen, [11, 12, 13]), sample_latents(gen, [21, 22, 23])
        presets = layer_presets(gen.n_blend_points)
        rows, labels = [to_pil(render(gen, z_src)), to_pil(render(gen, z_ref))], ["source", "reference"]
        for part, mask in [("eyes", region(res, 0.30, 0.52, 0.15, 0.85)), ("mouth", region(res, 0.62, 0.85, 0.28, 0.72))]:
            for name, strength in presets.items():
                rows.append(to_pil(render(gen, z_src, blends=[Blend(z_ref, mask, strength)])))
                labels.append(f"{part}: {name}")
        sheet = grid(list(map(list, zip(*rows))), col_labels=labels, scale=2)
    return save_png(sheet, out)
