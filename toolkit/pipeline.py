"""The render pipeline: typed variants → engine calls → images, labels and masks.

The one way a recipe's variants become pixels: the batch runner, the app's preview and the demo
all call `render_variants`, so what a user designs is, pixel for pixel, what the batch writes.
Per batch of variants it rasterises each edit's region (fixed regions once per recipe),
composites them (later regions cover earlier ones), makes one batched engine call for the
edited images and one for the unedited sources (per distinct truncation value), and derives
each variant's label map, soft label and locality from the variant's recorded parameters only,
so a manifest row's `params` are enough to redo its image. When the model has a judge
(`toolkit.judges`), each conditional variant also gets the map of what the judge sees in the
image (`rendered_map`) and `label_agreement`, the share of the label map's pixels it confirms.
When a part model is known for the recipe's model (the recipe's `parts:` file, else the one shipped
for the zoo model), every variant also gets its `part_map`: the part ids of the edited image, from
the features that very render captured (no second pass). No file I/O here (beyond loading the
judge and, unless the caller passes it, the part model).

Named `pipeline`, not `render`: `toolkit.render` is the engine's public function, and a
submodule of that name would replace it on the package once imported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .engine import Blend, LabelSwap, render, render_with_features
from .images import to_uint8
from .judges import agreement, judge_for
from .masks import PartRegion, rasterize_region
from .part_edits import needs_parts, part_model_for, resolve as resolve_parts
from .parts import PartModel, segment_features
from .recipes import Recipe, Variant
from .recipes.variants import BlendEdit, LabelSwapEdit
from .sampling import sample_latents

NON_FINITE_WEIGHTS = ("the model's weights contain non-finite values (NaN or inf), so its images are not "
                      "finite either; use other weights (or re-export them)")
NON_FINITE_OUTPUT = ("the rendered image has non-finite values (NaN or inf) although the weights are finite "
                     "(an overflow, e.g. in half precision); render in float32")


@dataclass
class RenderedVariant:
    variant: Variant
    image: np.ndarray                  # [H, W, 3] uint8
    source_image: np.ndarray | None    # [H, W, 3] uint8, the unedited source
    label_map: np.ndarray | None       # [H, W] uint8 class ids (conditional models)
    mask: np.ndarray                   # [H, W] uint8 0..255, union of the edit regions
    label: str
    label_id: int
    soft_label: dict[str, float]
    source_class: str | None
    edit_classes: list[str]
    locality: float
    problem: str | None = None         # set when the image is not finite: the variant must not count as done
    part_map: np.ndarray | None = None  # [H, W] uint8 part ids of the *edited* image, when a part model is known
    rendered_map: np.ndarray | None = None   # [H, W] uint8 class ids the model's judge sees (models with a judge)
    label_agreement: float | None = None     # share of label-map pixels the judge confirms (toolkit.judges.agreement)

    @property
    def index(self) -> int:
        return self.variant.index

    @property
    def seed(self) -> int:
        return self.variant.seed

    @property
    def params(self) -> dict:
        """The manifest's `params`: the variant as JSON-ready data (`Variant.to_dict`)."""
        return self.variant.to_dict()


def edit_masks(recipe: Recipe, variant: Variant, resolution: int) -> list[np.ndarray]:
    """Each edit's region rasterised at `resolution` (before compositing), in edit order.
    Regions the recipe draws no random parts for are rasterised once (`recipe.rasters`)."""
    out = []
    for j, e in enumerate(variant.edits):
        if isinstance(e.region, PartRegion):
            out.append(None)        # follows the source: filled in once the source is rendered
            continue
        if not recipe.region_is_fixed(j):
            out.append(rasterize_region(e.region, resolution, recipe.load_mask))
            continue
        key = (e.region, resolution)
        m = recipe.rasters.get(key)
        if m is None:
            m = recipe.rasters.put(key, rasterize_region(e.region, resolution, recipe.load_mask))
        out.append(m)
    return out


def composite(ms: list[np.ndarray]) -> list[np.ndarray]:
    """Later regions cover earlier ones: m'_j = m_j · Π_{k>j} (1 − m_k); Σ_j m'_j ≤ 1."""
    out = [None] * len(ms)
    cover = np.ones_like(ms[0]) if ms else None
    for j in range(len(ms) - 1, -1, -1):
        out[j] = ms[j] * cover
        cover = cover * (1 - ms[j])
    return out


