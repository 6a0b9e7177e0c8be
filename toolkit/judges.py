"""Judges: small per-pixel classifiers that say what a generator actually rendered.

A label map says what was *asked*; a judge, trained on real images of the same classes, says
what each pixel *shows*. The render pipeline uses it, when the model has one (`ZooEntry.judge`),
to write a second map (`rendered_maps/`) and the `label_agreement` figure of every label swap;
a model without a judge gets neither (the toolkit never guesses a number).

The net is the benchmark's patch classifier (4 conv-BN-ReLU layers, 3 max-pools, global average
pool, linear) trained on 32×32 patches. Run densely it is fully convolutional: the image is
reflect-padded by 16 px, features come out at 1/8 resolution, a 4×4 average pool stride 1 stands
in for the patch's global pool (cell i sees the 32-px window centred on pixel 8i), the linear
layer becomes a 1×1 conv, and the logits are upsampled bilinearly to every pixel. That is about
10× cheaper than sliding windows, and the same function apart from the zero padding at a
window's edge.

Judges are tied to a class list, not to one set of generator weights: a retrained terrain64
with the same classes keeps its judge; different class names are refused with a clear message.
Files are fp16 safetensors with JSON metadata (architecture, classes, training settings,
held-out accuracy, data). Training: `python -m toolkit.judges train terrain64 --data DIR`.
No file I/O happens at import; `classify` runs on CPU, one image at a time, so a figure does not
depend on the batch it was rendered in.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors.torch import save_file

from . import io as tio
from . import zoo
from .checkpoints import CheckpointError, load_state_strict, sha256_file
from .formats.core import read_tagged_safetensors
from .recipes.model_info import info_from_zoo
from .train.data import MaterialCrops

log = logging.getLogger(__name__)

PATCH = 32               # training patch side; the dense pass's window
JUDGE_FORMAT = "nct-judge-1"
JUDGES_DIR = Path(__file__).parent / "weights" / "judges"


class JudgeNet(nn.Module):
    """Conv-BN-ReLU ×4 (max-pool after the first three), global average pool, linear."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        chans, layers, c_in = [width, 2 * width, 3 * width, 4 * width], [], 3
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, 32, 32]` in [-1, 1] → patch logits `[B, K]`."""
        return self.fc(self.features(x).mean((2, 3)))

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` (H, W multiples of 8, ≥ 24) → per-pixel logits `[B, K, H, W]`."""
        h, w = x.shape[-2:]
        if h % 8 or w % 8 or min(h, w) <= PATCH // 2:
            raise ValueError(f"a judge needs images whose sides are multiples of 8 and > {PATCH // 2} px, got {h}×{w}")
        f = self.features(F.pad(x, (PATCH // 2,) * 4, mode="reflect"))       # [B, C, H/8+4, W/8+4]
        f = F.avg_pool2d(f, PATCH // 8, stride=1)                            # [B, C, H/8+1, W/8+1]
        logits = F.conv2d(f, self.fc.weight[:, :, None, None], self.fc.bias)
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)


@dataclass
class Judge:
    net: JudgeNet
    class_names: tuple[str, ...]
    meta: dict                    # training settings, accuracy, data (saved in the file)
    sha256: str = ""              # of the file it was loaded from
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.stem if self.path else "judge"))

    @torch.no_grad()
    def classify(self, images: np.ndarray) -> np.ndarray:
        """`[B, H, W, 3]` uint8 images → `[B, H, W]` uint8 class ids of what each pixel shows.
        One image per pass (see the module docstring: the result must not depend on the batch)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"classify expects [B, H, W, 3] uint8 images, got {images.shape} {images.dtype}")
        out = np.empty(images.shape[:3], np.uint8)
        for b, im in enumerate(images):
            x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 127.5 - 1
            out[b] = self.net.dense(x).argmax(1)[0].numpy().astype(np.uint8)
        return out

    def check_classes(self, class_names, model: str) -> None:
        if tuple(class_names) != self.class_names:
            raise CheckpointError(
                f"judge {self.name!r} ({self.path}) was trained for the classes {list(self.class_names)}, but model "
                f"{model!r} has {list(class_names)}: its figures would be wrong. Retrain the judge for these classes "
                "(python -m toolkit.judges train ...) or remove the zoo entry's `judge`.")

    def save(self, path: str | Path) -> Path:
        """fp16 safetensors (widened back to float32 on load), metadata as JSON; atomic."""
        state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in self.net.state_dict().items()}
        meta = {"format": JUDGE_FORMAT, "meta": json.dumps(
            {**self.meta, "class_names": list(self.class_names)}, sort_keys=True)}
        with tio.atomic_path(path, make_parents=True) as tmp:
            save_file(state, str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Judge":
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"judge file {path} is missing (it ships with the repository; git checkout it, "
                                  "or retrain it with python -m toolkit.judges train)")
        header, state = read_tagged_safetensors(path, JUDGE_FORMAT, "judge")
        meta = json.loads(header["meta"])
        net = JudgeNet(len(meta["class_names"]), int(meta.get("width", 32)))
        load_state_strict(net, state, str(path))
        return cls(net.eval(), tuple(meta["class_names"]), meta, sha256_file(path), path)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Judge:
    return Judge.load(path)


