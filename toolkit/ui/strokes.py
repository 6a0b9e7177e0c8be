"""Canvas strokes and uploaded mask files → weight maps at the model's resolution.

Why here: the drawing canvas returns an RGBA picture of the strokes only (transparent where
nothing was drawn). Its alpha is the mask; its colour says which target (class or reference)
a stroke belongs to, because the app gives each target one colour from `PALETTE`. Uploaded
masks are untrusted files: they are size-checked before decoding and every failure is a
`MaskError` whose message the page shows as is.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..masks import resize_weights

# One colour per target; distinct hues so anti-aliased stroke edges still map to the right target.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f032e6", "#42d4f4", "#f58231", "#911eb4"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
_ACCEPTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I", "I;16", "I;16B", "F")


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

    Grey levels are the weights (white = inside); an image with a non-constant alpha channel
    uses its alpha instead. Any square size is accepted and area-resized.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise MaskError(f"{name}: the file is {len(data) / 2**20:.1f} MB; masks may be at most "
                        f"{MAX_UPLOAD_BYTES // 2**20} MB. Save it as a smaller greyscale PNG.")
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as e:
        raise MaskError(f"{name}: not a readable image ({e}). Upload a PNG: white = inside the region.") from None
    w, h = im.size
    if w * h > MAX_UPLOAD_PIXELS:
        raise MaskError(f"{name}: the image is {w}×{h} pixels; masks may have at most "
                        f"{MAX_UPLOAD_PIXELS} pixels (4096×4096). Downscale it first.")
    if w != h:
        raise MaskError(f"{name}: the image is {w}×{h}; masks must be square like the model's "
                        f"{resolution}×{resolution} output (any square size is resized).")
    if im.mode not in _ACCEPTED_MODES:
        raise MaskError(f"{name}: image mode {im.mode!r} is not supported for masks; use greyscale (L), "
                        "RGB or RGBA.")
    try:
        im.load()
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        raise MaskError(f"{name}: the image could not be decoded ({e}).") from None
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), np.float32) / 255.0
        if alpha.min() < alpha.max():
            m = alpha
        else:
            m = np.asarray(im.convert("L"), np.float32) / 255.0
    elif im.mode in ("I", "I;16", "I;16B", "F"):
        arr = np.asarray(im, np.float32)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        m = arr / (top if im.mode != "F" or arr.max() > 1 else 1.0)
    else:
        m = np.asarray(im.convert("L"), np.float32) / 255.0
    m = np.clip(m, 0, 1)
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


def upscale(image: Image.Image | np.ndarray, size: int = 256) -> Image.Image:
    """Nearest-neighbour enlargement so small (e.g. 64×64) images stay crisp and visible."""
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    return im.resize((size, size), Image.NEAREST)
