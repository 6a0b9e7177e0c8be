"""The editors' Parts mode: a click on the source picture toggles the part under it (mapping from
display pixels to the part map, tested on its own), the list follows, and the saved recipe gets
`{part: [...]}` regions. AppTest on terrain64 (embedded weights, a shipped part model).

A click is injected as the click component's value under its key, as the browser sends it:
`{"x", "y", "width", "height", "unix_time"}` in display pixels (`streamlit-image-coordinates`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import toolkit
from toolkit import recipes
from toolkit.parts import segment, shipped
from toolkit.sampling import sample_latents
from toolkit.ui.parts_picker import click_pixel, part_picture, toggle, upscale

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
ROOT = Path(__file__).resolve().parent.parent
MODEL = "terrain64"


# -- the mapping, pure ----------------------------------------------------------------------------
def test_click_pixel_maps_display_pixels_to_map_pixels():
    c = lambda x, y, w=256, h=256: {"x": x, "y": y, "width": w, "height": h}   # noqa: E731
    assert click_pixel(c(0, 0), (64, 64)) == (0, 0)
    assert click_pixel(c(3, 3), (64, 64)) == (0, 0)            # display pixels 0..3 show map pixel 0
    assert click_pixel(c(4, 7), (64, 64)) == (1, 1)
    assert click_pixel(c(130, 5), (64, 64)) == (1, 32)          # (row, col): y picks the row
    assert click_pixel(c(255, 255), (64, 64)) == (63, 63)
    assert click_pixel(c(256, 256), (64, 64)) == (63, 63)       # the far edge stays on the map
    assert click_pixel(c(179.6, 0, 180, 180), (64, 64)) == (0, 63)   # the browser drew it smaller
    assert click_pixel(c(99, 49, 100, 50), (32, 64)) == (31, 63)      # any aspect
    for bad in [c(-1, 5), c(5, 257), c(5, 5, 0, 256), c(math.nan, 5), {"x": 3}, None, "12,4",
                {"x": "a", "y": 1, "width": 2, "height": 2}]:
        assert click_pixel(bad, (64, 64)) is None, bad


@pytest.mark.parametrize("size", [256, 200, 97])
def test_a_click_lands_on_the_map_pixel_the_picture_shows_there(size):
    """The picture is `upscale`d with the same arithmetic: whatever display pixel is clicked, the
    part found is the part drawn under the pointer."""
    labels = np.random.default_rng(1).integers(0, 9, (64, 64))
    shown = upscale(labels, size)
    for y in range(size):
        for x in range(size):
            r, col = click_pixel({"x": x, "y": y, "width": size, "height": size}, labels.shape)
            assert labels[r, col] == shown[y, x]
    # Clicks inside a display pixel (offsets are fractional in a zoomed browser) stay on it.
    r, col = click_pixel({"x": 10.9, "y": 0.5, "width": size, "height": size}, labels.shape)
    assert labels[r, col] == shown[0, 10]


def test_toggle_adds_then_removes_in_list_order():
    order = ["sky", "grass", "rock"]
    assert toggle([], "rock", order) == ["rock"]
    assert toggle(["rock"], "sky", order) == ["sky", "rock"]
    assert toggle(["sky", "rock"], "rock", order) == ["sky"]


def test_part_picture_marks_the_picked_parts():
    src = np.full((8, 8, 3), 40, np.uint8)
    labels = np.zeros((8, 8), np.int64)
    labels[2:6, 2:6] = 1
    plain, picked = part_picture(src, labels, [], size=64), part_picture(src, labels, [1], size=64)
    assert plain.shape == (64, 64, 3)
    inside = np.zeros((64, 64), bool)
    inside[16:48, 16:48] = True
    assert (plain[~inside] == picked[~inside]).all()            # other parts unchanged
    white = (picked == 255).all(-1)
    assert white[16, 30] and white[47, 20] and not white[30, 30]   # an outline, not a fill
    assert not white[~inside].any() and not (plain == 255).all(-1).any()


# -- the pages (AppTest) ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def isolated(app_dirs):
    return app_dirs[0]


@pytest.fixture(scope="module")
def terrain():
    g = toolkit.load_generator(MODEL, device="cpu")
    return g, shipped(g)


def open_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model_choice"] = MODEL
    at.session_state["_model_picked"] = True
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click(at, prefix: str, x: float, y: float, t: int) -> None:
    at.session_state[f"{prefix}_parts_click"] = {"x": x, "y": y, "width": 256, "height": 256, "unix_time": t}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def part_at(terrain, seed: int, cls: int, row: int, col: int) -> str:
    """The part name at a source pixel, by the library's own `segment` (not the page's code)."""
    g, pm = terrain
    labels = segment(g, pm, sample_latents(g, [seed]), torch.tensor([cls]))[0]
    return pm.names[int(labels[row, col])]


def result(at) -> str:
    return [i.url for el in at.get("image") for i in el.proto.imgs if i.caption.startswith("Result")][0]


def test_label_swap_click_selects_the_part_under_it_and_a_second_click_deselects(terrain, isolated):
    at = open_page("pages/label_swap.py")
    seed, cls = int(at.session_state["source_seed"]), at.selectbox(key="swap_src_class").value
    before = result(at)
    click(at, "swap", 130, 70, 1)                         # display (130, 70) = map row 17, col 32
    name = part_at(terrain, seed, cls, 17, 32)
    assert at.multiselect(key="swap_parts0").value == [name]
    assert result(at) != before                           # the part is now the swap's region
    click(at, "swap", 130, 70, 1)                         # the same click seen again on a rerun: no change
    assert at.multiselect(key="swap_parts0").value == [name]
    click(at, "swap", 131, 71, 2)                         # a new click on the same part: deselected
    assert at.multiselect(key="swap_parts0").value == []
    assert result(at) == before                           # no region left: the source again

    # Two parts by clicking, saved as a recipe: `{part: [...], grow: 1}`.
    g, pm = terrain
    labels = segment(g, pm, sample_latents(g, [seed]), torch.tensor([cls]))[0].numpy()
    other = next((r, c) for r, c in zip(*np.nonzero(labels != labels[17, 32])))
    click(at, "swap", 130, 70, 3)
    click(at, "swap", other[1] * 4 + 1, other[0] * 4 + 2, 4)
    want = sorted({name, pm.names[int(labels[other])]}, key=pm.names.index)
    assert at.multiselect(key="swap_parts0").value == want
    at.text_input(key="swap_recipe_name").input("clicked-parts")
    at.button(key="FormSubmitter:swap_save-Save recipe").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    rec = recipes.load_recipe(isolated / "recipes" / "clicked-parts.yaml")
    region = rec.data["edits"][0]["label_swap"]["region"]
    assert region["part"] == want and region["grow"] == 1


def test_blend_clicks_go_to_the_reference_being_painted(terrain):
    at = open_page("pages/feature_blend.py", blend_n_refs=2)
    at.radio(key="blend_paint").set_value(1).run()
    seed, cls = int(at.session_state["source_seed"]), at.selectbox(key="blend_src_class").value
    click(at, "blend", 20, 240, 1)                        # bottom-left: map row 60, col 5
    assert at.multiselect(key="blend_parts0").value == []
    assert at.multiselect(key="blend_parts1").value == [part_at(terrain, seed, cls, 60, 5)]
    # Picking from the list and clicking edit the same selection.
    at.multiselect(key="blend_parts1").set_value([]).run()
    click(at, "blend", 20, 240, 2)
    assert at.multiselect(key="blend_parts1").value == [part_at(terrain, seed, cls, 60, 5)]
