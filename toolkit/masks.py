"""Resizing of label maps and blend masks to the resolution of each generator layer.

Why a module of its own: the label-swap weights and blend masks are drawn at image
resolution, but every conditioned layer and blend point works at its own resolution.
The rule (from the engine contract) is: shrinking averages by *covered area* (a cell's
weight is the fraction of it that the map covers, exact also for non-integer ratios),
growing repeats cells (nearest). Both are linear maps, so a resized map of weights that
sum to one still sums to one.

Regions (second half): concrete region types and their rasterisation. This module reads no
files: mask images arrive as bytes or arrays (`decode_mask`); reading them from a recipe's
folder is `toolkit.recipes.files`'s job.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=256)
def _area_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] matrix whose row i holds the overlap of output cell i with each input cell,
    divided by the output cell's width (both measured in input-pixel units)."""
    scale = n_in / n_out
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        j0, j1 = int(lo), min(n_in, int(-(-hi // 1)))
        for j in range(j0, j1):
            m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
    return (m / scale).float()


def resize_weights(w: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize maps `[..., H, W]` to `[..., h, w]`: area average when shrinking, nearest when growing."""
    h_in, w_in = w.shape[-2:]
    h_out, w_out = size
    if (h_in, w_in) == (h_out, w_out):
        return w
    lead = w.shape[:-2]
    # A map shared by the batch arrives as a broadcast view (stride 0): resize it once, not per row.
    shared = [d for d in range(len(lead)) if w.stride(d) == 0 and lead[d] > 1]
    if shared:
        base = w
        for d in shared:
            base = base.narrow(d, 0, 1)
        return resize_weights(base, size).expand(*lead, h_out, w_out)
    x = w.reshape(-1, h_in, w_in)
    # Each axis independently: the 2-D area weight factorises into row overlap × column overlap.
    if h_out < h_in:
        x = torch.einsum("oh,nhw->now", _area_matrix(h_in, h_out).to(x), x)
    elif h_out > h_in:
        x = F.interpolate(x.unsqueeze(1), size=(h_out, x.shape[-1]), mode="nearest").squeeze(1)
    if w_out < w_in:
        x = torch.einsum("ow,nhw->nho", _area_matrix(w_in, w_out).to(x), x)
    elif w_out > w_in:
        x = F.interpolate(x.unsqueeze(1), size=(x.shape[-2], w_out), mode="nearest").squeeze(1)
    return x.reshape(*lead, h_out, w_out)


# ==============================================================================================
# Regions: shapes, mask images and random blobs → soft masks at the model's resolution.
#
# Why here: recipes, the render pipeline, the app and the tests all need the same pixels for
# the same region. A region is described in *relative* coordinates (0..1, x to the right, y
# down) so one recipe fits any model resolution. A *concrete* region (what a variant records
# after drawing its random parts) is a `Polygon`, an `Ellipse` or a `MaskImage` (a mask file
# named by its path relative to the recipe, with its jitter), each with a `feather` (Gaussian
# blur σ as a fraction of the image side). Rasterising one needs no random numbers.
# ==============================================================================================
import io
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
from PIL import Image

SUPERSAMPLE = 4                 # shapes are drawn at up to 4× and area-averaged down: anti-aliased edges
MASK_SUPERSAMPLE = 2            # mask files are already soft; 2× keeps bilinear jitter within 0.01 of 4×, 5× faster
SUPERSAMPLED_SIDE = 512         # ...but never on a grid finer than this: at 512 px and above, 1× is smooth enough


MAX_MASK_PIXELS = 4096 * 4096   # mask images above this are refused (decompression-bomb guard)
ELLIPSE_VERTICES = 96


def _supersample(resolution: int, factor: int | None, base: int) -> int:
    """The supersampling factor to use: `factor` if given, else `base` capped so that the fine
    grid stays ≤ SUPERSAMPLED_SIDE (a 1024-px model would otherwise rasterise on 4096²)."""
    if factor is not None:
        return int(factor)
    return max(1, min(base, SUPERSAMPLED_SIDE // resolution))


Point = tuple[float, float]


@dataclass(frozen=True)
class Polygon:
    points: tuple[Point, ...]
    feather: float = 0.0


@dataclass(frozen=True)
class Ellipse:
    center: Point
    size: Point                  # full width, height
    angle: float = 0.0           # degrees
    feather: float = 0.0


@dataclass(frozen=True)
class MaskImage:
    """A mask file of a recipe (path relative to the recipe's folder) moved by a jitter."""
    path: str
    translate: Point = (0.0, 0.0)
    scale: float = 1.0
    rotate: float = 0.0
    feather: float = 0.0


@dataclass(frozen=True)
class PartRegion:
    """The pixels of the source that its part model assigns to `parts` (names or ids), grown by
    `grow` pixels: resolved per variant from the source's own part map (`toolkit.part_edits`)."""
    parts: tuple
    grow: int = 0
    feather: float = 0.0


Region = Union[Polygon, Ellipse, MaskImage, PartRegion]


class MaskFileError(ValueError):
    """A mask file is missing, unreadable, not an image or too large (message says which and why)."""


def mask_from_image(img: Image.Image) -> np.ndarray:
    """A PIL image → `[H, W]` uint8 mask: its alpha channel when it has a non-opaque one (canvas
    strokes), otherwise its luminance (white = inside)."""
    if "A" in img.getbands():
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            return alpha.astype(np.uint8)
    return np.asarray(img.convert("L")).astype(np.uint8)


def decode_mask(data: bytes, name: str = "mask", max_pixels: int = MAX_MASK_PIXELS) -> np.ndarray:
    """Image file bytes → `[H, W]` float32 in [0, 1] (see `mask_from_image`). Raises MaskFileError
    naming `name` when the bytes are not an image, are damaged, or decode to too many pixels (the
    size is checked from the header, before decoding)."""
    try:
        with warnings.catch_warnings():
            # PIL warns (and above 2× its limit raises) on decompression bombs; treat both as errors.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise MaskFileError(f"mask file {name!r} is {w}×{h} pixels, more than the limit of "
                                        f"{max_pixels} pixels; use a smaller mask (the model's resolution is enough)")
                img.load()
                arr = mask_from_image(img)
    except MaskFileError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise MaskFileError(f"mask file {name!r} is too large to decode safely ({e}); use a smaller mask") from None
    except Image.UnidentifiedImageError:
        raise MaskFileError(f"mask file {name!r} is not an image PIL can read; save it as a PNG "
                            "(white = inside, or a transparent background with opaque strokes)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MaskFileError(f"mask file {name!r} could not be read: {e}") from None
    return arr.astype(np.float32) / 255.0


def _fast_len(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (FFT sizes with small prime factors are fast)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35 * (1 << max(0, (-(-n // p35) - 1).bit_length()))
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def gaussian_feather(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Blur `[H, W]` with a Gaussian of σ = sigma_px pixels (edge-replicating borders, so regions
    touching the image border do not fade there).

    Exact (FFT) for σ < 8 px. Wider blurs run on a 2^k-times coarser grid (σ stays ≥ 4 coarse
    pixels): the edge padding is done at full resolution, the area-downsampling and linear
    upsampling add variance ≈ f²/4 which is taken off σ. Measured against the exact blur: at
    most 0.002 apart (1024², σ 30–60 px), 3–5× faster."""
    if sigma_px <= 0:
        return mask
    f = 1
    while f * 2 <= sigma_px / 4:
        f *= 2
    if f == 1:
        return _gaussian_exact(mask, sigma_px)
    h, w = mask.shape
    pad = (int(math.ceil(3 * sigma_px / f)) + 1) * f
    x = np.pad(mask.astype(np.float32), ((pad, pad + (-h) % f), (pad, pad + (-w) % f)), mode="edge")
    low = resize_mask(x, (x.shape[0] // f, x.shape[1] // f))
    blurred = _gaussian_exact(low, math.sqrt(sigma_px ** 2 - f ** 2 / 4) / f).astype(np.float64)
    up = _upsample_linear(_upsample_linear(blurred, f, 0), f, 1)
    return np.clip(up[pad:pad + h, pad:pad + w], 0, 1).astype(np.float32)


def _upsample_linear(x: np.ndarray, f: int, axis: int) -> np.ndarray:
    """Linear interpolation by an integer factor along one axis (pixel centres aligned, edges held)."""
    n = x.shape[axis]
    pos = (np.arange(n * f) + 0.5) / f - 0.5
    lo = np.floor(pos)
    i0 = np.clip(lo.astype(np.int64), 0, n - 1)
    i1 = np.clip(lo.astype(np.int64) + 1, 0, n - 1)
    wt = np.where(pos < 0, 0.0, pos - lo)
    shape = [1] * x.ndim
    shape[axis] = -1
    wt = wt.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - wt) + np.take(x, i1, axis=axis) * wt


def _gaussian_exact(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """The exact edge-replicated Gaussian blur; separable, each axis one FFT convolution."""
    radius = max(1, int(math.ceil(3 * sigma_px)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma_px) ** 2)
    k /= k.sum()
    x = np.pad(mask.astype(np.float64), radius, mode="edge")
    for axis in (0, 1):
        n_in = x.shape[axis]
        n = _fast_len(n_in + 2 * radius)           # ≥ the full convolution length: no wrap-around
        full = np.fft.irfft(np.fft.rfft(x, n, axis=axis) * np.expand_dims(np.fft.rfft(k, n), 1 - axis), n, axis=axis)
        x = np.take(full, np.arange(2 * radius, n_in), axis=axis)    # the 'valid' part
    return np.clip(x, 0, 1).astype(np.float32)


def _resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = x.shape[axis]
    if n_out == n_in:
        return x
    if n_out > n_in:   # nearest, as F.interpolate(mode="nearest"): source index floor(i · n_in / n_out)
        return np.take(x, (np.arange(n_out) * n_in) // n_out, axis=axis)
    if n_in % n_out == 0:   # integer factor: the area matrix is a block mean
        f = n_in // n_out
        shape = x.shape[:axis] + (n_out, f) + x.shape[axis + 1:]
        return x.reshape(shape).mean(axis + 1)
    a = _area_matrix(n_in, n_out).numpy().astype(np.float64)
    return np.moveaxis(np.tensordot(a, x, axes=([1], [axis])), 0, axis)


def resize_mask(arr: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """NumPy twin of `resize_weights` for one `[H, W]` map (same area/nearest rule, same matrices),
    used per variant on the CPU where torch's per-call overhead would dominate."""
    h, w = (size, size) if isinstance(size, int) else size
    x = np.asarray(arr, dtype=np.float64)
    return _resize_axis(_resize_axis(x, h, 0), w, 1).astype(np.float32)


def rasterize_polygon(points, resolution: int, supersample: int | None = None) -> np.ndarray:
    """Polygon in relative coordinates → `[R, R]` float32 coverage in [0, 1] (anti-aliased).

    Even-odd rule tested at the centres of a `supersample`× grid, then area-averaged: exact areas
    for axis-aligned boxes on the grid (PIL's polygon fill includes its right/bottom edge).
    Scanline form: each edge crossing row r at x toggles the pixels left of x, so a pixel is
    inside when an odd number of that row's crossings lie to its right."""
    big = resolution * _supersample(resolution, supersample, SUPERSAMPLE)
    py = (np.arange(big, dtype=np.float64) + 0.5) / big
    pts = np.asarray(points, dtype=np.float64)
    (x0, y0), (x1, y1) = pts.T[:, :, None], np.roll(pts, -1, axis=0).T[:, :, None]   # [E, 1] each
    crosses = (y0 > py) != (y1 > py)                                                   # [E, big]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)                                  # [E, big]
    edge, row = np.nonzero(crosses)
    # k = number of pixel centres (j + 0.5) / big strictly left of the crossing
    k = np.clip(np.ceil(x_at[edge, row] * big - 0.5), 0, big).astype(np.int64)
    hist = np.zeros((big, big + 1), np.int64)
    np.add.at(hist, (row, k), 1)
    right = hist.sum(1, keepdims=True) - np.cumsum(hist, axis=1)[:, :big]   # crossings with k > j
    inside = (right % 2).astype(np.float32)
    return np.clip(resize_mask(inside, resolution), 0, 1)


def ellipse_points(center, size, angle: float = 0.0, n: int = ELLIPSE_VERTICES) -> list[list[float]]:
    """Vertices of an ellipse (full width/height `size`, rotated by `angle` degrees, y down)."""
    cx, cy = center
    a, b = size[0] / 2, size[1] / 2
    th = math.radians(angle)
    c, s = math.cos(th), math.sin(th)
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x, y = a * math.cos(t), b * math.sin(t)
        pts.append([cx + c * x - s * y, cy + s * x + c * y])
    return pts


def transform_points(points, center, translate=(0.0, 0.0), scale: float = 1.0, rotate: float = 0.0):
    """Scale and rotate (degrees, clockwise on screen since y points down) about `center`, then translate."""
    th = math.radians(rotate)
    c, s = math.cos(th), math.sin(th)
    cx, cy = center
    out = []
    for x, y in points:
        dx, dy = (x - cx) * scale, (y - cy) * scale
        out.append([cx + c * dx - s * dy + translate[0], cy + s * dx + c * dy + translate[1]])
    return out


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """Centre of mass of a mask in relative coordinates (image centre for an empty mask)."""
    total = float(mask.sum())
    if total <= 0:
        return 0.5, 0.5
    h, w = mask.shape
    cols, rows = mask.sum(0, dtype=np.float64), mask.sum(1, dtype=np.float64)
    return float(((np.arange(w) + 0.5) * cols).sum() / total / w), float(((np.arange(h) + 0.5) * rows).sum() / total / h)


def transform_mask(mask: np.ndarray, resolution: int, translate=(0.0, 0.0), scale: float = 1.0,
                   rotate: float = 0.0, supersample: int | None = None) -> np.ndarray:
    """A mask image of any size → `[R, R]` at the model resolution, with the same jitter as
    `transform_points` applied about the mask's centroid (bilinear at `supersample`×, then area)."""
    if translate[0] == 0 and translate[1] == 0 and scale == 1 and rotate == 0:
        return np.clip(resize_mask(mask, resolution), 0, 1)
    big = resolution * _supersample(resolution, supersample, MASK_SUPERSAMPLE)
    src = resize_mask(mask, big)
    cx, cy = (v * big for v in mask_centroid(src))
    tx, ty = translate[0] * big, translate[1] * big
    th = math.radians(rotate)
    c, s = math.cos(th), math.sin(th)
    # PIL wants the inverse map (output pixel → input pixel): p = c + R(-θ)(p' - c - t) / scale.
    a, b, d, e = c / scale, s / scale, -s / scale, c / scale
    ox, oy = cx + tx, cy + ty
    # The source is padded by repeating its border, so a mask touching the image edge (hair,
    # background) still touches it after a shift instead of leaving an uncovered strip.
    pad = big // 2
    src = np.pad(src, pad, mode="edge")
    coeffs = (a, b, cx - a * ox - b * oy + pad, d, e, cy - d * ox - e * oy + pad)
    out = Image.fromarray(src.astype(np.float32), mode="F").transform(
        (big, big), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=0.0)
    return np.clip(resize_mask(np.asarray(out, dtype=np.float32), resolution), 0, 1)


def random_blob_points(rng: np.random.Generator, center, size: float, n: int = 64, harmonics: int = 3) -> list[list[float]]:
    """A smooth random closed outline: radius `size/2` modulated by a few random low harmonics.

    Draws exactly 2 × harmonics numbers from `rng` (amplitudes, then phases), so the caller's
    stream stays aligned whatever the outcome."""
    amps = rng.uniform(0, 1, harmonics) * np.array([0.3 / (k + 1) for k in range(harmonics)])
    phases = rng.uniform(0, 2 * math.pi, harmonics)
    r0 = size / 2
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        r = r0 * (1 + sum(amps[k] * math.cos((k + 2) * t + phases[k]) for k in range(harmonics)))
        pts.append([center[0] + r * math.cos(t), center[1] + r * math.sin(t)])
    return pts


def rasterize_region(region: Region, resolution: int, load_mask: Callable[[str], np.ndarray] | None = None
                     ) -> np.ndarray:
    """A concrete region → `[R, R]` float32 in [0, 1], feathered.

    `load_mask(path) -> float array` gives a `MaskImage`'s pixels (recipes pass their checked,
    already-read mask files)."""
    if isinstance(region, MaskImage):
        if load_mask is None:
            raise ValueError(f"region uses the mask file {region.path!r} but no mask loader was given")
        m = transform_mask(load_mask(region.path), resolution, region.translate, region.scale, region.rotate)
    elif isinstance(region, Polygon):
        m = rasterize_polygon(region.points, resolution)
    elif isinstance(region, Ellipse):
        m = rasterize_polygon(ellipse_points(region.center, region.size, region.angle), resolution)
    elif isinstance(region, PartRegion):
        raise ValueError(f"part region {list(region.parts)} depends on each source's part map: render it "
                         "through toolkit.pipeline.render_variants, which segments the source first")
    else:
        raise TypeError(f"not a concrete region: {region!r}")
    return gaussian_feather(m, float(region.feather) * resolution)
