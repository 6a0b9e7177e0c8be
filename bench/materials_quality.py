"""Quality evidence for the materials model (a benchmark script, not a test).

    python bench/materials_quality.py --data _data/materials --model terrain64 --out docs/materials

1. Trains a small fully-convolutional material classifier on 32×32 patches of real 64×64 crops
   of the *training* sources (the ones the GAN saw), and measures it on crops of the held-out
   sources (20% of every class, never shown to the GAN or the classifier).
2. Classifies generated samples per class (whole image = mean of 9 overlapping patches):
   the fraction the classifier files under the class they were asked for.
3. Label-swap fidelity: for a fixed set of random label maps (bands, halves and blobs of 2–3
   classes, seed 2024), renders a label swap at every stage and predicts a label map with the
   classifier on a sliding 32×32 window (stride 8); reports the mean IoU between the map asked
   for and the predicted one. The same maps filled with real held-out crops give the ceiling
   the classifier allows at that window size.
4. Writes per-class sample grids and label-swap examples (PNG) and `quality.json`.
Runs on CPU in a few minutes; everything is seeded.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import LabelSwap, load_generator, render, sample_latents  # noqa: E402
from toolkit.images import grid, to_pil  # noqa: E402
from toolkit.io import atomic_path, atomic_write_text, save_png  # noqa: E402
from toolkit.judges import JudgeNet, train_net  # noqa: E402
from toolkit.train.data import MaterialCrops  # noqa: E402

log = logging.getLogger("materials_quality")
PATCH, STRIDE = 32, 8
PALETTE = {"grass": (80, 170, 60), "sand": (230, 210, 140), "rock": (120, 120, 120), "snow": (245, 245, 255),
           "dirt": (140, 90, 50), "foliage": (30, 90, 40), "sky": (110, 170, 240)}


# The patch classifier is the terrain64 judge's network (one definition: toolkit.judges).
PatchClassifier = JudgeNet


@torch.no_grad()
def windows(x: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """`[B,3,H,W]` → `[B, n, n, 3, PATCH, PATCH]` windows (reflect-padded by `pad`)."""
    if pad:
        x = F.pad(x, (pad,) * 4, mode="reflect")
    u = x.unfold(2, PATCH, stride).unfold(3, PATCH, stride)          # [B,3,n,n,P,P]
    return u.permute(0, 2, 3, 1, 4, 5)


@torch.no_grad()
def predict_image(clf, x: torch.Tensor) -> torch.Tensor:
    """Whole-image class probabilities: mean over 9 overlapping patches."""
    w = windows(x, 16, 0)
    b, n = w.shape[:2]
    p = clf(w.reshape(-1, 3, PATCH, PATCH)).softmax(1).view(b, n * n, -1)
    return p.mean(1)


@torch.no_grad()
def predict_map(clf, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel labels `[B,H,W]`: each 32×32 window (stride 8, centred every 8 px) labels its 8×8 centre."""
    w = windows(x, STRIDE, PATCH // 2 - STRIDE // 2)
    b, n = w.shape[:2]
    lab = clf(w.reshape(-1, 3, PATCH, PATCH)).argmax(1).view(b, 1, n, n).float()
    return F.interpolate(lab, size=x.shape[-2:], mode="nearest")[:, 0].long()


def random_label_maps(n: int, n_classes: int, res: int, seed: int = 2024) -> torch.Tensor:
    """`[n, res, res]` class maps: a band across a base, two halves, or 2–3 Voronoi blobs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    maps = []
    for i in range(n):
        cls = torch.randperm(n_classes, generator=g)[:3].tolist()
        kind = i % 3
        m = torch.full((res, res), cls[0])
        if kind == 0:                                  # a band of class 1 across class 0
            width = int(torch.randint(res // 4, res // 2 + 1, (1,), generator=g))
            start = int(torch.randint(0, res - width + 1, (1,), generator=g))
            coord = yy if torch.rand(1, generator=g) < 0.5 else xx
            m[(coord >= start) & (coord < start + width)] = cls[1]
        elif kind == 1:                                # two halves (e.g. sky over sand)
            cut = int(torch.randint(res // 3, 2 * res // 3 + 1, (1,), generator=g))
            m[yy < cut] = cls[1]
        else:                                          # Voronoi blobs of 3 classes
            pts = torch.rand(3, 2, generator=g) * res
            d = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
            m = torch.tensor(cls)[d.argmin(0)]
        maps.append(m)
    return torch.stack(maps)


def one_hot_maps(maps: torch.Tensor, n_classes: int) -> torch.Tensor:
    return F.one_hot(maps, n_classes).permute(0, 3, 1, 2).float()


@torch.no_grad()
def render_label_maps(gen, maps: torch.Tensor, seeds, stages=None, batch: int = 16) -> torch.Tensor:
    """Label swap of the whole map (every class, weights one-hot) over a base class = the map's top-left."""
    out = []
    k = gen.n_classes
    for i in range(0, len(maps), batch):
        m = maps[i:i + batch]
        z = sample_latents(gen, seeds[i:i + batch])
        y = m[:, 0, 0]
        swap = LabelSwap(torch.arange(k)[None].expand(len(m), k), one_hot_maps(m, k), stages)
        out.append(render(gen, z, y, swap=swap))
    return torch.cat(out)


def iou_table(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> list[float]:
    ious = []
    for c in range(n_classes):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        ious.append(inter / union if union else float("nan"))
    return ious


def colour_map(m: torch.Tensor, names) -> Image.Image:
    pal = torch.tensor([PALETTE.get(n, (255, 0, 255)) for n in names], dtype=torch.uint8)
    return Image.fromarray(pal[m].numpy())


EXAMPLES = [  # (title, base class, [(class, region as (top, bottom, left, right) fractions or "diag")])
    ("meadow with a rock band", "grass", [("rock", (0.375, 0.625, 0, 1))]),
    ("sky over sand", "sand", [("sky", (0, 0.45, 0, 1))]),
    ("snow field on rock", "rock", [("snow", (0.5, 1, 0, 1))]),
    ("dirt path through foliage", "foliage", [("dirt", (0, 1, 0.375, 0.625))]),
    ("sand beach, grass inland", "sand", [("grass", (0, 1, 0.5, 1))]),
    ("sky over snow over rock", "rock", [("sky", (0, 0.35, 0, 1)), ("snow", (0.35, 0.65, 0, 1))]),
]


@torch.no_grad()
def examples_sheet(gen, seeds=(3, 14, 15, 92)) -> Image.Image:
    res, names = gen.resolution, gen.class_names
    rows, labels = [], []
    for title, base, regions in EXAMPLES:
        m = torch.full((res, res), names.index(base))
        for cls, (t, b, l, r) in regions:
            m[int(t * res):int(b * res), int(l * res):int(r * res)] = names.index(cls)
        maps = m[None].expand(len(seeds), res, res)
        z = sample_latents(gen, list(seeds))
        plain = to_pil(render(gen, z, [base] * len(seeds)))
        swapped = to_pil(render_label_maps(gen, maps, list(seeds)))
        rows.append([colour_map(m, names)] + [im for pair in zip(plain, swapped) for im in pair])
        labels.append(title)
    cols = ["label map"] + [c for s in seeds for c in (f"base {s}", f"swap {s}")]
    return grid(rows, row_labels=labels, col_labels=cols, scale=2)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="materials build output (manifest.csv with train/heldout split)")
    p.add_argument("--model", default="terrain64", help="zoo name or weights file")
    p.add_argument("--out", default="docs/materials", help="folder for quality.json and the PNG sheets")
    p.add_argument("--classifier-steps", type=int, default=800)
    p.add_argument("--per-class", type=int, default=100, help="real and generated images per class")
    p.add_argument("--maps", type=int, default=60, help="random label maps for the mIoU")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--classifier-cache", default=None,
                   help="state-dict file: loaded when it exists (same steps), else written after training")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = Path(args.out)
    gen = load_generator(args.model, device="cpu")
    names = gen.class_names
    train_data = MaterialCrops(args.data, split="train", size=gen.resolution, class_names=names)
    held = MaterialCrops(args.data, split="heldout", size=gen.resolution, class_names=names)
    cache = Path(args.classifier_cache) if args.classifier_cache else None
    if cache and cache.exists():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("steps") != args.classifier_steps or saved.get("classes") != names:
            raise SystemExit(f"{cache}: trained with other settings; delete it or pass another path")
        clf = PatchClassifier(len(names))
        clf.load_state_dict(saved["state"])
        clf.eval()
    else:
        clf = train_net(train_data, args.classifier_steps)   # the judge's own training: one recipe
        if cache:
            with atomic_path(cache, make_parents=True) as tmp:
                torch.save({"steps": args.classifier_steps, "classes": names, "state": clf.state_dict()}, tmp)

    rng = torch.Generator().manual_seed(1)
    n = args.per_class
    k = len(names)
    y_eval = torch.arange(k).repeat_interleave(n)
    real, _ = held.sample(len(y_eval), rng, classes=y_eval)
    real_pred = predict_image(clf, real).argmax(1)
    seeds = list(range(len(y_eval)))
    fake = torch.cat([render(gen, sample_latents(gen, seeds[i:i + 64]), y_eval[i:i + 64])
                      for i in range(0, len(seeds), 64)])
    fake_pred = predict_image(clf, fake).argmax(1)
    per_class = {c: {"real_heldout_acc": (real_pred[y_eval == i] == i).float().mean().item(),
                     "generated_acc": (fake_pred[y_eval == i] == i).float().mean().item()}
                 for i, c in enumerate(names)}
    confusion = torch.zeros(k, k, dtype=torch.long)
    for t, pr in zip(y_eval.tolist(), fake_pred.tolist()):
        confusion[t, pr] += 1

    maps = random_label_maps(args.maps, k, gen.resolution)
    map_seeds = list(range(10_000, 10_000 + len(maps)))
    swapped = render_label_maps(gen, maps, map_seeds)
    pred_maps = predict_map(clf, swapped)
    iou_fake = iou_table(pred_maps, maps, k)
    # ceiling: the same maps filled with real held-out crops
    fill = []
    for m in maps:
        crops, _ = held.sample(k, rng, classes=torch.arange(k))
        fill.append((one_hot_maps(m[None], k)[0][:, None] * crops).sum(0))
    iou_real = iou_table(predict_map(clf, torch.stack(fill)), maps, k)
    nanmean = lambda v: sum(x for x in v if not math.isnan(x)) / max(1, sum(not math.isnan(x) for x in v))

    result = {
        "model": args.model, "model_sha256": gen.provenance.sha256,
        "classifier": {"train": "32x32 patches of real crops of the GAN's training sources",
                       "steps": args.classifier_steps, "eval_images_per_class": n},
        "real_heldout_acc": (real_pred == y_eval).float().mean().item(),
        "generated_acc": (fake_pred == y_eval).float().mean().item(),
        "per_class": per_class,
        "generated_confusion": {"rows_asked": names, "cols_predicted": names, "counts": confusion.tolist()},
        "label_swap": {"maps": len(maps), "stages": "all", "window": PATCH, "stride": STRIDE,
                       "miou_generated": nanmean(iou_fake), "miou_real_collage_ceiling": nanmean(iou_real),
                       "iou_generated": dict(zip(names, iou_fake)), "iou_real_collage": dict(zip(names, iou_real))},
        "seconds": round(time.time() - t0, 1),
    }
    atomic_write_text(out / "quality.json", json.dumps(result, indent=2), make_parents=True)

    # pictures: samples per class, real crops per class, label-swap examples, measured maps
    z = sample_latents(gen, list(range(100, 110)))
    save_png(grid([to_pil(render(gen, z, [c] * 10)) for c in names], row_labels=names, scale=2),
             out / "samples.png")
    rr = torch.Generator().manual_seed(5)
    save_png(grid([to_pil(held.sample(10, rr, classes=torch.full((10,), i))[0]) for i in range(k)],
                  row_labels=names, scale=2), out / "real_heldout.png")
    save_png(examples_sheet(gen), out / "label_swaps.png")
    show = list(range(min(8, len(maps))))
    save_png(grid([[colour_map(maps[i], names) for i in show], to_pil(swapped[show]),
                   [colour_map(pred_maps[i], names) for i in show]],
                  row_labels=["asked", "generated", "predicted"], scale=2), out / "label_maps_measured.png")
    print(json.dumps({k: v for k, v in result.items() if k not in ("generated_confusion",)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
