"""Recipes: validation messages with field paths, deterministic expansion, rendering, labels, saving.

Everything runs on the tiny model (and one small random unconditional DCGAN saved to a temp
file); faces64 is used in exactly one test (its weights are cached under ~/.cache).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from toolkit import load_generator, render, sample_latents
from toolkit import masks as M
from toolkit.recipes import (RecipeError, dump_recipe, load_recipe, locality, parse_recipe, recipe_json_schema,
                             render_variants, save_recipe, validate_schema)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))

BASE = {
    "name": "t",
    "model": "tiny",
    "seed": 3,
    "count": 8,
    "source": {"classes": ["red", "green"]},
    "edits": [{"label_swap": {"to": {"choice": ["blue", "yellow"]},
                              "region": {"shape": "ellipse", "center": [0.5, 0.5], "size": [0.5, 0.4],
                                         "jitter": {"translate": 0.1, "scale": [0.8, 1.2], "rotate": 30},
                                         "feather": 0.02},
                              "stages": {"choice": [[0, 2], [1, 2]]},
                              "strength": {"range": [0.8, 1.0]}}},
              {"blend": {"reference": {"seed": {"range": [0, 1000]}, "class": {"choice": ["purple", "source"]}},
                         "region": {"blob": {"size": [0.2, 0.4]}, "feather": 0.03},
                         "strength": {"range": [0.5, 1.0]}, "points": [1, 3]}}],
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is ~50× faster than two
    threads that keep waiting for each other (measured: 6 tiny variants 4.5 s → 0.07 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return load_generator("tiny", device="cpu")


def write(tmp_path: Path, data, name="r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def error_of(tmp_path, data, name="r.yaml") -> str:
    p = write(tmp_path, data, name)
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    return str(ei.value)


def with_(path: tuple, value, base=BASE):
    d = copy.deepcopy(base)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    if value is KeyError:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


def swap_region(region):
    return with_(("edits", 0, "label_swap", "region"), region)


@pytest.fixture(scope="module")
def uncond_model(tmp_path_factory):
    """A small random-weight unconditional DCGAN saved in our format (stands in for faces64)."""
    from toolkit.checkpoints import save_generator
    from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
    from toolkit.generators.sngan import randomize
    d = tmp_path_factory.mktemp("uncond")
    save_generator(randomize(DCGANGenerator(DCGANConfig(z_dim=8, ngf=4)), seed=1), d / "dc.safetensors")
    return d


# -- validation messages -----------------------------------------------------------------------------
@pytest.mark.parametrize("data, needles", [
    (with_(("edits", 0, "label_swap", "strenght"), 1.0),
     ["edits[0].label_swap.strenght: unknown key", "Allowed here: to, region, stages, strength", "Did you mean 'strength'"]),
    (with_(("colour",), "red"), ["colour: unknown key", "Allowed here: name"]),
    (with_(("count",), "ten"), ["count: expected an integer ≥ 1, got a string ('ten')"]),
    (with_(("count",), 0), ["count: 0 is out of range: expected an integer ≥ 1"]),
    (with_(("count",), -5), ["count: -5 is out of range"]),
    (with_(("seed",), 1.5), ["seed: expected an integer"]),
    (with_(("edits", 0, "label_swap", "to"), 9), ["edits[0].label_swap.to: class id 9 is out of range", "0..4"]),
    (with_(("edits", 0, "label_swap", "to"), {"choice": ["blue", "bleu"]}),
     ["edits[0].label_swap.to.choice[1]: unknown class name 'bleu'", "Did you mean: 'blue'"]),
    (with_(("source", "classes"), ["red", "gren"]), ["source.classes[1]: unknown class name 'gren'", "'green'"]),
    (with_(("edits", 0, "label_swap", "stages"), [1, 5]), ["edits[0].label_swap.stages: [1, 5] is not a stage range", "0..2"]),
    (with_(("edits", 0, "label_swap", "strength"), {"range": [0.9, 0.2]}),
     ["edits[0].label_swap.strength.range: [0.9, 0.2] has low > high"]),
    (with_(("edits", 1, "blend", "strength"), [0, 1, 1]),
     ["edits[1].blend.strength: 3 strengths given", "4 blend points"]),
    (with_(("edits", 1, "blend", "strength"), "textures"), ["edits[1].blend.strength", "'texture'"]),
    (with_(("edits", 1, "blend", "points"), [2, 7]), ["edits[1].blend.points: [2, 7] is not a blend-point range"]),
    (swap_region({"shape": "triangle", "points": [[0, 0], [1, 0], [1, 1]]}),
     ["edits[0].label_swap.region.shape: 'triangle' is not allowed", "rectangle", "polygon"]),
    (swap_region({"center": [0.5, 0.5], "size": [0.2, 0.2]}), ["region: expected a region", "Missing `shape: ellipse`?"]),
    (swap_region({"shape": "ellipse", "center": [0.5, 0.5]}), ["region.size: missing (required)"]),
    (swap_region("ellipse"), ["region: expected a region", "got a string ('ellipse')"]),
    (swap_region({"shape": "rectangle", "box": [0.5, 0.5, 0.2, 0.9]}), ["region.box: [0.5, 0.5, 0.2, 0.9] is empty"]),
    (swap_region({"shape": "polygon", "points": [[0, 0], [1, 1]]}), ["region.points: has 2 item(s)"]),
    (swap_region({"mask": "m.png", "blob": {}}), ["region: has both 'mask' and 'blob'"]),
    (with_(("edits",), []), ["edits: has 0 item(s)"]),
    (with_(("edits",), [{"label_swap": {}, "blend": {}}]), ["edits[0]: has both 'label_swap' and 'blend'"]),
    (with_(("model",), "no-such-model"), ["model: unknown model 'no-such-model'", "tiny"]),
    (with_(("model",), KeyError), ["model: missing (required): add a zoo name"]),
    (with_(("model",), "../weights/g.safetensors"), ["model: '../weights/g.safetensors' points outside the recipe's folder"]),
    (with_(("edits",), ["label_swap"]), ["edits[0]: expected {label_swap: {...}} or {blend: {...}}; got a string"]),
])
def test_schema_errors_name_file_path_and_fix(tmp_path, data, needles):
    msg = error_of(tmp_path, data)
    assert msg.startswith(str(tmp_path / "r.yaml") + ": "), msg
    for n in needles:
        assert n in msg, f"{n!r} not in:\n{msg}"


def test_all_problems_reported_at_once(tmp_path):
    d = with_(("count",), 0, with_(("edits", 0, "label_swap", "foo"), 1))
    lines = error_of(tmp_path, d).splitlines()
    assert len(lines) == 2 and any("count" in x for x in lines) and any("foo" in x for x in lines)


def test_malformed_and_empty_yaml(tmp_path):
    msg = error_of(tmp_path, "model: tiny\nedits: [\n  - {label_swap: \n")
    assert "malformed YAML" in msg and "line " in msg
    assert "is empty" in error_of(tmp_path, "")
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n")
    assert "duplicate key 'count'" in error_of(tmp_path, "model: tiny\ncount: 1\ncount: 2\n")
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")


def test_unconditional_model_rules(tmp_path, uncond_model):
    d = copy.deepcopy(BASE)
    d["model"] = "dc.safetensors"          # relative to the recipe's folder
    msg = error_of(uncond_model, d)
    assert "edits[0].label_swap: model" in msg and "unconditional" in msg and "use a `blend` edit" in msg
    assert "source.classes: model" in msg and "edits[1].blend.reference.class" in msg
    d = {"model": "dc.safetensors", "edits": copy.deepcopy(BASE["edits"][1:])}
    d["edits"][0]["blend"]["reference"] = {"seed": 5}
    r = load_recipe(write(uncond_model, d))
    assert r.model == str(uncond_model / "dc.safetensors")
    gen = load_generator(r.model, "cpu")
    out = render_variants(gen, r, r.variants([0, 1]))
    assert out[0].label == "r" and out[0].label_id == 0 and out[0].label_map is None and out[0].soft_label == {"r": 1.0}


def test_mask_file_errors(tmp_path):
    def region_err(rel, folder=tmp_path):
        return error_of(folder, swap_region({"mask": rel}))

    assert "edits[0].label_swap.region.mask: mask file" in region_err("masks/none.png")
    assert "does not exist" in region_err("masks/none.png")
    (tmp_path / "notimg.png").write_text("this is not a PNG")
    assert "is not an image" in region_err("notimg.png")
    (tmp_path / "adir.png").mkdir()
    assert "is not a file" in region_err("adir.png")
    Image.new("L", (4097, 4097)).save(tmp_path / "huge.png")
    msg = region_err("huge.png")
    assert "4097×4097 pixels, more than the limit" in msg
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.new("L", (8, 8), 255).save(tmp_path / "outside.png")
    msg = region_err("../outside.png", sub)
    assert "points outside the recipe's folder" in msg and "region.mask" in msg
    assert "absolute path" in region_err(str(tmp_path / "outside.png"), sub)
    # a truncated PNG is unreadable, with the path in the message
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(good)
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:100])
    msg = region_err("trunc.png")
    assert "trunc.png" in msg and ("could not be read" in msg or "not an image" in msg)


def test_decompression_bomb_is_refused(tmp_path):
    """An image whose header claims more pixels than PIL's own bomb limit: refused without decoding."""
    import zlib, struct
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    w = h = 20000     # 400 M pixels: above 2 × PIL's default limit (PIL raises DecompressionBombError)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(M.MaskFileError, match="bomb.png"):
        M.load_mask_file(tmp_path / "bomb.png")
    with pytest.raises(M.MaskFileError, match="too large|more than the limit"):
        M.load_mask_file(tmp_path / "bomb.png", max_pixels=10 ** 12)


