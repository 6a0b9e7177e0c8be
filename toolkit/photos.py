"""Reading user photos safely: confined paths, bounded sizes, and one RGB uint8 array out.

Why a module of its own: photos come from users (CLI arguments, recipe folders, app uploads), so
every one passes the same checks before a model sees it — the path must lie inside the folder the
user named (no `..` or symlink escapes), the file must decode as an image, its header size must be
below a pixel limit checked *before* decoding (a 20000×20000 PNG of a few KB would otherwise expand
to 1.2 GB), and its mode is converted to RGB in one documented way or refused:

- L, P, LA/PA/RGBA whose alpha is fully opaque, CMYK (Pillow's naive conversion, no ICC) and
  16-bit grey (`I;16*`, top 8 bits) are converted; EXIF orientation is applied first, so the array
  is the photo as viewers show it. `Photo.converted_from` records the original mode.
- Transparent pixels are refused: compositing promises pixels outside the edit stay bit-identical,
  and there is no honest RGB value for a transparent pixel (flatten the image first).
- Float or 32-bit integer images (`F`, `I` beyond 16 bits) are refused.

This module reads files and never writes any.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000          # ~ a 7300×5500 photo; decoding is refused above this (header check)
MIN_SIDE = 16                    # smaller images carry too little to project into a 64-px model
MAX_FILE_BYTES = 200 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class PhotoError(ValueError):
    """A photo that cannot be used; the message says which file, why, and what to do."""


@dataclass(frozen=True)
class Photo:
    pixels: np.ndarray       # [H, W, 3] uint8 RGB, EXIF orientation applied
    name: str                # path relative to the folder it was confined to (or the upload's name)
    sha256: str              # of the file's bytes
    converted_from: str      # Pillow mode before conversion ("RGB" when none was needed)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL says it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def confine(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Resolve `path` (relative to `root` unless absolute) and refuse it unless it lies inside `root`."""
    base = Path(root).expanduser().resolve()
    raw = Path(os.path.expanduser(str(path)))
    full = (raw if raw.is_absolute() else base / raw).resolve()
    if full != base and not full.is_relative_to(base):
        raise PhotoError(f"{str(path)!r} resolves to {full}, which is outside {base}; photos are read only from "
                         "inside that folder. Copy the photo there or run from the folder that holds it.")
    return full


