"""The editor pages' "Source: upload a photo" flow: upload → projection (progress bar) → paint on
the photo at its own size → the composited photo, with downloads of the result and its mask.

Why here and not in the pages: both editor pages share the flow and call it with one line each
(`if photo_source.chosen(page): photo_source.<page>(...)`), so the pages stay short and the
library calls (`toolkit.photos.decode_photo`, `toolkit.project`, `toolkit.edit_photo`) are the
same ones the CLI and batch use. Projections are cached per uploaded file (`st.cache_data`
keyed by model, device, the file's sha256 and the preset): the slow step runs once per photo.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from .. import Blend, LabelSwap, render, sample_latents
from ..composite import edit_photo
from ..images import to_uint8
from ..io import encode_png
from ..photos import MAX_FILE_BYTES, PhotoError, decode_photo
from ..projection import project
from .strokes import hex_to_rgb

SOURCES = ("generated", "upload a photo")
MAX_SHOWN = 512          # the canvas shows the photo at its size, scaled down to fit this width
BRUSH = "#e6194b"


def chosen(page: str) -> bool:
    """The "Source" switch; True when the user picked "upload a photo"."""
    return st.radio("Source", SOURCES, horizontal=True, key=f"{page}_source") == SOURCES[1]


@st.cache_data(max_entries=8, show_spinner=False)
def _decode(data: bytes, name: str):
    return decode_photo(data, name)


@st.cache_data(max_entries=16, show_spinner=False)
def _project(key: str, dev: str, sha256: str, preset: str, _pixels: np.ndarray, _gen):
    """Keyed by the file's sha256 (not its pixels): the projection of one upload is computed once.
    The progress bar is made inside (a cached function may only touch elements it creates)."""
    bar = st.progress(0.0, text="Projecting…")
    proj = project(_gen, _pixels, steps=preset, progress=lambda i, n: bar.progress(i / n, text=f"Projecting… step {i}/{n}"))
    bar.empty()
    return proj


def _upload(page: str, gen, key: str, dev: str):
    """The uploaded photo and its projection, or None (with a message on the page)."""
    f = st.file_uploader("Photo (PNG, JPEG, WebP, BMP or TIFF)", key=f"{page}_photo",
                         help=f"Any size up to {MAX_FILE_BYTES // 2**20} MB; the model sees its centred square "
                              f"at {gen.resolution}×{gen.resolution}")
    if f is None:
        st.info("Upload a photo to edit it. It is projected into the model first (a few seconds per photo on "
                "a CPU), then you paint on it; only the painted region changes.")
        return None
    try:
        photo = _decode(f.getvalue(), f.name)
    except PhotoError as e:
        st.error(str(e))
        return None
    preset = st.radio("Projection", ["default", "fast"], horizontal=True, key=f"{page}_preset",
                      help="default: 300 latent + 200 feature steps; fast: half of each (lower PSNR)")
    proj = _project(key, dev, photo.sha256, preset, photo.pixels, gen)
    cls = f"; looks like **{gen.class_names[proj.classes[0]]}**" if proj.classes is not None else ""
    c = proj.crops[0]
    st.caption(f"{photo.name}: {c.width}×{c.height}, model sees the {c.size}×{c.size} square at x={c.x}, "
               f"y={c.y}; reconstruction PSNR {float(proj.psnr[0]):.1f} dB{cls}")
    return photo, proj


def _paint(page: str, photo) -> np.ndarray:
    """A canvas over the photo at its size (scaled to fit); the strokes as a photo-sized mask."""
    from streamlit_drawable_canvas import st_canvas  # registers a component: import only inside a page

    w, h = photo.size
    scale = min(1.0, MAX_SHOWN / w)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    brush = st.slider("Brush size (px on screen)", 4, 64, 24, key=f"{page}_photo_brush")
    tool = st.radio("Tool", ["brush", "rectangle"], key=f"{page}_photo_tool", horizontal=True)
    r, g, b = hex_to_rgb(BRUSH)
    res = st_canvas(fill_color=f"rgba({r}, {g}, {b}, 1.0)", stroke_width=brush, stroke_color=BRUSH,
                    background_image=Image.fromarray(photo.pixels).resize((cw, ch), Image.BILINEAR),
                    height=ch, width=cw, drawing_mode="rect" if tool == "rectangle" else "freedraw",
                    return_image_data=True, key=f"{page}_photo_canvas")
    data = getattr(res, "image_data", None)
    if data is None or np.asarray(data).ndim != 3 or np.asarray(data).shape[-1] != 4:
        return np.zeros((h, w), np.float32)
    alpha = Image.fromarray(np.asarray(data)[..., 3].astype(np.uint8)).resize((w, h), Image.BILINEAR)
    return np.asarray(alpha, dtype=np.float32) / 255


def _result(page: str, edit) -> None:
    st.image(edit.image, caption=f"Result at the photo's size ({edit.image.shape[1]}×{edit.image.shape[0]}); "
             f"{int(edit.mask.sum())} pixels may differ, all others are the photo's",
             width=min(MAX_SHOWN, edit.image.shape[1]), output_format="PNG")
    d1, d2 = st.columns(2)
    d1.download_button("Download result (PNG)", encode_png(edit.image), file_name="edited.png",
                       mime="image/png", key=f"{page}_dl_image")
    d2.download_button("Download mask (PNG)", encode_png((edit.mask * 255).astype(np.uint8)),
                       file_name="edited_mask.png", mime="image/png", key=f"{page}_dl_mask")
    with st.expander("Reconstruction and edit at the model's resolution"):
        st.image([Image.fromarray(edit.reconstruction).resize((192, 192), Image.NEAREST),
                  Image.fromarray(edit.edited).resize((192, 192), Image.NEAREST)],
                 caption=["reconstruction", "edited"], output_format="PNG")


def label_swap(gen, key: str, dev: str) -> None:
    """The label-swap page with a photo source."""
    got = _upload("swap", gen, key, dev)
    if got is None:
        return
    photo, proj = got
    names = gen.class_names
    target = st.selectbox("Paint the region as", range(len(names)), format_func=lambda i: f"{names[i]} ({i})",
                          index=(proj.classes[0] + 1) % len(names), key="swap_photo_target")
    mask = _paint("swap", photo)
    if not mask.any():
        st.caption("Paint a region on the photo to see the swap.")
        return
    try:
        edit = edit_photo(gen, photo, swap=LabelSwap([target], mask[None]), projection=proj)
    except ValueError as e:
        st.error(str(e))
        return
    _result("swap", edit)


def feature_blend(gen, key: str, dev: str) -> None:
    """The feature-blend page with a photo source: a generated reference pasted into the painted region."""
    got = _upload("blend", gen, key, dev)
    if got is None:
        return
    photo, proj = got
    seed = int(st.number_input("Reference seed", 0, 2**31 - 1, 1, key="blend_photo_seed"))
    ref = sample_latents(gen, [seed])
    y = None if proj.class_vector is None else torch.tensor(proj.classes, device=gen.device)
    st.image(Image.fromarray(to_uint8(render(gen, ref, y))[0]).resize((128, 128), Image.NEAREST),
             caption=f"reference, seed {seed}", output_format="PNG")
    mask = _paint("blend", photo)
    if not mask.any():
        st.caption("Paint a region on the photo to paste the reference there.")
        return
    p = gen.n_blend_points
    # From the projection point on, not the last: at strength 1 there, earlier points would change only
    # the soft edge of the mask (render_projection generates the edit at every point it is asked).
    strength = [0.0] * proj.point + [1.0] * (p - 1 - proj.point) + [0.0]
    try:
        edit = edit_photo(gen, photo, blends=[Blend(ref, mask, strength, y=y)], projection=proj)
    except ValueError as e:
        st.error(str(e))
        return
    _result("blend", edit)
