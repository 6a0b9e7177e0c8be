"""The editors' "Parts" region mode: pick parts of the source (from the model's part model) as a
region instead of painting one; saved recipes get `{part: [...], grow: 1}` regions, which follow
each sample in the batch run.

The page shows the source with every part in its colour (the same palette as part maps and the
docs' sheets). Clicking a pixel of that picture toggles the part under it in the current slot's
list (the reference or target class being painted); the list is an ordinary multiselect, so
clicking and picking from the list edit the same selection. The current slot's parts are drawn
more strongly and outlined in white.

Why the click is mapped here and not in the component: the click arrives in *display* pixels of
the picture (`streamlit-image-coordinates`: x, y, and the width and height it was drawn at),
which is larger than the part map (256 px on screen for a 64-px map) and may be scaled by the
browser; `click_pixel` turns it into the part map's (row, col) and is tested on its own.
A click is handled once: the component keeps returning its last click on every rerun, so the
click's `unix_time` is remembered and a repeat of it is ignored.

The masks shown here are the source's own part map, computed from the features of the source
render (`render_with_features`), exactly as the pipeline computes them; the preview itself is
rendered by the pipeline from the recipe.
"""
from __future__ import annotations

import json
import math

import numpy as np
import streamlit as st
import torch

from ..engine import render_with_features
from ..part_edits import region_mask
from ..parts import PALETTE, segment_features, shipped
from ..sampling import sample_latents
from . import widgets as W

GROW = 1     # pixels: a part's edge pixels are often split with a neighbour; the saved region grows by this
TINT, TINT_PICKED = 0.35, 0.7      # overlay strength of other parts / of the current slot's parts
OUTLINE = 2                         # picture pixels of white around the current slot's parts
PICTURE = 384        # the picture's own size; the browser fits it to the column (the click says at what size)


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


