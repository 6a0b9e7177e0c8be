"""Side-by-side sample sheet of two materials models (docs/materials/v1_v2.png).

    python docs/materials_compare.py A.safetensors B.safetensors --labels v1 v2 --out docs/materials/v1_v2.png

One row per class; the same latents (seeds 100–103) for both models, A's columns left of B's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import load_generator, render, sample_latents  # noqa: E402
from toolkit.images import grid, to_pil  # noqa: E402
from toolkit.io import save_png  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs=2, help="two zoo names or weights files with the same classes")
    p.add_argument("--labels", nargs=2, default=["A", "B"])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 104)))
    p.add_argument("--scale", type=int, default=1, help="pixel repeat of each 64-px sample")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    gens = [load_generator(m, device="cpu") for m in args.models]
    if gens[0].class_names != gens[1].class_names:
        raise SystemExit(f"the models' classes differ: {gens[0].class_names} vs {gens[1].class_names}")
    names = gens[0].class_names
    rows = []
    with torch.no_grad():
        for c in names:
            row = []
            for g in gens:
                z = sample_latents(g, args.seeds)
                row += to_pil(render(g, z, [c] * len(args.seeds)))
            rows.append(row)
    cols = [f"{lab} {s}" for lab in args.labels for s in args.seeds]
    save_png(grid(rows, row_labels=names, col_labels=cols, scale=args.scale), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
