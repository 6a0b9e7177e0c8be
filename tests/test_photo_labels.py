"""Photo sources with known classes (`classes: folders`) and the label swap's `reference` option."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import toolkit
from toolkit import photo_variants, projection
from toolkit.batch import run_batch
from toolkit.dataset import read_manifest
from toolkit.engine import Blend, render
from toolkit.pipeline import blends_for, label_swap_for, prepare_masks, render_variants
from toolkit.projection import ProjectionSettings
from toolkit.projection_cache import cache_key
from toolkit.recipes import RecipeError, load_recipe
from toolkit.sampling import sample_latents

RECIPE = """
name: tiny-folders
model: tiny
seed: 3
count: 4
source:
  images: photos
  classes: folders
  projection: fast
edits:
  - label_swap:
      to: red
      region: {shape: ellipse, center: [0.5, 0.5], size: [0.5, 0.6]}
"""


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setitem(projection.PRESETS, "fast", ProjectionSettings(latent_steps=4, feature_steps=4))
    rng = np.random.default_rng(0)
    for cls, names in {"blue": ["a.png"], "yellow": ["b.png", "c.png"]}.items():
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for n in names:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "photos" / cls / n)
    (tmp_path / "r.yaml").write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_class_folders_fix_the_projection_class_and_the_base_label(folders, monkeypatch):
    seen_y = []
    real = projection.project

    def spy(gen, images, y=None, **kw):
        seen_y.append(y)
        return real(gen, images, y, **kw)
    monkeypatch.setattr("toolkit.projection_cache.project", spy)
    s = run_batch(folders / "r.yaml", "ds", device="cpu", batch_size=2, command="cmd")
    assert s.complete and s.written == 4
    assert seen_y == [[2, 3, 3]]                      # blue, yellow, yellow: y fixed, no soft class
    want = {"photos/blue/a.png": 2, "photos/yellow/b.png": 3, "photos/yellow/c.png": 3}
    for _, row in read_manifest(folders / "ds").iterrows():
        p = json.loads(row["params"])
        cid = want[p["source"]["image"]["path"]]
        assert p["source"]["class_id"] == cid and p["source"]["image"]["class_from"] == "folder"
        labels = np.asarray(Image.open(folders / "ds" / row["label_map_file"]))
        mask = np.asarray(Image.open(folders / "ds" / row["mask_file"])) > 0
        assert (labels[~mask] == cid).all() and (labels == 0).any()     # base = folder class, swap = red


def test_unknown_class_folder_is_a_clear_error(folders):
    (folders / "photos" / "yelow").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folders / "photos" / "yelow" / "d.png")
    with pytest.raises(RecipeError, match=r"yelow.*Did you mean: 'yellow'"):
        load_recipe(folders / "r.yaml")


def test_class_folders_need_photo_folders(folders):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folders / "photos" / "loose.png")
    with pytest.raises(RecipeError, match="loose.png"):
        load_recipe(folders / "r.yaml")
    with pytest.raises(RecipeError, match="needs `source.images`"):
        load_recipe_text(folders, RECIPE.replace("  images: photos\n", ""))


def test_the_cache_key_differs_by_class():
    s = ProjectionSettings()
    assert len({cache_key("m", "p", s), cache_key("m", "p", s, 0), cache_key("m", "p", s, 1)}) == 3


SWAP_REF = """
name: tiny-swapref
model: tiny
seed: 5
count: 3
edits:
  - label_swap:
      to: {choice: [red, green]}
      region: {shape: ellipse, center: [0.5, 0.5], size: [0.6, 0.6]}
      reference: {seed: {range: [0, 1000]}, points: [0, 1]}
