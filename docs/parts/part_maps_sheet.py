"""docs/parts/part_maps_contact.png: images beside their part maps (and, for terrain64, the label
map asked for and the judge's rendered map) from two real batch runs, with each model's part
palette as a legend (read from the datasets' part_palette.csv). Made with:

    OMP_NUM_THREADS=1 python -m toolkit batch recipes/faces64-parts.yaml --out /tmp/faces --count 12 --batch-size 12 --device cpu
    OMP_NUM_THREADS=1 python -m toolkit batch recipes/terrain64-segmentation.yaml --out /tmp/terrain --count 12 --batch-size 12 --device cpu
    python docs/parts/part_maps_sheet.py /tmp/faces /tmp/terrain docs/parts/part_maps_contact.png
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]
from batch_contact_sheet import contact_sheet  # noqa: E402


def legend(d: Path, width: int) -> Image.Image:
    with open(d / "part_palette.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    im = Image.new("RGB", (width, 18), "white")
    draw = ImageDraw.Draw(im)
    for k, r in enumerate(rows):
        x = 8 + k * 150
        draw.rectangle([x, 3, x + 11, 14], fill=(int(r["r"]), int(r["g"]), int(r["b"])))
        draw.text((x + 16, 3), f"{r['id']} {r['name']}", fill="black")
    return im


def section(d: Path, title: str, columns) -> Image.Image:
    sheet = contact_sheet(d, n=12, per_row=12, scale=2, columns=columns)
    leg = legend(d, sheet.width)
    out = Image.new("RGB", (sheet.width, 18 + sheet.height + leg.height), "white")
    ImageDraw.Draw(out).text((6, 4), title, fill="black")
    out.paste(sheet, (0, 18))
    out.paste(leg, (0, 18 + sheet.height))
    return out


if __name__ == "__main__":
    faces, terrain, png = map(Path, sys.argv[1:4])
    a = section(faces, "faces64-parts, 12 variants: edited image / part map", ["file_name", "part_map_file"])
    b = section(terrain, "terrain64-segmentation, 12 variants: edited / label map (asked) / part map / rendered map "
                "(judge)", ["file_name", "label_map_file", "part_map_file", "rendered_map_file"])
    out = Image.new("RGB", (max(a.width, b.width), a.height + b.height + 6), "white")
    out.paste(a, (0, 0))
    out.paste(b, (0, a.height + 6))
    out.save(png, optimize=True)
    print(f"wrote {png} {out.size}")
