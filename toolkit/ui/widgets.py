"""Streamlit pieces shared by the pages: the sidebar, the cached generator, cached renders, the canvas.

Generators are loaded once per (model, device) with `st.cache_resource` and shared by all
sessions, so nothing here mutates them. An edit's preview is the recipe the page would save,
rendered by `toolkit.pipeline` (the batch runner's pipeline) on its variant 0, so what the user
sees is what the batch writes. Renders are cached with `st.cache_data` keyed by every
parameter that changes the picture (model, device, the recipe data, the masks themselves), so
redrawing the same region or switching pages costs nothing.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from .. import load_generator, photo_variants, recipes, render, sample_latents
from ..dataset import class_palette
from ..images import to_uint8
from ..io import encode_png
from ..pipeline import render_variants
from ..zoo import ZOO
from . import recipe_preview
from .recipe_builder import EmptyDrawing, Randomise, preview_recipe, preview_variants
from .strokes import MaskError, hex_to_rgb, mask_from_upload
from .workspace import user_recipes_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "faces64"          # unconditional faces: the blending default
# Label swap needs a class-conditional model: the embedded materials model when shipped.
CONDITIONAL_DEFAULT = "terrain64" if "terrain64" in ZOO else "tiny"
LOCAL = "local file…"
DISPLAY = 256          # on-screen size of every generated image (nearest upscaling)


# -- sidebar ---------------------------------------------------------------------------------------
SIDEBAR_DEFAULTS = {"model_choice": DEFAULT_MODEL, "model_path": "", "device": "auto", "source_seed": 0,
                    "grid_start": 0}


def _persist(name: str) -> None:
    st.session_state[name] = st.session_state["_w_" + name]
    if name == "model_choice":
        st.session_state["_model_picked"] = True   # from now on the pages keep the user's choice


def _bound(name: str) -> dict:
    """Widget kwargs keeping `name` in plain session state: Streamlit drops a widget's state when a
    page without it runs, so the sidebar's values live under their own keys and re-seed the widgets."""
    st.session_state.setdefault(name, SIDEBAR_DEFAULTS[name])
    st.session_state["_w_" + name] = st.session_state[name]
    return {"key": "_w_" + name, "on_change": _persist, "args": (name,)}


def sidebar(page_default: str | None = None) -> None:
    """Model picker (zoo + local path), device and seed controls; every page calls it first.

    `page_default`: the model this page opens with until the user picks one (label swap needs a
    class-conditional model, blending shows faces best).
    Values: `st.session_state["model_choice" | "model_path" | "device" | "source_seed" | "grid_start"]`.
    """
    if page_default and not st.session_state.get("_model_picked"):
        st.session_state["model_choice"] = page_default
    with st.sidebar:
        st.header("Model")
        names = sorted(ZOO) + [LOCAL]
        if st.session_state.get("model_choice") not in names:
            st.session_state["model_choice"] = DEFAULT_MODEL
        st.selectbox("Model", names, format_func=lambda n: n if n == LOCAL else f"{n} (zoo)",
                     help="Zoo models by name, or a weights file on this machine "
                          "(.safetensors saved by the toolkit, or the paper's Chainer .npz)", **_bound("model_choice"))
        if st.session_state["model_choice"] == LOCAL:
            st.text_input("Weights path", placeholder="/path/to/generator.safetensors", **_bound("model_path"))
        st.selectbox("Device", ["auto", "cpu", "cuda"], help="auto = CUDA when this machine has a GPU, else CPU",
                     **_bound("device"))
        st.header("Seeds")
        st.number_input("Source seed", min_value=0, max_value=2**31 - 1, step=1,
                        help="The latent of the image being edited; pick one from a grid on the editor pages",
                        **_bound("source_seed"))
        st.number_input("Grid starts at seed", min_value=0, max_value=2**31 - 1, step=8,
                        help="The seed grids on the editor pages show 8 seeds from here", **_bound("grid_start"))


def model_key() -> str:
    choice = st.session_state.get("model_choice", DEFAULT_MODEL)
    return (st.session_state.get("model_path") or "").strip() if choice == LOCAL else choice


def device() -> str:
    return st.session_state.get("device", "auto")


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def get_generator(key: str, dev: str):
    return load_generator(key, dev)


