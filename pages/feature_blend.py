"""Feature blend: paste parts of reference images into a source, inside masks drawn on the canvas."""
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from toolkit.masks import MaskFileError, resize_weights
from toolkit.recipes import BLEND_PRESETS, blend_preset
from toolkit.recipes.files import load_mask_file
from toolkit.ui import photo_source, widgets as W
from toolkit.ui.parts_picker import apply_parts, parts_panel
from toolkit.ui.recipe_builder import Randomise, blend_recipe
from toolkit.ui.strokes import PALETTE, overlay, strokes_to_weights

# Face-part masks shipped with the example recipes: one click moves eyes, mouth or hair.
PART_MASKS = Path(__file__).resolve().parent.parent / "recipes" / "masks"
PARTS = {"eyes": "faces64-eyes.png", "mouth": "faces64-mouth.png", "hair": "faces64-hair.png"}
PRESET_LABELS = {"coarse": "coarse shape", "parts": "mid-level parts", "texture": "fine texture"}

W.sidebar(page_default=W.DEFAULT_MODEL)
st.title("Feature blend")
gen, key = W.require_model()
dev = W.device()
if photo_source.chosen("blend"):
    photo_source.feature_blend(gen, key, dev), st.stop()
res, n_points = gen.resolution, gen.n_blend_points
names = gen.class_names if gen.n_classes else []


@st.cache_data(show_spinner=False)
def part_mask(file: str, resolution: int) -> np.ndarray:
    m = load_mask_file(PART_MASKS / file)
    return resize_weights(torch.from_numpy(m), (resolution, resolution)).numpy()


def set_preset(name: str) -> None:
    for i, v in enumerate(blend_preset(name, n_points)):
        st.session_state[f"blend_point_{i}"] = v




def build(rnd, count, base_seed):
    return blend_recipe(key, [{"seed": r["seed"], "class": r["class"]} for r in refs], masks, strength, rnd,
                        source_class=names[src_cls] if gen.n_classes else None, count=count, seed=base_seed,
                        source_seed=seed, parts=chosen_parts)


editor = st.container()          # drawn first on the page, filled last (it needs the choices below)
st.subheader("Source and references")
refs_box = st.container()
st.subheader("Strength per blend point")
strength_box = st.container()

with refs_box:
    # -- source and references ------------------------------------------------------------------------
    src_cls = None
    if gen.n_classes:
        src_cls = st.selectbox("Source class", range(len(names)), format_func=lambda i: f"{names[i]} ({i})",
                               key="blend_src_class")
    with st.expander("Browse sources", expanded=False):
        W.seed_grid(key, dev, src_cls, "source_seed", "Source")
    seed = int(st.session_state["source_seed"])

    n_refs = int(st.columns(4)[0].number_input("References", 1, 4, 1, key="blend_n_refs",
                                 help="Each reference gets its own colour on the canvas"))
    colours = PALETTE[:n_refs]
    refs = []
    ref_cols = st.columns(n_refs)
    for j, col in enumerate(ref_cols):
        with col:
            st.session_state.setdefault(f"ref{j}_seed", 100 + j)
            W.legend([(f"reference {j + 1}", colours[j])])
            modes = ["seed", "grid"] + (["class"] if gen.n_classes else [])
            mode = st.radio("Choose by", modes, key=f"ref{j}_mode", horizontal=True)
            st.number_input("Reference seed", 0, 2**31 - 1, step=1, key=f"ref{j}_seed")
            ref_cls = src_cls
            if gen.n_classes and mode == "class":
                ref_cls = st.selectbox("Reference class", range(len(names)), format_func=lambda i: names[i],
                                       key=f"ref{j}_class")
            ref = {"seed": int(st.session_state[f"ref{j}_seed"]), "class_id": ref_cls,
                   "class": names[ref_cls] if gen.n_classes and mode == "class" else None}
            refs.append(ref)
            img = W.render_plain(key, dev, (ref["seed"],), None if ref_cls is None else (ref_cls,))[0]
            W.show(img, caption=f"reference {j + 1}: seed {ref['seed']}", size=128)
            st.multiselect("Quick regions", list(PARTS), key=f"ref{j}_parts",
                           help="Face-part masks from recipes/masks (drawn for 64×64 faces); added to what you paint")
    for j in range(n_refs):
        if st.session_state.get(f"ref{j}_mode") == "grid":
            st.caption(f"Pick reference {j + 1}")
            W.seed_grid(key, dev, src_cls, f"ref{j}_seed", f"Reference {j + 1}")

