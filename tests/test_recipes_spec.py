"""Recipe validation (toolkit.recipes.spec, .recipe, .model_info): messages with file, line and
field path, the JSON Schema the validator runs, model rules without the weights."""
from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest
import yaml
from PIL import Image

from recipe_cases import (BASE, BASE2, BEFORE, ROOT, SHIPPED, error_of, swap_region,  # noqa: F401
                          uncond_model, with_, write)
from toolkit import load_generator
from toolkit.cli import main
from toolkit.recipes import (RecipeError, load_recipe, parse_recipe, recipe_json_schema, validate_schema)
from toolkit.recipes.model_info import info_from_config, info_from_file, info_from_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    (with_(("model",), "tiyn"), ["model: unknown model 'tiyn'", "Did you mean 'tiny'?"]),
    (with_(("model",), KeyError), ["model: missing (required): add a zoo name"]),
    (with_(("model",), "../weights/g.safetensors"), ["model: '../weights/g.safetensors' points outside the recipe's folder"]),
    (with_(("edits",), ["label_swap"]), ["edits[0]: expected {label_swap: {...}} or {blend: {...}}; got a string"]),
    (with_(("edits", 0, "label_swap", "strength"), float("nan")), ["edits[0].label_swap.strength: expected a finite number"]),
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


def test_messages_name_the_yaml_line(tmp_path):
    text = (ROOT / "recipes" / "tiny-label-swap.yaml").read_text()
    lines = text.splitlines()
    n_strength = next(i for i, x in enumerate(lines) if x.strip().startswith("strength:")) + 1
    n_count = next(i for i, x in enumerate(lines) if x.startswith("count:")) + 1
    bad = text.replace("count: 32", "count: 0").replace("strength: {range: [0.8, 1.0]}", "strenght: 1")
    msg = error_of(tmp_path, bad)
    assert f"r.yaml: line {n_count}: count: 0 is out of range" in msg
    assert f"r.yaml: line {n_strength}: edits[0].label_swap.strenght: unknown key" in msg


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
    assert r.model == str(uncond_model / "dc.safetensors") and r.info.n_blend_points == 4 and not r.warnings


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


# -- the JSON Schema --------------------------------------------------------------------------------------
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
                swap_region({"shape": "triangle"}), with_(("edits",), []), with_(("count",), 10 ** 23)]:
        assert list(v.iter_errors(bad)), bad


