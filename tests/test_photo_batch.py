"""Recipes over real photos (`source: {images: ...}`) in the batch runner: photo-sized outputs,
the photo's own pixels outside the edit, cached projections, byte-identical resume."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit import photo_variants, projection
from toolkit.batch import run_batch
from toolkit.dataset import read_manifest
from toolkit.judges import Judge
from toolkit.photos import load_photo
from toolkit.projection import ProjectionSettings, centre_crop
from toolkit.zoo import TERRAIN64_JUDGE
from toolkit.recipes import load_recipe

RECIPE = """
name: tiny-photos
model: tiny
seed: 3
count: 5
source:
  images: photos
  projection: fast
edits:
  - label_swap:
      to: {choice: [blue, purple]}
      region: {shape: ellipse, center: [0.5, 0.5], size: [0.5, 0.6]}
      stages: all
output:
  save_source: true
"""


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


@pytest.fixture
def recipe_file(tmp_path, monkeypatch):
    monkeypatch.setitem(projection.PRESETS, "fast", ProjectionSettings(latent_steps=6, feature_steps=6))
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (40, 56), "b.png": (48, 36), "c.jpg": (32, 32)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "photos" / name)
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    p = tmp_path / "tiny-photos.yaml"
    p.write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    return p


def test_variants_edit_photos_in_turn_at_their_size(recipe_file, tmp_path):
    s = run_batch(recipe_file, "ds", device="cpu", batch_size=2, command="cmd")
    assert s.complete and s.written == 5
    df = read_manifest(tmp_path / "ds")
    names = ["photos/a.png", "photos/b.png", "photos/c.jpg"]
    for _, row in df.iterrows():
        i = int(row["variant_index"])
        src = json.loads(row["params"])["source"]["image"]
        assert src["path"] == names[i % 3] and len(src["sha256"]) == 64 and src["projection"] == "fast"
        photo = np.asarray(Image.open(tmp_path / src["path"]).convert("RGB"))
        image = np.asarray(Image.open(tmp_path / "ds" / row["file_name"]))
        mask = np.asarray(Image.open(tmp_path / "ds" / row["mask_file"])) > 0
        labels = np.asarray(Image.open(tmp_path / "ds" / row["label_map_file"]))
        assert image.shape == photo.shape and labels.shape == mask.shape == photo.shape[:2]
        assert np.array_equal(image[~mask], photo[~mask]) and mask.any()
        assert set(np.unique(labels[mask])) & {2, 4}                  # the swapped class inside
        x, y, side = src["crop"]
        assert side == min(photo.shape[:2]) and not mask[:, :x].any()
    # One projection file per photo, reused by a second run over the same photos.
    cached = sorted((tmp_path / "ds" / "projections").glob("*.safetensors"))
    assert len(cached) == 3


@pytest.fixture
def one_thread():
    """Multi-threaded CPU reductions can differ in the last bit between two runs of the same
    projection (seen here); a resume reuses the dataset's cached projections, so it is exact, but
    the *reference* run below projects afresh: one thread makes that deterministic."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_stop_then_resume_is_byte_identical(recipe_file, tmp_path, monkeypatch, one_thread):
    stop, real = threading.Event(), photo_variants.render_photo_variants

    def render_then_stop(gen, recipe, variants, *a, **kw):
        if variants[0].index == 2:
            stop.set()
        return real(gen, recipe, variants, *a, **kw)

    monkeypatch.setattr(photo_variants, "render_photo_variants", render_then_stop)
    s1 = run_batch(recipe_file, "ds", batch_size=2, device="cpu", stop=stop, command="cmd")
    monkeypatch.setattr(photo_variants, "render_photo_variants", real)
    assert s1.stopped and s1.written == 4
    s2 = run_batch(recipe_file, "ds", batch_size=2, device="cpu", command="cmd")
    assert s2.complete and s2.written == 1
    run_batch(recipe_file, tmp_path / "ref", batch_size=2, device="cpu", command="cmd")
    assert tree(tmp_path / "ds") == tree(tmp_path / "ref")


def test_photo_sources_are_confined_and_checked(recipe_file, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.replace("images: photos", "images: ../"))
    with pytest.raises(ValueError, match="outside"):
        photo_variants.load_photo_set(load_recipe(bad))
    (tmp_path / "photos" / "tiny.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="tiny.png: not an image"):
        photo_variants.load_photo_set(load_recipe(recipe_file))


def test_the_judge_sees_a_photo_at_the_models_scale():
    """terrain64's judge on a shipped rock photo: at the model's scale (the crop scaled to 64 px) it sees
    rock; on the photo's own pixels (4× finer) it sees dirt, so judging at the photo's size would be wrong."""
    judge = Judge.load(TERRAIN64_JUDGE)
    photo = load_photo("rock/rock_medit_rocks_wet.jpg", Path(__file__).parents[1] / "recipes" / "photos" / "terrain")
    crop = centre_crop(*photo.size)
    seen = photo_variants.judge_photo(judge, photo.pixels, crop, 64)
    assert seen.shape == photo.pixels.shape[:2]
    rock = judge.class_names.index("rock")
    assert (seen == rock).mean() > 0.9
    h, w = (8 * (n // 8) for n in photo.pixels.shape[:2])
    assert (judge.classify(photo.pixels[None, :h, :w])[0] == rock).mean() < 0.5


def test_a_model_with_a_judge_gets_rendered_maps_and_label_agreement(tmp_path, monkeypatch):
    """terrain64 has a judge: the batch over photos writes its photo-sized map and label_agreement
    (before, such a run failed every variant with "the model has a judge but no rendered map")."""
    monkeypatch.setitem(projection.PRESETS, "fast", ProjectionSettings(latent_steps=2, feature_steps=2))
    (tmp_path / "photos").mkdir()
    for name, colour in {"a.png": (60, 120, 40), "b.png": (200, 180, 120)}.items():
        Image.fromarray(np.full((48, 72, 3), colour, np.uint8)).save(tmp_path / "photos" / name)
    text = RECIPE.replace("tiny", "terrain64").replace("blue, purple", "snow, rock").replace("count: 5", "count: 2")
    (tmp_path / "r.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    s = run_batch(tmp_path / "r.yaml", "ds", device="cpu", batch_size=2, command="cmd")
    assert s.complete and s.written == 2
    df = read_manifest(tmp_path / "ds")
    for _, row in df.iterrows():
        seen = np.asarray(Image.open(tmp_path / "ds" / row["rendered_map_file"]))
        labels = np.asarray(Image.open(tmp_path / "ds" / row["label_map_file"]))
        assert seen.shape == labels.shape == (48, 72)
        assert 0 <= float(row["label_agreement"]) <= 1
        assert float(row["label_agreement"]) == pytest.approx((seen == labels).mean(), abs=1e-6)
