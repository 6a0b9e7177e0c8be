"""How much a label swap on a projected photo changes the material, before and after the photo-edit
path of `projection.render_projection` (docs/PHOTOS.md). Not a test: a measurement.

For every shipped terrain photo (recipes/photos/terrain) and every class other than the one it
projects to, an ellipse in the middle of the photo is swapped to that class two ways:
- `resume` (before): the source resumes from the inverted features at the projection point and the
  swap acts on the stages after it only (the old path; `engine.Start` without a mask);
- `paste` (after): generated from the projected latent and class with the swap at every stage, the
  inverted features pasted at the point outside the region (`render_projection`).
The model's judge (toolkit.judges) then says which share of the region's pixels shows the asked
class, on the 64-px edit and on the photo composited back (Poisson and feathered; judged at the
model's scale, `photo_variants.judge_photo`). Outside the dilated region we count the 64-px edit's
pixels equal to the reconstruction's (uint8) and check the composited photo is bit-identical.

    python -m bench.photo_edits --cache out/photo-projections [--threads 1]

Projections come from (and go to) a `ProjectionCache` folder: the batch runner's
`DATASET/projections` of a run of recipes/terrain64-photos.yaml can be passed to skip projecting.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import toolkit
from toolkit import Blend, LabelSwap
from toolkit.composite import DILATE_MODEL_PX, _dilate, composite, to_model_frame
from toolkit.engine import render
from toolkit.images import to_uint8
from toolkit.io import atomic_write_text
from toolkit.judges import judge_for
from toolkit.photo_variants import judge_photo
from toolkit.photos import find_photos, load_photo, region_mask
from toolkit.projection import PRESETS, render_projection
from toolkit.projection_cache import ProjectionCache

REGION = "ellipse:0.5,0.5,0.45,0.55"
PHOTOS = Path("recipes/photos/terrain")


def edits(gen, proj, target: int, w_model: torch.Tensor, ref_z: torch.Tensor) -> dict[str, np.ndarray]:
    """The 64-px edits of one photo: {"resume": ..., "paste": ..., "paste_ref": ...} as uint8 [R, R, 3]."""
    after = LabelSwap([target], w_model[None])
    before = LabelSwap([target], w_model[None], stages=range(proj.point, gen.n_stages))
    upto = [1.0] * (proj.point + 1) + [0.0] * (gen.n_blend_points - proj.point - 1)
    ref = Blend(ref_z, w_model, upto, y=[target])
    return {"resume": to_uint8(render(gen, proj.z, proj.class_vector, swap=before, start=proj.start()))[0],
            "paste": to_uint8(render_projection(gen, proj, swap=after))[0],
            "paste_ref": to_uint8(render_projection(gen, proj, swap=after, blends=[ref]))[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", required=True, help="ProjectionCache folder (created; reused)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the markdown table here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = toolkit.load_generator("terrain64", device="cpu")
    judge = judge_for(gen)
    photos = [load_photo(p, PHOTOS) for p in find_photos("*/*.jpg", PHOTOS)]
    projs = ProjectionCache(args.cache).load(gen, photos, PRESETS["default"])
    res, names = gen.resolution, gen.class_names
    # Each class's typical colour: the mean of 32 generations from random latents.
    z = toolkit.sample_latents(gen, range(32))
    colour = [to_uint8(render(gen, z, [t] * 32)).reshape(-1, 3).mean(0) for t in range(gen.n_classes)]
    ref_z = toolkit.sample_latents(gen, [1])      # the reference of `paste_ref` (any typical latent)
    rows = []
    for ph, proj in zip(photos, projs):
        crop = proj.crops[0]
        w_photo = region_mask(REGION, *ph.size)
        w_model = to_model_frame(w_photo, crop, res)
        inside_m = w_model.numpy() > 0.5
        outside_m = ~_dilate(w_model.numpy() > 0, DILATE_MODEL_PX)
        inside_p = w_photo > 0.5
        recon = to_uint8(proj.reconstruction)[0]
        base = proj.classes[0]
        for t in range(gen.n_classes):
            if t == base:
                continue
            row = {"photo": ph.name, "base": names[base], "target": names[t],
                   "recon_colour": float(np.linalg.norm(recon[inside_m].mean(0) - colour[t]))}
            for how, e in edits(gen, proj, t, w_model, ref_z).items():
                row[f"{how}_64"] = float((judge.classify(e[None])[0][inside_m] == t).mean())
                row[f"{how}_same_outside"] = float((e == recon).all(-1)[outside_m].mean())
                row[f"{how}_diff_outside"] = float(np.abs(e.astype(int) - recon)[outside_m].mean())
                row[f"{how}_colour"] = float(np.linalg.norm(e[inside_m].mean(0) - colour[t]))
                for blend in ("poisson", "feather"):
                    img, region = composite(ph.pixels, e, crop, w_photo, blend=blend)
                    assert np.array_equal(img[~region], ph.pixels[~region])
                    row[f"{how}_{blend}"] = float((judge_photo(judge, img, crop, res)[inside_p] == t).mean())
            rows.append(row)
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    hows = ("resume", "paste", "paste_ref")
    mean = {k: np.mean([r[k] for r in rows]) for k in rows[0] if isinstance(rows[0][k], float)}
    cell = lambda key, f: " | ".join(f"{mean[f'{h}_{key}']:{f}}" for h in hows)
    lines = [f"{len(rows)} swaps ({len(photos)} photos × the {gen.n_classes - 1} classes each does not project to), "
             f"region {REGION}; means:", "",
             "| | resume (before) | paste (now) | paste + reference |", "|---|---|---|---|",
             f"| region pixels the judge sees as the asked class, 64-px edit | {cell('64', '.3f')} |",
             f"| same, composited (Poisson) | {cell('poisson', '.3f')} |",
             f"| same, composited (feathered) | {cell('feather', '.3f')} |",
             f"| distance of the region's mean RGB to the class's mean RGB (0..441; reconstruction "
             f"{mean['recon_colour']:.1f}) | {cell('colour', '.1f')} |",
             f"| 64-px pixels equal to the reconstruction outside the region dilated by {DILATE_MODEL_PX} px "
             f"| {cell('same_outside', '.3f')} |",
             f"| mean abs. difference there (0..255) | {cell('diff_outside', '.2f')} |", "",
             "Composited photos are bit-identical to the photo outside the dilated region in every case (asserted).",
             "`paste + reference`: the same swap plus a blend of one random latent (seed 1) rendered with the asked "
             "class, strength 1 at the points up to the projection point, inside the region.",
             "", "Per asked class (64-px edit, resume → paste → paste + reference):", ""]
    for t in names:
        sel = [r for r in rows if r["target"] == t]
        if sel:
            got = " → ".join(f"{np.mean([r[f'{h}_64'] for r in sel]):.2f}" for h in hows)
            lines.append(f"- {t}: {got} ({len(sel)} photos)")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
