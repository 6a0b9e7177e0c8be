"""Benchmark entries for features other helpers build: part segmentation and photo projection.

Each runs only when its module exists (`toolkit.parts`, `toolkit.projection`) and says "not
measured" with the reason otherwise, or when the module's API is not the one measured here.
Targets (the performance issue): part segmentation ≤ 10% of rendering time; projection time per
photo reported.
"""
from __future__ import annotations

import importlib
import importlib.util
import time

import torch

import toolkit
from toolkit import render, sample_classes, sample_latents
from toolkit.engine import render_with_features

MODEL = "terrain64"   # a shipped class-conditional 64-px model: no download


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best(fn, dev, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        _sync(dev)
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def parts_row(dev: torch.device, repeats: int, batch: int = 32) -> dict:
    """Rendering with the features captured + segmenting them, against rendering alone."""
    parts = importlib.import_module("toolkit.parts")
    gen = toolkit.load_generator(MODEL, dev)
    pm = parts.shipped(gen) or parts.discover(gen, 4, n_samples=16)
    seeds = range(batch)
    z, y = sample_latents(gen, seeds), sample_classes(gen, seeds)
    t_render = _best(lambda: render(gen, z, y), dev, repeats)

    def with_parts():
        _, states = render_with_features(gen, z, y, capture=list(pm.points))
        return parts.segment_features(pm, states, gen.resolution)
    t_both = _best(with_parts, dev, repeats)
    return {"hook": "parts", "model": MODEL, "batch": batch, "render_s": t_render, "render_and_parts_s": t_both,
            "parts_share_of_render": (t_both - t_render) / t_render}


def projection_row(dev: torch.device, repeats: int) -> dict:
    """Seconds to project one photo (the module's fast setting; a rendered image stands in)."""
    projection = importlib.import_module("toolkit.projection")
    gen = toolkit.load_generator(MODEL, dev)
    photo = render(gen, sample_latents(gen, [5]), sample_classes(gen, [5]))
    t = time.perf_counter()
    projection.project(gen, photo, steps="fast")
    _sync(dev)
    return {"hook": "projection", "model": MODEL, "steps": "fast", "seconds_per_photo": time.perf_counter() - t}


ROWS = {"parts": ("toolkit.parts", parts_row), "projection": ("toolkit.projection", projection_row)}


def run(name: str, dev: torch.device, repeats: int) -> dict:
    if name not in ROWS:
        return {"hook": name, "result": f"not measured: unknown hook (known: {', '.join(ROWS)})"}
    module, fn = ROWS[name]
    if importlib.util.find_spec(module) is None:
        return {"hook": name, "result": f"not measured: {module} does not exist in this checkout"}
    try:
        with torch.no_grad() if name == "parts" else torch.enable_grad():
            return fn(dev, repeats)
    except Exception as e:  # noqa: BLE001 - a changed API must not hide the other numbers
        return {"hook": name, "result": f"not measured: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}
