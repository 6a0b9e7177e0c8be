"""Files a recipe names: paths resolved inside the recipe's folder, mask images read with limits.

Why here and not in `toolkit.masks`: masks are pure pixel work; reading a file because a recipe
said so is a trust decision (the path must stay inside the recipe's folder, the file must be a
small image), and that belongs with the recipe.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import TooLargeError, read_bounded
from ..masks import MAX_MASK_PIXELS, MaskFileError, decode_mask

MAX_MASK_BYTES = 32 << 20


def resolve_path(rel: str, base_dir: Path, what: str) -> Path:
    """A path from a recipe, resolved against its folder; refuses escapes (ValueError)."""
    raw = Path(os.path.expanduser(rel))
    if raw.is_absolute():
        return raw.resolve()
    base = base_dir.resolve()
    full = (base / raw).resolve()
    if not full.is_relative_to(base):
        raise ValueError(f"{rel!r} points outside the recipe's folder ({base}); {what} must live in that "
                         "folder or below it (e.g. masks/eyes.png)")
    return full


def load_mask_file(path: str | Path, max_pixels: int = MAX_MASK_PIXELS) -> np.ndarray:
    """Read a mask image → `[H, W]` float32 in [0, 1]. Raises MaskFileError with a readable reason."""
    p = Path(path)
    if not p.exists():
        raise MaskFileError(f"mask file {str(p)!r} does not exist")
    if not p.is_file():
        raise MaskFileError(f"mask path {str(p)!r} is not a file")
    try:
        data = read_bounded(p, MAX_MASK_BYTES)
    except TooLargeError:
        raise MaskFileError(f"mask file {str(p)!r} is larger than {MAX_MASK_BYTES >> 20} MB; save the mask as a "
                            "greyscale PNG at about the model's resolution") from None
    except OSError as e:
        raise MaskFileError(f"mask file {str(p)!r} could not be read: {e.strerror or e}") from None
    return decode_mask(data, str(p), max_pixels)
