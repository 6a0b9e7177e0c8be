"""Typed variants: `expand(recipe data, info, base seed, i)` → the concrete `Variant` i.

Determinism: a variant is a pure function of (recipe, base seed, index). Each random part draws
from its own NumPy PCG64 stream seeded with `derive_seed(base seed, i, <part>)`, so a variant
does not depend on batch size, device, shard, resume or on which other variants are drawn, and
adding an edit at the end leaves the earlier edits' draws alone. Nothing here enumerates the
variants: index i is computed directly, whatever the count.

`Variant.to_json()` is what the manifest's `params` column holds; its format is the one
datasets have always recorded (the nested dict of earlier versions), so `Variant.from_json`
reads params written before these classes existed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..masks import Ellipse, MaskImage, PartRegion, Polygon, Region, random_blob_points, transform_points
from ..sampling import derive_seed
from .model_info import ModelInfo
from .schema import BLEND_PRESETS


@dataclass(frozen=True)
class Source:
    seed: int                           # the source latent's seed
    class_name: str | None = None       # conditional models
    class_id: int | None = None
    truncation: float | None = None


@dataclass(frozen=True)
class Reference:
    seed: int
    class_name: str | None = None
    class_id: int | None = None
    match: tuple = ()                   # parts to match on (empty: the seed is used as drawn)
    candidates: tuple[int, ...] = ()    # seeds still to compare; empty once the pipeline has chosen
    score: tuple = ()                   # (score, iou, colour) of the chosen candidate, once chosen
    n_candidates: int = 0


@dataclass(frozen=True)
class BlendEdit:
    reference: Reference
    strength: tuple[float, ...]         # one per blend point
    region: Region


@dataclass(frozen=True)
class LabelSwapEdit:
    to: str
    to_id: int
    strength: float
    stages: tuple[int, int]             # [first, last] inclusive
    region: Region
    reference: Reference | None = None  # `reference:` option: a sample of class `to` blended into the region
    reference_strength: tuple[float, ...] = ()   # its strength per blend point


Edit = Union[LabelSwapEdit, BlendEdit]


@dataclass(frozen=True)
class Variant:
    index: int
    source: Source
    edits: tuple[Edit, ...]

    @property
    def seed(self) -> int:
        return self.source.seed

    def to_dict(self) -> dict:
        """The JSON-ready params dict (the manifest format; see the module docstring)."""
        src: dict = {"seed": self.source.seed}
        if self.source.class_id is not None:
            src.update({"class": self.source.class_name, "class_id": self.source.class_id})
        if self.source.truncation is not None:
            src["truncation"] = self.source.truncation
        edits = []
        for e in self.edits:
            if isinstance(e, LabelSwapEdit):
                d = {"to": e.to, "to_id": e.to_id, "strength": e.strength, "stages": list(e.stages),
                     "region": region_to_dict(e.region)}
                if e.reference is not None:      # absent otherwise: params of earlier datasets stay as they were
                    d["reference"] = {"seed": e.reference.seed, "strength": list(e.reference_strength)}
                edits.append({"label_swap": d})
            else:
                ref: dict = {"seed": e.reference.seed}
                if e.reference.class_id is not None:
                    ref.update({"class": e.reference.class_name, "class_id": e.reference.class_id})
                if e.reference.match:
                    ref["match"] = {"part": list(e.reference.match), "candidates": e.reference.n_candidates}
                    if e.reference.score:
                        ref["match"].update(zip(("score", "iou", "colour"), e.reference.score))
                edits.append({"blend": {"reference": ref, "strength": list(e.strength),
                                        "region": region_to_dict(e.region)}})
        return {"source": src, "edits": edits}

    @property
    def params(self) -> dict:
        return self.to_dict()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, params: str | dict, index: int) -> "Variant":
        """Params as written in a manifest (text or dict) → Variant; ValueError saying what is wrong."""
        try:
            p = json.loads(params) if isinstance(params, str) else params
            s = p["source"]
            source = Source(int(s["seed"]), s.get("class"), _opt_int(s.get("class_id")), _opt_float(s.get("truncation")))
            edits: list[Edit] = []
            for e in p["edits"]:
                (kind, d), = e.items()
                if kind == "label_swap":
                    a, b = d["stages"]
                    r = d.get("reference")
                    ref = None if r is None else Reference(int(r["seed"]), d["to"], int(d["to_id"]))
                    edits.append(LabelSwapEdit(d["to"], int(d["to_id"]), float(d["strength"]), (int(a), int(b)),
                                               region_from_dict(d["region"]), ref,
                                               tuple(float(x) for x in r["strength"]) if r else ()))
                elif kind == "blend":
                    r = d["reference"]
                    m = r.get("match") or {}
                    score = tuple(float(m[k]) for k in ("score", "iou", "colour") if k in m)
                    edits.append(BlendEdit(Reference(int(r["seed"]), r.get("class"), _opt_int(r.get("class_id")),
                                                     tuple(m.get("part", ())), (), score, int(m.get("candidates", 0))),
                                           tuple(float(x) for x in d["strength"]), region_from_dict(d["region"])))
                else:
                    raise ValueError(f"unknown edit kind {kind!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"variant {index}: params are not a variant of this toolkit's format "
                             f"({type(e).__name__}: {e})") from None
        return cls(int(index), source, tuple(edits))


def _opt_int(v):
    return None if v is None else int(v)


def _opt_float(v):
    return None if v is None else float(v)


def region_to_dict(r: Region) -> dict:
    if isinstance(r, PartRegion):
        d = {"part": list(r.parts), "grow": r.grow}
    elif isinstance(r, Ellipse):
        d = {"shape": "ellipse", "center": list(r.center), "size": list(r.size), "angle": r.angle}
    elif isinstance(r, Polygon):
        d = {"shape": "polygon", "points": [list(p) for p in r.points]}
    else:
        d = {"mask": r.path, "translate": list(r.translate), "scale": r.scale, "rotate": r.rotate}
    if r.feather:
        d["feather"] = r.feather
    return d


def region_from_dict(d: dict) -> Region:
    f = float(d.get("feather", 0.0))
    if "part" in d:
        return PartRegion(tuple(d["part"]), int(d.get("grow", 0)), f)
    if "mask" in d:
        tx, ty = d.get("translate", (0.0, 0.0))
        return MaskImage(str(d["mask"]), (float(tx), float(ty)), float(d.get("scale", 1.0)),
                         float(d.get("rotate", 0.0)), f)
    if d.get("shape") == "polygon":
        return Polygon(tuple((float(x), float(y)) for x, y in d["points"]), f)
    if d.get("shape") == "ellipse":
        (cx, cy), (w, h) = d["center"], d["size"]
        return Ellipse((float(cx), float(cy)), (float(w), float(h)), float(d.get("angle", 0.0)), f)
    raise ValueError(f"not a concrete region: {d!r}")


# -- expansion -------------------------------------------------------------------------------------
def _rng(*keys) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(*keys)))


def _r6(x: float) -> float:
    return float(round(float(x), 6)) + 0.0   # + 0.0: no '-0.0' in manifests


def _draw(spec, rng: np.random.Generator, integer=False):
    """A fixed value, {choice: [...]} or {range: [lo, hi]} → one value."""
    if isinstance(spec, dict) and "choice" in spec:
        return spec["choice"][int(rng.integers(len(spec["choice"])))]
    if isinstance(spec, dict) and "range" in spec:
        lo, hi = spec["range"]
        if integer:
            return int(rng.integers(lo, hi, endpoint=True))
        return _r6(lo + (hi - lo) * rng.random())
    return spec


def region_is_fixed(spec: dict) -> bool:
    """True when a region spec draws nothing (no choice, blob or jitter): every variant has the same."""
    return not ("choice" in spec or "blob" in spec or "part" in spec or spec.get("jitter"))


def concrete_region(spec: dict, rng: np.random.Generator) -> Region:
    """Draw a region's random parts (choice, blob, jitter) → a concrete region."""
    if "choice" in spec:
        spec = spec["choice"][int(rng.integers(len(spec["choice"])))]
    if "part" in spec:     # follows the source: nothing to draw here (resolved when the source is rendered)
        p = spec["part"]
        return PartRegion(tuple(p) if isinstance(p, list) else (p,), int(spec.get("grow", 0)),
                          float(spec.get("feather", 0.0)))
    jit = spec.get("jitter") or {}
    # Always draw the jitter numbers (even when not asked for) so streams stay aligned.
    t = jit.get("translate", 0.0)
    tx, ty = (t, t) if isinstance(t, (int, float)) else t
    translate = (_r6(tx * (2 * rng.random() - 1)), _r6(ty * (2 * rng.random() - 1)))
    sc = jit.get("scale", 1.0)
    lo, hi = (sc, sc) if isinstance(sc, (int, float)) else sc
    scale = _r6(lo + (hi - lo) * rng.random())
    rotate = _r6(jit.get("rotate", 0.0) * (2 * rng.random() - 1))
    feather = float(spec.get("feather", 0.0))
    if "mask" in spec:
        return MaskImage(spec["mask"], translate, scale, rotate, feather)
    if "blob" in spec:
        b = spec["blob"]
        size = b["size"]
        size = _r6(size[0] + (size[1] - size[0]) * rng.random()) if isinstance(size, list) else float(size)
        c = b["center"]
        if isinstance(c, dict):
            x0, y0, x1, y1 = c["range"]
            c = [_r6(x0 + (x1 - x0) * rng.random()), _r6(y0 + (y1 - y0) * rng.random())]
        pts, center = random_blob_points(rng, c, size), c
    elif spec["shape"] == "rectangle":
        x0, y0, x1, y1 = spec["box"]
        pts, center = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], [(x0 + x1) / 2, (y0 + y1) / 2]
    elif spec["shape"] == "polygon":
        pts = spec["points"]
        center = [float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))]
    else:  # ellipse: stays an ellipse (exact), with the jitter folded in
        cx, cy = spec["center"]
        w, h = spec["size"]
        return Ellipse((_r6(cx + translate[0]), _r6(cy + translate[1])), (_r6(w * scale), _r6(h * scale)),
                       _r6(spec.get("angle", 0.0) + rotate), feather)
    pts = transform_points(pts, center, translate, scale, rotate)
    return Polygon(tuple((_r6(x), _r6(y)) for x, y in pts), feather)