# -- JSON Schema ------------------------------------------------------------------------------------------
def test_json_schema_accepts_shipped_and_rejects_unknown_keys():
    schema = recipe_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for p in SHIPPED:
        errors = list(v.iter_errors(yaml.safe_load(p.read_text())))
        assert not errors, (p, errors[0].message)
    assert not list(v.iter_errors(BASE))
    for bad in [with_(("edits", 0, "label_swap", "strenght"), 1), with_(("count",), 0),
                swap_region({"shape": "triangle"}), with_(("edits",), [])]:
        assert list(v.iter_errors(bad)), bad


# -- determinism ----------------------------------------------------------------------------------------
def test_variant_is_a_pure_function_of_recipe_seed_and_index(tmp_path):
    r1 = parse_recipe(BASE)
    r2 = load_recipe(write(tmp_path, with_(("count",), 1000)))   # count and source file do not matter
    for i in [0, 1, 7, 12345]:
        assert r1.variant(i) == r2.variant(i) == r1.variant(i)
        json.dumps(r1.variant(i).params)   # serialisable
    assert r1.variant(0).params != r1.variant(1).params
    r3 = parse_recipe(with_(("seed",), 4))
    assert r3.variant(0).params != r1.variant(0).params
    # adding an edit at the end does not change the earlier edits' draws
    more = copy.deepcopy(BASE)
    more["edits"].append(copy.deepcopy(BASE["edits"][1]))
    assert parse_recipe(more).variant(5).params["edits"][:2] == r1.variant(5).params["edits"]
    with pytest.raises(ValueError):
        r1.variant(-1)


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


