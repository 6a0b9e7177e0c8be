"""Your own labelled images as GAN training data: an ImageFolder, or a Hugging Face imagefolder.

Two layouts are read (the ones people already have):
- `FOLDER/<class>/**/*.jpg|png|...`: one sub-folder per class, images at any depth below it
  (torchvision's ImageFolder; also what a Hugging Face `imagefolder` infers labels from);
- `FOLDER/metadata.csv` with the columns `file_name` (relative to FOLDER) and `label`
  (a Hugging Face `imagefolder` with a metadata file).
A materials build (`FOLDER/manifest.csv`, see `materials.py`) is the third: its per-source crop
windows and train/held-out split are read by `MaterialCrops`. `open_training_data` picks the reader.

Images may have any size: each is resized once, at load, so that its shorter side is the
training resolution (antialiased; smaller images are upscaled and counted in the log), and kept
in memory as uint8. A sample is a square crop at a random place along the longer side,
mirrored left-right half of the time (images have an up; no vertical flips). Classes are drawn
uniformly so a small class is not starved. One class is fine: the model is then conditional on
a single class (everything works except label swap, which needs a second class to swap to).

Reading is strict: a folder with no classes, a class with no images, an unreadable image or a
metadata row naming a missing file (or a file outside FOLDER) is an error that names it; nothing
is skipped silently. All randomness comes from the `torch.Generator` passed in, so a run
resumes bit for bit.
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import MaterialCrops

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
LAYOUT_HELP = ("expected one sub-folder per class (FOLDER/<class>/*.jpg; one class is fine) or a "
               "metadata.csv with the columns file_name,label (Hugging Face imagefolder)")


class DataError(ValueError):
    """A training folder the trainer cannot use; the message says which file and how to fix it."""


def _label_order(labels: set[str]) -> list[str]:
    """Sorted names; integer labels sort as numbers ("2" before "10")."""
    if labels and all(s.lstrip("-").isdigit() for s in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _from_subfolders(root: Path) -> list[tuple[Path, str]]:
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTS][:3]
        hint = f" (images directly in it, e.g. {loose}, have no class: move them into FOLDER/<class>/)" if loose else ""
        raise DataError(f"{root}: no class sub-folders and no metadata.csv{hint}; {LAYOUT_HELP}")
    entries = []
    for d in classes:
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise DataError(f"{d}: class folder {d.name!r} holds no images ({', '.join(IMAGE_EXTS)}); "
                            "add images or remove the folder")
        entries += [(p, d.name) for p in files]
    return entries


def _from_metadata(root: Path) -> list[tuple[Path, str]]:
    path = root / "metadata.csv"
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file_name", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (has {reader.fieldnames}); {LAYOUT_HELP}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{path}: no rows")
    top = root.resolve()
    entries = []
    for i, r in enumerate(rows, start=2):                       # line numbers as an editor shows them
        file = (root / r["file_name"]).resolve()
        if not file.is_relative_to(top):
            raise DataError(f"{path}, line {i}: file_name {r['file_name']!r} is outside {root}; "
                            "only files inside the data folder are read")
        if not file.is_file():
            raise DataError(f"{path}, line {i}: no file {r['file_name']!r} in {root}")
        label = (r["label"] or "").strip()
        if not label:
            raise DataError(f"{path}, line {i}: empty label for {r['file_name']!r}")
        entries.append((file, label))
    return entries


def load_image(path: Path, size: int) -> tuple[torch.Tensor, int]:
    """(`[3, H, W]` uint8 with min(H, W) == size, the file's own shorter side); a DataError naming
    the file if it cannot be read."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files; all mean "unreadable"
        raise DataError(f"{path}: cannot read this image ({type(e).__name__}: {e}); fix or remove it") from e
    w, h = im.size
    s = size / min(w, h)
    if s != 1:
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), min(w, h)


class ImageFolderData:
    """Square crops from a user's folder (see the module docstring); same sampling API as MaterialCrops."""

    def __init__(self, data_dir: str | os.PathLike, size: int):
        root = Path(data_dir)
        self.size = size
        entries = _from_metadata(root) if (root / "metadata.csv").exists() else _from_subfolders(root)
        self.class_names = _label_order({c for _, c in entries})
        self.images: list[list[torch.Tensor]] = [[] for _ in self.class_names]
        upscaled = 0
        for path, cls in entries:
            im, side = load_image(path, size)
            upscaled += side < size
            self.images[self.class_names.index(cls)].append(im)
        self.counts = [len(v) for v in self.images]
        if upscaled:
            log.warning("%s: %d of %d images are smaller than %d px and were upscaled", root, upscaled,
                        len(entries), size)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def crop(self, k: int, i: int, rng: torch.Generator) -> torch.Tensor:
        """One crop `[3, size, size]` in [-1, 1] of image i of class k."""
        im = self.images[k][i]
        top = int(torch.randint(0, im.shape[1] - self.size + 1, (1,), generator=rng))
        left = int(torch.randint(0, im.shape[2] - self.size + 1, (1,), generator=rng))
        x = im[:, top:top + self.size, left:left + self.size].float() / 127.5 - 1
        if int(torch.randint(0, 2, (1,), generator=rng)):
            x = x.flip(2)
        return x

    def sample(self, n: int, rng: torch.Generator, classes: torch.Tensor | None = None):
        """`(images [n, 3, size, size] in [-1, 1], class ids [n])`, classes uniform unless given."""
        y = torch.randint(0, self.n_classes, (n,), generator=rng) if classes is None else classes
        xs = [self.crop(k, int(torch.randint(0, self.counts[k], (1,), generator=rng)), rng) for k in y.tolist()]
        return torch.stack(xs), y


def open_training_data(data_dir: str | os.PathLike, size: int, split: str | None = "train"):
    """The reader for a data folder: a materials build (manifest.csv; `split` applies), else a
    Hugging Face imagefolder (metadata.csv), else class sub-folders."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --data takes a folder of images, {LAYOUT_HELP}")
    if (root / "manifest.csv").exists():
        return MaterialCrops(root, split=split, size=size)
    return ImageFolderData(root, size)
