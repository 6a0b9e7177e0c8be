"""`save_recipe`: a recipe dict (e.g. from the app) and its drawn masks → files, all or nothing.

Validation runs first, on the masks as they will be stored (8-bit PNG), so nothing is written
for an invalid recipe. Masks are written before the YAML, so a recipe never names a mask that is
not there; if any write fails, the files written so far are removed (or given back their old
bytes when `overwrite=True` replaced them). An existing recipe is never replaced silently.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_write_bytes, encode_png
from ..masks import mask_from_image
from .recipe import _parse
from .schema import NAME_PATTERN
from .spec import RecipeError
from .yamlio import dump_recipe

MAX_NAME_LENGTH = 100            # masks/<name>/<key>.png must stay well inside path limits
KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _walk_regions(data: dict):
    """Every region mapping of a recipe dict (choices included)."""
    for edit in data.get("edits") or []:
        if not isinstance(edit, dict):
            continue
        for spec in edit.values():
            region = spec.get("region") if isinstance(spec, dict) else None
            if isinstance(region, dict):
                yield from (region["choice"] if isinstance(region.get("choice"), list) else [region])


def mask_png(img) -> tuple[np.ndarray, bytes]:
    """A drawn mask (PIL image, or floats in [0, 1]) → (the float mask it will be, its PNG bytes)."""
    arr = mask_from_image(img) if isinstance(img, Image.Image) else \
        np.round(np.clip(np.asarray(img, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
    return arr.astype(np.float32) / 255.0, encode_png(arr)


def with_masks(data: dict, name: str, masks: dict) -> tuple[dict, dict[str, bytes], dict[str, tuple]]:
    """`{mask: "<key>"}` regions whose key is in `masks` → `masks/<name>/<key>.png`.

    Returns (the rewritten data, {relative path: PNG bytes}, {relative path: (float mask, sha256)}):
    the stand-ins `parse_recipe(..., masks=)` takes, so a preview sees exactly the saved masks."""
    data = copy.deepcopy(data)
    pngs: dict[str, bytes] = {}
    overrides: dict[str, tuple] = {}
    for region in _walk_regions(data):
        key = region.get("mask")
        if isinstance(key, str) and key in masks:
            if not KEY_RE.match(key) or ".." in key:
                raise RecipeError(f"mask key {key!r}: use letters, digits, '_', '.', '-' only")
            rel = f"masks/{name}/{key}.png"
            if rel not in pngs:
                arr, pngs[rel] = mask_png(masks[key])
                overrides[rel] = (arr, hashlib.sha256(pngs[rel]).hexdigest())
            region["mask"] = rel
    return data, pngs, overrides


def check_name(name) -> str:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name) or ".." in name:
        raise RecipeError(f"{name!r}: not a valid recipe name: use letters, digits, '_', '.', '-' "
                          "(no path separators, no '..')")
    if len(name) > MAX_NAME_LENGTH:
        raise RecipeError(f"recipe name is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
    return name


def save_recipe(data: dict, name: str, recipes_dir: str | Path, masks: dict | None = None, *,
                overwrite: bool = False) -> Path:
    """Validate, then write `<recipes_dir>/<name>.yaml` and each mask as `masks/<name>/<key>.png`.

    Regions `{mask: "<key>"}` whose key is in `masks` are rewritten to the PNG's relative path.
    RecipeError (nothing written) for an invalid recipe or name, or when `<name>.yaml` exists and
    `overwrite` is False."""
    check_name(name)
    recipes_dir = Path(recipes_dir)
    target = recipes_dir / f"{name}.yaml"
    if target.exists() and not overwrite:
        raise RecipeError(f"{target}: a recipe of this name already exists; choose another name "
                          "(or confirm replacing it: save_recipe(..., overwrite=True))")
    data, pngs, overrides = with_masks(data, name, masks or {})
    data["name"] = name
    _parse(copy.deepcopy(data), str(target), recipes_dir, text=None, path=None, mask_overrides=overrides)
    text = dump_recipe(data).encode("utf-8")
    written: list[tuple[Path, bytes | None]] = []        # (path, previous bytes or None)
    try:
        for rel, payload in pngs.items():
            p = recipes_dir / rel
            written.append((p, p.read_bytes() if p.is_file() else None))
            atomic_write_bytes(p, payload, make_parents=True)
        atomic_write_bytes(target, text, make_parents=True)
    except BaseException:
        _undo(written, recipes_dir / "masks" / name)
        raise
    return target


def _undo(written: list[tuple[Path, bytes | None]], mask_dir: Path) -> None:
    for p, old in reversed(written):
        with contextlib.suppress(OSError):
            if old is None:
                p.unlink(missing_ok=True)
            else:
                atomic_write_bytes(p, old)
    with contextlib.suppress(OSError):
        mask_dir.rmdir()          # only when empty: a folder we created for this save
        mask_dir.parent.rmdir()
