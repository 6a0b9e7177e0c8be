"""Recipes over real photos: `source: {images: DIR_OR_GLOB, projection: default|fast, classes: folders}`.

Variant i edits photo `i mod N` (photos sorted by path) with the recipe's random edits, drawn
exactly as for generated sources. Each photo is projected once (`ProjectionCache` in the
dataset folder, keyed by model sha256, photo sha256 and projection settings). A variant is
edited as `projection.render_projection` edits a photo, so

- the edits run as the recipe says (label swaps at their stage ranges, blends at their points,
  exactly as for generated sources) on the image generated from the photo's projected latent and
  class, and the photo's inverted features are pasted at the projection point outside the edit
  region (`projection.photo_start`): the region shows the asked class, the rest the reconstruction;
- the edited 64-px crop is composited back into the photo at the photo's size (Poisson), so
  written images, masks and label maps are photo-sized and pixels outside the dilated edit
  region are the photo's own bytes.

The photo's class replaces the class the recipe draws for generated sources, and is the label map's
base class. With `classes: folders` (an ImageFolder layout: `images` holds one subfolder per class,
named as the model names it) it is the folder's class, and the projection fixes y to it. Without it
the projection optimises a soft class and its argmax is used: the model's estimate of what the photo
looks like, which can be wrong (docs/PHOTOS.md).
`params.source.image` records the photo (path relative to the recipe folder, sha256), crop,
projection preset, point and PSNR. With a judge (terrain64 has one) the rendered map and
`label_agreement` are measured on the photo-sized image at the model's scale (`judge_photo`).
No file I/O here except reading the photos.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .composite import composite as composite_photo, to_photo_frame
from .engine import render
from .images import to_uint8
from .judges import Judge, agreement, judge_for
from .photos import Photo, find_class_photos, find_photos, load_photo
from .pipeline import (RenderedVariant, blends_for, class_weight_maps, edit_classes, label_swap_for, labels_for,
                       locality, prepare_masks)
from .projection import PRESETS, Crop, Projection, ProjectionSettings, edit_region, photo_start
from .projection_cache import ProjectionCache
from .recipes import Recipe
from .recipes.variants import Source, Variant


def photo_spec(recipe: Recipe) -> dict | None:
    """The recipe's `source.images` spec, or None for generated sources."""
    src = recipe.data.get("source") or {}
    if not src.get("images"):
        return None
    return {"images": src["images"], "projection": src.get("projection", "default"),
            "classes": "folders" if src.get("classes") == "folders" else None}


@dataclass(frozen=True)
class PhotoSet:
    photos: tuple[Photo, ...]          # sorted by path; names relative to the recipe folder
    preset: str
    settings: ProjectionSettings
    classes: tuple[int | None, ...] = ()   # per photo: its known class id (`classes: folders`); empty: unknown

    def class_of(self, photo_index: int) -> int | None:
        return self.classes[photo_index] if self.classes else None

    def for_variant(self, index: int) -> Photo:
        return self.photos[index % len(self.photos)]


def load_photo_set(recipe: Recipe) -> PhotoSet:
    """Read the recipe's photos (confined to its folder; PhotoError with the reason otherwise)."""
    spec = photo_spec(recipe)
    if spec is None:
        raise ValueError(f"recipe {recipe.name!r} has no photo source (source.images)")
    if spec["projection"] not in PRESETS:
        raise ValueError(f"recipe {recipe.name!r}: source.projection must be one of {sorted(PRESETS)}")
    base = Path(recipe.base_dir)
    if spec["classes"] == "folders":
        found = find_class_photos(spec["images"], base)
        photos = tuple(load_photo(p, base) for p, _ in found)
        classes = tuple(recipe.info.class_id(c) for _, c in found)
        return PhotoSet(photos, spec["projection"], PRESETS[spec["projection"]], classes)
    photos = tuple(load_photo(p, base) for p in find_photos(spec["images"], base))
    return PhotoSet(photos, spec["projection"], PRESETS[spec["projection"]])


@dataclass
class PhotoRenderedVariant(RenderedVariant):
    photo_record: dict | None = None

    @property
    def params(self) -> dict:
        p = self.variant.to_dict()
        p["source"]["image"] = self.photo_record
        return p