def require_model():
    """The selected generator, or an error message on the page and `st.stop()`."""
    key = model_key()
    if not key:
        st.info("Type the path of a weights file in the sidebar (or pick a zoo model).")
        st.stop()
    try:
        return get_generator(key, device()), key
    except Exception as e:  # a model that does not load is user input, not a crash
        log.info("model %r did not load: %s", key, e)
        st.error(f"The model {key!r} could not be loaded: {e}")
        st.stop()


# -- cached renders (arguments are the cache key; the generator comes from the resource cache) ----
def _classes(gen, ids):
    return None if not gen.n_classes else torch.tensor(ids, device=gen.device)


@st.cache_data(max_entries=64, show_spinner=False)
def render_plain(key: str, dev: str, seeds: tuple[int, ...], classes: tuple[int, ...] | None) -> np.ndarray:
    gen = get_generator(key, dev)
    y = _classes(gen, list(classes)) if classes is not None else None
    return to_uint8(render(gen, sample_latents(gen, list(seeds)), y))


@st.cache_data(max_entries=64, show_spinner=False)
def render_edit(key: str, dev: str, data_json: str, masks: dict[str, np.ndarray],
                strengths: tuple[float, ...] | None = None) -> list[tuple]:
    """Variant 0 of the recipe the page would save (`recipe_builder.preview_recipe`), rendered by
    the batch runner's pipeline, as (image, mask, label map or None); with `strengths`, one per
    strength (a morph strip)."""
    gen = get_generator(key, dev)
    rec = preview_recipe(json.loads(data_json), masks, gen)
    return [(rv.image, rv.mask, rv.label_map) for rv in render_variants(gen, rec, preview_variants(rec, strengths))]


def preview(key: str, dev: str, built: tuple[dict, dict[str, np.ndarray]],
            strengths: tuple[float, ...] | None = None) -> list[np.ndarray]:
    data, masks = built
    return [t[0] for t in render_edit(key, dev, json.dumps(data, sort_keys=True), masks, strengths)]


def download_result(key: str, dev: str, built: tuple[dict, dict[str, np.ndarray]], stem: str, prefix: str) -> None:
    """Download buttons for the previewed result: the image, its edit mask and (conditional models)
    its label map, as the batch runner would write them (same encoder, same palette)."""
    data, masks = built
    image, mask, label_map = render_edit(key, dev, json.dumps(data, sort_keys=True), masks, None)[0]
    gen = get_generator(key, dev)
    files = [("result", image, None), ("mask", mask, None)]
    if label_map is not None:
        files.append(("label map", label_map, class_palette(gen.class_names)))
    for col, (what, arr, palette) in zip(st.columns(len(files)), files):
        col.download_button(f"Download {what}", encode_png(arr, palette), file_name=f"{stem}-{what.replace(' ', '_')}.png",
                            mime="image/png", key=f"{prefix}_download_{what.replace(' ', '_')}")


# -- small widgets ---------------------------------------------------------------------------------
def upscale_pil(image, size: int = DISPLAY) -> Image.Image:
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    return im.resize((size, size), Image.NEAREST)


def show(image, caption: str | None = None, size: int = DISPLAY) -> None:
    im = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    st.image(im.resize((size, size), Image.NEAREST), caption=caption, width=size, output_format="PNG")


