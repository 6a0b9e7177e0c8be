"""What a part map costs per variant: `render_variants` with and without the part model.

Since part maps are written for every variant of a model with a known part model (issue 17 §3),
every faces64/terrain64 variant pays for capturing the features at the part model's points and
segmenting them. This times, on the same variants and batches, the pipeline as it was for a recipe
without parts (no part model: `part_model_for` answers None) and as it is now (the run's part model
passed in, as the batch runner does), alternating the two so that load from other processes hits
both alike; and `segment_features` alone on one batch's captured features.

    nice -n 19 python -m bench.part_maps_cost --threads 1 --count 64 --batch 16 --repeats 3

Prints one JSON line per recipe (ms per variant: medians over the repeats) and the environment.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import torch

import toolkit
from toolkit import pipeline
from toolkit.engine import render_with_features
from toolkit.part_edits import part_model_for
from toolkit.parts import segment_features
from toolkit.recipes import load_recipe, parse_recipe
from toolkit.sampling import sample_latents

ROOT = Path(__file__).resolve().parents[1]

# faces64 without part regions or matching (the hair blend of faces64-parts, a fixed mask), so that
# "before" is the pipeline without any part work.
FACES_FIXED = {
    "name": "faces64-hair-fixed", "model": "faces64", "seed": 0, "count": 64,
    "edits": [{"blend": {"reference": {"seed": {"range": [0, 1000000]}},
                         "region": {"mask": "masks/faces64-hair.png", "feather": 0.03},
                         "strength": [0, 0, 1, 1]}}],
}


def recipes() -> list:
    return [parse_recipe(FACES_FIXED, "faces64-hair-fixed", ROOT / "recipes"),
            load_recipe(ROOT / "recipes" / "terrain64-segmentation.yaml")]


def time_variants(gen, recipe, variants, batch: int, part_model) -> float:
    t = time.perf_counter()
    for i in range(0, len(variants), batch):
        chunk = variants[i:i + batch]
        if part_model is None:
            with mock.patch.object(pipeline, "part_model_for", lambda *a, **k: None):
                out = pipeline.render_variants(gen, recipe, chunk)
            assert all(rv.part_map is None for rv in out)
        else:
            out = pipeline.render_variants(gen, recipe, chunk, part_model=part_model)
            assert all(rv.part_map is not None for rv in out)
    return (time.perf_counter() - t) / len(variants)


@torch.no_grad()
def segment_only(gen, pm, variants, batch: int, repeats: int) -> float:
    z = sample_latents(gen, [v.seed for v in variants[:batch]])
    y = torch.tensor([v.source.class_id for v in variants[:batch]]) if gen.n_classes else None
    _, states = render_with_features(gen, z, y, capture=pm.points)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        segment_features(pm, states, gen.resolution)
        ts.append((time.perf_counter() - t) / batch)
    return statistics.median(ts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor()
                      or platform.machine(), "cores": os.cpu_count(), "load_1min": os.getloadavg()[0]}))
    for r in recipes():
        gen = toolkit.load_generator(r.model, device="cpu")
        r = r.for_generator(gen)
        pm = part_model_for(r, gen, required=True)
        variants = r.variants(range(args.count))
        time_variants(gen, r, variants[:args.batch], args.batch, pm)      # warm-up
        before, after = [], []
        for _ in range(args.repeats):
            before.append(time_variants(gen, r, variants, args.batch, None))
            after.append(time_variants(gen, r, variants, args.batch, pm))
        b, a = statistics.median(before), statistics.median(after)
        print(json.dumps({"recipe": r.name, "variants": args.count, "batch": args.batch,
                          "before_ms": round(1e3 * b, 2), "after_ms": round(1e3 * a, 2),
                          "extra_ms": round(1e3 * (a - b), 2), "extra_pct": round(100 * (a - b) / b, 1),
                          "segment_features_ms": round(1e3 * segment_only(gen, pm, variants, args.batch, 5), 3),
                          "before_all_ms": [round(1e3 * x, 2) for x in before],
                          "after_all_ms": [round(1e3 * x, 2) for x in after],
                          "load_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