def test_schema_command_prints_the_validators_schema(capsys):
    from toolkit.recipes.spec import VALIDATOR
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == VALIDATOR.schema == recipe_json_schema()


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
    validator and the published JSON Schema (run by a stock validator) must accept and reject
    the same documents (except the cross-field rules JSON Schema cannot say: low ≤ high,
    non-empty boxes)."""
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


# -- shipped recipes, model rules without weights -----------------------------------------------------------
def test_shipped_recipes_are_there():
    names = {p.name for p in SHIPPED}
    assert {"tiny-label-swap.yaml", "faces64-parts.yaml"} <= names and len(names) >= 3


def test_validate_exits_0_on_shipped_recipes_with_warnings_for_absent_weights(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NCT_CACHE_DIR", str(tmp_path / "empty-cache"))     # a fresh clone: nothing fetched
    monkeypatch.delenv("NCT_BIGGAN_DIR", raising=False)
    assert main(["validate", *map(str, SHIPPED)]) == 0
    out, err = capsys.readouterr()
    assert out.count("ok: ") == len(SHIPPED)
    assert "warning: " in err and "biggan-deep-256" in err and "stylegan2-ffhq-config-f.pt" in err
    assert "faces64" in err and "python -m toolkit fetch faces64" in err


def test_absent_biggan_weights_still_get_model_rules(tmp_path, monkeypatch):
    """The zoo says what BigGAN-deep-256 is without its weights: class names are checked."""
    monkeypatch.setenv("NCT_CACHE_DIR", str(tmp_path / "empty-cache"))
    data = yaml.safe_load((ROOT / "recipes" / "biggan-deep-256-husky-eyes.yaml").read_text())
    r = parse_recipe(data)
    assert r.info.n_classes == 1000 and r.info.n_stages == 12 and r.warnings
    data["edits"][0]["label_swap"]["to"] = "Pomeranain"
    with pytest.raises(RecipeError, match="Did you mean: 'Pomeranian'"):
        parse_recipe(data)


def test_recipes_keep_their_hashes_and_variants(tiny):
    """Datasets made before the recipes package resume: same recipe sha256, same variants."""
    changed = {"faces64-parts"}   # rewritten on purpose (issue 17: part regions, matched references)
    for name, rec in BEFORE["recipes"].items():
        if name in changed:
            continue
        if name == "BASE":
            r = parse_recipe(BASE)
        else:
            r = load_recipe(ROOT / "recipes" / f"{name}.yaml")
            if r.info is None:
                continue
        assert r.sha256 == rec["sha256"], name
        for i, params in rec["params"].items():
            assert r.variant(int(i)).to_dict() == params, (name, i)


def test_model_info_without_weights_matches_the_built_generator(tmp_path):
    """The per-architecture facts read from configs equal what the generators say once built."""
    from toolkit.checkpoints import save_generator
    from toolkit.generators import ARCHITECTURES
    from toolkit.generators.biggan import BigGANConfig
    from toolkit.generators.dcgan import DCGANConfig
    from toolkit.generators.sngan import SNGANConfig
    from toolkit.generators.stylegan2 import StyleGAN2Config
    cfgs = {"sngan": SNGANConfig(z_dim=8, n_classes=3, channels=[16, 8, 8, 4]),
            "dcgan": DCGANConfig(z_dim=8, ngf=2),
            "stylegan2": StyleGAN2Config(size=16, style_dim=8, n_mlp=1, channels=[8, 8, 8]),
            "biggan": BigGANConfig(resolution=16, z_dim=8, n_classes=4, channel_width=4,
                                   layers=[[True, 4, 4], [True, 4, 2]], attention_position=1)}
    for arch, cfg in cfgs.items():
        gen = ARCHITECTURES[arch][0](copy.deepcopy(cfg)).eval()
        built = info_from_generator(gen, ref="x")
        assert info_from_config(arch, cfg, "x") == built, arch
        save_generator(gen, tmp_path / f"{arch}.safetensors")
        assert info_from_file(tmp_path / f"{arch}.safetensors", "x") == \
            info_from_generator(gen, ref=str(tmp_path / f"{arch}.safetensors"), name="x"), arch


def test_generator_argument_skips_loading_and_matches(tiny, tmp_path):
    a = parse_recipe(BASE)
    b = parse_recipe(BASE, generator=tiny)
    assert a.sha256 == b.sha256 and a.variant(3) == b.variant(3) and b.model == "tiny"
    p = write(tmp_path, BASE)
    assert load_recipe(p, generator=tiny).variant(2) == a.variant(2)


def test_weights_that_cannot_be_described_unloaded_bind_to_the_generator(tmp_path):
    """A PyTorch file says nothing without unpickling: the recipe loads with a warning, has no
    variants until bound to the loaded generator, and then gets the model rules."""
    import torch
    from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
    from toolkit.generators.sngan import randomize
    gen = randomize(DCGANGenerator(DCGANConfig(z_dim=8, ngf=2)), seed=0)
    torch.save({"netG_state_dict": gen.state_dict()}, tmp_path / "g.pt")
    d = {"model": "g.pt", "edits": [{"blend": {"reference": {"seed": 1}, "region": {"shape": "rectangle",
                                                                                   "box": [0, 0, 1, 0.5]},
                                               "strength": [0, 1, 1]}}]}
    r = load_recipe(write(tmp_path, d))
    assert r.info is None and "cannot be described without loading it" in r.warnings[0]
    with pytest.raises(RecipeError, match="for_generator"):
        r.variant(0)
    loaded = load_generator(r.model, "cpu")
    with pytest.raises(RecipeError, match=r"edits\[0\].blend.strength: 3 strengths given; model g.pt has 4"):
        r.for_generator(loaded)


def test_recipe_hash_covers_data_and_mask_bytes(tmp_path):
    Image.new("L", (16, 16), 255).save(tmp_path / "m.png")
    d = swap_region({"mask": "m.png"})
    h1 = load_recipe(write(tmp_path, d)).sha256
    assert load_recipe(write(tmp_path, d)).sha256 == h1
    Image.new("L", (16, 16), 128).save(tmp_path / "m.png")
    assert load_recipe(write(tmp_path, d)).sha256 != h1
    assert load_recipe(write(tmp_path, with_(("seed",), 9, d))).sha256 not in (h1,)


def test_label_swaps_may_have_their_own_stages(tmp_path):
    """No engine limit in the recipe rules: two label swaps with different stage ranges."""
    d = copy.deepcopy(BASE)
    d["edits"].append({"label_swap": {"to": "purple", "region": {"shape": "rectangle", "box": [0, 0, 0.3, 0.3]},
                                      "stages": [2, 2]}})
    r = load_recipe(write(tmp_path, d))
    v = r.variant(0)
    assert v.edits[0].stages in ((0, 2), (1, 2)) and v.edits[2].stages == (2, 2)


def test_model_info_from_npz_headers_and_biggan_config(tmp_path):
    """Chainer .npz: shapes from the array headers (a compressed archive is not inflated);
    BigGAN directory: config.json alone (no pytorch_model.bin needed)."""
    from test_checkpoints import to_chainer_arrays
    from toolkit.generators.sngan import SNGANConfig, SNGANGenerator, randomize
    gen = randomize(SNGANGenerator(SNGANConfig(z_dim=8, n_classes=3, channels=[8, 8, 4])), seed=1).eval()
    np.savez_compressed(tmp_path / "g.npz", **{f"updater/model:gen/{k}": v for k, v in to_chainer_arrays(gen).items()})
    info = info_from_file(tmp_path / "g.npz", "g.npz")
    assert (info.n_classes, info.n_stages, info.resolution) == (3, 2, 16)
    assert info == info_from_generator(load_generator(str(tmp_path / "g.npz"), "cpu"), ref=str(tmp_path / "g.npz"),
                                       name="g.npz")
    d = tmp_path / "biggan"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"output_dim": 128, "z_dim": 128, "class_embed_dim": 128,
                                               "channel_width": 128, "num_classes": 1000, "attention_layer_position": 8,
                                               "layers": [[False, 16, 16], [True, 16, 16], [False, 16, 16],
                                                          [True, 16, 8], [False, 8, 8], [True, 8, 4], [False, 4, 4],
                                                          [True, 4, 2], [False, 2, 2], [True, 2, 1]]}))
    info = info_from_file(d, "biggan")
    assert (info.n_classes, info.n_stages, info.resolution, info.supports_truncation) == (1000, 10, 128, True)
    assert info.class_id("Pomeranian") == 259
