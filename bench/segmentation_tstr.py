"""Train on synthetic, test on real (TSTR): does a segmenter trained on toolkit data work on real images?

    python bench/segmentation_tstr.py --data _data/materials --model terrain64 --out docs/materials/tstr_v1
    python bench/segmentation_tstr.py --data _data/materials --dataset DIR --out OUT   # an existing dataset

1. Synthetic training set: `--count` variants of `recipes/terrain64-segmentation.yaml` rendered
   with `--model` by the batch runner (images + label maps), or an existing dataset (`--dataset`).
2. Real reference training set: the same number of composites of real 64-px crops of the GAN's
   *training* sources (the materials build's `train` split), laid out as bands and blobs.
3. Test set: `--test` composites, same kind of layouts, of crops of the *held-out* sources
   (the 20% split no GAN and no segmenter saw).
4. The same small fully-convolutional segmenter (dilated convolutions, `Segmenter`), seed,
   steps, batch and augmentation is trained on 1 and on 2 and tested on 3.
Reports per-class IoU, mIoU of both and the ratio synthetic/real (1.0 = the synthetic data is as
good as real data for this segmenter). Deterministic (fixed seeds, deterministic kernels, one
thread by default); a few minutes on a 2-core CPU. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.images import grid, to_pil  # noqa: E402
from toolkit.io import atomic_path, atomic_write_text, save_png  # noqa: E402
from toolkit.train.data import MaterialCrops  # noqa: E402
from toolkit.train.materials import CLASSES  # noqa: E402

log = logging.getLogger("segmentation_tstr")
RECIPE = ROOT / "recipes" / "terrain64-segmentation.yaml"
PALETTE = {"grass": (80, 170, 60), "sand": (230, 210, 140), "rock": (120, 120, 120), "snow": (245, 245, 255),
           "dirt": (140, 90, 50), "foliage": (30, 90, 40), "sky": (110, 170, 240)}


class Segmenter(nn.Module):
    """Conv-BN-ReLU with dilations 1, 2, 4, 8, 1 (receptive field 33 px) and a 1×1 classifier."""

    def __init__(self, n_classes: int, width: int = 32, dilations=(1, 2, 4, 8, 1)):
        super().__init__()
        layers, c_in = [], 3
        for d in dilations:
            layers += [nn.Conv2d(c_in, width, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.classify = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:      # [B,3,H,W] → logits [B,K,H,W]
        return self.classify(self.features(x))


# -- layouts and real composites ----------------------------------------------------------------------
def random_layout(n_classes: int, res: int, g: torch.Generator) -> torch.Tensor:
    """A `[res, res]` class map: a base class, a band (half the time) and one or two elliptic blobs,
    each of a class drawn uniformly (repeats allowed: real scenes repeat materials too)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, res), torch.linspace(0, 1, res), indexing="ij")
    pick = lambda: int(torch.randint(0, n_classes, (1,), generator=g))
    m = torch.full((res, res), pick())
    if torch.rand(1, generator=g) < 0.5:
        width, start = 0.25 + 0.25 * float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g))
        coord = yy if torch.rand(1, generator=g) < 0.5 else xx
        start = start * (1 - width)
        m[(coord >= start) & (coord < start + width)] = pick()
    for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
        cy, cx = (0.15 + 0.7 * torch.rand(2, generator=g)).tolist()
        ry, rx = (0.15 + 0.2 * torch.rand(2, generator=g)).tolist()
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = pick()
    return m


def real_composites(crops: MaterialCrops, n: int, seed: int, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images `[n,3,res,res]` in [-1, 1] and maps `[n,res,res]`: every region of a layout filled
    with its own real crop of its class."""
    g = torch.Generator().manual_seed(seed)
    k = crops.n_classes
    xs, ms = [], []
    for _ in range(n):
        m = random_layout(k, res, g)
        fill, _ = crops.sample(k, g, classes=torch.arange(k))            # one crop per class
        xs.append((F.one_hot(m, k).permute(2, 0, 1).float()[:, None] * fill).sum(0))
        ms.append(m)
    return torch.stack(xs), torch.stack(ms)


# -- the synthetic dataset ------------------------------------------------------------------------------
def render_dataset(model: str, out: Path, count: int, threads: int) -> Path:
    """Render `count` variants of the segmentation recipe with `model` (the batch runner; resumable)."""
    out.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load(RECIPE.read_text())
    p = Path(model)
    recipe["model"] = str(p.resolve()) if p.exists() else model
    recipe_path = out.parent / f"{out.name}.recipe.yaml"
    atomic_write_text(recipe_path, yaml.safe_dump(recipe, sort_keys=False))
    cmd = [sys.executable, "-m", "toolkit", "batch", str(recipe_path), "--out", str(out), "--count", str(count),
           "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return out


def load_dataset(folder: Path, class_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """A toolkit dataset's images and label maps (its class ids must be the materials classes)."""
    meta = json.loads((folder / "dataset.json").read_text())
    if meta["class_names"] != class_names:
        raise SystemExit(f"{folder}: classes {meta['class_names']} differ from the materials data's {class_names}")
    with open(folder / "metadata.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file_name"])
    xs, ms = [], []
    for r in rows:
        im = np.asarray(Image.open(folder / r["file_name"]).convert("RGB"))
        xs.append(torch.from_numpy(im.copy()).permute(2, 0, 1).float() / 127.5 - 1)
        ms.append(torch.from_numpy(np.asarray(Image.open(folder / r["label_map_file"])).astype(np.int64)))
    return torch.stack(xs), torch.stack(ms)


