"""Label swap: paint regions of a source image and re-render them as other classes (sCBN)."""
import numpy as np
import streamlit as st

from toolkit.ui import photo_source, widgets as W
from toolkit.ui.parts_picker import apply_parts, parts_panel
from toolkit.ui.recipe_builder import Randomise, swap_recipe
from toolkit.ui.strokes import PALETTE, overlay, strokes_to_weights

W.sidebar(page_default=W.CONDITIONAL_DEFAULT)
st.title("Label swap")
gen, key = W.require_model()
dev = W.device()

if not gen.n_classes:
    st.warning(f"**{key}** is unconditional: it has no classes, so there is nothing to swap a region to. "
               "Label swap changes the class-conditional batch-norm parameters inside a region, which needs "
               "a class-conditional model (pick `eyes128`, `terrain64` or `tiny`, or a class-conditional checkpoint, "
               "in the sidebar). "
               "To move parts between images of this model, use feature blending.")
    st.page_link("pages/feature_blend.py", label="Go to Feature blend", icon=":material/join_inner:")
    st.stop()

if photo_source.chosen("swap"):
    photo_source.label_swap(gen, key, dev), st.stop()
names = gen.class_names
res = gen.resolution


def class_picker(label: str, key_: str, default: int = 0) -> int:
    """A class chosen by name search: the text filters the list (case-insensitive substring)."""
    q = st.text_input(f"Search {label.lower()}", key=f"{key_}_q", placeholder="type part of a class name")
    ids = [i for i, n in enumerate(names) if q.strip().lower() in n.lower()] or list(range(len(names)))
    if q.strip() and not any(q.strip().lower() in n.lower() for n in names):
        st.caption(f"No class matches {q!r}; showing all {len(names)}.")
    return st.selectbox(label, ids, index=ids.index(default) if default in ids else 0,
                        format_func=lambda i: f"{names[i]} ({i})", key=key_)


left, right = st.columns([1, 2])
with left:
    src_cls = class_picker("Source class", "swap_src_class")
with right:
    q = st.text_input("Search target classes", key="swap_targets_q", placeholder="filter the list below")
    options = [n for n in names if q.strip().lower() in n.lower()] or names
    chosen = st.session_state.get("swap_targets", [])
    if any(c not in names for c in chosen):   # classes of the previously selected model: start afresh
        del st.session_state["swap_targets"]
        chosen = []
    st.multiselect("Target classes (one colour each, up to 8)", sorted(set(options) | set(chosen), key=names.index),
                   key="swap_targets", max_selections=len(PALETTE),
                   default=None if "swap_targets" in st.session_state else [names[(src_cls + 1) % len(names)]])
targets = st.session_state.get("swap_targets") or []

with st.expander(f"Browse sources of class {names[src_cls]}", expanded=False):
    W.seed_grid(key, dev, src_cls, "source_seed", "Source")
seed = int(st.session_state["source_seed"])

if not targets:
    st.info("Choose at least one target class to paint.")
    st.stop()
colours = PALETTE[:len(targets)]
W.legend(list(zip(targets, colours)))

t1, t2, t3 = st.columns(3)
paint = t1.radio("Paint", targets, key="swap_paint", horizontal=True)
tool = t2.radio("Tool", ["brush", "rectangle"], key="swap_tool", horizontal=True)
brush = t3.slider("Brush size (px on screen)", 4, 64, 24, key="swap_brush")

n = gen.n_stages
stage_labels = [f"{i}: {gen.stage_names[i]} ({gen.stage_resolutions[i]}²)" for i in range(n)]
s1, s2 = st.columns(2)
lo, hi = s1.select_slider("Stages that use the swap", options=list(range(n)), value=(0, n - 1),
                          format_func=lambda i: stage_labels[i], key="swap_stages")
strength = s2.slider("Strength", 0.05, 1.0, 1.0, 0.05, key="swap_strength",
                     help="Fraction of the region's normalisation parameters taken from the target class")
if gen.architecture == "cdcgan":   # the class enters with z: only the first layer (4×4) sees it
    st.caption("This model takes its class as an input next to z, so the swap acts at the first layer's 4×4 grid "
               "(each cell is a quarter of the image side) and only when stage 0 is in the range; the later "
               "layers shape the result. See docs/EYES128.md.")

source = W.render_plain(key, dev, (seed,), (src_cls,))[0]
c_canvas, c_result = st.columns(2)
with c_canvas:
    st.caption(f"Source: seed {seed}, {names[src_cls]} — paint here")
    strokes = W.canvas(W.upscale_pil(source), "swap_canvas", colours[targets.index(paint)], tool, brush)
with st.expander("Upload a mask instead (for the class being painted)"):
    uploaded = W.upload_mask(f"Mask for {paint}", "swap_upload", res)

weights = strokes_to_weights(strokes, colours, res)
if uploaded is not None:
    k = targets.index(paint)
    others = np.delete(weights, k, 0).sum(0)
    weights[k] = np.maximum(weights[k], np.minimum(uploaded, 1 - others))
chosen_parts = parts_panel(key, dev, seed, src_cls, source, list(targets), "swap", current=targets.index(paint))
weights = apply_parts(weights, key, dev, seed, src_cls, chosen_parts)



def build(rnd, count, base_seed):
    return swap_recipe(key, names[src_cls], targets, weights, (lo, hi), strength, rnd, count, base_seed,
                       source_seed=seed, parts=chosen_parts)


# The preview is variant 0 of the recipe "Save as recipe" writes, rendered by the batch pipeline.
with c_result:
    if not weights.any():
        W.show(source, caption="Result: draw a region on the source to see the swap (source shown)")
    else:
        result = W.preview(key, dev, build(Randomise(), 1, 0))[0]
        W.show(result, caption=f"Result: stages {lo}–{hi}, strength {strength:.2f}")
        W.download_result(key, dev, build(Randomise(), 1, 0), f"swap-seed{seed}", "swap")

if weights.any():
    st.subheader("Morph strip (strength 0 → 1)")
    steps = (0.0, 0.25, 0.5, 0.75, 1.0)
    strip = W.preview(key, dev, build(Randomise(), 1, 0), strengths=steps)
    for col, s, im in zip(st.columns(len(steps)), steps, strip):
        with col:
            W.show(im, caption=f"strength {s:.2f}", size=160)
    with st.expander("Regions as the engine sees them"):
        W.show(overlay(W.upscale_pil(source), weights, colours), caption="Regions (colour = target class)")

W.save_recipe_form("swap", build, gen=gen, swap_classes=True)