def class_weight_maps(n_classes: int, variant: Variant, masks: list[np.ndarray]) -> np.ndarray:
    """`[n_classes, R, R]` final per-pixel class weights of a conditional variant (sum to 1).

    Base class weight 1 − Σ swap weights; label swaps (strength × composited region) move weight
    to their class; then each swap's `reference` and each blend moves (its largest strength × its
    composited mask) of every pixel's weight to its reference's class, since those pixels' features
    come from it (in the engine's order: swap references before blends)."""
    swaps = [(j, e) for j, e in enumerate(variant.edits) if isinstance(e, LabelSwapEdit)]
    blends = [(j, e) for j, e in enumerate(variant.edits) if isinstance(e, BlendEdit)]
    sw = composite([e.strength * masks[j] for j, e in swaps]) if swaps else []
    bm = composite([masks[j] for j, _ in blends]) if blends else []
    w = np.zeros((n_classes,) + masks[0].shape, np.float64)
    base = variant.source.class_id
    w[base] = 1.0
    for (_, e), m in zip(swaps, sw):
        w[base] -= m
        w[e.to_id] += m
    regions = composite([masks[j] for j, _ in swaps]) if swaps else []
    for (_, e), m in zip(swaps, regions):
        if e.reference is not None:     # the swap's reference: a blend of class `to` over the swap's region
            a = max(e.reference_strength) * m
            w *= (1 - a)[None]
            w[e.to_id] += a
    for (_, e), m in zip(blends, bm):
        a = max(e.strength) * m
        w *= (1 - a)[None]
        w[e.reference.class_id] += a
    return w


def locality(edited: np.ndarray, source: np.ndarray, region: np.ndarray) -> float:
    """Mean |edited − source| outside the edit region ÷ mean inside (0 = perfectly local).

    Pixels are weighted by the soft region (inside weight m, outside 1 − m) and the change is
    the mean absolute difference over RGB in 8-bit levels. NaN when the region is empty or
    covers everything; inf when nothing changed inside but something changed outside."""
    d = np.abs(edited.astype(np.float64) - source.astype(np.float64)).mean(-1)
    m = region.astype(np.float64)
    if m.max() > 1:
        m = m / 255.0
    win, wout = m.sum(), (1 - m).sum()
    if win <= 0 or wout <= 0:
        return float("nan")
    inside, outside = (m * d).sum() / win, ((1 - m) * d).sum() / wout
    if inside == 0:
        return 0.0 if outside == 0 else float("inf")
    return float(outside / inside)


def prepare_masks(recipe: Recipe, variants: list[Variant], resolution: int,
                  executor=None) -> list[list[np.ndarray]]:
    """The edit masks of each variant (CPU work: rasterising, jittering, feathering).

    On a GPU this, not the render, can be the slow part (faces64-parts: ~4 ms per variant on one
    core). A batch runner can call it for the next batch while the current one renders, and pass
    a `concurrent.futures` executor to spread variants over threads (NumPy FFTs and PIL
    transforms release the GIL); then hand the result to `render_variants(..., masks=...)`."""
    if executor is None:
        return [edit_masks(recipe, v, resolution) for v in variants]
    return list(executor.map(lambda v: edit_masks(recipe, v, resolution), variants))