# -- train and test -------------------------------------------------------------------------------------
def train_segmenter(x: torch.Tensor, m: torch.Tensor, n_classes: int, steps: int, batch: int, seed: int) -> Segmenter:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = Segmenter(n_classes)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    net.train()
    for s in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        xb, mb = x[idx], m[idx]
        if torch.rand(1, generator=g) < 0.5:                     # left-right mirror (keeps sky on top)
            xb, mb = xb.flip(3), mb.flip(2)
        loss = F.cross_entropy(net(xb), mb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (s + 1) % 100 == 0:
            log.info("segmenter step %d/%d loss %.3f", s + 1, steps, loss.item())
    return net.eval()


@torch.no_grad()
def predict(net: Segmenter, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return torch.cat([net(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def iou_per_class(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> list[float]:
    out = []
    for c in range(n_classes):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        out.append(inter / union if union else float("nan"))
    return out


def nanmean(v: list[float]) -> float:
    ok = [a for a in v if not math.isnan(a)]
    return sum(ok) / len(ok) if ok else float("nan")


def colour(m: torch.Tensor, names: list[str]) -> list[Image.Image]:
    pal = torch.tensor([PALETTE.get(n, (255, 0, 255)) for n in names], dtype=torch.uint8)
    return [Image.fromarray(pal[mi].numpy()) for mi in m]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="materials build output (manifest.csv with the train/heldout split)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="zoo name or weights file: render the segmentation recipe with it")
    src.add_argument("--dataset", help="an existing toolkit dataset (images/, label_maps/, dataset.json)")
    p.add_argument("--work", default="_data/tstr", help="where rendered datasets and the reference cache go")
    p.add_argument("--out", required=True, help="folder for tstr.json and predictions.png")
    p.add_argument("--count", type=int, default=300, help="variants to render with --model (the real reference "
                   "always gets as many composites as the synthetic set has images)")
    p.add_argument("--test", type=int, default=300, help="held-out real test composites")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    work, out = Path(args.work), Path(args.out)
    names, res = list(CLASSES), 64
    if args.model:
        tag = Path(args.model).stem if Path(args.model).exists() else args.model
        ds = render_dataset(args.model, work / f"{tag}-{args.count}", args.count, args.threads)
    else:
        ds = Path(args.dataset)
    x_syn, m_syn = load_dataset(ds, names)
    if x_syn.shape[-1] != res:
        raise SystemExit(f"{ds}: images are {x_syn.shape[-1]} px; this benchmark is built for {res}-px materials")
    train_real = MaterialCrops(args.data, split="train", size=res, class_names=names)
    held = MaterialCrops(args.data, split="heldout", size=res, class_names=names)
    x_test, m_test = real_composites(held, args.test, seed=1000 + args.seed, res=res)

    n_ref = len(x_syn)                 # the reference gets as many images as the synthetic set has
    key = f"ref-n{n_ref}-s{args.steps}-b{args.batch}-seed{args.seed}.pt"
    ref_path = work / key
    if ref_path.exists():
        net_real = Segmenter(len(names))
        net_real.load_state_dict(torch.load(ref_path, map_location="cpu", weights_only=True))
        net_real.eval()
    else:
        x_real, m_real = real_composites(train_real, n_ref, seed=2000 + args.seed, res=res)
        net_real = train_segmenter(x_real, m_real, len(names), args.steps, args.batch, args.seed)
        with atomic_path(ref_path, make_parents=True) as tmp:
            torch.save(net_real.state_dict(), tmp)
    net_syn = train_segmenter(x_syn, m_syn, len(names), args.steps, args.batch, args.seed)

    pred_syn, pred_real = predict(net_syn, x_test), predict(net_real, x_test)
    iou_syn, iou_real = iou_per_class(pred_syn, m_test, len(names)), iou_per_class(pred_real, m_test, len(names))
    miou_syn, miou_real = nanmean(iou_syn), nanmean(iou_real)
    ds_meta = json.loads((ds / "dataset.json").read_text())
    result = {
        "synthetic": {"dataset": str(ds), "model_id": ds_meta.get("model_id"), "model_sha256": ds_meta.get("model_sha256"),
                      "images": len(x_syn), "iou": dict(zip(names, iou_syn)), "miou": miou_syn},
        "real_reference": {"images": n_ref, "iou": dict(zip(names, iou_real)), "miou": miou_real},
        "ratio": miou_syn / miou_real,
        "test": {"images": args.test, "sources": "held-out split of the materials build", "resolution": res},
        "segmenter": {"layers": "conv3x3 dil 1,2,4,8,1 (32 ch, BN, ReLU) + 1x1", "steps": args.steps,
                      "batch": args.batch, "seed": args.seed, "optimizer": "Adam one-cycle 2e-3", "augment": "mirror"},
        "threads": args.threads, "seconds": round(time.time() - t0, 1), "torch": torch.__version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "tstr.json", json.dumps(result, indent=2))
    show = list(range(8))
    sheet = grid([to_pil(x_test[show]), colour(m_test[show], names), colour(pred_real[show], names),
                  colour(pred_syn[show], names)],
                 row_labels=["held-out real", "truth", "trained on real", "trained on synthetic"], scale=2)
    save_png(sheet, out / "predictions.png")
    print(f"{'class':<8} {'synthetic':>9} {'real':>6}")
    for c, a, b in zip(names, iou_syn, iou_real):
        print(f"{c:<8} {a:9.2f} {b:6.2f}")
    print(f"{'mIoU':<8} {miou_syn:9.2f} {miou_real:6.2f}   ratio {result['ratio']:.2f}   ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