def decode_photo(data: bytes, name: str) -> Photo:
    """Bytes of an image file → `Photo` (all checks of the module docstring; PhotoError otherwise)."""
    if len(data) > MAX_FILE_BYTES:
        raise PhotoError(f"{name}: {len(data) / 2**20:.0f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB "
                         "limit for photos; downscale it first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise PhotoError(f"{name}: {w}×{h} pixels is more than the {MAX_PIXELS:,} pixel limit (a "
                                 "decompression bomb, or a very large photo); downscale it first")
            im = ImageOps.exif_transpose(im)
            im.load()
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PhotoError(f"{name}: refused as a possible decompression bomb ({e}); downscale it first") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{name}: not an image Pillow can read (expected PNG, JPEG, WebP, BMP or TIFF)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PhotoError(f"{name}: the image is damaged or truncated ({e})") from None
    if min(im.size) < MIN_SIDE:
        raise PhotoError(f"{name}: {im.size[0]}×{im.size[1]} pixels is too small; photos need at least "
                         f"{MIN_SIDE} pixels on each side")
    mode = im.mode
    return Photo(_to_rgb(im, name), name, hashlib.sha256(data).hexdigest(), mode)


def _to_rgb(im: Image.Image, name: str) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N") or (mode == "I" and np.asarray(im).max(initial=0) <= 65535
                                                        and np.asarray(im).min(initial=0) >= 0):
        grey = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)     # 16-bit grey: keep the top 8 bits
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("F", "I"):
        raise PhotoError(f"{name}: a {mode!r} (floating-point or 32-bit) image; save it as an 8- or 16-bit "
                         "PNG or a JPEG first")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if mode == "P":
        im = im.convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise PhotoError(f"{name}: has transparent pixels ({int((alpha < 255).sum())} of {alpha.size}); "
                             "flatten it onto a background first (edits promise untouched pixels outside the "
                             "edit, which has no meaning for transparent ones)")
        return np.array(im.convert("RGB"), dtype=np.uint8)
    if im.mode in ("RGB", "L", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.array(im.convert("RGB"), dtype=np.uint8)
    raise PhotoError(f"{name}: image mode {im.mode!r} is not supported; save it as an RGB PNG or JPEG")


def load_photo(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Photo:
    """Read one photo confined to `root` (default: the current directory); `Photo.name` is relative to it."""
    base = Path(root if root is not None else os.getcwd()).expanduser().resolve()
    full = confine(path, base)
    if not full.exists():
        raise PhotoError(f"{path}: no such file (looked in {full})")
    if not full.is_file():
        raise PhotoError(f"{path}: not a file")
    if full.stat().st_size > MAX_FILE_BYTES:
        raise PhotoError(f"{path}: {full.stat().st_size / 2**20:.0f} MB is larger than the "
                         f"{MAX_FILE_BYTES // 2**20} MB limit for photos; downscale it first")
    rel = full.relative_to(base).as_posix()
    return decode_photo(full.read_bytes(), rel)


def find_photos(pattern: str, root: str | os.PathLike) -> list[Path]:
    """A folder (its image files, sorted) or a glob, relative to `root`; every match confined to it."""
    base = Path(root).expanduser().resolve()
    if any(ch in pattern for ch in "*?["):
        if Path(pattern).is_absolute():
            raise PhotoError(f"{pattern!r}: give globs relative to {base}")
        found = sorted(p for p in base.glob(pattern) if p.is_file())
    else:
        folder = confine(pattern, base)
        if not folder.is_dir():
            raise PhotoError(f"{pattern!r}: no such folder (looked in {folder})")
        found = sorted(p for p in folder.iterdir() if p.is_file())
    found = [confine(p, base) for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise PhotoError(f"{pattern!r}: no photos ({', '.join(IMAGE_SUFFIXES)}) found under {base}")
    return found


def find_class_photos(folder: str, root: str | os.PathLike) -> list[tuple[Path, str]]:
    """An ImageFolder layout: `(photo path, class folder name)` for the image files in each subfolder of
    `folder` (relative to `root`, confined to it), sorted by path; the folder names are not checked
    here (the recipe checks them against the model's classes). Photos directly in `folder`, nested
    subfolders and globs are refused: the class of such a photo would be a guess."""
    base = Path(root).expanduser().resolve()
    if any(ch in folder for ch in "*?["):
        raise PhotoError(f"{folder!r}: `classes: folders` needs a folder (one subfolder per class), not a glob")
    top = confine(folder, base)
    if not top.is_dir():
        raise PhotoError(f"{folder!r}: no such folder (looked in {top})")
    loose = sorted(p.name for p in top.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise PhotoError(f"{folder!r}: with `classes: folders` every photo must lie in a subfolder named after its "
                         f"class, but {len(loose)} lie directly in it ({', '.join(loose[:3])}); move them into "
                         "class folders or remove `classes: folders`")
    found = []
    for sub in sorted(p for p in top.iterdir() if p.is_dir()):
        nested = sorted(p.name for p in sub.iterdir() if p.is_dir())
        if nested:
            raise PhotoError(f"{folder}/{sub.name}: class folders hold photos, not folders ({', '.join(nested[:3])})")
        found += [(confine(p, base), sub.name) for p in sorted(sub.iterdir())
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise PhotoError(f"{folder!r}: no photos ({', '.join(IMAGE_SUFFIXES)}) found in its class subfolders")
    return found


def region_mask(spec: str, width: int, height: int, root: str | os.PathLike | None = None) -> np.ndarray:
    """A region typed by a user → photo-sized `[H, W]` float32 mask in [0, 1].

    `rect:X0,Y0,X1,Y1` or `ellipse:CX,CY,W,H` in coordinates relative to the photo (0..1, x right,
    y down), or the path of a mask image (white = inside; confined to `root`, default the current
    directory; resized to the photo with bilinear filtering when its size differs).
    """
    kind, _, rest = spec.partition(":")
    if kind in ("rect", "ellipse") and rest:
        try:
            a, b, c, d = (float(v) for v in rest.split(","))
        except ValueError:
            raise PhotoError(f"region {spec!r}: expected {kind}:four comma-separated numbers in 0..1") from None
        ys, xs = (np.arange(height)[:, None] + 0.5) / height, (np.arange(width)[None, :] + 0.5) / width
        if kind == "rect":
            m = (xs >= min(a, c)) & (xs < max(a, c)) & (ys >= min(b, d)) & (ys < max(b, d))
        else:
            if c <= 0 or d <= 0:
                raise PhotoError(f"region {spec!r}: the ellipse's width and height must be > 0")
            m = ((xs - a) / (c / 2)) ** 2 + ((ys - b) / (d / 2)) ** 2 <= 1
        if not m.any():
            raise PhotoError(f"region {spec!r} covers no pixel of the {width}×{height} photo")
        return m.astype(np.float32)
    path = confine(spec, Path(root if root is not None else os.getcwd()))
    if not path.is_file():
        raise PhotoError(f"region {spec!r}: not rect:…, ellipse:… or an existing mask image file")
    grey = decode_photo(path.read_bytes(), spec).pixels.mean(2).astype(np.float32) / 255
    if grey.shape != (height, width):
        grey = np.asarray(Image.fromarray(grey).resize((width, height), Image.BILINEAR))
    return grey.clip(0, 1)
