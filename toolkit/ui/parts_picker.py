"""The editors' "Parts" region mode: pick parts of the source (from the model's part model) as a
region instead of painting one; saved recipes get `{part: [...], grow: 1}` regions, which follow
each sample in the batch run.

The page shows the source with every part in its colour (the same palette as part maps and the
docs' sheets) and a list per reference / target class. The masks shown here are the source's own
part map, computed from the features of the source render (`render_with_features`), exactly as
the pipeline computes them; the preview itself is rendered by the pipeline from the recipe.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from ..engine import render_with_features
from ..part_edits import region_mask
from ..parts import PALETTE, overlay, segment_features, shipped
from ..sampling import sample_latents
from . import widgets as W

GROW = 1     # pixels: a part's edge pixels are often split with a neighbour; the saved region grows by this


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


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


def parts_panel(key: str, dev: str, seed: int, cls: int | None, source: np.ndarray, slots: list[str],
                prefix: str) -> dict[int, list[str]]:
    """An expander with the part overlay and one part list per slot; returns {slot index: part names}.
    A slot with parts gets the parts as its region (its painted strokes are not used)."""
    pm = part_model(key, dev)
    with st.expander("Parts: regions that follow each sample", expanded=False):
        if pm is None:
            st.caption(f"No part model ships for {key}. Make one with `python -m toolkit parts {key} --parts 8 "
                       "--out FILE --sheet PNG`, name its parts, and set `parts: FILE` in a recipe.")
            return {}
        labels = source_parts(key, dev, seed, cls)
        names = sorted(set(pm.names), key=pm.names.index)
        c_img, c_pick = st.columns([1, 2])
        with c_img:
            W.show(overlay(source[None], labels[None])[0], caption="Source parts (colour = part)", size=256)
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