# -- shipped recipes ---------------------------------------------------------------------------------------
def test_shipped_recipes_are_there():
    names = {p.name for p in SHIPPED}
    assert {"tiny-label-swap.yaml", "faces64-parts.yaml"} <= names and len(names) >= 3


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
        assert [e["blend"]["region"]["mask"] for e in o.params["edits"]] == \
            ["masks/faces64-hair.png", "masks/faces64-eyes.png", "masks/faces64-mouth.png"]
        assert len({e["blend"]["reference"]["seed"] for e in o.params["edits"]}) == 3
        assert o.locality < 0.5, o.locality


# -- edit semantics through recipes --------------------------------------------------------------------------
def test_full_image_swap_equals_plain_generation_of_target_class(tiny):
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": {"shape": "rectangle", "box": [0, 0, 1, 1]}}}]}
    r = parse_recipe(d)
    out = render_variants(tiny, r, r.variants([0, 1]))
    z = sample_latents(tiny, [o.seed for o in out])
    plain_blue = render(tiny, z, ["blue", "blue"])
    from toolkit.images import to_uint8
    assert np.abs(np.stack([o.image for o in out]).astype(int) - to_uint8(plain_blue).astype(int)).max() <= 1
    assert all((o.label_map == 2).all() and o.label == "blue" and o.soft_label == {"blue": 1.0} for o in out)


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