def judge_for(generator) -> Judge | None:
    """The judge of a zoo model (its entry's `judge` file), checked against the generator's classes;
    None for models without one (files loaded by path, unconditional models, entries with no judge)."""
    prov = getattr(generator, "provenance", None)
    if prov is None or prov.source != "zoo" or not generator.n_classes:
        return None
    entry = zoo.ZOO.get(prov.model_id)
    if entry is None or entry.judge is None:
        return None
    p = Path(entry.judge)
    judge = _load_cached(str(p), p.stat().st_mtime_ns if p.exists() else 0)
    judge.check_classes(generator.class_names, prov.model_id)
    return judge


def agreement(label_map: np.ndarray, rendered_map: np.ndarray) -> float:
    """`label_agreement`: the share of all the label map's pixels whose rendered content the judge
    assigns to the asked class, rounded to 6 decimals (the manifest's precision, so a filter's
    decision and the recorded figure are the same number)."""
    return round(float(np.mean(np.asarray(label_map) == np.asarray(rendered_map))), 6)


# -- training ----------------------------------------------------------------------------------------
def _patches(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    out = []
    for xi in x:
        i, j = torch.randint(0, x.shape[-1] - PATCH + 1, (2,), generator=rng).tolist()
        out.append(xi[:, i:i + PATCH, j:j + PATCH])
    return torch.stack(out)


def train_net(data: MaterialCrops, steps: int, *, batch: int = 64, seed: int = 0, width: int = 32) -> JudgeNet:
    """Patches of real crops, class-balanced; brightness/contrast jitter so colour alone does not decide
    (generated colours drift); Adam with a one-cycle schedule."""
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    net = JudgeNet(data.n_classes, width)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    net.train()
    for s in range(steps):
        x, y = data.sample(batch, rng)
        x = _patches(x, rng)
        x = (x * (1 + 0.2 * (torch.rand(batch, 1, 1, 1, generator=rng) - 0.5))
             + 0.2 * (torch.rand(batch, 1, 1, 1, generator=rng) - 0.5)).clamp(-1, 1)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (s + 1) % 100 == 0:
            log.info("judge step %d/%d loss %.3f", s + 1, steps, loss.item())
    return net.eval()


def collage_maps(n: int, n_classes: int, res: int, seed: int = 7) -> torch.Tensor:
    """`[n, res, res]` label maps of 2–3 classes (Voronoi cells) for the collage test."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    maps = []
    for _ in range(n):
        k = 2 + int(torch.randint(0, 2, (1,), generator=g))
        cls = torch.randperm(n_classes, generator=g)[:k]
        pts = torch.rand(k, 2, generator=g) * res
        d = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
        maps.append(cls[d.argmin(0)])
    return torch.stack(maps)


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def evaluate(judge: Judge, held: MaterialCrops, per_class: int = 100, collages: int = 200, seed: int = 1) -> dict:
    """Per-pixel accuracy on crops of the held-out sources (never seen in training), per class, and on
    collages of held-out crops cut along random label maps: the agreement a perfect rendering of
    those maps would get (the judge's ceiling, boundaries included)."""
    rng = torch.Generator().manual_seed(seed)
    k, res = held.n_classes, held.size
    y = torch.arange(k).repeat_interleave(per_class)
    x, _ = held.sample(len(y), rng, classes=y)
    pred = judge.classify(to_uint8_images(x))
    hit = (pred == y.numpy()[:, None, None]).mean((1, 2))
    per = {c: round(float(hit[y.numpy() == i].mean()), 4) for i, c in enumerate(judge.class_names)}
    conf = np.zeros((k, k), np.int64)
    for t, p in zip(y.tolist(), pred):
        conf[t] += np.bincount(p.ravel(), minlength=k)
    maps = collage_maps(collages, k, res)
    fill = []
    for m in maps:
        crops, _ = held.sample(k, rng, classes=torch.arange(k))
        fill.append((F.one_hot(m, k).permute(2, 0, 1).float()[:, None] * crops).sum(0))
    cpred = judge.classify(to_uint8_images(torch.stack(fill)))
    cagree = (cpred == maps.numpy()).mean((1, 2))
    return {"heldout_pixel_accuracy": round(float(hit.mean()), 4), "heldout_pixel_accuracy_per_class": per,
            "heldout_images_per_class": per_class,
            "heldout_pixel_confusion": {"rows_true": list(judge.class_names), "counts": conf.tolist()},
            "collage_agreement_mean": round(float(cagree.mean()), 4),
            "collage_agreement_median": round(float(np.median(cagree)), 4), "collages": collages}


def train_judge(name: str, data_dir: str | Path, *, steps: int = 800, seed: int = 0, width: int = 32,
                resolution: int = 64, class_names: list[str] | None = None) -> Judge:
    """Train on the build's `train` split, measure on its `heldout` split (after the fp16 round trip
    the shipped file goes through)."""
    t0 = time.time()
    train = MaterialCrops(data_dir, split="train", size=resolution, class_names=class_names)
    held = MaterialCrops(data_dir, split="heldout", size=resolution, class_names=train.class_names)
    net = train_net(train, steps, seed=seed, width=width)
    net.load_state_dict({k: v.half().to(v.dtype) if v.is_floating_point() else v
                         for k, v in net.state_dict().items()})
    manifest = Path(data_dir) / "manifest.csv"
    meta = {"name": name, "architecture": "JudgeNet", "width": width, "patch": PATCH, "steps": steps, "seed": seed,
            "batch": 64, "resolution": resolution,
            "data": {"builder": "python -m toolkit.train.materials build",
                     "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                     "train_sources": sum(train.counts), "heldout_sources": sum(held.counts),
                     "license": "CC-BY-SA-3.0, Wildfire Games (0 A.D.); the judge weights are a derivative"},
            "command": f"python -m toolkit.judges train {name} --data DIR --steps {steps} --seed {seed}"}
    judge = Judge(net, tuple(train.class_names), meta)
    judge.meta["accuracy"] = evaluate(judge, held)
    judge.meta["train_seconds"] = round(time.time() - t0, 1)
    return judge


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m toolkit.judges", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a judge on a materials build (train split), measure it on the held-out split")
    t.add_argument("model", help="the zoo model whose classes the judge learns (e.g. terrain64)")
    t.add_argument("--data", required=True, help="a `python -m toolkit.train.materials build` output folder")
    t.add_argument("--out", default=None, help=f"judge file (default {JUDGES_DIR}/MODEL.safetensors)")
    t.add_argument("--steps", type=int, default=800)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("show", help="print a judge file's metadata (accuracy, data, settings)")
    e.add_argument("file")
    args = p.parse_args(argv)
    if args.command == "show":
        j = Judge.load(args.file)
        print(json.dumps({**j.meta, "sha256": j.sha256}, indent=2))
        return 0
    torch.set_num_threads(args.threads)
    entry = zoo.ZOO.get(args.model)
    if entry is None or entry.config is None and entry.header_file is None:
        raise SystemExit(f"{args.model!r}: not a zoo model whose classes are known without loading it")
    info = info_from_zoo(entry)
    judge = train_judge(args.model, args.data, steps=args.steps, seed=args.seed, resolution=info.resolution,
                        class_names=list(info.class_names))
    out = judge.save(args.out or JUDGES_DIR / f"{args.model}.safetensors")
    acc = judge.meta["accuracy"]
    print(f"wrote {out} ({out.stat().st_size} bytes): held-out pixel accuracy {acc['heldout_pixel_accuracy']:.3f}, "
          f"collage agreement {acc['collage_agreement_mean']:.3f}; per class {acc['heldout_pixel_accuracy_per_class']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