def legend(items: list[tuple[str, str]]) -> None:
    """Colour chips with names: which canvas colour paints which target."""
    chips = " ".join(
        f"<span style='display:inline-block;margin:2px 8px 2px 0'><span style='display:inline-block;"
        f"width:14px;height:14px;background:{c};border-radius:3px;vertical-align:middle'></span> "
        f"{_escape(name)}</span>" for name, c in items)
    st.markdown(chips, unsafe_allow_html=True)


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def seed_grid(key: str, dev: str, classes: int | None, target_state: str, label: str, n: int = 8) -> None:
    """A row of `n` seeds; 'use' writes the seed into `target_state`. Each grid pages on its own
    (earlier/later), starting at the sidebar's grid start."""
    page_key = f"{target_state}_grid_start"
    st.session_state.setdefault(page_key, int(st.session_state.get("grid_start", 0)))
    start = int(st.session_state[page_key])
    seeds = tuple(range(start, start + n))
    imgs = render_plain(key, dev, seeds, None if classes is None else (classes,) * n)
    cols = st.columns(n)
    for col, s, im in zip(cols, seeds, imgs):
        with col:
            st.image(Image.fromarray(im).resize((96, 96), Image.NEAREST), caption=f"seed {s}", output_format="PNG")
            st.button("use", key=f"{target_state}_grid_{s}", help=f"{label}: seed {s}",
                      on_click=_set_state, args=(target_state, s))
    p1, p2, _ = st.columns([1, 1, 6])
    p1.button(f"◀ seeds {max(0, start - n)}–{max(0, start - n) + n - 1}", key=f"{page_key}_prev", disabled=start == 0,
              on_click=_set_state, args=(page_key, max(0, start - n)))
    p2.button(f"seeds {start + n}–{start + 2 * n - 1} ▶", key=f"{page_key}_next",
              on_click=_set_state, args=(page_key, start + n))


def _set_state(name: str, value) -> None:
    st.session_state[name] = value


def canvas(background: Image.Image, key: str, colour: str, tool: str, brush: int, size: int = DISPLAY):
    """The drawing canvas over `background`; returns its RGBA strokes `[H, W, 4]` or None (nothing drawn)."""
    from streamlit_drawable_canvas import st_canvas  # registers a component: import only inside a page

    r, g, b = hex_to_rgb(colour)
    result = st_canvas(
        fill_color=f"rgba({r}, {g}, {b}, 1.0)", stroke_width=brush, stroke_color=colour,
        background_image=background.resize((size, size), Image.NEAREST),
        height=size, width=size, drawing_mode="rect" if tool == "rectangle" else "freedraw",
        return_image_data=True, key=key)
    try:
        data = result.image_data
    except Exception as e:  # a malformed value (e.g. injected state) must not crash the page
        st.warning(f"The drawing could not be read ({e}); clear the canvas and draw again.")
        return None
    if data is None or data.ndim != 3 or data.shape[-1] != 4 or not data[..., 3].any():
        return None
    return data


def upload_mask(label: str, key: str, resolution: int) -> np.ndarray | None:
    """An optional uploaded mask PNG for one target; bad files give a message and None."""
    f = st.file_uploader(label, type=None, key=key,
                         help="A square image (any size up to 4096×4096, ≤ 20 MB): white = inside the region")
    if f is None:
        return None
    try:
        m = mask_from_upload(f.getvalue(), resolution, name=f.name)
    except MaskError as e:
        st.error(str(e))
        return None
    if not m.any():
        st.warning(f"{f.name}: the mask is empty (all black or fully transparent); white marks the region.")
        return None
    return m


