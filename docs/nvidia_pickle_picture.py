"""Renders docs/nvidia_pickle.png from the committed NVIDIA test fixtures (no download, no NVIDIA
code): `python docs/nvidia_pickle_picture.py [out.png]`.

Rows 1–2: the class-conditional (c_dim 3) 32×32 random-weight snapshot, ψ = 0.7. NVIDIA's own
outputs (stored in the fixture's .npz), ours, and |difference| (white = 10⁻⁴ of the output range).
Row 4: label swap on the same model, two latents: class 0, class 2, class 0 with its right half
swapped to class 2 (all stages), and how much the swap changed each pixel (white = twice the mean
class-0-to-class-2 change).
Random weights paint colour fields, not objects; the picture shows where an edit acts. All
panels share one scale (divided by the outputs' range) before the usual clamp.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toolkit  # noqa: E402
from toolkit import LabelSwap, render  # noqa: E402
from toolkit.images import grid, save_png, to_pil  # noqa: E402

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "nvidia"


def main(out: str = "docs/nvidia_pickle.png") -> Path:
    gen = toolkit.load_generator(str(FIX / "stylegan2ada-32px-cond3.pkl"), device="cpu")
    ref = np.load(FIX / "stylegan2ada-32px-cond3-reference.npz")
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    theirs = torch.from_numpy(ref["img_psi07"])
    ours = render(gen, z, c, truncation=0.7)
    s = float(theirs.abs().max())
    diff = (ours - theirs).abs() * 1e4 / s * 2 - 1                # 1e-4 of the range → full white
    zz = z[:2]
    half = torch.zeros(1, 32, 32)
    half[..., 16:] = 1
    a = render(gen, zz, [0, 0], truncation=0.7)
    b = render(gen, zz, [2, 2], truncation=0.7)
    swap = render(gen, zz, [0, 0], swap=LabelSwap([2], half), truncation=0.7)
    moved = ((swap - a).abs().mean(1, keepdim=True) / (b - a).abs().mean() - 1).clamp(-1, 1).expand(-1, 3, -1, -1)
    row = [t for i in range(2) for t in (a[i:i + 1] / s, b[i:i + 1] / s, swap[i:i + 1] / s, moved[i:i + 1])]
    sheet = grid([to_pil(theirs / s), to_pil(ours / s), to_pil(diff.clamp(-1, 1)), to_pil(torch.cat(row))],
                 row_labels=["NVIDIA", "ours", "|diff|x1e4", "swap"], scale=4)
    return save_png(sheet, out)


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
