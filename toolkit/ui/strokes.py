"""Canvas strokes and uploaded mask files → weight maps at the model's resolution.

Why here: the drawing canvas returns an RGBA picture of the strokes only (transparent where
nothing was drawn). Its alpha is the mask; its colour says which target (class or reference)
a stroke belongs to, because the app gives each target one colour from `PALETTE`. Uploaded
masks are untrusted files: they are size-checked before decoding and every failure is a
`MaskError` whose message the page shows as is.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..masks import MaskFileError, decode_mask, resize_weights

# One colour per target; distinct hues so anti-aliased stroke edges still map to the right target.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f032e6", "#42d4f4", "#f58231", "#911eb4"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class MaskError(ValueError):
    """An uploaded mask or a drawing that cannot be used; the message says why and how to fix it."""


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def strokes_to_weights(rgba: np.ndarray | None, colours: list[str], resolution: int) -> np.ndarray:
    """`[K, resolution, resolution]` float32 in [0, 1] from a canvas picture `[H, W, 4]`.

    Each drawn pixel goes to the target whose colour is nearest to the pixel's RGB; its weight
    is the stroke's alpha. At most one target per pixel, so the weights sum to ≤ 1 (what the
    engine requires). A canvas of another size is area-resized (it is square like the model).
    """
    k = len(colours)
    if rgba is None or k == 0:
        return np.zeros((k, resolution, resolution), np.float32)
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] != 4:
        raise MaskError(f"the canvas returned a {list(a.shape)} array; expected [H, W, 4] RGBA")
    alpha = a[..., 3].astype(np.float32) / 255.0
    rgb = a[..., :3].astype(np.float32)
    pal = np.array([hex_to_rgb(c) for c in colours], np.float32)           # [K, 3]
    dist = ((rgb[None] - pal[:, None, None]) ** 2).sum(-1)                  # [K, H, W]
    owner = dist.argmin(0)
    w = np.stack([(owner == i) * alpha for i in range(k)]).astype(np.float32)
    out = resize_weights(torch.from_numpy(w), (resolution, resolution))
    return out.clamp(0, 1).numpy()


def mask_from_upload(data: bytes, resolution: int, name: str = "upload") -> np.ndarray:
    """`[resolution, resolution]` float32 in [0, 1] from an uploaded image file.

    Decoding is `toolkit.masks.decode_mask`'s (alpha when the image has a non-opaque one,
    otherwise grey levels; pixel-count and decompression-bomb limits); this adds the upload's
    byte limit and the shape rule: any square size, area-resized to the model's resolution.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise MaskError(f"{name}: the file is {len(data) / 2**20:.1f} MB; masks may be at most "
                        f"{MAX_UPLOAD_BYTES // 2**20} MB. Save it as a smaller greyscale PNG.")
    try:
        m = decode_mask(data, name)
    except MaskFileError as e:
        raise MaskError(str(e).replace(f"mask file {name!r}", f"{name}:")) from None
    h, w = m.shape
    if w != h:
        raise MaskError(f"{name}: the image is {w}×{h}; masks must be square like the model's "
                        f"{resolution}×{resolution} output (any square size is resized).")
    return resize_weights(torch.from_numpy(np.ascontiguousarray(m)), (resolution, resolution)).clamp(0, 1).numpy()


def overlay(image: Image.Image, weights: np.ndarray, colours: list[str], opacity: float = 0.55) -> Image.Image:
    """The image with each target's weight map tinted in its colour (for showing final masks)."""
    base = np.asarray(image.convert("RGB"), np.float32)
    out = base.copy()
    for w, c in zip(weights, colours):
        if w.shape != base.shape[:2]:
            w = resize_weights(torch.from_numpy(w), base.shape[:2]).numpy()
        a = (opacity * w)[..., None]
        out = (1 - a) * out + a * np.array(hex_to_rgb(c), np.float32)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))