"""


def test_the_swap_reference_is_deterministic_and_equals_a_hand_built_blend(tmp_path):
    gen = toolkit.load_generator("tiny")
    p = tmp_path / "r.yaml"
    p.write_text(SWAP_REF)
    recipe = load_recipe(p).for_generator(gen)
    variants = [recipe.variant(i) for i in range(3)]
    assert [recipe.variant(i) for i in range(3)] == variants                  # a pure function of the index
    plain = load_recipe_text(tmp_path, SWAP_REF.replace("      reference: {seed: {range: [0, 1000]}, points: [0, 1]}\n", ""))
    for v, w in zip(variants, [plain.for_generator(gen).variant(i) for i in range(3)]):
        e = v.edits[0]
        assert (e.to, e.region, e.stages) == (w.edits[0].to, w.edits[0].region, w.edits[0].stages)  # same draws
        assert e.reference.class_id == e.to_id and e.reference_strength == (1.0, 1.0, 0.0, 0.0)
        assert type(v).from_json(v.to_json(), v.index) == v                    # recorded in params, read back
    masks = prepare_masks(recipe, variants, gen.resolution)
    got = render_variants(gen, recipe, variants, masks)
    z = sample_latents(gen, [v.seed for v in variants])
    y = torch.tensor([v.source.class_id for v in variants])
    ref = Blend(sample_latents(gen, [v.edits[0].reference.seed for v in variants]),
                torch.from_numpy(np.stack([m[0] for m in masks])).float(),
                torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 3), torch.tensor([v.edits[0].to_id for v in variants]))
    want = toolkit.images.to_uint8(render(gen, z, y, swap=label_swap_for(variants, masks, gen.n_stages), blends=[ref]))
    for rv, w in zip(got, want):
        assert np.array_equal(rv.image, w)
    no_ref = toolkit.images.to_uint8(render(gen, z, y, swap=label_swap_for(variants, masks, gen.n_stages)))
    assert not np.array_equal(no_ref, want)                                    # the reference changed the image
    assert len(blends_for(gen, variants, masks)) == 1


def load_recipe_text(folder, text):
    q = folder / "plain.yaml"
    q.write_text(text)
    return load_recipe(q)


def test_class_folders_with_a_swap_reference_resume_byte_identically(folders, monkeypatch):
    """Stop after the first batch, resume, compare with one uninterrupted run (one thread: the reference
    run projects afresh, and multi-threaded reductions can differ in the last bit)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = RECIPE.replace("      to: red\n", "      to: red\n      reference: {seed: {range: [0, 99]}}\n")
        (folders / "r.yaml").write_text(text)
        stop, real = threading.Event(), photo_variants.render_photo_variants

        def render_then_stop(gen, recipe, variants, *a, **kw):
            stop.set()
            return real(gen, recipe, variants, *a, **kw)
        monkeypatch.setattr(photo_variants, "render_photo_variants", render_then_stop)
        s1 = run_batch(folders / "r.yaml", "ds", batch_size=2, device="cpu", stop=stop, command="cmd")
        monkeypatch.setattr(photo_variants, "render_photo_variants", real)
        assert s1.stopped and s1.written == 2
        assert run_batch(folders / "r.yaml", "ds", batch_size=2, device="cpu", command="cmd").complete
        run_batch(folders / "r.yaml", folders / "ref", batch_size=2, device="cpu", command="cmd")
    finally:
        torch.set_num_threads(n)
    df = read_manifest(folders / "ds")
    assert all("reference" in json.loads(p)["edits"][0]["label_swap"] for p in df["params"])
    assert tree(folders / "ds") == tree(folders / "ref")


def tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


def test_a_weak_swap_with_a_reference_labels_the_region_as_the_reference_class(tmp_path):
    """Swap strength 0.4 alone leaves the base class the larger weight; its reference (strength 1) puts
    the target class's features into the whole region, so the label map must say the target class."""
    gen = toolkit.load_generator("tiny")
    text = SWAP_REF.replace("      to: {choice: [red, green]}\n", "      to: red\n      strength: 0.4\n").replace(
        "count: 3", "count: 2\nsource: {classes: blue}")
    weak = load_recipe_text(tmp_path, text).for_generator(gen)
    plain = load_recipe_text(tmp_path, text.replace("      reference: {seed: {range: [0, 1000]}, points: [0, 1]}\n",
                                                    "")).for_generator(gen)
    for r, inside in ((weak, 0), (plain, 2)):
        rv = render_variants(gen, r, r.variants(range(2)))[0]
        assert rv.label_map[16, 16] == inside and rv.label_map[0, 0] == 2
