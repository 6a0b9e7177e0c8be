"""Label quality of photo datasets written by the batch runner (docs/PHOTOS.md). Not a test: a measurement.

For each dataset folder (a run of a photo recipe over terrain64, which has a judge) it prints, over
its variants:
- `label_agreement`: the manifest's mean (share of label-map pixels the judge confirms);
- `region`: in the edit region (mask > 0) where the label map holds a swap's target class, the share
  of pixels the judge sees as that class (variants whose swap target is the photo's own class skipped);
- `band`: the same share on the region's edge band only (label-map target pixels within 3 model pixels
  of a pixel that is not the target): where coloured fringes would show;
- `outside`: agreement outside the edit region (the base class: known or estimated).

    python -m bench.photo_dataset DATASET [DATASET ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from toolkit.dataset import read_manifest


def measure(folder: Path) -> dict:
    df = read_manifest(folder)
    region, band, outside = [], [], []
    for _, row in df.iterrows():
        p = json.loads(row["params"])
        labels = np.asarray(Image.open(folder / row["label_map_file"]))
        seen = np.asarray(Image.open(folder / row["rendered_map_file"]))
        mask = np.asarray(Image.open(folder / row["mask_file"])) > 0
        outside.append((seen[~mask] == labels[~mask]).mean())
        base = p["source"]["class_id"]
        for e in p["edits"]:
            to = e.get("label_swap", {}).get("to_id")
            if to is None or to == base:
                continue
            inside = mask & (labels == to)
            if not inside.any():
                continue
            region.append((seen[inside] == to).mean())
            px = max(1, round(3 * p["source"]["image"]["crop"][2] / 64))     # 3 model pixels at the photo's scale
            near = Image.fromarray((~inside).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * px + 1))
            edge = inside & (np.asarray(near) > 0)
            if edge.any():
                band.append((seen[edge] == to).mean())
    return {"n": len(df), "label_agreement": float(df["label_agreement"].astype(float).mean()),
            "region": float(np.mean(region)), "band": float(np.mean(band)), "outside": float(np.mean(outside)),
            "n_region": len(region)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="+")
    args = ap.parse_args(argv)
    print("| dataset | variants | label_agreement | region | edge band | outside |")
    print("|---|---|---|---|---|---|")
    for d in args.datasets:
        m = measure(Path(d))
        print(f"| {d} | {m['n']} | {m['label_agreement']:.3f} | {m['region']:.3f} ({m['n_region']}) | "
              f"{m['band']:.3f} | {m['outside']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
