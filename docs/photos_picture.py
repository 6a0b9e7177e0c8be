"""docs/photos-before-after.png: label swaps on real (held-out) texture photos with terrain64.

Each row: the photo at its own size, the model's reconstruction of its centred square (64×64,
PSNR in the label), the edit at model resolution, and the composited photo (Poisson) with the
edit region outlined. Run from the repository root: `python docs/photos_picture.py [POINT]`
(POINT: the projection point; the default picture uses the model default, 2 = 16×16).
"""
from __future__ import annotations

import sys

import torch
from PIL import Image, ImageDraw

from toolkit import LabelSwap, load_generator
from toolkit.composite import edit_photo
from toolkit.images import save_png
from toolkit.photos import load_photo, region_mask
from toolkit.projection import project

EDITS = [("recipes/photos/terrain/grass_temp_grass_clovers.jpg", "snow"),
         ("recipes/photos/terrain/sand_desert_sand_smooth.jpg", "grass"),
         ("recipes/photos/terrain/dirt_savanna_dirt_a.jpg", "rock"),
         ("recipes/photos/terrain/rock_medit_rocks_wet.jpg", "sand")]
REGION = "ellipse:0.5,0.5,0.45,0.55"
H = 160      # row height in the sheet


def main() -> None:
    torch.set_num_threads(1)
    gen = load_generator("terrain64", device="cpu")
    photos = [load_photo(p) for p, _ in EDITS]
    point = int(sys.argv[1]) if len(sys.argv) > 1 else None     # default: the model's (2 = 16×16)
    proj = project(gen, photos, point=point)         # one batch, default steps
    rows = []
    for k, (ph, (_, target)) in enumerate(zip(photos, EDITS)):
        w, h = ph.size
        e = edit_photo(gen, ph, swap=LabelSwap([target], region_mask(REGION, w, h)[None]), projection=proj.rows([k]))
        scale = H / h
        size = (round(w * scale), H)
        out = Image.fromarray(e.image).resize(size, Image.LANCZOS)
        ImageDraw.Draw(out).ellipse([(0.5 - 0.225) * size[0], (0.5 - 0.275) * H, (0.5 + 0.225) * size[0],
                                     (0.5 + 0.275) * H], outline=(255, 255, 255))
        rows.append((Image.fromarray(ph.pixels).resize(size, Image.LANCZOS),
                     Image.fromarray(e.reconstruction).resize((H, H), Image.NEAREST),
                     Image.fromarray(e.edited).resize((H, H), Image.NEAREST), out,
                     f"{gen.class_names[proj.classes[k]]} -> {target}, PSNR {e.psnr:.1f} dB"))
        print(f"{ph.name}: looks like {gen.class_names[proj.classes[k]]}, PSNR {e.psnr:.2f} dB, swapped to {target}")
    pad, top = 6, 16
    width = max(pad + sum(im.width + pad for im in r[:4]) for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * (H + top + pad) + pad), "white")
    d = ImageDraw.Draw(sheet)
    y = pad
    for r in rows:
        d.text((pad, y), f"photo | reconstruction 64x64 | edit 64x64 | composited photo   ({r[4]})", fill="black")
        x = pad
        for im in r[:4]:
            sheet.paste(im, (x, y + top))
            x += im.width + pad
        y += H + top + pad
    name = "docs/photos-before-after.png" if point is None else f"docs/photos-before-after-point{point}.png"
    save_png(sheet, name)
    print(f"wrote {name}")


if __name__ == "__main__":
    main()
