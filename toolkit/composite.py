"""Putting an edit of a projected photo back into the photo, at the photo's own size.

The generator's reconstruction of a real photo is never exact (about 30 dB at 64 px), so we do
not hand the user the reconstruction: only the *edited region* comes from the generator, and
everything else is the photo's own pixels. The region is the union of the edit masks, dilated
by a few model pixels (edits spread a little through the convolutions after the projection point),
and clipped to the square the model sees (`Crop`). Pixels outside it are copied from the input,
so they are bit-identical by construction (a test checks it).

Inside the region, two blends:
- "poisson" (default): OpenCV `seamlessClone` (Pérez et al. 2003): the edited pixels' gradients
  with the photo's values on the region border, which hides the reconstruction's colour offset.
  The images are padded before cloning because OpenCV mishandles masks touching the border.
- "feather": alpha blend with a Gaussian-feathered mask that is zero outside the region.

Masks are given in photo coordinates (`[H, W]` of the photo; label swap `[K, H, W]`); the
generator sees their crop resized to its resolution. This module does no file I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .engine import Blend, LabelSwap
from .images import to_uint8
from .masks import gaussian_feather, resize_weights
from .photos import Photo
from .projection import Crop, Projection, project, render_projection

BLENDS = ("poisson", "feather")
DILATE_MODEL_PX = 3      # region dilation, in model pixels (converted to photo pixels per crop)


@dataclass
class PhotoEdit:
    image: np.ndarray            # [H, W, 3] uint8: the photo, edited inside `mask` only
    mask: np.ndarray             # [H, W] bool: the dilated edit region (pixels that may differ)
    edit_mask: np.ndarray        # [H, W] float32 in [0, 1]: the asked-for edit (union of all masks), clipped to the crop
    label_map: np.ndarray | None  # [H, W] int class ids (label swaps on class-conditional models), else None
    reconstruction: np.ndarray   # [R, R, 3] uint8: the generator's reconstruction of the crop
    edited: np.ndarray           # [R, R, 3] uint8: the edited reconstruction
    psnr: float                  # projection PSNR (dB) at model resolution
    crop: Crop
    projection: Projection


def _pixels(photo) -> np.ndarray:
    if isinstance(photo, Photo):
        return photo.pixels
    if isinstance(photo, Image.Image):
        if photo.mode != "RGB":
            raise ValueError(f"PIL image in mode {photo.mode!r}: convert it to RGB (or load it with toolkit.photos)")
        return np.asarray(photo)
    a = np.asarray(photo)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"the photo must be a uint8 [H, W, 3] array, an RGB PIL image or a Photo; "
                         f"got {a.dtype} {list(a.shape)}")
    return a


def to_model_frame(mask, crop: Crop, resolution: int) -> torch.Tensor:
    """Photo-sized maps `[..., H, W]` → their crop at model resolution `[..., R, R]` (area average)."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    if tuple(m.shape[-2:]) != (crop.height, crop.width):
        raise ValueError(f"edit masks must be photo-sized ({crop.height}×{crop.width}, rows × columns), got "
                         f"{list(m.shape[-2:])}; map model-frame masks with composite.to_photo_frame")
    m = m[..., crop.y:crop.y + crop.size, crop.x:crop.x + crop.size]
    return resize_weights(m.contiguous(), (resolution, resolution)).clamp(0, 1)


