"""The chimera figure of a blend recipe: how much sharper the colour jump across the edit region's
boundary is in the edited image than at the same pixels of the unedited source.

    jump(I, B) = mean over boundary pixels B of |∇I| (central differences, RGB, 8-bit levels)
    figure     = jump(edited, B) / jump(source, B)     per variant; median and mean reported

B: pixels within 1 px of the edge of the union edit mask (≥ 50%). Why relative to the source: a
face has real edges (eye lids, lips) exactly where part masks run, so an absolute jump would
punish masks that follow the content; 1.0 means the seam is as smooth as the face itself.
A sheet (source / edited / region for the first 12 variants) is written with --sheet.

    nice -n 19 .venv/bin/python -m bench.chimera recipes/faces64-parts.yaml [--count 64] [--sheet PNG]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from toolkit import load_generator
from toolkit.images import grid, save_png
from toolkit.part_edits import dilate
from toolkit.pipeline import render_variants
from toolkit.recipes import load_recipe


def gradient(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, 1:-1] = (x[:, 2:] - x[:, :-2]) / 2
    gy[1:-1] = (x[2:] - x[:-2]) / 2
    return np.sqrt((gx ** 2 + gy ** 2).sum(-1))


def boundary(mask_u8: np.ndarray) -> np.ndarray:
    m = mask_u8 >= 128
    return dilate(m, 1) & ~(~dilate(~m, 1))


def figure(edited: np.ndarray, source: np.ndarray, mask_u8: np.ndarray) -> float:
    b = boundary(mask_u8)
    b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = False      # central differences are not defined there
    if not b.any():
        return float("nan")
    return float(gradient(edited)[b].mean() / max(gradient(source)[b].mean(), 1e-6))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sheet", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    r = load_recipe(args.recipe)
    g = load_generator(r.model, device="cpu")
    r = r.for_generator(g)
    out = []
    for s in range(0, args.count, args.batch_size):
        out += render_variants(g, r, r.variants(range(s, min(args.count, s + args.batch_size))))
    f = np.array([figure(o.image, o.source_image, o.mask) for o in out])
    f = f[np.isfinite(f)]
    print(f"{args.recipe}: {len(f)} variants; boundary colour jump ÷ source's at the same pixels: "
          f"median {np.median(f):.2f}×, mean {f.mean():.2f}×, share > 1.5×: {(f > 1.5).mean():.2f}")
    if args.sheet:
        k = out[:12]
        rows = [[Image.fromarray(o.source_image) for o in k], [Image.fromarray(o.image) for o in k],
                [Image.fromarray(o.mask).convert("RGB") for o in k]]
        print(f"wrote {save_png(grid(rows, row_labels=['source', 'edited', 'region'], scale=2), args.sheet)}")


if __name__ == "__main__":
    main()
