"""Contact sheet of a photo dataset (a batch over `source: {images: ...}`): one column per variant
with the photo, the edited photo (the dilated edit region outlined in magenta), the label map and
the judge's rendered map (dataset palette), labelled with the photo's class and the asked class. Used for
docs/photos-dataset-contact.png:

    python -m toolkit batch recipes/terrain64-photos.yaml --out out/photos --count 16
    python docs/photos_contact_sheet.py out/photos docs/photos-dataset-contact.png
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from toolkit.dataset import read_manifest
from toolkit.images import save_png

H = 64          # tile height


def _palette(d: Path) -> dict[int, tuple[int, int, int]]:
    with open(d / "label_maps" / "palette.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {int(r["id"]): tuple(int(r["color"][i:i + 2], 16) for i in (1, 3, 5)) for r in rows}


def _tile(img: Image.Image, smooth: bool = False) -> Image.Image:
    return img.convert("RGB").resize((round(img.width * H / img.height), H), Image.BOX if smooth else Image.NEAREST)


def contact_sheet(out_dir: str | Path, n: int = 16, per_row: int = 8) -> Image.Image:
    d = Path(out_dir)
    df = read_manifest(d).head(n)
    pal = _palette(d)
    colour = lambda m: Image.fromarray(np.array([pal[int(k)] for k in range(max(pal) + 1)], np.uint8)[np.asarray(m)])
    cols = []
    for _, r in df.iterrows():
        p = json.loads(r.params)
        asked = p["edits"][0]["label_swap"]["to"] if p["edits"] and "label_swap" in p["edits"][0] else "-"
        edited = _tile(Image.open(d / r.file_name), smooth=True)
        region = _tile(Image.open(d / r.mask_file)).convert("L").point(lambda v: 255 if v else 0)
        ring = np.asarray(region.filter(ImageFilter.FIND_EDGES)) > 0      # the dilated region's outline
        e = np.array(edited)
        e[ring] = (255, 0, 255)
        agree = "" if r.label_agreement == "" else f" {float(r.label_agreement):.2f}"
        cols.append((f"{int(r.variant_index)} {r.source_class}>{asked}{agree}",
                     [_tile(Image.open(d / r.source_file), smooth=True), Image.fromarray(e),
                      _tile(colour(Image.open(d / r.label_map_file))),
                      _tile(colour(Image.open(d / r.rendered_map_file)))]))
    pad, top, w = 4, 12, max(t.width for _, ts in cols for t in ts)
    rows = [cols[i:i + per_row] for i in range(0, len(cols), per_row)]
    block = top + 4 * (H + pad)
    sheet = Image.new("RGB", (pad + per_row * (w + pad), pad + len(rows) * (block + pad)), "white")
    dr = ImageDraw.Draw(sheet)
    for ri, row in enumerate(rows):
        for ci, (label, tiles) in enumerate(row):
            x, y = pad + ci * (w + pad), pad + ri * (block + pad)
            dr.text((x, y), label, fill="black")
            for k, t in enumerate(tiles):
                sheet.paste(t, (x, y + top + k * (H + pad)))
    return sheet


if __name__ == "__main__":
    save_png(contact_sheet(sys.argv[1]), sys.argv[2])
    print(f"wrote {sys.argv[2]}  (per column: photo, edited with region outlined, label map, judge's map)")