def to_photo_frame(mask, crop: Crop) -> np.ndarray:
    """Model-frame maps `[..., R, R]` (any resolution) → photo-sized `[..., H, W]` (zero outside the crop)."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    lead = m.shape[:-2]
    up = F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=(crop.size, crop.size), mode="nearest")
    out = np.zeros((*lead, crop.height, crop.width), dtype=np.float32)
    out[..., crop.y:crop.y + crop.size, crop.x:crop.x + crop.size] = up.reshape(*lead, crop.size, crop.size).numpy()
    return out


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def poisson_blend(photo: np.ndarray, source: np.ndarray, region: np.ndarray) -> np.ndarray:
    """seamlessClone of `source` into `photo` inside `region` (same-size arrays, aligned pixel for pixel)."""
    if not region.any():
        return photo.copy()
    pad = 4
    ys, xs = np.nonzero(region)
    m = np.pad(region.astype(np.uint8) * 255, pad)
    src = cv2.copyMakeBorder(np.ascontiguousarray(source[..., ::-1]), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    dst = cv2.copyMakeBorder(np.ascontiguousarray(photo[..., ::-1]), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    # OpenCV places the mask's bounding box of `src` centred on `center`; this centre keeps it in place.
    x0, x1, y0, y1 = xs.min() + pad, xs.max() + pad, ys.min() + pad, ys.max() + pad
    center = ((x0 + x1 + 1) // 2, (y0 + y1 + 1) // 2)
    out = cv2.seamlessClone(src, dst, m, center, cv2.NORMAL_CLONE)
    return np.ascontiguousarray(out[pad:-pad, pad:-pad, ::-1])


def composite(photo: np.ndarray, edited_crop: np.ndarray, crop: Crop, edit_mask: np.ndarray, *,
              blend: str = "poisson", dilate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste a model-resolution edit back into the photo: `(image, region)`; outside `region` the
    result is the photo, byte for byte."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
    r = edited_crop.shape[0]
    if dilate is None:
        dilate = max(1, round(DILATE_MODEL_PX * crop.size / r))
    inside = np.zeros(edit_mask.shape, dtype=bool)
    inside[crop.y:crop.y + crop.size, crop.x:crop.x + crop.size] = True
    region = _dilate(edit_mask > 0, dilate) & inside
    up = np.asarray(Image.fromarray(edited_crop).resize((crop.size, crop.size), Image.BICUBIC))
    source = photo.copy()
    source[crop.y:crop.y + crop.size, crop.x:crop.x + crop.size] = up
    if blend == "poisson":
        blended = poisson_blend(photo, source, region)
    else:
        alpha = gaussian_feather((edit_mask > 0).astype(np.float32), max(dilate / 2, 0.5)) * region
        alpha = np.maximum(alpha, edit_mask * region)[..., None]
        blended = np.rint(photo * (1 - alpha) + source * alpha).clip(0, 255).astype(np.uint8)
    out = photo.copy()
    out[region] = blended[region]
    return out, region


def edit_photo(generator, photo, *, swap: LabelSwap | None = None, blends: Sequence[Blend] = (),
               projection: Projection | None = None, blend: str = "poisson", dilate: int | None = None,
               y=None, steps=None, point: int | None = None, seed: int = 0) -> PhotoEdit:
    """Edit one photo: project it (unless `projection` is given), render the label swap / blends with
    `render_projection` (the edit generated at its stages, the photo's inverted features kept outside
    the edit region), and composite the edited region back at the photo's size.

    swap.weights `[K, H, W]` and each blend's `mask` `[H, W]` are in photo coordinates; blends' `z`
    are `[1, z_dim]`. Pixels outside the dilated edit region are the input's, bit for bit.
    """
    pixels = _pixels(photo)
    if swap is None and not blends:
        raise ValueError("nothing to edit: pass a label swap (swap=...) or blends")
    if projection is None:
        projection = project(generator, pixels, y, steps=steps, point=point, seed=seed)
    if len(projection) != 1:
        raise ValueError(f"edit_photo edits one photo; the projection holds {len(projection)} (use .rows([i]))")
    crop = projection.crops[0]
    if (crop.width, crop.height) != (pixels.shape[1], pixels.shape[0]):
        raise ValueError(f"the projection was made from a {crop.width}×{crop.height} photo, not this "
                         f"{pixels.shape[1]}×{pixels.shape[0]} one")
    res = generator.resolution
    masks, model_swap, model_blends = [], None, []
    if swap is not None:
        w = np.asarray(swap.weights, dtype=np.float32)
        w = w[None] if w.ndim == 2 else w
        masks.append(w.sum(0).clip(0, 1))
        model_swap = LabelSwap(swap.classes, to_model_frame(w, crop, res)[None], swap.stages)
    for bl in blends:
        m = np.asarray(bl.mask, dtype=np.float32)
        masks.append(m)
        model_blends.append(Blend(bl.z, to_model_frame(m, crop, res)[None], bl.strength, bl.y))
    edit_mask = np.clip(np.max(np.stack(masks), 0), 0, 1)
    inside = np.zeros(edit_mask.shape, dtype=bool)
    inside[crop.y:crop.y + crop.size, crop.x:crop.x + crop.size] = True
    edit_mask = np.where(inside, edit_mask, 0).astype(np.float32)
    if not edit_mask.any():
        raise ValueError(f"the edit region lies outside the part of the photo the model sees (the centred "
                         f"{crop.size}×{crop.size} square at x={crop.x}, y={crop.y}); move the region into it")
    edited = to_uint8(render_projection(generator, projection, swap=model_swap, blends=model_blends))[0]
    image, region = composite(pixels, edited, crop, edit_mask, blend=blend, dilate=dilate)
    label_map = None
    if swap is not None and generator.n_classes:
        base = projection.classes[0]
        ids = [generator.class_index(c) for c in (swap.classes.tolist() if torch.is_tensor(swap.classes)
                                                  else swap.classes)]
        w = np.asarray(swap.weights, dtype=np.float32)
        w = w[None] if w.ndim == 2 else w
        full = np.concatenate([np.clip(1 - w.sum(0, keepdims=True), 0, 1), w])   # base weight first
        label_map = np.asarray([base] + ids)[full.argmax(0)]
        label_map = np.where(inside, label_map, base)
    return PhotoEdit(image=image, mask=region, edit_mask=edit_mask, label_map=label_map,
                     reconstruction=to_uint8(projection.reconstruction)[0], edited=edited,
                     psnr=float(projection.psnr[0]), crop=crop, projection=projection)
