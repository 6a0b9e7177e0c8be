"""Writing recipes (toolkit.recipes.save, .yamlio): round trips, names, canonical YAML."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from recipe_cases import BASE, ROOT, swap_region, with_  # noqa: F401
from toolkit.pipeline import render_variants
from toolkit.recipes import RecipeError, dump_recipe, load_recipe, parse_recipe, save_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_dumped_yaml_reads_in_schema_order():
    text = dump_recipe(parse_recipe(BASE).data)
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert keys == ["name", "model", "seed", "count", "source", "edits", "output"]
    assert "region: {shape: ellipse" not in text and "strength: {range: [0.8, 1.0]}" in text


def test_save_recipe_refuses_bad_names_and_invalid_data(tmp_path):
    for bad in ["../evil", "a/b", "..", "", "x\\y"]:
        with pytest.raises(RecipeError, match="not a valid recipe name"):
            save_recipe(BASE, bad, tmp_path)
    with pytest.raises(RecipeError, match="count"):
        save_recipe(with_(("count",), 0), "bad", tmp_path)
    with pytest.raises(RecipeError, match="region.mask"):
        save_recipe(swap_region({"mask": "nokey"}), "bad2", tmp_path, masks={"other": Image.new("L", (8, 8))})
    assert list(tmp_path.iterdir()) == []