def render_variants(generator, recipe: Recipe, variants: list[Variant],
                    masks: list[list[np.ndarray]] | None = None, part_model: PartModel | None = None
                    ) -> list[RenderedVariant]:
    """Render variants in one batched engine call for the edits and one for the unedited sources
    (a pair per distinct truncation value), on the generator's device.

    `recipe` gives the mask files, the fixed-region cache and the label of unconditional models;
    it must fit the generator (`recipe.for_generator(generator)` checks that). `masks`: the result
    of `prepare_masks(recipe, variants, generator.resolution)` when the caller prepared them ahead.
    A variant whose image is not finite comes back with `problem` set (and is not to be written).
    With a judge (the model's zoo entry names one), `rendered_map` and `label_agreement` are set.
    `part_model`: the recipe's part model when the caller resolved it once (the batch runner does, with
    `part_edits.part_model_for(recipe, generator, required=False)`); None looks it up here. With one,
    every variant's `part_map` is set."""
    if not variants:
        return []
    if (recipe.data.get("source") or {}).get("images"):
        raise ValueError(f"recipe {recipe.name!r} edits photos (source.images): its variants render with "
                         "toolkit.photo_variants after projection (the batch runner does this)")
    if masks is not None and len(masks) != len(variants):
        raise ValueError(f"got masks for {len(masks)} variants but {len(variants)} variants")
    info, gen = recipe.info, generator
    if info is None or (gen.n_classes, gen.n_blend_points) != (info.n_classes, info.n_blend_points):
        raise ValueError(f"recipe {recipe.name!r} does not fit this generator ({gen.n_classes} classes, "
                         f"{gen.n_blend_points} blend points): bind it first with recipe.for_generator(generator)")
    if masks is None:
        masks = prepare_masks(recipe, variants, gen.resolution)
    pm = part_model if part_model is not None else part_model_for(recipe, gen, required=needs_parts(variants))
    groups: dict = {}
    for k, v in enumerate(variants):
        groups.setdefault(v.source.truncation, []).append(k)
    results: list = [None] * len(variants)
    for trunc, idx in groups.items():
        for k, rv in zip(idx, _render_group(gen, recipe, [variants[k] for k in idx], [masks[k] for k in idx], trunc,
                                                pm)):
            results[k] = rv
    judge = judge_for(gen) if info.n_classes else None
    if judge is not None:
        for rv, seen in zip(results, judge.classify(np.stack([rv.image for rv in results]))):
            rv.rendered_map = seen
            rv.label_agreement = agreement(rv.label_map, seen)
    return results


def label_swap_for(variants: list[Variant], per_masks, n_stages: int) -> LabelSwap | None:
    """All label swaps of the batch as one LabelSwap: classes [B, K], weights [B, K, H, W] and
    each edit's own stage range as a [B, K, S] tensor."""
    idx = [j for j, e in enumerate(variants[0].edits) if isinstance(e, LabelSwapEdit)]
    if not idx:
        return None
    cls = torch.tensor([[v.edits[j].to_id for j in idx] for v in variants])
    w = np.stack([np.stack(composite([v.edits[j].strength * ms[j] for j in idx])) for v, ms in zip(variants, per_masks)])
    active = torch.zeros(len(variants), len(idx), n_stages, dtype=torch.bool)
    for b, v in enumerate(variants):
        for k, j in enumerate(idx):
            a, z = v.edits[j].stages
            active[b, k, a:z + 1] = True
    return LabelSwap(cls, torch.from_numpy(w).float(), active)


def _batch_blend(gen, seeds, classes, masks, strengths, truncation) -> Blend:
    """One `Blend` over the batch: per variant a reference seed (and class, None for unconditional
    models), its composited `[R, R]` mask and its strength(s)."""
    zr = sample_latents(gen, seeds, truncation)
    yr = None if classes is None else torch.tensor(classes, device=gen.device)
    mask = torch.from_numpy(np.stack(masks)).float()
    return Blend(zr, mask, torch.tensor(strengths, dtype=torch.float32), yr)


def swap_reference_blends(gen, variants: list[Variant], per_masks, truncation=None) -> list[Blend]:
    """One `Blend` per label swap with a `reference`: a sample of the swap's target class (the reference's
    seed) blended into the swap's region (composited among the swaps, as `label_swap_for` does) at the
    reference's strengths, so the region gets the class's texture as well as its colour.

    The region is used as it is: blending only where it is fully inside each point's grid (a cell only
    partly inside mixes the reference's features with the source's) was measured and neither removed the
    coloured fringes nor kept the judge's share (docs/PHOTOS.md)."""
    swaps = [j for j, e in enumerate(variants[0].edits) if isinstance(e, LabelSwapEdit)]
    if not any(variants[0].edits[j].reference is not None for j in swaps):
        return []
    sm = [composite([ms[j] for j in swaps]) for ms in per_masks]
    blends = []
    for n, j in enumerate(swaps):
        if variants[0].edits[j].reference is None:
            continue
        edits = [v.edits[j] for v in variants]
        blends.append(_batch_blend(gen, [e.reference.seed for e in edits], [e.to_id for e in edits],
                                   [m[n] for m in sm], [e.reference_strength for e in edits], truncation))
    return blends


