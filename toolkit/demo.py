"""A demo collage: what the README's first command renders (no recipe file needed).

For an unconditional model (the default faces64): a source face, a reference face, and the
reference's eye band and mouth pasted into the source with the three blend presets. For a
class-conditional model: label swaps of a central region at early, middle and late stages.
Every edited image comes from the render pipeline (`toolkit.pipeline`), the one the batch
runner and the app use: the demo is built as small in-memory recipes and their variants.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from . import load_generator, render, sample_latents
from .images import grid, save_png, to_uint8
from .pipeline import render_variants
from .recipes import BLEND_PRESETS, parse_recipe

COND_SEEDS, SOURCE_SEEDS, REFERENCE_SEEDS = [1, 2, 3], [11, 12, 13], [21, 22, 23]
CENTRE = {"shape": "rectangle", "box": [0.25, 0.25, 0.75, 0.75]}
PARTS = {"eyes": {"shape": "rectangle", "box": [0.15, 0.30, 0.85, 0.52]},
         "mouth": {"shape": "rectangle", "box": [0.28, 0.62, 0.72, 0.85]}}


def _recipe(gen, model: str, seeds: list[int], edit: dict):
    return parse_recipe({"name": "demo", "model": model, "source": {"seeds": seeds}, "edits": [edit]}, generator=gen)


def _swap_column(gen, model: str, stages: list[int]):
    """Each source's central region swapped to the next class, at `stages`."""
    rec = _recipe(gen, model, COND_SEEDS, {"label_swap": {"to": 0, "region": CENTRE, "stages": stages}})
    variants = []
    for v in rec.variants(range(len(COND_SEEDS))):
        to = (v.source.class_id + 1) % gen.n_classes
        edit = dataclasses.replace(v.edits[0], to=gen.class_names[to], to_id=to)
        variants.append(dataclasses.replace(v, edits=(edit,)))
    return render_variants(gen, rec, variants)


def _blend_column(gen, model: str, region: dict, preset: str):
    """Each source with its reference's features pasted into `region` at the preset's points."""
    rec = _recipe(gen, model, SOURCE_SEEDS, {"blend": {"reference": {"seed": 0}, "region": region, "strength": preset}})
    variants = []
    for v, ref_seed in zip(rec.variants(range(len(SOURCE_SEEDS))), REFERENCE_SEEDS):
        edit = dataclasses.replace(v.edits[0], reference=dataclasses.replace(v.edits[0].reference, seed=ref_seed))
        variants.append(dataclasses.replace(v, edits=(edit,)))
    return render_variants(gen, rec, variants)


def render_demo(out: str, model: str = "faces64", device: str = "auto") -> Path:
    gen = load_generator(model, device)
    if gen.n_classes:
        n = gen.n_stages
        columns = {f"swap {name}": _swap_column(gen, model, st)
                   for name, st in [("early", [0, n - 1]), ("middle", [n // 2, n - 1]), ("late", [n - 1, n - 1])]}
        first = next(iter(columns.values()))
        cols = {"source": [rv.source_image for rv in first]}
        scale = max(1, 128 // gen.resolution)
    else:
        columns = {f"{part}: {preset}": _blend_column(gen, model, region, preset)
                   for part, region in PARTS.items() for preset in BLEND_PRESETS}
        first = next(iter(columns.values()))
        cols = {"source": [rv.source_image for rv in first],
                "reference": list(to_uint8(render(gen, sample_latents(gen, REFERENCE_SEEDS))))}
        scale = 2
    cols.update({label: [rv.image for rv in col] for label, col in columns.items()})
    rows = [[Image.fromarray(cols[label][i]) for label in cols] for i in range(len(first))]
    return save_png(grid(rows, col_labels=list(cols), scale=scale), out)