# -- regions ------------------------------------------------------------------------------------------------
def test_region_rasterisation_and_jitter():
    rect = M.rasterize_region({"shape": "polygon", "points": [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]}, 32)
    assert rect.sum() == 256 and rect[8:24, 8:24].min() == 1
    ell = M.rasterize_region({"shape": "ellipse", "center": [0.5, 0.5], "size": [0.5, 0.25], "angle": 30}, 64)
    assert ell.sum() == pytest.approx(np.pi * 16 * 8, rel=0.01)
    feathered = M.gaussian_feather(rect, 2.0)
    assert feathered.sum() == pytest.approx(256, rel=0.01) and 0 < feathered[8, 8] < 1
    mask = np.zeros((64, 64), np.float32)
    mask[16:32, 16:32] = 1
    moved = M.transform_mask(mask, 32, translate=(0.25, 0.0))
    assert moved[8:16, 16:24].min() > 0.99 and moved.sum() == pytest.approx(64, rel=0.02)
    spun = M.transform_mask(mask, 32, rotate=45, scale=1.0)
    assert spun.sum() == pytest.approx(64, rel=0.05)
    assert M.mask_centroid(spun) == pytest.approx(M.mask_centroid(M.transform_mask(mask, 32)), abs=0.02)


def test_jitter_draws_within_bounds():
    r = parse_recipe(BASE)
    for i in range(20):
        reg = r.variant(i).params["edits"][0]["label_swap"]["region"]
        assert abs(reg["center"][0] - 0.5) <= 0.1 and abs(reg["center"][1] - 0.5) <= 0.1
        assert 0.4 <= reg["size"][0] <= 0.6 and abs(reg["angle"]) <= 30
        e = r.variant(i).params["edits"][1]["blend"]
        assert e["strength"][0] == 0 and 0.5 <= e["strength"][1] == e["strength"][3] <= 1.0
        assert 0 <= e["reference"]["seed"] <= 1000 and e["reference"]["class"] in ("purple", "red", "green")


# -- saving -----------------------------------------------------------------------------------------------
def test_save_recipe_round_trip(tmp_path, tiny):
    original = load_recipe(ROOT / "recipes" / "tiny-label-swap.yaml")
    data = yaml.safe_load((ROOT / "recipes" / "tiny-label-swap.yaml").read_text())
    strokes = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    strokes.paste((255, 0, 0, 255), (5, 5, 25, 30))
    data["edits"].append({"blend": {"reference": {"seed": 3}, "region": {"mask": "stroke"}, "strength": "parts"}})
    p = save_recipe(data, "copy", tmp_path, masks={"stroke": strokes})
    assert p == tmp_path / "copy.yaml" and (tmp_path / "masks" / "copy" / "stroke.png").exists()
    saved = load_recipe(p)
    assert saved.data["edits"][1]["blend"]["region"]["mask"] == "masks/copy/stroke.png"
    assert np.array_equal(saved.load_mask("masks/copy/stroke.png"), np.asarray(strokes.getchannel("A")) / 255.0)
    # the swap edit draws exactly as in the original recipe (its own random stream)
    assert [saved.variant(i).params["edits"][0] for i in range(3)] == [original.variant(i).params["edits"][0] for i in range(3)]
    # saving the loaded recipe again changes nothing: same params, same pixels
    again = load_recipe(save_recipe(yaml.safe_load(saved.text), "copy2", tmp_path))
    assert again.sha256 != saved.sha256 or again.name != saved.name
    a = render_variants(tiny, saved, saved.variants([0, 1]))
    b = render_variants(tiny, again, again.variants([0, 1]))
    for x, y in zip(a, b):
        assert x.params == y.params and np.array_equal(x.image, y.image) and np.array_equal(x.label_map, y.label_map)
    assert dump_recipe(again.data) == dump_recipe(parse_recipe(yaml.safe_load(dump_recipe(again.data)), base_dir=tmp_path).data)


def test_save_recipe_refuses_bad_names_and_invalid_data(tmp_path):
    for bad in ["../evil", "a/b", "..", "", "x\\y"]:
        with pytest.raises(RecipeError, match="not a valid recipe name"):
            save_recipe(BASE, bad, tmp_path)
    with pytest.raises(RecipeError, match="count"):
        save_recipe(with_(("count",), 0), "bad", tmp_path)
    with pytest.raises(RecipeError, match="region.mask"):
        save_recipe(swap_region({"mask": "nokey"}), "bad2", tmp_path, masks={"other": Image.new("L", (8, 8))})
    assert list(tmp_path.iterdir()) == []


