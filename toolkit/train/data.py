"""Class-balanced random crops for GAN training, cut on the fly from a compact image folder.

Sources are small (≤512 px) JPEGs held in memory as uint8; every sample picks a class
uniformly (snow has a quarter of grass's sources but must not be starved), a source of that
class, a square window in the source's allowed size range, and an augmentation. Terrain is
photographed top-down, so flips and 90° turns are free data; sky has an up, so it only
mirrors left-right. All randomness comes from the `torch.Generator` passed in, so a training
run resumes bit for bit from its checkpointed RNG state.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .materials import CLASSES, read_manifest

UPRIGHT_CLASSES = {"sky"}          # classes with an up direction: left-right mirroring only


class MaterialCrops:
    """Random texture crops from a materials build (`DIR/manifest.csv`, see `materials.py`):
    each source has its own range of crop windows, and a train/held-out split."""

    def __init__(self, data_dir: str | os.PathLike, split: str | None = "train", size: int = 64,
                 class_names: list[str] | None = None):
        root = Path(data_dir)
        self.size = size
        rows = [r for r in read_manifest(root) if split is None or r.get("split", "train") == split]
        entries = [(root / r["file"], r["class"], int(r["window_min"]), int(r["window_max"])) for r in rows]
        if not entries:
            raise ValueError(f"{root}/manifest.csv: no training images for split {split!r}")
        present = {e[1] for e in entries}
        self.class_names = list(class_names) if class_names else [c for c in CLASSES if c in present]
        missing = [c for c in self.class_names if c not in present]
        if missing:
            raise ValueError(f"{root}: no images of class(es) {missing} in split {split!r}")
        self.images: list[list[torch.Tensor]] = [[] for _ in self.class_names]
        self.windows: list[list[tuple[int, int]]] = [[] for _ in self.class_names]
        for path, cls, lo, hi in entries:
            if cls not in self.class_names:
                continue
            im = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
            side = min(im.shape[1:])
            if side < size:
                raise ValueError(f"{path}: {side} px is smaller than the crop size {size}")
            hi = min(hi, side)
            k = self.class_names.index(cls)
            self.images[k].append(im)
            self.windows[k].append((min(lo, side), hi))
        self.counts = [len(v) for v in self.images]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def crop(self, k: int, i: int, rng: torch.Generator) -> torch.Tensor:
        """One augmented crop `[3, size, size]` in [-1, 1] from source i of class k."""
        im = self.images[k][i]
        lo, hi = self.windows[k][i]
        w = int(torch.randint(lo, hi + 1, (1,), generator=rng))
        top = int(torch.randint(0, im.shape[1] - w + 1, (1,), generator=rng))
        left = int(torch.randint(0, im.shape[2] - w + 1, (1,), generator=rng))
        x = im[:, top:top + w, left:left + w].float()[None] / 127.5 - 1
        if w != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        flips = torch.randint(0, 2, (3,), generator=rng).tolist()
        if flips[0]:
            x = x.flip(3)
        if self.class_names[k] not in UPRIGHT_CLASSES:
            if flips[1]:
                x = x.flip(2)
            if flips[2]:
                x = x.transpose(2, 3)
        return x[0].clamp(-1, 1)

    def sample(self, n: int, rng: torch.Generator, classes: torch.Tensor | None = None):
        """`(images [n, 3, size, size] in [-1, 1], class ids [n])`, classes uniform unless given."""
        y = torch.randint(0, self.n_classes, (n,), generator=rng) if classes is None else classes
        xs = []
        for k in y.tolist():
            i = int(torch.randint(0, self.counts[k], (1,), generator=rng))
            xs.append(self.crop(k, i, rng))
        return torch.stack(xs), y