# -- pure helpers (tested without Streamlit running) --------------------------------------------
def click_pixel(click, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The (row, col) of a `shape` = (H, W) map under a click on its picture, or None.

    `click`: {"x", "y", "width", "height"} in display pixels, x and y measured from the picture's
    top-left corner (what `streamlit_image_coordinates` returns; fractional in a zoomed browser).
    The pointer is on display pixel floor(x), which `upscale` draws from map column
    floor(x)·W // width, so the part found is the part drawn under the pointer (exactly when the
    picture is shown at the size it was made; when the browser rescales it to fit the column,
    up to a display pixel at a part's edge). The far edge (x = width) counts as the last pixel.
    Anything that is not such a click (missing keys, a non-positive size, a point outside the
    picture) gives None."""
    try:
        x, y, w, h = (float(click[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    if not (0 <= x <= w and 0 <= y <= h):
        return None
    rows, cols = shape
    dx, dy = min(int(x), math.ceil(w) - 1), min(int(y), math.ceil(h) - 1)
    return min(rows - 1, int(dy * rows // h)), min(cols - 1, int(dx * cols // w))


def toggle(selected: list[str], name: str, order: list[str]) -> list[str]:
    """`selected` with `name` added, or removed when it was there; kept in `order`."""
    chosen = set(selected) ^ {name}
    return [n for n in order if n in chosen]


def upscale(a: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes to `size`×`size` (the map pixel a display
    pixel shows is exactly the one `click_pixel` returns for it)."""
    rows = np.arange(size) * a.shape[0] // size
    cols = np.arange(size) * a.shape[1] // size
    return a[rows][:, cols]


def part_picture(source: np.ndarray, labels: np.ndarray, picked: list[int], size: int = W.DISPLAY) -> np.ndarray:
    """`[size, size, 3]` uint8: the source with every part tinted in its colour; the `picked` part
    ids tinted more strongly and outlined in white."""
    img = upscale(source, size).astype(np.float32)
    lab = upscale(labels, size)
    pal = np.array(PALETTE * (1 + int(lab.max(initial=0)) // len(PALETTE)), dtype=np.float32)
    sel = np.isin(lab, picked)
    alpha = np.where(sel, TINT_PICKED, TINT)[..., None]
    out = img * (1 - alpha) + pal[lab] * alpha
    if sel.any():
        pad = np.pad(sel, OUTLINE, mode="edge")
        inner = np.ones_like(sel)
        for dy in range(-OUTLINE, OUTLINE + 1):
            for dx in range(-OUTLINE, OUTLINE + 1):
                inner &= pad[OUTLINE + dy:OUTLINE + dy + size, OUTLINE + dx:OUTLINE + dx + size]
        out[sel & ~inner] = 255
    return out.round().astype(np.uint8)


# -- the panel ------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def part_model(key: str, dev: str):
    """The part model shipped for the page's model, or None."""
    return shipped(W.get_generator(key, dev))


@st.cache_data(max_entries=32, show_spinner=False)
def source_parts(key: str, dev: str, seed: int, cls: int | None) -> np.ndarray:
    """`[H, W]` part ids of the source (its own features, one render)."""
    gen, pm = W.get_generator(key, dev), part_model(key, dev)
    y = None if cls is None else torch.tensor([cls], device=gen.device)
    _, st_ = render_with_features(gen, sample_latents(gen, [seed]), y, capture=pm.points)
    return segment_features(pm, st_, gen.resolution)[0].cpu().numpy()


def _take_click(prefix: str, labels: np.ndarray, pm, names: list[str], current: int) -> None:
    """Apply a new click on the part picture to the current slot's list (before the list is drawn:
    Streamlit allows setting a widget's state only before the widget exists in the run)."""
    click = st.session_state.get(f"{prefix}_parts_click")
    if not isinstance(click, dict):
        return
    stamp = json.dumps(click, sort_keys=True, default=str)
    if st.session_state.get(f"{prefix}_parts_click_seen") == stamp:
        return
    st.session_state[f"{prefix}_parts_click_seen"] = stamp
    px = click_pixel(click, labels.shape)
    if px is None:
        return
    ms = f"{prefix}_parts{current}"
    st.session_state[ms] = toggle(list(st.session_state.get(ms) or []), pm.names[int(labels[px])], names)


def parts_panel(key: str, dev: str, seed: int, cls: int | None, source: np.ndarray, slots: list[str],
                prefix: str, current: int = 0) -> dict[int, list[str]]:
    """An expander with the clickable part overlay and one part list per slot; returns {slot index:
    part names}. Clicks toggle parts of slot `current` (the one being painted). A slot with parts
    gets the parts as its region (its painted strokes are not used)."""
    from streamlit_image_coordinates import streamlit_image_coordinates  # registers a component: pages only

    pm = part_model(key, dev)
    with st.expander("Parts: click a part on the source (regions that follow each sample)", expanded=False):
        if pm is None:
            st.caption(f"No part model ships for {key}. Make one with `python -m toolkit parts {key} --parts 8 "
                       "--out FILE --sheet PNG`, name its parts, and set `parts: FILE` in a recipe.")
            return {}
        labels = source_parts(key, dev, seed, cls)
        names = sorted(set(pm.names), key=pm.names.index)
        current = min(max(0, current), len(slots) - 1)
        _take_click(prefix, labels, pm, names, current)
        mine = [n for n in st.session_state.get(f"{prefix}_parts{current}") or [] if n in names]
        picked = pm.ids(mine) if mine else []
        c_img, c_pick = st.columns(2)
        with c_img:
            st.caption(f"Click a part to add it to **{slots[current]}** or remove it (outlined: its parts)")
            streamlit_image_coordinates(part_picture(source, labels, picked, PICTURE), width="stretch",
                                        key=f"{prefix}_parts_click", cursor="crosshair")
            W.legend([(f"{i} {n}", _hex(PALETTE[i % len(PALETTE)])) for i, n in enumerate(pm.names)])
        with c_pick:
            for j, slot in enumerate(slots):
                st.multiselect(f"Parts for {slot}", names, key=f"{prefix}_parts{j}",
                               help="The region is these parts of each source (grown by 1 px), not the painted strokes")
    return {j: list(st.session_state[f"{prefix}_parts{j}"]) for j in range(len(slots))
            if st.session_state.get(f"{prefix}_parts{j}")}


def apply_parts(weights: np.ndarray, key: str, dev: str, seed: int, cls: int | None,
                chosen: dict[int, list[str]]) -> np.ndarray:
    """The page's region maps `[K, H, W]` with each chosen slot replaced by its part mask (for the
    overlay and the "anything drawn?" checks; the recipe itself records the part names)."""
    if not chosen:
        return weights
    pm, labels = part_model(key, dev), source_parts(key, dev, seed, cls)
    out = weights.copy()
    for j, names in chosen.items():
        out[j] = region_mask(labels, pm.ids(names), GROW)
    return out