def blend_preset(name: str, n_points: int) -> list[float]:
    """Strength per blend point for a named layer choice.

    coarse: the early points (after the stem up to the middle) — pose and layout come along;
    parts: the middle points (1..mid) — the part's shape and look, seams healed by later layers;
    texture: the late points (after the middle) — colour and fine texture only."""
    mid = n_points // 2
    if name == "coarse":
        return [1.0 if i < max(1, mid) else 0.0 for i in range(n_points)]
    if name == "parts":
        return [1.0 if 1 <= i <= max(1, mid) else 0.0 for i in range(n_points)]
    if name == "texture":
        return [1.0 if i > mid else 0.0 for i in range(n_points)]
    raise ValueError(f"unknown blend preset {name!r}: use one of {', '.join(BLEND_PRESETS)}")


def _blend_strength(spec, points, rng, n_points: int) -> tuple[float, ...]:
    s = spec
    if isinstance(s, dict) and "choice" in s:
        s = s["choice"][int(rng.integers(len(s["choice"])))]
    if isinstance(s, str):
        return tuple(blend_preset(s, n_points))
    if isinstance(s, list):
        return tuple(_r6(_draw(x, rng)) for x in s)
    v = _r6(_draw(s, rng))
    a, b = points if points is not None else (0, n_points - 1)
    return tuple(v if a <= k <= b else 0.0 for k in range(n_points))


