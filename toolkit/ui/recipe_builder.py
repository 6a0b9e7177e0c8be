"""Editor state → recipe data (the dict `toolkit.recipes.save_recipe` validates and writes).

Why a module: both editor pages turn what the user drew and chose into the recipe format, and
the tests check that exactly this output runs in the batch runner. It assembles a dict (regions
become `{mask: <key>}` references to the drawn masks, which `save_recipe` writes as PNGs) that
pins the page's source seed as variant 0's, so the page's preview (`preview_recipe` +
`preview_variants`, rendered by `toolkit.pipeline`) is variant 0 of what "Save as recipe" writes.
Validation and sampling stay in `toolkit.recipes`, rendering in `toolkit.pipeline`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..recipes import LabelSwapEdit, Recipe, Variant, parse_recipe, with_masks

PREVIEW_NAME = "preview"


@dataclass
class Randomise:
    """Optional per-variant randomisation offered by the save form."""
    translate: float = 0.0                # region jitter: ± fraction of the image
    scale: tuple[float, float] | None = None
    rotate: float = 0.0                   # degrees
    feather: float = 0.0
    extra_classes: list[str] = field(default_factory=list)   # label swap: also swap to these
    source_classes: list[str] = field(default_factory=list)  # conditional sources: draw from these
    random_reference_seeds: bool = False  # blend: a fresh reference per variant

    def region(self, key: str) -> dict:
        r: dict = {"mask": key}
        jitter: dict = {}
        if self.translate > 0:
            jitter["translate"] = float(self.translate)
        if self.scale and tuple(self.scale) != (1.0, 1.0):
            jitter["scale"] = [float(self.scale[0]), float(self.scale[1])]
        if self.rotate > 0:
            jitter["rotate"] = float(self.rotate)
        if jitter:
            r["jitter"] = jitter
        if self.feather > 0:
            r["feather"] = float(self.feather)
        return r

    def part_region(self, parts: list[str], grow: int = 1) -> dict:
        """A `{part: ...}` region (the app's Parts mode): it follows each source, so no jitter."""
        r: dict = {"part": list(parts), "grow": int(grow)}
        if self.feather > 0:
            r["feather"] = float(self.feather)
        return r


class EmptyDrawing(ValueError):
    pass


def _common(model: str, description: str, count: int, seed: int) -> dict:
    return {"description": description, "model": model, "seed": int(seed), "count": int(count)}


def _source(classes: list[str] | None, source_seed: int | None) -> dict:
    src: dict = {}
    if classes:
        src["classes"] = list(classes)
    if source_seed is not None:
        src["seeds"] = [int(source_seed)]       # variant 0 is the source the user designed on
    return src


def preview_recipe(data: dict, masks: dict[str, np.ndarray], generator, base_dir=".") -> Recipe:
    """The recipe "Save as recipe" would write, held in memory: the same data and the same 8-bit
    masks (`save_recipe`'s own conversion), checked against the loaded generator."""
    data, _, stand_ins = with_masks(data, PREVIEW_NAME, masks)
    return parse_recipe(data, "<the page's recipe>", base_dir, generator=generator, masks=stand_ins)


def preview_variants(recipe: Recipe, strengths: tuple[float, ...] | None = None) -> list[Variant]:
    """Variant 0, or one copy of it per label-swap strength (the label-swap page's morph strip)."""
    v = recipe.variant(0)
    if strengths is None:
        return [v]
    return [dataclasses.replace(v, edits=tuple(dataclasses.replace(e, strength=float(s))
                                               if isinstance(e, LabelSwapEdit) else e for e in v.edits))
            for s in strengths]


def swap_recipe(model: str, source_class: str, targets: list[str], weights: np.ndarray,
                stages: tuple[int, int], strength: float, rnd: Randomise | None = None,
                count: int = 16, seed: int = 0, source_seed: int | None = None,
                parts: dict[int, list[str]] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """One `label_swap` edit per target class with a drawn region; masks keyed `swap<k>`.
    `source_seed`: the page's source, pinned as variant 0's. `parts`: {target index: part names}
    for targets whose region is parts of the source (the Parts mode) instead of the drawing."""
    rnd, parts = rnd or Randomise(), parts or {}
    edits, masks = [], {}
    for k, (cls, w) in enumerate(zip(targets, weights)):
        if k not in parts and float(w.max()) <= 0:
            continue
        key = f"swap{k}"
        if k in parts:
            region = rnd.part_region(parts[k])
        else:
            masks[key] = np.clip(w, 0, 1).astype(np.float32)
            region = rnd.region(key)
        extra = [c for c in rnd.extra_classes if c != cls]
        to = {"choice": [cls] + extra} if extra else cls
        edits.append({"label_swap": {"to": to, "region": region,
                                     "stages": [int(stages[0]), int(stages[1])], "strength": float(strength)}})
    if not edits:
        raise EmptyDrawing("nothing is drawn: paint a region for at least one target class first")
    data = _common(model, f"Label swap to {', '.join(targets)} drawn in the app", count, seed)
    data["source"] = _source(list(rnd.source_classes) or [source_class], source_seed)
    data["edits"] = edits
    data["output"] = {"save_source": True}
    return data, masks


def blend_recipe(model: str, references: list[dict], masks_in: np.ndarray, strength: list[float],
                 rnd: Randomise | None = None, source_class: str | None = None, label: str | None = None,
                 count: int = 16, seed: int = 0, source_seed: int | None = None,
                 parts: dict[int, list[str]] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """One `blend` edit per reference with a region; `references` are `{"seed": s, "class": c|None}`.
    `parts`: {reference index: part names} for references whose region is parts of the source."""
    rnd, parts = rnd or Randomise(), parts or {}
    edits, masks = [], {}
    for j, (ref, m) in enumerate(zip(references, masks_in)):
        if j not in parts and float(m.max()) <= 0:
            continue
        key = f"ref{j}"
        if j in parts:
            region = rnd.part_region(parts[j])
        else:
            masks[key] = np.clip(m, 0, 1).astype(np.float32)
            region = rnd.region(key)
        r: dict = {"seed": {"range": [0, 1_000_000]} if rnd.random_reference_seeds else int(ref["seed"])}
        if ref.get("class") is not None:
            r["class"] = ref["class"]
        edits.append({"blend": {"reference": r, "region": region,
                                "strength": [float(s) for s in strength]}})
    if not edits:
        raise EmptyDrawing("nothing is drawn: paint a region for at least one reference first")
    data = _common(model, "Feature blend drawn in the app", count, seed)
    src = _source(list(rnd.source_classes) or [source_class] if source_class is not None else None, source_seed)
    if src:
        data["source"] = src
    data["edits"] = edits
    data["output"] = {"save_source": True, **({"label": label} if label else {})}
    return data, masks
