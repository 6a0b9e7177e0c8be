"""Build the shipped photo folder `recipes/photos/terrain/` from held-out 0 A.D. textures.

Input: the folder written by `python -m toolkit.train.materials build` (its manifest.csv marks
~20% of the sources per class `heldout`: terrain64 never saw them). Output: 16 small 4:3 JPEG
"photos" (2 per class, 4 for classes with few held-out sources skipped), each a crop whose
centred square matches the scale of the training windows, plus SOURCES.csv naming the source
texture, its sha256, the crop box and the license (CC-BY-SA-3.0, Wildfire Games).

    python bench/make_terrain_photos.py --data _data/materials
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from toolkit.io import atomic_write_bytes, atomic_write_text

OUT = Path(__file__).resolve().parent.parent / "recipes" / "photos" / "terrain"
PER_CLASS = {"grass": 3, "dirt": 3, "rock": 2, "foliage": 2, "sand": 2, "snow": 2, "sky": 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="materials folder (manifest.csv + images/)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = Path(args.data)
    rows = [r for r in csv.DictReader(open(root / "manifest.csv")) if r["split"] == "heldout"]
    rng = np.random.default_rng(args.seed)
    out_rows = []
    for cls, n in PER_CLASS.items():
        mine = [r for r in rows if r["class"] == cls]
        for r in [mine[i] for i in sorted(rng.choice(len(mine), n, replace=False))]:
            im = Image.open(root / r["file"]).convert("RGB")
            side = int(r["window_max"])                    # the centred square = one training window
            h = min(side, im.height)
            w = min(im.width, round(h * 4 / 3))
            x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
            photo = im.crop((x, y, x + w, y + h))
            buf = io.BytesIO()
            photo.save(buf, format="JPEG", quality=88)
            name = f"{cls}/{cls}_{Path(r['file']).stem}.jpg"   # a folder per class: `classes: folders`
            atomic_write_bytes(OUT / name, buf.getvalue(), make_parents=True)
            out_rows.append({"file": name, "class": cls, "source": r["zip_path"], "source_sha256": r["sha256"],
                             "crop": f"{x},{y},{w},{h}", "license": r["license"], "author": r["author"],
                             "sha256": hashlib.sha256(buf.getvalue()).hexdigest()})
    fields = list(out_rows[0])
    text = ",".join(fields) + "\n" + "".join(",".join(f'"{v}"' if "," in str(v) else str(v) for v in
                                                      (r[f] for f in fields)) + "\n" for r in out_rows)
    atomic_write_text(OUT / "SOURCES.csv", text)
    print(f"wrote {len(out_rows)} photos and SOURCES.csv to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