def source_seed(data: dict, base_seed: int, i: int) -> int:
    pinned = data["source"].get("seeds") or []
    return int(pinned[i]) if i < len(pinned) else derive_seed(base_seed, i)


def expand(data: dict, info: ModelInfo, base_seed: int, i: int) -> Variant:
    """Variant i of a validated recipe (`data` with defaults filled) for the model `info`."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
        raise ValueError(f"variant index must be an integer ≥ 0, got {i!r}")
    i = int(i)
    src = data["source"]
    rng = _rng(base_seed, i, "source")
    cid = cname = trunc = None
    if info.n_classes:
        cl = src.get("classes", "all")   # photo sources with `folders`: drawn as 'all', replaced by the photo's class
        ids = range(info.n_classes) if cl in ("all", "folders") else [info.class_id(c) for c in (cl if isinstance(cl, list) else [cl])]
        cid = ids[int(rng.integers(len(ids)))]
        cname = info.class_names[cid]
    if "truncation" in src:
        trunc = float(_draw(src["truncation"], rng))
    source = Source(source_seed(data, base_seed, i), cname, cid, trunc)
    # Stage ranges come from one stream in edit order. Label swaps with the same `stages` spec
    # share one draw per variant (recipes written when all swaps had to share their stages
    # keep their variants); a different spec draws its own.
    stage_rng = _rng(base_seed, i, "swap-stages")
    stage_draws: dict[str, tuple[int, int]] = {}
    edits: list[Edit] = []
    for j, edit in enumerate(data["edits"]):
        rng = _rng(base_seed, i, "edit", j)
        if "label_swap" in edit:
            spec = edit["label_swap"]
            key = json.dumps(spec["stages"], sort_keys=True)
            if key not in stage_draws:
                st = _draw(spec["stages"], stage_rng)
                stage_draws[key] = (0, info.n_stages - 1) if st == "all" else (int(st[0]), int(st[1]))
            to = info.class_id(_draw(spec["to"], rng))
            strength = float(_draw(spec["strength"], rng))
            region = concrete_region(spec["region"], rng)
            ref, ref_strength = None, ()
            if spec.get("reference") is not None:   # its own stream: the swap's other draws stay as they were
                r, rrng = spec["reference"], _rng(base_seed, i, "swap-reference", j)
                ref = Reference(int(_draw(r["seed"], rrng, integer=True)), info.class_names[to], to)
                ref_strength = _blend_strength(r["strength"], r.get("points", (0, info.n_blend_points // 2)), rrng,
                                               info.n_blend_points)
            edits.append(LabelSwapEdit(info.class_names[to], to, strength, stage_draws[key], region, ref, ref_strength))
        else:
            spec = edit["blend"]
            ref = spec["reference"]
            rseed = int(_draw(ref["seed"], rng, integer=True))
            rid = rname = None
            if info.n_classes:
                c = _draw(ref.get("class", "source"), rng)
                rid = cid if c == "source" else info.class_id(c)
                rname = info.class_names[rid]
            strength = _blend_strength(spec["strength"], spec.get("points"), rng, info.n_blend_points)
            match, cands = (), ()
            if ref.get("match") is not None:    # candidates from their own stream: other draws stay as they were
                m, crng = ref["match"], _rng(base_seed, i, "match", j)
                match = tuple(m) if isinstance(m, list) else (m,)
                cands = tuple(int(_draw(ref["seed"], crng, integer=True)) for _ in range(int(ref.get("candidates", 16))))
            edits.append(BlendEdit(Reference(rseed, rname, rid, match, cands, (), len(cands)), strength,
                                   concrete_region(spec["region"], rng)))
    return Variant(i, source, tuple(edits))