def test_generator_argument_skips_loading_and_matches(tiny, tmp_path):
    a = parse_recipe(BASE)
    b = parse_recipe(BASE, generator=tiny)
    assert a.sha256 == b.sha256 and a.variant(3) == b.variant(3) and b.model == "tiny"
    p = write(tmp_path, BASE)
    assert load_recipe(p, generator=tiny).variant(2) == a.variant(2)


def test_recipe_hash_covers_data_and_mask_bytes(tmp_path):
    Image.new("L", (16, 16), 255).save(tmp_path / "m.png")
    d = swap_region({"mask": "m.png"})
    h1 = load_recipe(write(tmp_path, d)).sha256
    assert load_recipe(write(tmp_path, d)).sha256 == h1
    Image.new("L", (16, 16), 128).save(tmp_path / "m.png")
    assert load_recipe(write(tmp_path, d)).sha256 != h1
    assert load_recipe(write(tmp_path, with_(("seed",), 9, d))).sha256 not in (h1,)


def test_numpy_resize_matches_resize_weights_and_feather_matches_convolution():
    rng = np.random.default_rng(0)
    for shape, size in [((64, 64), (32, 32)), ((50, 70), (32, 32)), ((16, 24), (64, 64)), ((100, 30), (64, 12))]:
        x = rng.random(shape).astype(np.float32)
        ref = M.resize_weights(torch.from_numpy(x), size).numpy()
        assert np.allclose(M.resize_mask(x, size), ref, atol=1e-5), (shape, size)
    x = (rng.random((20, 20)) > 0.5).astype(np.float32)
    sigma = 1.5
    radius = int(np.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x.astype(np.float64), radius, mode="edge")
    direct = np.array([[(padded[i:i + 2 * radius + 1, j:j + 2 * radius + 1] * np.outer(k, k)).sum()
                        for j in range(20)] for i in range(20)])
    assert np.allclose(M.gaussian_feather(x, sigma), direct, atol=1e-6)


def test_mask_file_jitter_matches_shape_jitter():
    """The same jitter moves a mask file exactly as it moves the equivalent polygon."""
    pts = [[0.2, 0.3], [0.6, 0.3], [0.6, 0.5], [0.2, 0.5]]
    img = M.rasterize_polygon(pts, 256)                     # a high-resolution "mask file"
    center = [0.4, 0.4]                                     # = its centroid and the polygon's centre
    for t, s, rot in [((0.1, -0.05), 1.0, 0.0), ((0.0, 0.0), 1.2, 0.0), ((0.0, 0.0), 1.0, 30.0), ((0.05, 0.1), 0.8, -50.0)]:
        shape = M.rasterize_polygon(M.transform_points(pts, center, t, s, rot), 64)
        mask = M.transform_mask(img, 64, t, s, rot)
        iou = np.minimum(shape, mask).sum() / np.maximum(shape, mask).sum()
        assert iou > 0.95, (t, s, rot, iou)
        assert shape.sum() == pytest.approx(mask.sum(), rel=0.02)
        assert M.mask_centroid(shape) == pytest.approx(M.mask_centroid(mask), abs=0.002)
        assert M.mask_centroid(shape) == pytest.approx([center[0] + t[0], center[1] + t[1]], abs=0.002)


BASE2 = {
    "model": "faces64", "name": "b2", "output": {"label": "faces", "save_source": False},
    "edits": [{"blend": {"reference": {"seed": 4}, "strength": [0, {"range": [0.2, 0.9]}, 1, 0],
                         "region": {"choice": [{"shape": "rectangle", "box": [0.1, 0.1, 0.5, 0.5]},
                                               {"shape": "polygon", "points": [[0, 0], [1, 0], [0.5, 1]],
                                                "jitter": {"translate": [0.1, 0.05], "scale": 1.1}},
                                               {"mask": "masks/x.png", "feather": 0.1}]}}},
              {"blend": {"region": {"blob": {"size": 0.3, "center": [0.4, 0.6]}},
                         "strength": {"choice": ["coarse", 0.5, [0, 1, 1, 0]]}}}],
}


