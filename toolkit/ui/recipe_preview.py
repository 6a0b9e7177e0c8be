"""The app's preview of a recipe's first variants, for generated *and* photo sources.

Generated sources render with `toolkit.pipeline.render_variants`, photo sources
(`source: {images: ...}`) with `toolkit.photo_variants.render_photo_variants` from projections
held in a `ProjectionCache`: the batch runner's two render paths, nothing of our own.

Why a plan: projecting is the slow step (minutes for a chunk of 16 photos on a busy 2-core CPU,
even with the `fast` preset), so the preview

- projects only the photos its first variants use, in the batch's chunks of `CHUNK` over the
  sorted photo list (a prefix of whole chunks), so a projection file holds the same numbers
  whichever of the two made it;
- reuses projections already in the workspace: a dataset that the batch wrote from the recipe
  (`<dataset>/projections`, the recipe's own preset: then the preview is made from exactly the
  batch's projections) or the preview's own cache (`$NCT_WORKSPACE/.cache/projections`), both
  keyed by model sha256, photo sha256 and settings;
- otherwise projects with the preset the page asks for (`fast` by default) into its own cache,
  never into a dataset's folder, and says which preset it used.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ..photo_variants import PhotoSet, load_photo_set, photo_spec, render_photo_variants
from ..photos import Photo
from ..pipeline import render_variants
from ..projection import PRESETS
from ..projection_cache import CHUNK, ProjectionCache
from .workspace import list_datasets, workspace_root

PREVIEW_PRESET = "fast"


def preview_cache_dir() -> Path:
    return workspace_root() / ".cache" / "projections"


def photos_needed(photo_set: PhotoSet, n: int) -> tuple[Photo, ...]:
    """The photos variants 0..n-1 use, as a prefix of whole projection chunks of the photo list."""
    total = len(photo_set.photos)
    last = max(i % total for i in range(n))
    return photo_set.photos[:min(total, CHUNK * (last // CHUNK + 1))]


def _classes(photo_set: PhotoSet, photos) -> list[int | None]:
    """Each photo's known class (`classes: folders`; part of the projection's key), else None."""
    return [photo_set.class_of(i) for i in range(len(photos))]


@dataclass(frozen=True)
class PhotoPlan:
    photo_set: PhotoSet                # the recipe's photos with the preset the preview uses
    photos: tuple[Photo, ...]          # the ones to project / load
    cache: ProjectionCache
    cached: bool                       # every projection is on disk already
    note: str                          # which preset and which projections, for the page


def plan_photo_preview(generator, recipe, n: int, preset: str = PREVIEW_PRESET) -> PhotoPlan:
    """Where the projections of the first `n` variants come from (see the module docstring)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown projection preset {preset!r}; choose one of {sorted(PRESETS)}")
    photo_set = load_photo_set(recipe)
    photos = photos_needed(photo_set, n)
    own, classes = photo_set.preset, _classes(photo_set, photos)
    for folder in [d / "projections" for d in list_datasets()] + [preview_cache_dir()]:
        cache = ProjectionCache(folder)
        if folder.is_dir() and all(cache.path(generator, ph, photo_set.settings, c).is_file()
                                   for ph, c in zip(photos, classes)):
            where = "the preview cache" if folder == preview_cache_dir() else f"the dataset {folder.parent.name}"
            return PhotoPlan(photo_set, photos, cache, True,
                             f"projection preset `{own}` (the recipe's), projections from {where}")
    use = dataclasses.replace(photo_set, preset=preset, settings=PRESETS[preset])
    cache = ProjectionCache(preview_cache_dir())
    cached = all(cache.path(generator, ph, use.settings, c).is_file() for ph, c in zip(photos, classes))
    note = f"projection preset `{preset}`" + ("" if preset == own else f" (the batch uses the recipe's `{own}`)")
    return PhotoPlan(use, photos, cache, cached, note + (", cached" if cached else ""))


def render_first(generator, recipe, n: int, preset: str = PREVIEW_PRESET):
    """`(rendered variants, note)`: the recipe's variants 0..n-1 as the batch renders them; photo
    recipes project their photos first, with a progress bar on the page."""
    variants = recipe.variants(range(n))
    if not photo_spec(recipe):
        return render_variants(generator, recipe, variants), ""
    plan = plan_photo_preview(generator, recipe, n, preset)
    classes = _classes(plan.photo_set, plan.photos)
    known = classes if classes and classes[0] is not None else None
    if not plan.cached:
        bar = st.progress(0.0, text=f"Projecting {len(plan.photos)} photos ({plan.note})…")

        def step(chunk, chunks, i, total):
            bar.progress((chunk + i / total) / chunks,
                         text=f"Projecting {len(plan.photos)} photos ({plan.note}): chunk {chunk + 1}/{chunks}, "
                              f"step {i}/{total}")
        plan.cache.ensure(generator, plan.photos, plan.photo_set.settings, classes=known, step_progress=step)
        bar.empty()
    projections = dict(zip((ph.name for ph in plan.photos),
                           plan.cache.load(generator, plan.photos, plan.photo_set.settings, known)))
    return render_photo_variants(generator, recipe, variants, plan.photo_set, projections), plan.note
