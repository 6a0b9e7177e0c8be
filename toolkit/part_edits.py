"""Regions that follow the content: `{part: ...}` regions and matched references, per variant.

A recipe's part region is not known until its source is rendered: it is the set of pixels the
part model assigns to the named parts in *that* source's own part map (grown and feathered as
asked). A matched reference (`reference: {match: eyes_mouth, candidates: 32}`) is not known
until the candidates are rendered: the pipeline picks, per variant, the candidate whose part mask
overlaps the source's best and whose colours around the region are closest, so the pasted part
sits where the source's part is and meets skin of the same tone.

Score of a candidate c for a source s and parts P (higher is better):

    score = IoU(mask_s(P), mask_c(P)) − COLOUR_WEIGHT · colour
    colour = mean over R, G, B of |mean_ring(s) − mean_ring(c)| / 255

where the ring is the band of `ring_px` pixels around the source's part mask (outside it), the
same pixels in both images. A 10-level difference per channel (0.04) costs 0.16 of IoU. Ties
go to the first candidate; candidates are drawn from the recipe's reference seed spec on their
own random stream, so the choice is deterministic per variant. The chosen seed and its score,
IoU and colour term are recorded in the variant's params.

The source features come from the source render the pipeline does anyway (`capture`): no
second pass. Candidates cost one extra render each (their features and images), done in chunks.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .engine import render_with_features
from .images import to_uint8
from .masks import PartRegion, gaussian_feather
from .parts import PartModel, segment_features, shipped_path
from .recipes.files import resolve_path
from .recipes.variants import BlendEdit, Variant
from .sampling import sample_latents

COLOUR_WEIGHT = 4.0
CANDIDATE_CHUNK = 64


def needs_parts(variants: list[Variant]) -> bool:
    return any(isinstance(e.region, PartRegion) or (isinstance(e, BlendEdit) and e.reference.match)
               for v in variants for e in v.edits)


def part_model_file(recipe, generator) -> Path | None:
    """The file `part_model_for` loads: the recipe's `parts` file (inside its folder), else the one
    shipped for the zoo model, else None. The batch runner records its sha256 in the dataset."""
    rel = recipe.data.get("parts")
    if rel:
        return resolve_path(rel, recipe.base_dir, "a part model file")
    prov = getattr(generator, "provenance", None)
    if prov is None or prov.source != "zoo" or not shipped_path(prov.model_id).is_file():
        return None
    return shipped_path(prov.model_id)


def part_model_for(recipe, generator, required: bool = True) -> PartModel | None:
    """The recipe's `parts` file (inside its folder), else the part model shipped for the model;
    None when there is none and it is not `required` (a recipe without part regions)."""
    path = part_model_file(recipe, generator)
    if path is None and not required:
        return None
    if path is None:
        raise ValueError(f"recipe {recipe.name!r} uses parts ({{part: ...}} regions or reference match) but no part "
                         f"model is known for {generator.name_for_errors}: make one with `python -m toolkit parts "
                         "MODEL --parts K --out FILE`, name its parts, and set `parts: FILE` in the recipe")
    pm = PartModel.load(path)
    pm.check(generator)
    return pm


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Binary dilation by a disc of radius `px` pixels."""
    if px <= 0:
        return mask
    r = torch.arange(-px, px + 1, dtype=torch.float32)
    disc = ((r[:, None] ** 2 + r[None, :] ** 2) <= px * px + 1e-6).float()[None, None]
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    return (F.conv2d(m, disc, padding=px)[0, 0] > 0.5).numpy()


def region_mask(labels: np.ndarray, ids: list[int], grow: int = 0, feather: float = 0.0) -> np.ndarray:
    """`[H, W]` float32 in [0, 1]: pixels of `labels` in `ids`, grown by `grow` px, then feathered
    (Gaussian, sigma = feather × side, as for every other region)."""
    m = dilate(np.isin(labels, ids), int(grow)).astype(np.float32)
    return gaussian_feather(m, float(feather) * labels.shape[-1])


def match_scores(src_labels: np.ndarray, src_image: np.ndarray, cand_labels: np.ndarray, cand_images: np.ndarray,
                 ids: list[int], ring_px: int) -> np.ndarray:
    """`[C, 3]` (score, IoU, colour) of each candidate for one source (see the module docstring)."""
    s = np.isin(src_labels, ids)
    c = np.isin(cand_labels, ids)
    inter = (c & s).sum((1, 2))
    union = (c | s).sum((1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    ring = dilate(s, ring_px) & ~s
    if not ring.any():              # no part in the source (or it covers everything): compare whole images
        ring = np.ones_like(s)
    mu_s = src_image[ring].astype(np.float64).mean(0)
    mu_c = cand_images[:, ring].astype(np.float64).mean(1)
    colour = np.abs(mu_c - mu_s).mean(1) / 255.0
    return np.stack([iou - COLOUR_WEIGHT * colour, iou, colour], 1)


@torch.no_grad()
def _render_candidates(gen, pm: PartModel, seeds: list[int], y, trunc):
    labels, images = [], []
    for i in range(0, len(seeds), CANDIDATE_CHUNK):
        z = sample_latents(gen, seeds[i:i + CANDIDATE_CHUNK], trunc)
        yy = None if y is None else y[i:i + CANDIDATE_CHUNK]
        img, st = render_with_features(gen, z, yy, capture=pm.points, truncation=trunc)
        labels.append(segment_features(pm, st, gen.resolution).cpu().numpy())
        images.append(to_uint8(img))
    return np.concatenate(labels), np.concatenate(images)


def resolve(gen, pm: PartModel, variants: list[Variant], per_masks: list[list], src_labels: np.ndarray,
            src_images: np.ndarray, trunc) -> tuple[list[Variant], list[list]]:
    """Fill in each variant's part-region masks (from its source's part map) and choose its matched
    references; returns the variants with chosen seeds recorded, and the completed masks."""
    variants, out_m = list(variants), []
    ring_px = max(2, gen.resolution // 16)
    for k, v in enumerate(variants):
        ms = list(per_masks[k])
        for j, e in enumerate(v.edits):
            if isinstance(e.region, PartRegion):
                ms[j] = region_mask(src_labels[k], pm.ids(list(e.region.parts)), e.region.grow, e.region.feather)
        out_m.append(ms)
    for j, e0 in enumerate(variants[0].edits if variants else ()):
        if not (isinstance(e0, BlendEdit) and e0.reference.candidates):
            continue
        n = len(e0.reference.candidates)
        seeds = [s for v in variants for s in v.edits[j].reference.candidates]
        y = None
        if gen.n_classes:
            y = torch.tensor([v.edits[j].reference.class_id for v in variants for _ in range(n)], device=gen.device)
        cand_labels, cand_images = _render_candidates(gen, pm, seeds, y, trunc)
        for k, v in enumerate(variants):
            ref = v.edits[j].reference
            sc = match_scores(src_labels[k], src_images[k], cand_labels[k * n:(k + 1) * n],
                              cand_images[k * n:(k + 1) * n], pm.ids(list(ref.match)), ring_px)
            best = int(np.argmax(sc[:, 0]))
            chosen = dataclasses.replace(ref, seed=int(ref.candidates[best]), candidates=(),
                                         score=tuple(round(float(x), 6) for x in sc[best]))
            edits = list(v.edits)
            edits[j] = dataclasses.replace(edits[j], reference=chosen)
            variants[k] = v = dataclasses.replace(v, edits=tuple(edits))
    return variants, out_m