def blends_for(gen, variants: list[Variant], per_masks, truncation=None) -> list[Blend]:
    """The batch's blends, in the order the engine applies them: first the label swaps' references
    (`swap_reference_blends`), then one `Blend` per blend edit: reference latents and classes, the
    composited masks (later regions cover earlier ones) and each variant's strengths."""
    blends = swap_reference_blends(gen, variants, per_masks, truncation)
    idx = [j for j, e in enumerate(variants[0].edits) if isinstance(e, BlendEdit)]
    if not idx:
        return blends
    bm = [composite([ms[j] for j in idx]) for ms in per_masks]
    for n, j in enumerate(idx):
        refs = [v.edits[j].reference for v in variants]
        blends.append(_batch_blend(gen, [r.seed for r in refs], [r.class_id for r in refs] if gen.n_classes else None,
                                   [m[n] for m in bm], [v.edits[j].strength for v in variants], truncation))
    return blends


def edit_classes(v: Variant) -> list[str]:
    """The classes a variant's edits bring in (swap targets, references with their own class)."""
    return [e.to if isinstance(e, LabelSwapEdit) else e.reference.class_name for e in v.edits
            if isinstance(e, LabelSwapEdit) or e.reference.class_name is not None]


def labels_for(recipe: Recipe, v: Variant, label_map):
    """(label map as uint8/uint16, label, label id, soft label, source class) of a variant from its
    class-id map (None for unconditional models: the recipe's label, or its name)."""
    info = recipe.info
    if label_map is None:
        label = recipe.data["output"].get("label") or recipe.name
        return None, label, 0, {label: 1.0}, None
    label_map = label_map.astype(np.uint8 if info.n_classes <= 256 else np.uint16)
    counts = np.bincount(label_map.ravel(), minlength=info.n_classes)
    soft = {info.class_names[c]: float(counts[c] / label_map.size) for c in np.nonzero(counts)[0]}
    label_id = int(counts.argmax())
    return label_map, info.class_names[label_id], label_id, soft, v.source.class_name


def _render_group(gen, recipe: Recipe, variants: list[Variant], per_masks: list[list[np.ndarray]],
                  trunc, pm: PartModel | None) -> list[RenderedVariant]:
    info, dev, res = recipe.info, gen.device, gen.resolution
    z = sample_latents(gen, [v.seed for v in variants], trunc)
    y = torch.tensor([v.source.class_id for v in variants], device=dev) if info.n_classes else None
    if pm is not None and needs_parts(variants):   # part regions / matched references: the source pass's features
        raw_src, states = render_with_features(gen, z, y, truncation=trunc, capture=pm.points)
        variants, per_masks = resolve_parts(gen, pm, variants, per_masks, segment_features(pm, states, res).cpu().numpy(),
                                            to_uint8(raw_src), trunc)
    else:
        raw_src = render(gen, z, y, truncation=trunc)
    blends = blends_for(gen, variants, per_masks, trunc)
    swap = label_swap_for(variants, per_masks, gen.n_stages)
    part_maps = None
    if pm is not None:   # what was rendered, per pixel: from the edited render's own features (same pass)
        raw, states = render_with_features(gen, z, y, swap=swap, blends=blends, truncation=trunc, capture=pm.points)
        part_maps = segment_features(pm, states, res).cpu().numpy().astype(np.uint8)
    else:
        raw = render(gen, z, y, swap=swap, blends=blends, truncation=trunc)
    finite = (torch.isfinite(raw).flatten(1).all(1) & torch.isfinite(raw_src).flatten(1).all(1)).tolist()
    problem = None
    if not all(finite):
        weights_ok = all(bool(torch.isfinite(p).all()) for p in gen.parameters())
        problem = NON_FINITE_OUTPUT if weights_ok else NON_FINITE_WEIGHTS
    images, sources = to_uint8(raw), to_uint8(raw_src)

    out = []
    for k, v in enumerate(variants):
        ms = per_masks[k]
        union = 1 - np.prod([1 - m for m in ms], axis=0) if ms else np.zeros((res, res), np.float32)
        label_map = class_weight_maps(info.n_classes, v, ms).argmax(0) if info.n_classes else None
        label_map, label, label_id, soft, source_class = labels_for(recipe, v, label_map)
        out.append(RenderedVariant(
            variant=v, image=images[k], source_image=sources[k], label_map=label_map,
            mask=np.round(np.clip(union, 0, 1) * 255).astype(np.uint8), label=label, label_id=label_id,
            soft_label=soft, source_class=source_class, edit_classes=edit_classes(v),
            locality=locality(images[k], sources[k], union), problem=None if finite[k] else problem,
            part_map=None if part_maps is None else part_maps[k]))
    return out
