"""Contact sheet of a batch run's dataset directory: rows of source / edited / mask (or any of the
manifest's file columns) per group of variants, labelled with the variant index. Used for
docs/batch_faces64_contact.png and the part-map sheets under docs/parts/:

    python -m toolkit batch recipes/faces64-parts.yaml --out out/faces64 --device cpu --batch-size 16
    python docs/batch_contact_sheet.py out/faces64 docs/batch_faces64_contact.png
    python docs/batch_contact_sheet.py out/faces64 docs/parts/x.png --n 12 file_name part_map_file

Files are found through `toolkit.dataset.resolve_row_file` (a manifest is untrusted input).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from toolkit.dataset import read_manifest, resolve_row_file
from toolkit.images import grid

NAMES = {"source_file": "source", "file_name": "edited", "mask_file": "mask", "label_map_file": "label map",
         "part_map_file": "part map", "rendered_map_file": "rendered map"}
DEFAULT = ("source_file", "file_name", "mask_file")


def contact_sheet(out_dir: str | Path, n: int = 24, per_row: int = 12, scale: int = 2,
                  columns=DEFAULT) -> Image.Image:
    d = Path(out_dir)
    df = read_manifest(d).head(n)
    rows, labels = [], []
    for start in range(0, len(df), per_row):
        part = df.iloc[start:start + per_row]
        first, last = int(part.variant_index.iloc[0]), int(part.variant_index.iloc[-1])
        for col in columns:
            if (part[col] != "").all():
                rows.append([Image.open(resolve_row_file(d, r, col)).convert("RGB")
                             for r in part.to_dict("records")])
                labels.append(f"{NAMES.get(col, col)} {first}-{last}")
    return grid(rows, row_labels=labels, scale=scale)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("png")
    ap.add_argument("columns", nargs="*", default=list(DEFAULT), help="manifest file columns, one row each")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--per-row", type=int, default=12)
    ap.add_argument("--scale", type=int, default=2)
    a = ap.parse_args()
    contact_sheet(a.out_dir, a.n, a.per_row, a.scale, a.columns).save(a.png)
    print(f"wrote {a.png}")
