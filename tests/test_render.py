"""The render pipeline (toolkit.pipeline): variants → engine → images, label maps, soft labels,
locality; and the app's preview, which is that pipeline on variant 0 of the recipe it saves."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import yaml

from recipe_cases import BASE, BEFORE, ROOT, SHIPPED, uncond_model, write  # noqa: F401
from toolkit import load_generator, render, sample_latents
from toolkit import masks as M
from toolkit.images import to_uint8
from toolkit.pipeline import edit_masks, locality, prepare_masks, render_variants
from toolkit.recipes import load_recipe, parse_recipe, validate_schema

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pixels_equal_the_renders_before_the_package(tiny):
    """Same recipe, same variants → the same bytes as the recipes module rendered (recorded)."""
    for name, expected in BEFORE["images"].items():
        r = parse_recipe(BASE) if name == "BASE" else load_recipe(ROOT / "recipes" / f"{name}.yaml")
        out = render_variants(tiny, r, r.variants(range(4)))
        got = [[hashlib.sha256(o.image.tobytes()).hexdigest(), hashlib.sha256(o.mask.tobytes()).hexdigest(),
                hashlib.sha256(o.label_map.tobytes()).hexdigest(), o.locality] for o in out]
        assert got == expected, name


def test_render_independent_of_batch_composition(tiny):
    r = parse_recipe(BASE)
    all_ = render_variants(tiny, r, r.variants(range(6)))
    alone = render_variants(tiny, r, [r.variant(4)])[0]
    shuffled = render_variants(tiny, r, r.variants([5, 4, 0]))[1]
    for other in (alone, shuffled):
        assert other.index == 4 and other.params == all_[4].params
        for a, b in [(other.image, all_[4].image), (other.source_image, all_[4].source_image)]:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        assert np.array_equal(other.mask, all_[4].mask) and np.array_equal(other.label_map, all_[4].label_map)
        assert other.soft_label == all_[4].soft_label and other.label == all_[4].label


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate_and_tiny_ones_render(path, tiny):
    data = yaml.safe_load(path.read_text())
    validate_schema(data, str(path))
    if data["model"] != "tiny":
        # faces64 is loaded and rendered in its own test; other models are too big for fast tests
        # (or their weights are not shipped): the schema is what can be checked here.
        pytest.skip(f"{path.name}: model {data['model']!r} is not the tiny test model (schema checked only)")
    r = load_recipe(path)
    assert r.name == path.stem and r.text == path.read_text()
    out = render_variants(tiny, r, r.variants([0, 1]))
    for o in out:
        assert o.image.shape == (32, 32, 3) and o.image.dtype == np.uint8
        assert o.label_map.shape == (32, 32) and o.mask.shape == (32, 32) and o.mask.max() > 0
        assert abs(sum(o.soft_label.values()) - 1) < 1e-9
        assert not np.array_equal(o.image, o.source_image)
        assert 0 <= o.locality < 1, o.locality    # the change concentrates inside the edit region
        assert o.problem is None


def test_faces64_recipe_renders_local_part_blends():
    from toolkit import zoo
    entry = zoo.get("faces64")
    if not entry.is_cached(entry):
        pytest.skip("faces64 weights are not cached (python -m toolkit fetch faces64); tests never download")
    path = ROOT / "recipes" / "faces64-parts.yaml"
    r = load_recipe(path)
    assert r.name == path.stem and r.text == path.read_text()
    gen = load_generator(r.model, "cpu")
    out = render_variants(gen, r, r.variants([0, 1]))
    for o in out:
        assert o.image.shape == (64, 64, 3) and o.label == "faces" and o.label_map is None
        hair, eyes_mouth = (e["blend"] for e in o.params["edits"])
        assert hair["region"]["mask"] == "masks/faces64-hair.png"
        assert eyes_mouth["region"] == {"part": ["eyes_mouth"], "grow": 2, "feather": 0.02}
        assert eyes_mouth["reference"]["match"]["candidates"] == 32 and "score" in eyes_mouth["reference"]["match"]
        assert o.locality < 0.5, o.locality


def test_unconditional_label_and_no_label_map(tmp_path, uncond_model):
    d = {"model": "dc.safetensors", "edits": [{"blend": {"reference": {"seed": 5}, "region": {"blob": {"size": 0.3}},
                                                         "strength": "parts"}}]}
    r = load_recipe(write(uncond_model, d))
    gen = load_generator(r.model, "cpu")
    out = render_variants(gen, r, r.variants([0, 1]))
    assert out[0].label == "r" and out[0].label_id == 0 and out[0].label_map is None and out[0].soft_label == {"r": 1.0}


# -- edit semantics through recipes --------------------------------------------------------------------------
def test_full_image_swap_equals_plain_generation_of_target_class(tiny):
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": {"shape": "rectangle", "box": [0, 0, 1, 1]}}}]}
    r = parse_recipe(d)
    out = render_variants(tiny, r, r.variants([0, 1]))
    z = sample_latents(tiny, [o.seed for o in out])
    plain_blue = render(tiny, z, ["blue", "blue"])
    assert np.abs(np.stack([o.image for o in out]).astype(int) - to_uint8(plain_blue).astype(int)).max() <= 1
    assert all((o.label_map == 2).all() and o.label == "blue" and o.soft_label == {"blue": 1.0} for o in out)


def test_label_swaps_with_their_own_stage_ranges(tiny):
    """Each label swap renders at its own stages: a swap confined to a stage range equals the
    engine's swap of that class alone at that range (the other swap's region is empty)."""
    box = {"shape": "rectangle", "box": [0, 0, 1, 0.5]}
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": box, "stages": [1, 2]}},
                   {"label_swap": {"to": "yellow", "region": {"shape": "rectangle", "box": [0, 0.5, 1, 1]},
                                   "stages": [2, 2]}}]}
    r = parse_recipe(d)
    got = render_variants(tiny, r, [r.variant(0)])[0]
    w = torch.zeros(2, 32, 32)
    w[0, :16] = 1
    w[1, 16:] = 1
    active = torch.zeros(2, 3, dtype=torch.bool)
    active[0, 1:] = True
    active[1, 2] = True
    from toolkit import LabelSwap
    z = sample_latents(tiny, [got.seed])
    want = to_uint8(render(tiny, z, ["red"], swap=LabelSwap(["blue", "yellow"], w, active)))[0]
    assert np.array_equal(got.image, want)
    same = parse_recipe({**d, "edits": [{"label_swap": {**e["label_swap"], "stages": [1, 2]}} for e in d["edits"]]})
    assert not np.array_equal(render_variants(tiny, same, [same.variant(0)])[0].image, got.image)


def test_label_map_and_soft_label(tiny):
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": {"shape": "rectangle", "box": [0.25, 0.25, 0.75, 1.0]}}},
                   {"label_swap": {"to": "yellow", "region": {"shape": "rectangle", "box": [0.0, 0.0, 0.5, 0.5]}}}]}
    r = parse_recipe(d)
    o = render_variants(tiny, r, [r.variant(0)])[0]
    expect = np.zeros((32, 32), np.uint8)         # red
    expect[8:32, 8:24] = 2                         # blue
    expect[0:16, 0:16] = 3                         # yellow: later edits cover earlier ones
    assert np.array_equal(o.label_map, expect)
    assert o.soft_label == pytest.approx({"red": 1 - (384 + 256 - 64) / 1024, "blue": (384 - 64) / 1024,
                                          "yellow": 256 / 1024})
    assert o.label == "red" and o.label_id == 0 and o.source_class == "red" and o.edit_classes == ["blue", "yellow"]
    # random recipes: soft label = label-map area fractions, label = majority class
    r = parse_recipe(BASE)
    for o in render_variants(tiny, r, r.variants(range(4))):
        counts = np.bincount(o.label_map.ravel(), minlength=5) / o.label_map.size
        assert o.soft_label == pytest.approx({tiny.class_names[c]: counts[c] for c in np.nonzero(counts)[0]})
        assert o.label_id == int(counts.argmax()) and o.label == tiny.class_names[o.label_id]


def test_locality_definition():
    src = np.zeros((8, 8, 3), np.uint8)
    region = np.zeros((8, 8))
    region[2:6, 2:6] = 1
    inside_only = src.copy()
    inside_only[2:6, 2:6] = 100
    assert locality(inside_only, src, region) == 0.0
    everywhere = src + 10
    assert locality(everywhere, src, region) == pytest.approx(1.0)
    half = src.copy()
    half[2:6, 2:6] = 20
    half[0, :] = 10
    assert locality(half, src, region) == pytest.approx((10 * 8 / 48) / 20)
    assert np.isnan(locality(half, src, np.zeros((8, 8))))


def test_fixed_regions_are_rasterised_once_per_recipe(tiny):
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": {"shape": "ellipse", "center": [0.5, 0.5], "size": [0.5, 0.5]}}}]}
    r = parse_recipe(d)
    a, b = edit_masks(r, r.variant(0), 32)[0], edit_masks(r, r.variant(1), 32)[0]
    assert a is b and not a.flags.writeable
    assert np.array_equal(a, M.rasterize_region(r.variant(5).edits[0].region, 32))
    fresh = parse_recipe(d)
    x = render_variants(tiny, r, r.variants([2, 3]))
    y = render_variants(tiny, fresh, fresh.variants([2, 3]))
    assert all(np.array_equal(p.image, q.image) for p, q in zip(x, y))


def test_random_regions_are_not_cached():
    r = parse_recipe(BASE)           # a jittered ellipse and a random blob
    for i in range(30):
        edit_masks(r, r.variant(i), 32)
    assert len(r.rasters) == 0 and r.rasters.nbytes == 0


def test_masks_prepared_ahead_in_threads_give_the_same_result(tiny):
    from concurrent.futures import ThreadPoolExecutor
    r = parse_recipe(BASE)
    vs = r.variants(range(5))
    with ThreadPoolExecutor(2) as ex:
        masks = prepare_masks(r, vs, 32, ex)
    assert all(np.array_equal(a, b) for ms, ns in zip(masks, prepare_masks(r, vs, 32)) for a, b in zip(ms, ns))
    x, y = render_variants(tiny, r, vs, masks=masks), render_variants(tiny, r, vs)
    assert all(np.array_equal(p.image, q.image) and np.array_equal(p.mask, q.mask) for p, q in zip(x, y))
    with pytest.raises(ValueError, match="masks for 4 variants"):
        render_variants(tiny, r, vs, masks=masks[:4])


def test_non_finite_images_are_flagged(tiny):
    """NaN weights give black-looking images: the pipeline says so instead of passing them on."""
    from toolkit.generators.sngan import SNGANGenerator, tiny_config
    bad = SNGANGenerator(tiny_config())
    bad.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        next(bad.parameters()).fill_(float("nan"))
    bad.eval()
    r = parse_recipe(BASE)
    out = render_variants(bad, r, r.variants([0, 1]))
    assert all(o.problem and "weights contain non-finite values" in o.problem for o in out)
    assert all(o.problem is None for o in render_variants(tiny, r, r.variants([0, 1])))
