"""Contact sheet of a batch run's dataset directory: rows of source / edited / mask per group of
variants, labelled with the variant index. Used for docs/batch_faces64_contact.png:

    python -m toolkit batch recipes/faces64-parts.yaml --out out/faces64 --device cpu --batch-size 16
    python docs/batch_contact_sheet.py out/faces64 docs/batch_faces64_contact.png
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from toolkit.dataset import read_manifest
from toolkit.images import grid


def contact_sheet(out_dir: str | Path, n: int = 24, per_row: int = 12, scale: int = 2) -> Image.Image:
    d = Path(out_dir)
    df = read_manifest(d).head(n)
    rows, labels = [], []
    for start in range(0, len(df), per_row):
        part = df.iloc[start:start + per_row]
        first, last = int(part.variant_index.iloc[0]), int(part.variant_index.iloc[-1])
        for col, what in (("source_file", "source"), ("file_name", "edited"), ("mask_file", "mask")):
            if (part[col] != "").all():
                rows.append([Image.open(d / f).convert("RGB") for f in part[col]])
                labels.append(f"{what} {first}-{last}")
    return grid(rows, row_labels=labels, scale=scale)


if __name__ == "__main__":
    contact_sheet(sys.argv[1]).save(sys.argv[2])
    print(f"wrote {sys.argv[2]}")
