"""Recipe documents and helpers shared by the recipe, variant, render and hostile-input tests."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from toolkit.recipes import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))
BEFORE = json.loads((Path(__file__).parent / "data" / "recipes_before_package.json").read_text())

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


@pytest.fixture(scope="module")
def uncond_model(tmp_path_factory):
    """A small random-weight unconditional DCGAN saved in our format (stands in for faces64)."""
    from toolkit.checkpoints import save_generator
    from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
    from toolkit.generators.sngan import randomize
    d = tmp_path_factory.mktemp("uncond")
    save_generator(randomize(DCGANGenerator(DCGANConfig(z_dim=8, ngf=4)), seed=1), d / "dc.safetensors")
    return d


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
