"""The app's preview is the batch: variant 0 of the recipe a page saves, pixel for pixel.

The editor pages build the recipe "Save as recipe" writes (`toolkit.ui.recipe_builder`) and
render its variant 0 with the batch runner's pipeline. These tests save that recipe, run the
batch runner on it, and compare the written PNG with the preview: first through the library
functions the pages call, then through the label-swap page itself (AppTest).
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from toolkit.batch import run_batch
from toolkit.pipeline import render_variants
from toolkit.recipes import load_recipe, save_recipe
from toolkit.ui.recipe_builder import Randomise, blend_recipe, preview_recipe, preview_variants, swap_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch_variant0(tmp_path, path) -> np.ndarray:
    out = tmp_path / "out"
    s = run_batch(path, out, count=1, device="cpu", batch_size=1)
    assert s.written == 1 and s.complete
    return np.asarray(Image.open(out / "images" / "000000.png").convert("RGB"))


def _soft_masks() -> np.ndarray:
    """Two drawn regions with soft (anti-aliased) edges: the 8-bit round trip matters here."""
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    a = np.clip((0.6 - xx) * 4, 0, 1) * (yy < 0.5)
    b = np.clip((xx - 0.4) * 3, 0, 1) * (yy >= 0.5) * 0.7
    return np.stack([a, b]).astype(np.float32)


def test_label_swap_preview_equals_batch_variant_0(tiny, tmp_path):
    data, masks = swap_recipe("tiny", "red", ["blue", "purple"], _soft_masks(), (1, 2), 0.85, Randomise(),
                              count=4, seed=9, source_seed=123)
    preview = render_variants(tiny, rec := preview_recipe(data, masks, tiny), preview_variants(rec))[0]
    path = save_recipe(data, "drawn", tmp_path, masks)
    saved = load_recipe(path)
    assert saved.variant(0).source == rec.variant(0).source and saved.variant(0).seed == 123
    assert np.array_equal(preview.image, render_variants(tiny, saved, [saved.variant(0)])[0].image)
    assert np.array_equal(preview.image, _batch_variant0(tmp_path, path))
    # the morph strip's last image is that same variant at strength 1
    strip = render_variants(tiny, rec, preview_variants(rec, (0.0, 0.85)))
    assert np.array_equal(strip[1].image, preview.image) and np.array_equal(strip[0].image, preview.source_image)


def test_blend_preview_equals_batch_variant_0(tiny, tmp_path):
    m = _soft_masks()
    data, masks = blend_recipe("tiny", [{"seed": 5, "class": "green"}, {"seed": 6, "class": None}], m,
                               [0.0, 0.7, 1.0, 0.3], Randomise(), source_class="yellow", count=2, source_seed=77)
    rec = preview_recipe(data, masks, tiny)
    preview = render_variants(tiny, rec, preview_variants(rec))[0]
    path = save_recipe(data, "drawn-blend", tmp_path, masks)
    assert np.array_equal(preview.image, _batch_variant0(tmp_path, path))


AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


def test_label_swap_page_preview_equals_batch_variant_0(app_dirs, monkeypatch, tmp_path):
    """The page itself: what it shows as "Result" is what the batch writes for variant 0."""
    from test_app import APP, PALETTE, TIMEOUT, strokes
    from toolkit.ui import widgets as W
    ws, rd = app_dirs
    shown = []
    real = W.preview

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        if "strengths" not in kwargs:
            shown.append(out[0])
        return out
    monkeypatch.setattr(W, "preview", recording)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "tiny"
    at.session_state["_model_picked"] = True
    at.session_state["source_seed"] = 31
    at.run()
    at.switch_page("pages/label_swap.py").run()
    at.session_state["swap_canvas"] = strokes([(PALETTE[0], (40, 40, 200, 150))])
    at.run()
    at.slider(key="swap_strength").set_value(0.8).run()
    assert not at.exception and shown
    at.text_input(key="swap_recipe_name").input("page-swap")
    at.button(key="FormSubmitter:swap_save-Save recipe").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    path = ws / "recipes" / "page-swap.yaml"
    assert load_recipe(path).variant(0).seed == 31
    assert np.array_equal(shown[-1], _batch_variant0(tmp_path, path))