def render_photo_variants(generator, recipe: Recipe, variants: list[Variant], photo_set: PhotoSet,
                          projections: dict[str, Projection]) -> list[PhotoRenderedVariant]:
    """Render variants over photos (one batched engine call) and composite each into its photo.

    `projections` maps a photo's name to its one-row projection (from `ProjectionCache.load`)."""
    if not variants:
        return []
    gen, info, res = generator, recipe.info, generator.resolution
    photos = [photo_set.for_variant(v.index) for v in variants]
    projs = [projections[ph.name] for ph in photos]
    point = projs[0].point
    if any(p.point != point for p in projs):
        raise ValueError("the photos' projections were made at different points; rebuild the projection cache")
    known = [photo_set.class_of(v.index % len(photo_set.photos)) for v in variants]
    base_ids = [k if k is not None else p.classes[0] for k, p in zip(known, projs)] if info.n_classes else \
        [None] * len(projs)
    # The photo's own class (known, else the projection's estimate) replaces the drawn one (module docstring).
    variants = [dataclasses.replace(v, source=Source(v.source.seed, info.class_names[c], c, None))
                if c is not None else v for v, c in zip(variants, base_ids)]
    per_masks = prepare_masks(recipe, variants, res)
    z = torch.cat([p.z for p in projs])
    cv = torch.cat([p.class_vector for p in projs]) if info.n_classes else None
    feats = torch.cat([p.features for p in projs]) if not isinstance(projs[0].features, tuple) else \
        tuple(torch.cat(ts) for ts in zip(*[p.features for p in projs]))
    blends = blends_for(gen, variants, per_masks)
    swap = label_swap_for(variants, per_masks, gen.n_stages)
    where = edit_region(swap, blends, len(variants), res).to(gen.device, gen.dtype)
    edited = to_uint8(render(gen, z, cv, swap=swap, blends=blends, start=photo_start(gen, point, feats, where)))
    out = []
    for k, (v, ph, pr, ms) in enumerate(zip(variants, photos, projs, per_masks)):
        crop = pr.crops[0]
        union = 1 - np.prod([1 - m for m in ms], axis=0) if ms else np.zeros((res, res), np.float32)
        edit_photo_mask = to_photo_frame(union, crop)
        image, region = composite_photo(ph.pixels, edited[k], crop, edit_photo_mask)
        label_map = None
        if info.n_classes:
            small = class_weight_maps(info.n_classes, v, ms).argmax(0)
            label_map = np.full(region.shape, base_ids[k], np.int64)
            up = F.interpolate(torch.from_numpy(small)[None, None].float(), size=(crop.size, crop.size),
                               mode="nearest")[0, 0].long().numpy()
            label_map[crop.y:crop.y + crop.size, crop.x:crop.x + crop.size] = up
        label_map, label, label_id, soft, source_class = labels_for(recipe, v, label_map)
        record = {"path": ph.name, "sha256": ph.sha256, "crop": [crop.x, crop.y, crop.size],
                  "size": [crop.width, crop.height], "projection": photo_set.preset, "point": point,
                  "psnr": round(float(pr.psnr[0]), 3)}
        if known[k] is not None:
            record["class_from"] = "folder"
        out.append(PhotoRenderedVariant(
            variant=v, image=image, source_image=ph.pixels, label_map=label_map,
            mask=(region * 255).astype(np.uint8), label=label, label_id=label_id, soft_label=soft,
            source_class=source_class, edit_classes=edit_classes(v),
            locality=locality(image, ph.pixels, edit_photo_mask), photo_record=record))
    judge = judge_for(gen) if info.n_classes else None
    if judge is not None:
        for rv, pr in zip(out, projs):
            rv.rendered_map = judge_photo(judge, rv.image, pr.crops[0], res)
            rv.label_agreement = agreement(rv.label_map, rv.rendered_map)
    return out


def judge_photo(judge: Judge, image: np.ndarray, crop: Crop, resolution: int) -> np.ndarray:
    """What the judge sees in a photo-sized image `[H, W, 3]`, as a photo-sized map `[H, W]` uint8.

    The judge learnt the model's scale (a crop of `resolution` pixels), so the whole photo is first
    scaled by `resolution / crop.size` (box filter; sides rounded to multiples of 8, which the judge
    needs, so the aspect ratio may change by a few percent), classified, and the map scaled back
    (nearest)."""
    s = resolution / crop.size
    size = tuple(max(24, 8 * round(n * s / 8)) for n in (crop.width, crop.height))
    small = np.array(Image.fromarray(image).resize(size, Image.BOX))   # writable: torch.from_numpy warns otherwise
    seen = judge.classify(small[None])[0]
    return np.asarray(Image.fromarray(seen).resize((crop.width, crop.height), Image.NEAREST))


def batch_renderer(generator, recipe: Recipe, cache_dir: Path):
    """For the batch runner: read the photos, make sure every projection is in `cache_dir` (the slow
    step, once per photo), and return `render(generator, recipe, variants)` over them."""
    photo_set = load_photo_set(recipe)
    cache = ProjectionCache(cache_dir)
    loaded = cache.load(generator, photo_set.photos, photo_set.settings, photo_set.classes or None)
    projections = {ph.name: p for ph, p in zip(photo_set.photos, loaded)}

    def render_fn(gen, rec, variants):
        return render_photo_variants(gen, rec, variants, photo_set, projections)
    return render_fn
