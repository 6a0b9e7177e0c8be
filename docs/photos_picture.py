"""docs/photos-before-after.png: label swaps on real (held-out) texture photos with terrain64.

Each row: the photo at its own size, the model's reconstruction of its centred square (64×64, PSNR
in the label), the swap as it was before the photo-edit path (the source resumed from the inverted
16×16 features, the swap on the two stages after them), the swap now (`render_projection`: generated
at every stage from the projected latent and class, the inverted features pasted outside the region),
the photo with the new edit composited back (Poisson; edit region outlined), and the same two for the
swap plus a blend of a typical reference of the asked class at the points up to the projection point
(one random latent, seed 1: `edit_photo(swap=..., blends=[Blend(z, mask, [1, 1, 1, 0, 0], y=[class])])`).

Run from the repository root: `python docs/photos_picture.py [--point P] [--cache DIR]`. `--cache`:
a projection cache folder (`ProjectionCache`, e.g. a photo dataset's `projections/`), so the slow
projection is reused; without it the four photos are projected in one batch.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from PIL import Image, ImageDraw

from toolkit import Blend, LabelSwap, load_generator, sample_latents
from toolkit.composite import edit_photo, to_model_frame
from toolkit.engine import render
from toolkit.images import save_png, to_uint8
from toolkit.photos import load_photo, region_mask
from toolkit.projection import PRESETS, project
from toolkit.projection_cache import ProjectionCache

EDITS = [("recipes/photos/terrain/grass/grass_temp_grass_clovers.jpg", "snow"),
         ("recipes/photos/terrain/sand/sand_desert_sand_smooth.jpg", "grass"),
         ("recipes/photos/terrain/dirt/dirt_savanna_dirt_a.jpg", "rock"),
         ("recipes/photos/terrain/rock/rock_medit_rocks_wet.jpg", "grass")]
REGION = "ellipse:0.5,0.5,0.45,0.55"
H = 100      # row height in the sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--point", type=int, default=None, help="projection point (default: the model's, 2 = 16×16)")
    ap.add_argument("--cache", default=None, help="projection cache folder to reuse (default projection settings)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = load_generator("terrain64", device="cpu")
    photos = [load_photo(p) for p, _ in EDITS]
    if args.cache:
        settings = replace(PRESETS["default"], point=args.point)
        projs = ProjectionCache(args.cache).load(gen, photos, settings)
    else:
        proj = project(gen, photos, point=args.point)         # one batch, default steps
        projs = [proj.rows([k]) for k in range(len(photos))]
    ref_z = sample_latents(gen, [1])
    rows = []
    for ph, pr, (_, target) in zip(photos, projs, EDITS):
        w, h = ph.size
        mask = region_mask(REGION, w, h)
        swap = LabelSwap([target], mask[None])
        e = edit_photo(gen, ph, swap=swap, projection=pr)
        upto = [1.0] * (pr.point + 1) + [0.0] * (gen.n_blend_points - pr.point - 1)
        er = edit_photo(gen, ph, swap=swap, blends=[Blend(ref_z, mask, upto, y=[target])], projection=pr)
        # Before: the source resumes from the inverted features; the swap acts after the point only.
        small = to_model_frame(mask, pr.crops[0], gen.resolution)[None]
        resumed = render(gen, pr.z, pr.class_vector, start=pr.start(),
                         swap=LabelSwap([target], small, stages=range(pr.point, gen.n_stages)))
        size = (round(w * H / h), H)

        def photo_tile(a):
            out = Image.fromarray(a).resize(size, Image.LANCZOS)
            ImageDraw.Draw(out).ellipse([(0.5 - 0.225) * size[0], (0.5 - 0.275) * H, (0.5 + 0.225) * size[0],
                                         (0.5 + 0.275) * H], outline=(255, 255, 255))
            return out
        tile = lambda a: Image.fromarray(a).resize((H, H), Image.NEAREST)
        base = gen.class_names[pr.classes[0]]
        rows.append(([Image.fromarray(ph.pixels).resize(size, Image.LANCZOS), tile(e.reconstruction),
                      tile(to_uint8(resumed)[0]), tile(e.edited), photo_tile(e.image), tile(er.edited),
                      photo_tile(er.image)],
                     f"{base} -> {target}, PSNR {e.psnr:.1f} dB"))
        print(f"{ph.name}: looks like {base}, PSNR {e.psnr:.2f} dB, swapped to {target}")
    pad, top = 6, 16
    width = max(pad + sum(im.width + pad for im in r[0]) for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * (H + top + pad) + pad), "white")
    d = ImageDraw.Draw(sheet)
    y = pad
    for tiles, label in rows:
        d.text((pad, y), f"photo | reconstruction | before: swap after the 16x16 point | now: photo edit | composited | "
                         f"now + reference | composited   ({label})", fill="black")
        x = pad
        for im in tiles:
            sheet.paste(im, (x, y + top))
            x += im.width + pad
        y += H + top + pad
    name = "docs/photos-before-after.png" if args.point is None else f"docs/photos-before-after-point{args.point}.png"
    save_png(sheet, name)
    print(f"wrote {name}")


if __name__ == "__main__":
    main()
