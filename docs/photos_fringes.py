"""Where the coloured fringes of "label swap + reference" on photos come from (docs/PHOTOS.md).

Rows: variants 10, 12, 3, 2 of recipes/terrain64-photos.yaml (their photo, blob and reference seed).
Columns, all 64-px edits from the photo's projection (`render_projection`, no compositing): the
reconstruction; the swap alone; swap + the reference at blend points 0-2, 0-3, 0-4 (the swap's region
as the blend mask); and the reference's pixels pasted into the reconstruction inside the blob (a
pixel collage, no feature blend). Needs the recipe's projection cache (a dataset's `projections/`):

    python docs/photos_fringes.py --cache DATASET/projections docs/photos-swap-reference-fringes.png
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

import toolkit
from toolkit import Blend, LabelSwap
from toolkit.images import save_png, to_uint8
from toolkit.photo_variants import load_photo_set
from toolkit.pipeline import prepare_masks
from toolkit.projection import render_projection
from toolkit.projection_cache import ProjectionCache
from toolkit.recipes import load_recipe

VARIANTS = [10, 12, 3, 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, help="ProjectionCache folder of the recipe's photos")
    ap.add_argument("out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    gen = toolkit.load_generator("terrain64", device="cpu")
    recipe = load_recipe("recipes/terrain64-photos.yaml").for_generator(gen)
    ps = load_photo_set(recipe)
    cache = ProjectionCache(args.cache)
    rows = []
    for i in VARIANTS:
        v = recipe.variant(i)
        k = i % len(ps.photos)
        pr = cache.load(gen, [ps.photos[k]], ps.settings, [ps.class_of(k)])[0]
        m = prepare_masks(recipe, [v], gen.resolution)[0][0]
        e = v.edits[0]
        region = torch.from_numpy(m)[None].float()
        zr = toolkit.sample_latents(gen, [e.reference.seed])
        swap = LabelSwap([e.to_id], region[None], None)

        def ref(last):
            return [Blend(zr, region, [1.0 if p <= last else 0.0 for p in range(gen.n_blend_points)], [e.to_id])]
        collage = np.where(m[None, None] > 0.5, toolkit.render(gen, zr, [e.to_id]).numpy(), pr.reconstruction.numpy())
        imgs = [pr.reconstruction, render_projection(gen, pr, swap=swap)] + \
               [render_projection(gen, pr, swap=swap, blends=ref(last)) for last in (2, 3, 4)] + [torch.from_numpy(collage)]
        rows.append(np.concatenate([to_uint8(x)[0] for x in imgs], 1))
    sheet = np.concatenate(rows, 0)
    big = np.asarray(Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST))
    save_png(big, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
