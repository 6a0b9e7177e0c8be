"""What the Review page shows for a manifest row: its image with the label map, part map or mask
beside it or overlaid, and the zip a user downloads after an export. Plain Python (no streamlit)
so it is tested directly.

Files are found only through `toolkit.dataset.resolve_row_file`: a crafted manifest cannot make
the page read outside the dataset folder; a file that is refused or missing shows as absent.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .. import dataset

# The row's pictures, in the order the gallery shows them beside the image.
LAYERS = {"label map": "label_map_file", "rendered map": "rendered_map_file", "part map": "part_map_file",
          "mask": "mask_file", "source": "source_file"}
MAX_ZIP_BYTES = 512 << 20     # a browser download of more than this should use the folder itself


def row_picture(ddir: Path, row: dict, column: str) -> Image.Image | None:
    """The picture a row names in `column` as RGB (palette label maps in their class colours), or
    None when the column is absent/empty or the path is refused."""
    if column not in dataset.FILE_COLUMNS or not str(row.get(column) or ""):
        return None
    try:
        p = dataset.resolve_row_file(ddir, row, column)
    except dataset.DatasetError:
        return None
    if p is None or not p.is_file():
        return None
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except OSError:
        return None


def overlay(image: Image.Image, layer: Image.Image, column: str, alpha: float = 0.5) -> Image.Image:
    """`layer` over `image`: a mask tints the edited region red (strength = mask value); a label or
    part map is blended at `alpha`."""
    base = np.asarray(image.convert("RGB"), np.float32)
    top = np.asarray(layer.convert("RGB").resize(image.size, Image.NEAREST), np.float32)
    if column == "mask_file":
        a = alpha * top[..., :1] / 255.0
        out = base * (1 - a) + np.array([255.0, 40.0, 40.0]) * a
    else:
        out = base * (1 - alpha) + top * alpha
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def zip_dataset(d: str | os.PathLike, limit: int = MAX_ZIP_BYTES) -> bytes:
    """A zip of a dataset folder (its manifest, card, marker and the files the layout names),
    built in memory; refused (DatasetError) when larger than `limit`. Hidden files (locks, temp
    files) and symlinks are left out."""
    root = Path(d)
    if not dataset.is_dataset(root):
        raise dataset.DatasetError(f"{root}: not a dataset folder (no {dataset.INFO}); export one first")
    files = [p for p in sorted(root.rglob("*"))
             if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    total = sum(p.stat().st_size for p in files)
    if total > limit:
        raise dataset.DatasetError(f"{root}: {total / 2**20:.0f} MB is too large to download from the browser "
                                   f"(limit {limit / 2**20:.0f} MB); copy the folder instead")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:   # PNGs are compressed already
        for p in files:
            zf.write(p, f"{root.name}/{p.relative_to(root).as_posix()}")
    return buf.getvalue()