def _paths(x, p=()):
    yield p
    if isinstance(x, dict):
        for k in x:
            yield from _paths(x[k], p + (k,))
    elif isinstance(x, list):
        for i, y in enumerate(x):
            yield from _paths(y, p + (i,))


@pytest.mark.parametrize("base", [BASE, BASE2], ids=["BASE", "BASE2"])
def test_validator_and_json_schema_agree_on_mutations(base):
    """Replace every node of a valid recipe by values of other types/ranges: the readable
    validator and the published JSON Schema must accept and reject the same documents (except
    the cross-field rules JSON Schema cannot say: low ≤ high, non-empty boxes)."""
    v = jsonschema.Draft202012Validator(recipe_json_schema())
    assert not list(v.iter_errors(base))
    validate_schema(base)
    n = 0
    for p in list(_paths(base)):
        for val in ["x", -1, 2.5, [0.1, 0.2], {}, True, {"choice": [1]}]:
            d = with_(p, val, base) if p else val
            try:
                validate_schema(d)
                mine = None
            except RecipeError as e:
                mine = str(e)
            schema_ok = not list(v.iter_errors(d))
            n += 1
            if (mine is None) != schema_ok:
                assert mine is not None and ("low > high" in mine or "is empty" in mine), (p, val, mine)
    assert n > 250


def test_high_resolution_rasterisation_is_capped_and_accurate():
    assert M._supersample(64, None, 4) == 4 and M._supersample(256, None, 4) == 2 and M._supersample(1024, None, 4) == 1
    for res in (64, 256, 1024):
        ell = M.rasterize_region({"shape": "ellipse", "center": [0.5, 0.5], "size": [0.4, 0.3]}, res)
        assert ell.shape == (res, res) and ell.sum() == pytest.approx(np.pi * 0.2 * 0.15 * res * res, rel=0.006)


def test_fixed_regions_are_rasterised_once_per_recipe(tiny):
    d = {"model": "tiny", "source": {"classes": "red"},
         "edits": [{"label_swap": {"to": "blue", "region": {"shape": "ellipse", "center": [0.5, 0.5], "size": [0.5, 0.5]}}}]}
    r = parse_recipe(d)
    from toolkit.recipes import edit_masks
    a, b = edit_masks(r, r.variant(0), 32)[0], edit_masks(r, r.variant(1), 32)[0]
    assert a is b and not a.flags.writeable
    assert np.array_equal(a, M.rasterize_region(r.variant(5).params["edits"][0]["label_swap"]["region"], 32))
    fresh = parse_recipe(d)
    x = render_variants(tiny, r, r.variants([2, 3]))
    y = render_variants(tiny, fresh, fresh.variants([2, 3]))
    assert all(np.array_equal(p.image, q.image) for p, q in zip(x, y))


def test_masks_prepared_ahead_in_threads_give_the_same_result(tiny):
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.recipes import prepare_masks
    r = parse_recipe(BASE)
    vs = r.variants(range(5))
    with ThreadPoolExecutor(2) as ex:
        masks = prepare_masks(r, vs, 32, ex)
    assert all(np.array_equal(a, b) for ms, ns in zip(masks, prepare_masks(r, vs, 32)) for a, b in zip(ms, ns))
    x, y = render_variants(tiny, r, vs, masks=masks), render_variants(tiny, r, vs)
    assert all(np.array_equal(p.image, q.image) and np.array_equal(p.mask, q.mask) for p, q in zip(x, y))
    with pytest.raises(ValueError, match="masks for 4 variants"):
        render_variants(tiny, r, vs, masks=masks[:4])


def test_wide_feather_matches_the_exact_blur():
    from toolkit.masks import _gaussian_exact
    for res, sigma, region in [(256, 16, {"shape": "polygon", "points": [[-0.1, -0.1], [0.5, -0.1], [0.5, 0.4], [-0.1, 0.4]]}),
                               (200, 9.5, {"shape": "ellipse", "center": [0.4, 0.6], "size": [0.5, 0.3], "angle": 20})]:
        m = M.rasterize_region(region, res)
        fast, exact = M.gaussian_feather(m, sigma), _gaussian_exact(m, sigma)
        assert fast.shape == exact.shape and np.abs(fast - exact).max() < 0.003
