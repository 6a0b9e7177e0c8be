"""The app's recipe preview renders photo recipes (`source: {images: ...}`) through the batch's
path (`photo_variants.render_photo_variants` over a `ProjectionCache`): on the Batch page with
the quick preset, and from a dataset's own projections, where it equals what the batch wrote."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import toolkit
from toolkit import projection, recipes
from toolkit.batch import run_batch
from toolkit.photo_variants import PhotoSet
from toolkit.projection import ProjectionSettings
from toolkit.projection_cache import CHUNK
from toolkit.ui import recipe_preview

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
ROOT = Path(__file__).resolve().parent.parent

RECIPE = """
name: tiny-photos
model: tiny
seed: 3
count: 4
source:
  images: photos
  projection: default
edits:
  - label_swap:
      to: {choice: [blue, purple]}
      region: {shape: ellipse, center: [0.5, 0.5], size: [0.5, 0.6]}
      stages: all
"""
SIZES = {"a.png": (40, 56), "b.png": (48, 36), "c.png": (32, 32)}


@pytest.fixture
def dirs(app_dirs, monkeypatch):
    """A workspace, and a recipes folder holding a tiny photo recipe over three small photos; short
    presets (the real ones take minutes on a CPU) that differ, so their cache files differ."""
    ws, rd = app_dirs
    (rd / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(rd / "photos" / name)
    (rd / "tiny-photos.yaml").write_text(RECIPE)
    monkeypatch.setitem(projection.PRESETS, "default", ProjectionSettings(latent_steps=5, feature_steps=5))
    monkeypatch.setitem(projection.PRESETS, "fast", ProjectionSettings(latent_steps=3, feature_steps=3))
    return ws, rd


def test_photos_needed_are_whole_chunks_of_the_photo_list():
    s = lambda n: PhotoSet(tuple(range(n)), "fast", projection.PRESETS["fast"])   # noqa: E731
    assert recipe_preview.photos_needed(s(3), 4) == (0, 1, 2)
    assert recipe_preview.photos_needed(s(CHUNK + 4), 4) == tuple(range(CHUNK))
    assert recipe_preview.photos_needed(s(3 * CHUNK), CHUNK + 1) == tuple(range(2 * CHUNK))


def test_batch_page_previews_a_photo_recipe_with_the_quick_preset(dirs):
    ws, rd = dirs
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model_choice"] = "tiny"
    at.session_state["_model_picked"] = True
    at.run()
    at.switch_page("pages/batch.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.toggle(key="batch_tiny-photos_preview").set_value(True).run()
    assert not at.exception and not at.warning, [e.value for e in at.exception] + [w.value for w in at.warning]
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert [c.split()[0] for c in captions] == ["#0", "#1", "#2", "#3"], captions
    note = " ".join(c.value for c in at.caption)
    assert "projection preset `fast` (the batch uses the recipe's `default`)" in note, note
    assert len(list((ws / ".cache" / "projections").glob("*.safetensors"))) == 3   # one per photo
    # The recipe's own preset: projected into the preview cache too; a second look reuses it.
    at.radio(key="batch_tiny-photos_preview_preset").set_value("default").run()
    assert not at.exception and not at.warning
    assert len(list((ws / ".cache" / "projections").glob("*.safetensors"))) == 6
    at.run()
    note = " ".join(c.value for c in at.caption)
    assert "preset `default` (the recipe's), projections from the preview cache" in note, note


@pytest.mark.parametrize("folders", [False, True])
def test_preview_from_a_datasets_projections_is_what_the_batch_wrote(dirs, folders):
    """Also with `classes: folders` (each photo's class is part of its projection's key)."""
    ws, rd = dirs
    if folders:
        for name, cls in zip(sorted(SIZES), ["red", "green", "red"]):
            (rd / "photos" / cls).mkdir(exist_ok=True)
            (rd / "photos" / name).rename(rd / "photos" / cls / name)
        text = (rd / "tiny-photos.yaml").read_text()
        (rd / "tiny-photos.yaml").write_text(text.replace("  images: photos\n", "  images: photos\n  classes: folders\n"))
    out = ws / "datasets" / "tp"
    assert run_batch(rd / "tiny-photos.yaml", out, count=4, device="cpu", batch_size=4).written == 4
    gen = toolkit.load_generator("tiny", device="cpu")
    rec = recipes.load_recipe(rd / "tiny-photos.yaml").for_generator(gen)
    plan = recipe_preview.plan_photo_preview(gen, rec, 4)
    assert plan.cached and plan.cache.folder == out / "projections" and "dataset tp" in plan.note
    rendered, note = recipe_preview.render_first(gen, rec, 4)
    assert not (ws / ".cache").exists()                   # nothing projected again
    names = [rv.photo_record["path"].rsplit("/", 1)[-1] for rv in rendered]
    assert len(set(names[:3])) == 3 and names[3] == names[0]     # variant i edits photo i mod 3
    for rv, name in zip(rendered, names):
        written = np.asarray(Image.open(out / "images" / f"{rv.index:06d}.png").convert("RGB"))
        assert rv.image.shape[:2] == SIZES[name]                  # photo-sized
        assert np.array_equal(rv.image, written), rv.index
    if folders:
        assert [rv.source_class for rv in rendered] == ["green", "red", "red", "green"]   # sorted by path
