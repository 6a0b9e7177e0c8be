"""Conversions between generator outputs and pictures (the one place that clamps and quantises).

Generators return floats nominally in [-1, 1] (StyleGAN2's raw output may overshoot); clamping
happens here, when saving or displaying, never inside a model or `render`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .io import save_png as io_save_png


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """`[B, 3, H, W]` in [-1, 1] → `[B, H, W, 3]` uint8 (round half to even, as torch does)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a) for a in to_uint8(images)]


def grid(rows: Sequence[Sequence[Image.Image]], row_labels: Sequence[str] | None = None,
         col_labels: Sequence[str] | None = None, scale: int = 1, pad: int = 4) -> Image.Image:
    """A labelled contact sheet from rows of equally sized images."""
    h, w = rows[0][0].height * scale, rows[0][0].width * scale
    left = 8 + 7 * max((len(s) for s in row_labels), default=0) if row_labels else 0
    top = 18 if col_labels else 0
    ncol = max(len(r) for r in rows)
    sheet = Image.new("RGB", (left + ncol * (w + pad) + pad, top + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(col_labels or []):
        draw.text((left + pad + j * (w + pad), 3), label, fill="black")
    for i, row in enumerate(rows):
        y = top + pad + i * (h + pad)
        if row_labels:
            draw.text((4, y + h // 2 - 5), row_labels[i], fill="black")
        for j, im in enumerate(row):
            sheet.paste(im.resize((w, h), Image.NEAREST), (left + pad + j * (w + pad), y))
    return sheet


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (no half-written file is ever visible under `path`)."""
    return io_save_png(image, path)
