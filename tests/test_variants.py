"""Typed variants (toolkit.recipes.variants): a pure function of (recipe, seed, index), JSON that
the manifest's `params` column holds, and parsing of params written before these types existed."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from recipe_cases import BASE, BEFORE, with_, write  # noqa: F401
from toolkit.masks import Ellipse, MaskImage, Polygon
from toolkit.recipes import BlendEdit, LabelSwapEdit, Variant, load_recipe, parse_recipe
from toolkit.recipes.schema import MAX_COUNT
from toolkit.sampling import derive_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_variants_are_typed():
    v = parse_recipe(BASE).variant(3)
    swap, blend = v.edits
    assert isinstance(swap, LabelSwapEdit) and isinstance(swap.region, Ellipse) and swap.to in ("blue", "yellow")
    assert isinstance(blend, BlendEdit) and isinstance(blend.region, Polygon) and len(blend.strength) == 4
    assert v.seed == v.source.seed == derive_seed(3, 3) and v.source.class_name in ("red", "green")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.index = 4


def test_json_round_trip_and_params_written_before():
    r = parse_recipe(BASE)
    for i in range(6):
        v = r.variant(i)
        assert Variant.from_json(v.to_json(), i) == v and Variant.from_json(v.to_dict(), i) == v
        assert json.loads(v.to_json()) == v.to_dict()
    # params as the manifests of earlier versions hold them (recorded then): they parse and
    # come back out byte for byte
    for name, rec in BEFORE["recipes"].items():
        for i, params in rec["params"].items():
            v = Variant.from_json(json.dumps(params), int(i))
            assert v.to_dict() == params, (name, i)
    mask = Variant.from_json({"source": {"seed": 1}, "edits": [{"blend": {
        "reference": {"seed": 2}, "strength": [0, 1, 0, 0],
        "region": {"mask": "masks/a.png", "translate": [0.1, 0], "scale": 1.0, "rotate": 0.0}}}]}, 0)
    assert mask.edits[0].region == MaskImage("masks/a.png", (0.1, 0.0), 1.0, 0.0)
    with pytest.raises(ValueError, match="variant 7: params are not a variant"):
        Variant.from_json('{"source": {}, "edits": []}', 7)


def test_any_index_is_computed_directly():
    """Nothing enumerates the variants: the last index of the largest allowed count is instant."""
    r = parse_recipe(with_(("count",), MAX_COUNT))
    assert r.variant(MAX_COUNT - 1).index == MAX_COUNT - 1
    assert r.variant(10 ** 15).seed == derive_seed(3, 10 ** 15)


def test_jitter_draws_within_bounds():
    r = parse_recipe(BASE)
    for i in range(20):
        reg = r.variant(i).params["edits"][0]["label_swap"]["region"]
        assert abs(reg["center"][0] - 0.5) <= 0.1 and abs(reg["center"][1] - 0.5) <= 0.1
        assert 0.4 <= reg["size"][0] <= 0.6 and abs(reg["angle"]) <= 30
        e = r.variant(i).params["edits"][1]["blend"]
        assert e["strength"][0] == 0 and 0.5 <= e["strength"][1] == e["strength"][3] <= 1.0
        assert 0 <= e["reference"]["seed"] <= 1000 and e["reference"]["class"] in ("purple", "red", "green")


def test_pinned_source_seeds_come_first():
    r = parse_recipe(with_(("source", "seeds"), [42, 7]))
    assert [r.variant(i).seed for i in range(3)] == [42, 7, derive_seed(3, 2)]
    # only the source seed: every other draw is the unpinned recipe's
    assert r.variant(0).edits == parse_recipe(BASE).variant(0).edits


def test_label_swap_stage_draws():
    """Swaps with the same random `stages` spec share one draw per variant (recipes written when
    all swaps had to share their stages keep their variants); other specs draw their own."""
    two = copy.deepcopy(BASE)
    second = copy.deepcopy(BASE["edits"][0])
    two["edits"].append(second)
    r = parse_recipe(two)
    assert all(r.variant(i).edits[0].stages == r.variant(i).edits[2].stages for i in range(20))
    assert {r.variant(i).edits[0].stages for i in range(20)} == {(0, 2), (1, 2)}
    second["label_swap"]["stages"] = {"choice": [[0, 0], [2, 2]]}
    r = parse_recipe(two)
    assert {r.variant(i).edits[2].stages for i in range(20)} == {(0, 0), (2, 2)}
    assert [r.variant(i).edits[0].stages for i in range(20)] == [parse_recipe(BASE).variant(i).edits[0].stages
                                                                 for i in range(20)]
