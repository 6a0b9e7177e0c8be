"""How far a recipe's label maps are true, as its model's judge sees it (a benchmark, not a test).

    python bench/label_agreement.py recipes/terrain64-segmentation.yaml --n 500 --threshold 0.6 \
        --out docs/labels

Renders variants 0..n-1 of the recipe through the one pipeline (the batch runner's), and reports:
- `label_agreement` (share of all label-map pixels the judge assigns to the asked class): mean,
  median, and the share of variants a `filter: {min_label_agreement: T}` would keep, with the mean
  of those kept (the figures before and after the filter);
- the same share over the *swapped* pixels only (asked class ≠ the source class) and over the
  base pixels only, so a missing blob is not hidden by a large base region;
- the unedited source judged against its own class (how often the judge confirms plain samples);
- per asked class, the share of its pixels the judge confirms;
- the judge's own ceiling (collages of real held-out crops cut along random maps), from its file.
Writes `agreement.json` and a contact sheet (image | asked label map | rendered map) of the
variants with the highest and the lowest figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import load_generator, pipeline  # noqa: E402
from toolkit.dataset.layout import class_palette  # noqa: E402
from toolkit.images import grid, save_png  # noqa: E402
from toolkit.io import atomic_write_text  # noqa: E402
from toolkit.judges import judge_for  # noqa: E402
from toolkit.recipes import load_recipe  # noqa: E402


def coloured(m: np.ndarray, palette) -> Image.Image:
    return Image.fromarray(np.asarray(palette, np.uint8)[m])


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipe")
    p.add_argument("--n", type=int, default=500, help="variants 0..n-1")
    p.add_argument("--threshold", type=float, default=0.6, help="the min_label_agreement to report")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="docs/labels")
    p.add_argument("--sheet", type=int, default=6, help="variants per end (highest and lowest) on the sheet")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    recipe = load_recipe(args.recipe)
    gen = load_generator(recipe.model, device="cpu")
    recipe = recipe.for_generator(gen)
    judge = judge_for(gen)
    if judge is None:
        raise SystemExit(f"model {recipe.model!r} has no judge")
    names, k = list(gen.class_names), gen.n_classes
    fig, swapped, base, src_ok = [], [], [], []
    asked_px, hit_px = np.zeros(k), np.zeros(k)
    rvs = []
    for start in range(0, args.n, args.batch):
        out = pipeline.render_variants(gen, recipe, recipe.variants(range(start, min(args.n, start + args.batch))))
        for rv in out:
            lm, seen = rv.label_map, rv.rendered_map
            sw = lm != rv.variant.source.class_id
            fig.append(rv.label_agreement)
            swapped.append(float((seen[sw] == lm[sw]).mean()) if sw.any() else np.nan)
            base.append(float((seen[~sw] == lm[~sw]).mean()) if (~sw).any() else np.nan)
            src_seen = judge.classify(rv.source_image[None])[0]
            src_ok.append(float((src_seen == rv.variant.source.class_id).mean()))
            asked_px += np.bincount(lm.ravel(), minlength=k)
            hit_px += np.bincount(lm[seen == lm].ravel(), minlength=k)
            rvs.append((rv.index, rv.label_agreement, rv.image, lm, seen))
        logging.info("%d/%d variants", len(fig), args.n)
    fig_a, sw_a = np.array(fig), np.array(swapped)
    keep = fig_a >= args.threshold
    result = {
        "recipe": recipe.name, "recipe_sha256": recipe.sha256, "model": recipe.model,
        "model_sha256": gen.provenance.sha256, "judge": judge.name, "judge_sha256": judge.sha256,
        "judge_accuracy": judge.meta.get("accuracy"), "variants": args.n, "threshold": args.threshold,
        "before": {"mean": round(float(fig_a.mean()), 4), "median": round(float(np.median(fig_a)), 4),
                   "swapped_pixels_mean": round(float(np.nanmean(sw_a)), 4),
                   "base_pixels_mean": round(float(np.nanmean(base)), 4)},
        "after": {"kept": int(keep.sum()), "share_kept": round(float(keep.mean()), 4),
                  "mean": round(float(fig_a[keep].mean()), 4) if keep.any() else None,
                  "swapped_pixels_mean": round(float(np.nanmean(sw_a[keep])), 4) if keep.any() else None},
        "share_kept_at": {str(t): round(float((fig_a >= t).mean()), 4) for t in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
        "source_images_confirmed_mean": round(float(np.mean(src_ok)), 4),
        "per_asked_class_confirmed": {c: round(float(hit_px[i] / asked_px[i]), 4) if asked_px[i] else None
                                      for i, c in enumerate(names)},
        "machine": f"CPU, torch {torch.__version__}, {args.threads} thread(s)",
        "seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    atomic_write_text(out / "agreement.json", json.dumps(result, indent=2) + "\n", make_parents=True)
    pal = class_palette(names)
    order = sorted(rvs, key=lambda r: -r[1])
    pick = order[:args.sheet] + order[-args.sheet:]
    rows = [[Image.fromarray(r[2]) for r in pick], [coloured(r[3], pal) for r in pick],
            [coloured(r[4], pal) for r in pick]]
    sheet = grid(rows, row_labels=["image", "asked", "rendered"],
                 col_labels=[f"#{r[0]} {r[1]:.2f}" for r in pick], scale=2)
    legend = grid([[Image.new("RGB", (16, 16), c) for c in pal]], col_labels=[n[:5] for n in names], scale=1, pad=40)
    full = Image.new("RGB", (sheet.width, sheet.height + legend.height), "white")
    full.paste(sheet, (0, 0))
    full.paste(legend, (0, sheet.height))
    save_png(full, out / f"{Path(recipe.model).stem}_agreement_sheet.png")
    print(json.dumps({k_: v for k_, v in result.items() if k_ != "judge_accuracy"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