with strength_box:
    # -- strengths -----------------------------------------------------------------------------------
    st.caption("Where reference features replace the source's: after the stem (coarse layout) … after the last "
               "stage (fine texture).")
    pc = st.columns(len(BLEND_PRESETS))
    for c, name in zip(pc, BLEND_PRESETS):
        c.button(f"Preset: {PRESET_LABELS.get(name, name)}", key=f"preset_{name}", on_click=set_preset, args=(name,),
                 help=f"{name}: strengths {blend_preset(name, n_points)}")
    if f"blend_point_{0}" not in st.session_state:
        set_preset("parts")
    strength = []
    for i, c in enumerate(st.columns(n_points)):
        label = "after stem" if i == 0 else f"after {gen.stage_names[i - 1]}"
        strength.append(c.slider(f"{label} ({gen.blend_resolutions[i]}²)", 0.0, 1.0, step=0.05, key=f"blend_point_{i}"))

with editor:
    # -- canvas and result -----------------------------------------------------------------------------
    t1, t2, t3 = st.columns(3)
    paint = t1.radio("Paint for", list(range(n_refs)), format_func=lambda j: f"reference {j + 1}",
                     key="blend_paint", horizontal=True)
    tool = t2.radio("Tool", ["brush", "rectangle"], key="blend_tool", horizontal=True)
    brush = t3.slider("Brush size (px on screen)", 4, 64, 24, key="blend_brush")

    source = W.render_plain(key, dev, (seed,), None if src_cls is None else (src_cls,))[0]
    c_canvas, c_refs, c_mask, c_result = st.columns([3, 1, 3, 3])
    with c_canvas:
        st.caption(f"Source: seed {seed} — paint here")
        strokes = W.canvas(W.upscale_pil(source), "blend_canvas", colours[paint], tool, brush)
    with c_refs:
        # The references beside the canvas while painting: which colour brings which face.
        for j, r in enumerate(refs):
            W.legend([(f"reference {j + 1}", colours[j])])
            cid = r["class_id"]
            W.show(W.render_plain(key, dev, (r["seed"],), None if cid is None else (cid,))[0],
                   caption=f"seed {r['seed']}", size=96)
    with st.expander("Upload a mask instead (for the reference being painted)"):
        uploaded = W.upload_mask(f"Mask for reference {paint + 1}", "blend_upload", res)

    masks = strokes_to_weights(strokes, colours, res)
    for j in range(n_refs):
        try:
            extra = [part_mask(PARTS[p], res) for p in st.session_state.get(f"ref{j}_parts", [])]
        except MaskFileError as e:
            st.error(f"A quick-region mask could not be read: {e}")
            extra = []
        if j == paint and uploaded is not None:
            extra.append(uploaded)
        if extra:
            # Painted strokes of other references keep their pixels: masks stay disjoint (sum ≤ 1).
            free = 1 - np.delete(masks, j, 0).sum(0)
            masks[j] = np.maximum(masks[j], np.minimum(np.max(extra, 0), free))
    chosen_parts = parts_panel(key, dev, seed, src_cls, source, [f"reference {j + 1}" for j in range(n_refs)], "blend",
                               current=paint)
    masks = apply_parts(masks, key, dev, seed, src_cls, chosen_parts)
    with c_mask:
        W.show(overlay(W.upscale_pil(source), masks, colours), caption="Regions (colour = reference)")
    with c_result:
        if not masks.any():
            W.show(source, caption="Result: paint a region or pick a quick region (source shown)")
        elif not any(strength):
            W.show(source, caption="Result: all strengths are 0 — raise a slider or pick a preset (source shown)")
        else:
            # Variant 0 of the recipe "Save as recipe" writes, rendered by the batch pipeline.
            out = W.preview(key, dev, build(Randomise(), 1, 0))[0]
            W.show(out, caption="Result")
    if masks.any() and any(strength):
        W.download_result(key, dev, build(Randomise(), 1, 0), f"blend-seed{seed}", "blend")


W.save_recipe_form("blend", build, gen=gen, reference_seeds=True)
