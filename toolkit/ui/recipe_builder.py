"""Editor state → recipe data (the dict `toolkit.recipes.save_recipe` validates and writes).

Why a module: both editor pages turn what the user drew and chose into the recipe format, and
the tests check that exactly this output runs in the batch runner. It only assembles a dict
(regions become `{mask: <key>}` references to the drawn masks, which `save_recipe` writes as
PNGs); validation, sampling and rendering stay in `toolkit.recipes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


class EmptyDrawing(ValueError):
    pass


def _common(model: str, description: str, count: int, seed: int) -> dict:
    return {"description": description, "model": model, "seed": int(seed), "count": int(count)}


def swap_recipe(model: str, source_class: str, targets: list[str], weights: np.ndarray,
                stages: tuple[int, int], strength: float, rnd: Randomise | None = None,
                count: int = 16, seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """One `label_swap` edit per target class with a drawn region; masks keyed `swap<k>`."""
    rnd = rnd or Randomise()
    edits, masks = [], {}
    for k, (cls, w) in enumerate(zip(targets, weights)):
        if float(w.max()) <= 0:
            continue
        key = f"swap{k}"
        masks[key] = np.clip(w, 0, 1).astype(np.float32)
        extra = [c for c in rnd.extra_classes if c != cls]
        to = {"choice": [cls] + extra} if extra else cls
        edits.append({"label_swap": {"to": to, "region": rnd.region(key),
                                     "stages": [int(stages[0]), int(stages[1])], "strength": float(strength)}})
    if not edits:
        raise EmptyDrawing("nothing is drawn: paint a region for at least one target class first")
    data = _common(model, f"Label swap to {', '.join(targets)} drawn in the app", count, seed)
    data["source"] = {"classes": list(rnd.source_classes) or [source_class]}
    data["edits"] = edits
    data["output"] = {"save_source": True}
    return data, masks


def blend_recipe(model: str, references: list[dict], masks_in: np.ndarray, strength: list[float],
                 rnd: Randomise | None = None, source_class: str | None = None, label: str | None = None,
                 count: int = 16, seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """One `blend` edit per reference with a region; `references` are `{"seed": s, "class": c|None}`."""
    rnd = rnd or Randomise()
    edits, masks = [], {}
    for j, (ref, m) in enumerate(zip(references, masks_in)):
        if float(m.max()) <= 0:
            continue
        key = f"ref{j}"
        masks[key] = np.clip(m, 0, 1).astype(np.float32)
        r: dict = {"seed": {"range": [0, 1_000_000]} if rnd.random_reference_seeds else int(ref["seed"])}
        if ref.get("class") is not None:
            r["class"] = ref["class"]
        edits.append({"blend": {"reference": r, "region": rnd.region(key),
                                "strength": [float(s) for s in strength]}})
    if not edits:
        raise EmptyDrawing("nothing is drawn: paint a region for at least one reference first")
    data = _common(model, "Feature blend drawn in the app", count, seed)
    if source_class is not None:
        data["source"] = {"classes": list(rnd.source_classes) or [source_class]}
    data["edits"] = edits
    data["output"] = {"save_source": True, **({"label": label} if label else {})}
    return data, masks