# -- save as recipe --------------------------------------------------------------------------------
def save_recipe_form(prefix: str, build, *, gen, swap_classes: bool = False, reference_seeds: bool = False) -> None:
    """The 'Save as recipe' form shared by both editors.

    `build(rnd, count, seed)` returns `(recipe data, masks)` from the page's current state (see
    `toolkit.ui.recipe_builder`); writing and validation are `toolkit.recipes.save_recipe`'s.
    """
    with st.expander("Save as recipe", expanded=False):
        with st.form(f"{prefix}_save"):
            c1, c2, c3 = st.columns([2, 1, 1])
            name = c1.text_input("Recipe name", key=f"{prefix}_recipe_name", placeholder="my-edit",
                                 help="Letters, digits, '_', '.', '-'; written to recipes/<name>.yaml")
            count = c2.number_input("Default count", 1, 1_000_000, 16, key=f"{prefix}_recipe_count")
            seed = c3.number_input("Base seed", 0, 2**31 - 1, 0, key=f"{prefix}_recipe_seed")
            st.caption("Randomisation per variant (optional). Sources are always new seeds per variant.")
            r1, r2, r3, r4 = st.columns(4)
            translate = r1.slider("Jitter: move ±", 0.0, 0.25, 0.0, 0.01, key=f"{prefix}_jit_t")
            scale = r2.slider("Jitter: scale", 0.5, 1.5, (1.0, 1.0), 0.05, key=f"{prefix}_jit_s")
            rotate = r3.slider("Jitter: rotate ±°", 0, 45, 0, key=f"{prefix}_jit_r")
            feather = r4.slider("Feather", 0.0, 0.1, 0.0, 0.01, key=f"{prefix}_feather")
            extra, sources, rand_refs = [], [], False
            if swap_classes and gen.n_classes:
                extra = st.multiselect("Also swap to (one chosen at random per variant)", gen.class_names,
                                       key=f"{prefix}_extra_classes")
            if gen.n_classes:
                sources = st.multiselect("Source classes (default: the current source class)", gen.class_names,
                                         key=f"{prefix}_source_classes")
            if reference_seeds:
                rand_refs = st.checkbox("Random reference seed per variant", key=f"{prefix}_rand_refs")
            replace = st.checkbox("Replace a recipe of the same name", key=f"{prefix}_replace",
                                  help="Without this, saving under an existing name is refused")
            submitted = st.form_submit_button("Save recipe")
        if not submitted:
            return
        rnd = Randomise(translate=translate, scale=tuple(scale), rotate=float(rotate), feather=feather,
                        extra_classes=list(extra), source_classes=list(sources), random_reference_seeds=rand_refs)
        try:
            data, masks = build(rnd, int(count), int(seed))
            path = recipes.save_recipe(data, name.strip(), user_recipes_dir(), masks, overwrite=replace)
        except (EmptyDrawing, recipes.RecipeError) as e:
            st.error(str(e))
            return
        except OSError as e:
            st.error(f"The recipe could not be written: {e}")
            return
        st.session_state[f"{prefix}_saved"] = str(path)
        st.success(f"Saved {path}. Run it on the Batch page or with `python -m toolkit batch {path} --out DIR`.")
        preview_recipe_file(path)


def preview_recipe_file(path, n: int = 4, preset: str = recipe_preview.PREVIEW_PRESET, code: bool = True) -> None:
    """The first `n` variants of a recipe file, rendered by the batch runner's render path (photo
    recipes: projected first with `preset` unless the workspace holds projections; see
    `toolkit.ui.recipe_preview`)."""
    try:
        rec = recipes.load_recipe(path)
        gen = get_generator(rec.model, device())
        rec = rec.for_generator(gen)
        rendered, note = recipe_preview.render_first(gen, rec, n, preset)
    except Exception as e:
        st.warning(f"The preview of {Path(path).name} failed: {e}")
        return
    st.caption(f"First {n} variants of {rec.name} (as the batch runner renders them)" + (f"; {note}" if note else ""))
    cols = st.columns(n)
    for col, rv in zip(cols, rendered):
        with col:
            show_photo(rv.image, caption=f"#{rv.index} {rv.label}", width=128)
    if code:
        st.code(rec.text, language="yaml")


def recipe_preview_panel(path, rec, prefix: str, n: int = 4) -> None:
    """A switch that shows the recipe's first `n` variants (`preview_recipe_file`); photo recipes
    also get the choice of projection preset (the batch uses the recipe's own)."""
    if not st.toggle(f"Preview the first {n} variants", key=f"{prefix}_preview",
                     help="Rendered by the batch runner's render path; nothing is written to a dataset"):
        return
    preset = recipe_preview.PREVIEW_PRESET
    if photo_variants.photo_spec(rec):
        own = photo_variants.photo_spec(rec)["projection"]
        presets = list(dict.fromkeys([recipe_preview.PREVIEW_PRESET, own]))
        preset = st.radio("Projection for the preview", presets, horizontal=True, key=f"{prefix}_preview_preset",
                          format_func=lambda p: p + (" (the recipe's)" if p == own else " (quicker)"),
                          help="Photos are projected into the model first (minutes per 16 photos on a CPU; "
                               "cached per photo in the workspace). Projections a batch run of this recipe "
                               "left in the workspace are used as they are.")
    preview_recipe_file(path, n, preset, code=False)


def show_photo(image: np.ndarray, caption: str, width: int) -> None:
    """A rendered variant at `width` px: square model outputs scaled with nearest (pixels stay
    visible), photo-sized ones (photo recipes) keep their aspect."""
    h, w = image.shape[:2]
    if h == w:
        show(image, caption=caption, size=width)
    else:
        st.image(Image.fromarray(image), caption=caption, width=width, output_format="PNG")
