"""Renders docs/stylegan2_blend_stylemix.png: feature blending and regional style mixing on a
seeded random-weight StyleGAN2 (no download; `python docs/stylegan2_picture.py [out.png]`).

An untrained generator paints smooth colour fields rather than faces, which is enough to see
where each edit acts and how far it spreads. The raw outputs overshoot [-1, 1]; all panels are
divided by the same factor (twice the sources' standard deviation) before the usual clamp.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import Blend, StyleMix, render, sample_latents  # noqa: E402
from toolkit.demo import region  # noqa: E402
from toolkit.generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator, randomize  # noqa: E402
from toolkit.images import grid, save_png, to_pil  # noqa: E402


def main(out: str = "docs/stylegan2_blend_stylemix.png") -> Path:
    torch.manual_seed(0)
    gen = randomize(StyleGAN2Generator(StyleGAN2Config(size=128, style_dim=64, n_mlp=4,
                                                       channels=[64, 64, 64, 48, 32, 16])), seed=3).eval()
    res = gen.resolution                                   # 6 blend points: 4, 8, …, 128
    src, other = sample_latents(gen, [101]), sample_latents(gen, [202])
    mask = region(res, 0.3, 0.7, 0.15, 0.85)                 # a central band
    # Columns pair a blend at some blend points with a regional style mix on comparable layers.
    blends = [[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]   # points 4-16, 16-32, 64-128
    mixes = [range(0, 5), range(5, 9), range(9, 12)]                         # style layers (gen.layer_names)
    n = len(blends)
    zs = src.expand(n, -1)
    blended = render(gen, zs, blends=[Blend(other.expand(n, -1), mask, torch.tensor(blends,
                                                                                     dtype=torch.float32))])
    regional = torch.cat([render(gen, src, style_mix=StyleMix(other, layers, mask)) for layers in mixes])
    whole = render(gen, src, style_mix=StyleMix(other, range(0, 5)))
    plain = render(gen, torch.cat([src, other]))
    scale = 2 * plain.std()
    pics = lambda x: to_pil(x / scale)
    mask_img = Image.fromarray((mask * 255).byte().numpy()).convert("RGB")
    s, o = pics(plain)
    rows = [[s, o, mask_img] + pics(blended),
            [s, o, mask_img] + pics(regional) + pics(whole)]
    sheet = grid(rows, row_labels=["feature blend", "style mix"],
                  col_labels=["source", "other/ref", "mask", "pts 4-16 | L0-4", "pts 16-32 | L5-8",
                              "pts 64-128 | L9-11", "L0-4 whole"], scale=1)
    return save_png(sheet, out)


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
