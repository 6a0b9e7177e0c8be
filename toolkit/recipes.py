"""Recipes: a YAML description of an edit, validated, and expanded into concrete variants.

A recipe names a model, how sources are drawn (classes, truncation), an ordered list of edits
(`label_swap`, `blend`) whose parameters are fixed or random (choice lists, numeric ranges,
shapes/mask files/random blobs with jitter and feathering), a base seed and a default count.
The format is documented in docs/RECIPES.md and published as JSON Schema
(`recipe_json_schema()`), generated from the same spec tree that validates recipes here, so
the two cannot drift apart.

Determinism: `Recipe.variant(i)` is a pure function of (recipe, base seed, i). Each random part
draws from its own NumPy PCG64 stream seeded with `derive_seed(recipe seed, i, <part>)`, so a
variant does not depend on batch size, device, shard, resume or on which other variants are
drawn. `render_variants` rasterises regions from the variant's *recorded* parameters only, so a
manifest row's `params` are enough to redo the image.

This module does no printing; its only file I/O is reading recipes/masks and `save_recipe`.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from . import masks as M
from .checkpoints import sha256_file
from .engine import Blend, LabelSwap, render
from .images import to_uint8
from .io import atomic_write_bytes
from .sampling import derive_seed, sample_latents

SCHEMA_ID = "https://neural-collage-toolkit.invalid/recipe.schema.json"
MAX_SEED = 2 ** 63 - 1
DEFAULT_REFERENCE_SEEDS = [0, 2 ** 31 - 1]
BLEND_PRESETS = ("coarse", "parts", "texture")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RecipeError(ValueError):
    """Message format: '<file>: <field.path>: <what is wrong>. <what is allowed / how to fix>'
    (one line per problem when several are found)."""


# ==============================================================================================
# The spec tree: one description of the format that both validates (readable messages with
# field paths) and produces the JSON Schema.
# ==============================================================================================
Errors = list  # of (path: tuple, message: str)


def fmt_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out or "(top level)"


def _type_name(v) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"a boolean ({v})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a number ({v})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return f"a mapping with keys {sorted(map(str, v))}"
    return type(v).__name__


class Node:
    doc: str = ""

    def schema(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def matches(self, v) -> bool:
        """Cheap shape test used by `OneOf` to pick the option a value is meant to be."""
        raise NotImplementedError

    def check(self, v, path: tuple, errs: Errors) -> None:
        raise NotImplementedError

    def _s(self, d: dict) -> dict:
        if self.doc:
            d["description"] = self.doc
        return d


class Num(Node):
    def __init__(self, lo=None, hi=None, *, integer=False, lo_open=False, doc=""):
        self.lo, self.hi, self.integer, self.lo_open, self.doc = lo, hi, integer, lo_open, doc

    def matches(self, v):
        if isinstance(v, bool):
            return False
        return isinstance(v, int) if self.integer else isinstance(v, (int, float))

    def bounds(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f" in {'(' if self.lo_open else '['}{self.lo}, {self.hi}]"
        if self.lo is not None:
            return f" {'>' if self.lo_open else '≥'} {self.lo}"
        if self.hi is not None:
            return f" ≤ {self.hi}"
        return ""

    def describe(self):
        return ("an integer" if self.integer else "a number") + self.bounds()

    def check(self, v, path, errs):
        if not self.matches(v):
            errs.append((path, f"expected {self.describe()}, got {_type_name(v)}"))
            return
        if isinstance(v, float) and not math.isfinite(v):
            errs.append((path, f"expected a finite number, got {v}"))
        elif (self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)) or \
                (self.hi is not None and v > self.hi):
            errs.append((path, f"{v} is out of range: expected {self.describe()}"))

    def schema(self):
        d = {"type": "integer" if self.integer else "number"}
        if self.lo is not None:
            d["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            d["maximum"] = self.hi
        return self._s(d)


class Str(Node):
    def __init__(self, enum=None, *, pattern=None, doc="", what=None):
        self.enum, self.pattern, self.doc, self.what = enum, pattern, doc, what

    def matches(self, v):
        return isinstance(v, str) and (self.enum is None or v in self.enum)

    def describe(self):
        if self.what:
            return self.what
        if self.enum:
            return " or ".join(repr(e) for e in self.enum) if len(self.enum) <= 3 else \
                "one of " + ", ".join(repr(e) for e in self.enum)
        return "a string"

    def check(self, v, path, errs):
        if not isinstance(v, str):
            errs.append((path, f"expected {self.describe()}, got {_type_name(v)}"))
        elif self.enum is not None and v not in self.enum:
            close = difflib.get_close_matches(v, self.enum, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            errs.append((path, f"{v!r} is not allowed: use {self.describe()}.{hint}"))
        elif self.pattern is not None and not re.match(self.pattern, v):
            errs.append((path, f"{v!r} is not allowed: use letters, digits, '_', '.', '-' (starting with a letter or digit)"))

    def schema(self):
        d: dict = {"type": "string"}
        if self.enum is not None:
            d["enum"] = list(self.enum)
        if self.pattern is not None:
            d["pattern"] = self.pattern
        return self._s(d)


class Bool(Node):
    def __init__(self, doc=""):
        self.doc = doc

    def matches(self, v):
        return isinstance(v, bool)

    def describe(self):
        return "true or false"

    def check(self, v, path, errs):
        if not isinstance(v, bool):
            errs.append((path, f"expected true or false, got {_type_name(v)}"))

    def schema(self):
        return self._s({"type": "boolean"})


class Seq(Node):
    def __init__(self, item: Node, min_items=0, max_items=None, *, doc="", what=None):
        self.item, self.min_items, self.max_items, self.doc, self.what = item, min_items, max_items, doc, what

    def matches(self, v):
        return isinstance(v, list)

    def describe(self):
        if self.what:
            return self.what
        n = (f"{self.min_items}" if self.min_items == self.max_items else
             f"{self.min_items}+" if self.max_items is None else f"{self.min_items}..{self.max_items}")
        return f"a list of {n} × ({self.item.describe()})"

    def check(self, v, path, errs):
        if not isinstance(v, list):
            errs.append((path, f"expected {self.describe()}, got {_type_name(v)}"))
            return
        if len(v) < self.min_items or (self.max_items is not None and len(v) > self.max_items):
            errs.append((path, f"has {len(v)} item(s): expected {self.describe()}"))
            return
        for i, x in enumerate(v):
            self.item.check(x, path + (i,), errs)

    def schema(self):
        d = {"type": "array", "items": self.item.schema(), "minItems": self.min_items}
        if self.max_items is not None:
            d["maxItems"] = self.max_items
        return self._s(d)


@dataclass
class F:
    """A field of a mapping: its spec, whether it is required, and its default (filled in)."""
    node: Node
    required: bool = False
    default: Any = None


class Obj(Node):
    """A mapping with known keys. `tag` (a key, or (key, value)) marks which option of a OneOf it is."""

    def __init__(self, fields: dict[str, F], *, tag=None, doc="", what=None,
                 post: Callable[[dict, tuple, Errors], None] | None = None):
        self.fields, self.tag, self.doc, self.what, self.post = fields, tag, doc, what, post

    def matches(self, v):
        if not isinstance(v, dict):
            return False
        if self.tag is None:
            return True
        if isinstance(self.tag, tuple):
            return v.get(self.tag[0]) == self.tag[1]
        return self.tag in v

    def describe(self):
        if self.what:
            return self.what
        return "a mapping with keys " + ", ".join(k + ("" if f.required else "?") for k, f in self.fields.items())

    def check(self, v, path, errs):
        if not isinstance(v, dict):
            errs.append((path, f"expected {self.describe()}, got {_type_name(v)}"))
            return
        allowed = list(self.fields)
        for k in v:
            if k not in self.fields:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                errs.append((path + (k,), f"unknown key. Allowed here: {', '.join(allowed)}.{hint}"))
        for k, f in self.fields.items():
            if k in v:
                f.node.check(v[k], path + (k,), errs)
            elif f.required:
                errs.append((path + (k,), f"missing (required): add {f.node.describe()}"))
        if self.post is not None and not errs:
            self.post(v, path, errs)

    def schema(self):
        d = {"type": "object", "properties": {k: f.node.schema() for k, f in self.fields.items()},
             "additionalProperties": False}
        req = [k for k, f in self.fields.items() if f.required]
        if req:
            d["required"] = req
        if isinstance(self.tag, tuple):
            d["properties"][self.tag[0]] = {**d["properties"][self.tag[0]], "const": self.tag[1]}
            d["required"] = sorted(set(req) | {self.tag[0]})
        for k, f in self.fields.items():
            if f.default is not None and not isinstance(f.default, (dict, list)):
                d["properties"][k]["default"] = f.default
        return self._s(d)

    def fill_defaults(self, v: dict) -> dict:
        out = {}
        for k, f in self.fields.items():
            if k in v:
                out[k] = v[k]
            elif f.default is not None:
                out[k] = copy.deepcopy(f.default)
        return out


def _same_type(node: Node, v) -> bool:
    if isinstance(node, Str):
        return isinstance(v, str)
    if isinstance(node, Num):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(node, OneOf):
        return any(_same_type(o, v) for o in node.options)
    return node.matches(v)


class OneOf(Node):
    """Alternatives told apart by shape (type, or the key a mapping carries)."""

    def __init__(self, *options: Node, doc="", what=None):
        self.options, self.doc, self.what = list(options), doc, what

    def matches(self, v):
        return any(o.matches(v) for o in self.options)

    def describe(self):
        return self.what or " | ".join(o.describe() for o in self.options)

    def check(self, v, path, errs):
        hits = [o for o in self.options if o.matches(v)]
        if isinstance(v, dict):
            tags = [o.tag for o in self.options if isinstance(o, Obj) and o.tag is not None and not isinstance(o.tag, tuple)]
            present = [t for t in tags if t in v]
            if len(present) > 1:
                errs.append((path, f"has both {present[0]!r} and {present[1]!r}: give exactly one of {', '.join(tags)}"))
                return
            # A mapping whose discriminating key has an unknown value: report on that key.
            keyed = [o for o in self.options if isinstance(o, Obj) and isinstance(o.tag, tuple)]
            if not hits and keyed:
                key = keyed[0].tag[0]
                if key in v:
                    vals = [o.tag[1] for o in keyed if o.tag[0] == key]
                    Str(vals).check(v[key], path + (key,), errs)
                    return
        if not hits:
            # Only one alternative of this type (e.g. the preset names among numbers and lists):
            # its own message is more helpful ("did you mean 'texture'?").
            same = [o for o in self.options if _same_type(o, v)]
            if len(same) == 1:
                same[0].check(v, path, errs)
                return
            hint = ""
            if isinstance(v, dict):   # e.g. {center, size} without `shape: ellipse`
                fits = [o.tag for o in self.options if isinstance(o, Obj) and isinstance(o.tag, tuple)
                        and set(v) <= set(o.fields)]
                if fits:
                    hint = " Missing " + " or ".join(f"`{k}: {t}`" for k, t in fits) + "?"
            errs.append((path, f"expected {self.describe()}; got {_type_name(v)}.{hint}"))
            return
        hits[0].check(v, path, errs)

    def schema(self):
        return self._s({"anyOf": [o.schema() for o in self.options]})


# -- building blocks -------------------------------------------------------------------------------
def _range_post(v, path, errs):
    lo, hi = v["range"]
    if lo > hi:
        errs.append((path + ("range",), f"[{lo}, {hi}] has low > high: write [low, high]"))


def rand(base: Num | Node, *, what_prefix="", allow_range=True, doc="") -> OneOf:
    """A value that is fixed, `{choice: [...]}` (uniform over the list) or `{range: [lo, hi]}`
    (uniform; integers: lo..hi inclusive)."""
    opts: list[Node] = [base, Obj({"choice": F(Seq(base, 1), True)}, tag="choice",
                                  what="{choice: [" + base.describe() + ", ...]}")]
    if allow_range and isinstance(base, Num):
        opts.append(Obj({"range": F(Seq(base, 2, 2), True)}, tag="range", post=_range_post,
                        what="{range: [low, high]}"))
    return OneOf(*opts, doc=doc, what=what_prefix + " | ".join(o.describe() for o in opts))


CLASS = OneOf(Str(), Num(0, integer=True), what="a class name or id")
REL = Num(-1, 2)        # relative coordinates may lie a little outside the image (partly visible shapes)
POINT = Seq(REL, 2, 2, what="[x, y] (relative: 0..1, y down)")
SIZE = Seq(Num(0, 2, lo_open=True), 2, 2, what="[width, height] (relative)")


def _box_post(v, path, errs):
    x0, y0, x1, y1 = v["box"]
    if not (x0 < x1 and y0 < y1):
        errs.append((path + ("box",), f"{v['box']} is empty: write [x0, y0, x1, y1] with x0 < x1 and y0 < y1"))


JITTER = Obj({
    "translate": F(OneOf(Num(0, 1), Seq(Num(0, 1), 2, 2), what="a number or [x, y]")),
    "scale": F(OneOf(Num(0, 10, lo_open=True), Seq(Num(0, 10, lo_open=True), 2, 2),
                     what="a factor or [low, high]")),
    "rotate": F(Num(0, 180)),
}, doc="Random per-variant transform of the region: translate up to ±t (relative; or [tx, ty]), "
       "scale by a factor drawn from [low, high], rotate by up to ±degrees (about the region's centre).")
COMMON = {"jitter": F(JITTER),
          "feather": F(Num(0, 0.5), default=0.0)}

SHAPE_RECT = Obj({"shape": F(Str(["rectangle"]), True), "box": F(Seq(REL, 4, 4, what="[x0, y0, x1, y1] (relative)"), True),
                  **COMMON}, tag=("shape", "rectangle"), post=_box_post, what="{shape: rectangle, box: [x0, y0, x1, y1]}")
SHAPE_ELLIPSE = Obj({"shape": F(Str(["ellipse"]), True), "center": F(POINT, True), "size": F(SIZE, True),
                     "angle": F(Num(-360, 360)), **COMMON}, tag=("shape", "ellipse"),
                    what="{shape: ellipse, center: [x, y], size: [w, h]}")
SHAPE_POLY = Obj({"shape": F(Str(["polygon"]), True),
                  "points": F(Seq(POINT, 3, what="a list of 3+ [x, y] points"), True), **COMMON},
                 tag=("shape", "polygon"), what="{shape: polygon, points: [[x, y], ...]}")
MASK_FILE = Obj({"mask": F(Str(doc="PNG path relative to the recipe's folder (white or opaque = inside)"), True),
                 **COMMON}, tag="mask", what="{mask: masks/file.png}")
BLOB = Obj({"blob": F(Obj({
    "size": F(OneOf(Num(0, 1.5, lo_open=True), Seq(Num(0, 1.5, lo_open=True), 2, 2), what="a number or [low, high]"),
              default=[0.2, 0.5]),
    "center": F(OneOf(POINT, Obj({"range": F(Seq(REL, 4, 4, what="[x0, y0, x1, y1]"), True)}, tag="range",
                                  what="{range: [x0, y0, x1, y1]}"), what="[x, y] or {range: [x0, y0, x1, y1]}"),
                default={"range": [0.25, 0.25, 0.75, 0.75]}),
}, doc="A smooth random outline: diameter drawn from `size`, centre from `center`."), True), **COMMON},
    tag="blob", what="{blob: {size: [low, high]}}")
_REGION_KINDS = [SHAPE_RECT, SHAPE_ELLIPSE, SHAPE_POLY, MASK_FILE, BLOB]
REGION_ONE = OneOf(*_REGION_KINDS, what="a region: {shape: rectangle|ellipse|polygon, ...}, {mask: file.png} or {blob: {...}}")
REGION = OneOf(*_REGION_KINDS, Obj({"choice": F(Seq(REGION_ONE, 1), True)}, tag="choice", what="{choice: [region, ...]}"),
               what=REGION_ONE.what + ", or {choice: [region, ...]}",
               doc="Where the edit applies, in relative coordinates (0..1, x right, y down).")

STAGE_RANGE = Seq(Num(0, integer=True), 2, 2, what="[first, last] (inclusive stage indices)")
STAGES = OneOf(Str(["all"]), STAGE_RANGE,
               Obj({"choice": F(Seq(STAGE_RANGE, 1), True)}, tag="choice", what="{choice: [[a, b], ...]}"),
               what="'all', [first, last] or {choice: [[a, b], ...]}",
               doc="Stages (0 = the first stage after the stem) that use the swapped classes.")
STRENGTH01 = Num(0, 1)
BLEND_STRENGTH_ONE = OneOf(Str(list(BLEND_PRESETS)), Num(0, 1),
                           Seq(rand(STRENGTH01), 1, what="a list with one strength per blend point"),
                           what="a preset (coarse, parts, texture), a number in [0, 1], or one strength per blend point")
BLEND_STRENGTH = OneOf(*BLEND_STRENGTH_ONE.options,
                       Obj({"range": F(Seq(STRENGTH01, 2, 2), True)}, tag="range", post=_range_post, what="{range: [low, high]}"),
                       Obj({"choice": F(Seq(BLEND_STRENGTH_ONE, 1), True)}, tag="choice", what="{choice: [...]}"),
                       what=BLEND_STRENGTH_ONE.what + ", {range: [low, high]} or {choice: [...]}",
                       doc="Blend strength per blend point (after the stem, then after each stage).")


LABEL_SWAP = Obj({
    "to": F(OneOf(CLASS, Obj({"choice": F(Seq(CLASS, 1), True)}, tag="choice", what="{choice: [class, ...]}"),
                  what="a class name or id, or {choice: [class, ...]}"), True),
    "region": F(REGION, True),
    "stages": F(STAGES, default="all"),
    "strength": F(rand(Num(0, 1, lo_open=True)), default=1.0),
}, doc="Swap the region to another class (spatial class-conditional BN).")
BLEND = Obj({
    "reference": F(Obj({
        "seed": F(rand(Num(0, MAX_SEED, integer=True)), default={"range": DEFAULT_REFERENCE_SEEDS}),
        "class": F(OneOf(CLASS, Obj({"choice": F(Seq(CLASS, 1), True)}, tag="choice"),
                         what="'source', a class, or {choice: [class or 'source', ...]}",
                         doc="Reference class (default 'source': the variant's own class)")),
    }, doc="Which image the features come from: its latent seed and (conditional models) its class."),
        default={"seed": {"range": DEFAULT_REFERENCE_SEEDS}}),
    "region": F(REGION, True),
    "strength": F(BLEND_STRENGTH, default="parts"),
    "points": F(Seq(Num(0, integer=True), 2, 2, what="[first, last] (inclusive blend points)",
                    doc="Blend points [first, last] that a number or {range} strength applies to (default: all).")),
}, doc="Paste a reference image's features into the region (feature blending).")
EDIT = OneOf(Obj({"label_swap": F(LABEL_SWAP, True)}, tag="label_swap", what="{label_swap: {...}}"),
             Obj({"blend": F(BLEND, True)}, tag="blend", what="{blend: {...}}"),
             what="{label_swap: {...}} or {blend: {...}}")

RECIPE = Obj({
    "name": F(Str(pattern=NAME_RE.pattern, doc="Recipe name (default: the file name without .yaml)")),
    "description": F(Str()),
    "model": F(Str(what="a zoo name (tiny, faces64, ...) or a weights path", doc="Zoo name (python -m toolkit models) or a weights path (relative to the recipe's folder)"), True),
    "seed": F(Num(0, MAX_SEED, integer=True, doc="Base seed: variant i uses derive_seed(seed, i)"), default=0),
    "count": F(Num(1, integer=True, doc="Default number of variants"), default=16),
    "source": F(Obj({
        "classes": F(OneOf(Str(["all"]), CLASS, Seq(CLASS, 1), what="'all', a class, or a list of classes",
                           doc="Source class drawn uniformly from these (conditional models; default: all)")),
        "truncation": F(rand(Num(0, 1, lo_open=True))),
    }, doc="How source images are drawn: the class (uniform over `classes`), and truncation where the model has it."),
        default={}),
    "edits": F(Seq(EDIT, 1, what="a list of 1+ edits ({label_swap: ...} or {blend: ...})",
                   doc="Applied together in one render, in order (later regions cover earlier ones)."), True),
    "output": F(Obj({
        "label": F(Str(doc="Label for unconditional models (default: the recipe name)")),
        "save_source": F(Bool(doc="Also write the unedited source image (before/after pairs)"), default=True),
    }), default={}),
}, doc="A Neural Collage Toolkit recipe: edits to apply to many generated images, with random parameters.")


def fill_defaults(node: Node, v):
    """The value with every missing optional key that has a default filled in (recursively)."""
    if isinstance(node, OneOf):
        hits = [o for o in node.options if o.matches(v)]
        return fill_defaults(hits[0], v) if hits else v
    if isinstance(node, Obj) and isinstance(v, dict):
        out = node.fill_defaults(v)
        return {k: fill_defaults(node.fields[k].node, x) if k in node.fields else x for k, x in out.items()}
    if isinstance(node, Seq) and isinstance(v, list):
        return [fill_defaults(node.item, x) for x in v]
    return v


def recipe_json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the recipe YAML, for editors' autocompletion and validators.

    Model-dependent rules (class names, stage and blend-point counts, mask files) cannot be
    expressed here; `load_recipe` checks them."""
    s = RECIPE.schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "Neural Collage Toolkit recipe", **s}


# ==============================================================================================
# Model information (what validation needs to know about the model)
# ==============================================================================================
@dataclass(frozen=True)
class ModelInfo:
    ref: str                    # zoo name or absolute path
    n_classes: int
    class_names: tuple
    n_stages: int
    n_blend_points: int
    resolution: int
    supports_truncation: bool
    name: str

    def class_id(self, c) -> int:
        """Class name/id → id (the generator's own rules and messages, with close-match suggestions)."""
        return _class_index(self, c)


def _class_index(info: ModelInfo, c) -> int:
    from types import SimpleNamespace

    from .generators.base import Generator
    # The generator's own lookup (names, synonyms, ids, suggestions) on the metadata alone.
    meta = SimpleNamespace(n_classes=info.n_classes, class_names=list(info.class_names), name_for_errors=info.name)
    return Generator.class_index(meta, c)


@functools.lru_cache(maxsize=32)
def _model_info_cached(ref: str, stamp) -> ModelInfo:
    from .loading import load_generator
    gen = load_generator(ref, device="cpu")
    return ModelInfo(ref, gen.n_classes, tuple(gen.class_names), gen.n_stages, gen.n_blend_points,
                     gen.resolution, bool(gen.supports_truncation), ref)


def model_info(ref: str) -> ModelInfo:
    """Metadata of a model (loads it once on the CPU; cached per name / file modification time)."""
    p = Path(ref)
    stamp = p.stat().st_mtime_ns if p.exists() else None
    return _model_info_cached(ref, stamp)


def info_from_generator(gen) -> ModelInfo:
    ref = gen.provenance.model_id if gen.provenance else gen.architecture
    return ModelInfo(ref, gen.n_classes, tuple(gen.class_names), gen.n_stages, gen.n_blend_points,
                     gen.resolution, bool(gen.supports_truncation), ref)


# ==============================================================================================
# Recipes
# ==============================================================================================
@dataclass(frozen=True)
class Variant:
    index: int
    seed: int            # derive_seed(recipe.seed, index): the source latent's seed
    params: dict         # concrete sampled parameters (JSON-serialisable)


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str           # zoo name, or the weights' absolute path (relative paths resolved)
    seed: int
    count: int
    data: dict           # validated, defaults filled in
    text: str
    sha256: str
    path: Path | None
    base_dir: Path
    info: ModelInfo = field(repr=False, compare=False, default=None)
    _masks: dict = field(repr=False, compare=False, default_factory=dict)   # rel path -> (float array, file sha256)
    _rasters: dict = field(repr=False, compare=False, default_factory=dict)  # (region JSON, res) -> mask

    def variant(self, i: int) -> Variant:
        """Variant i: a pure function of (this recipe, its seed, i)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise ValueError(f"variant index must be an integer ≥ 0, got {i!r}")
        i = int(i)
        seed = derive_seed(self.seed, i)
        return Variant(i, seed, _expand(self, i, seed))

    def variants(self, indices) -> list[Variant]:
        return [self.variant(i) for i in indices]

    def load_mask(self, rel: str) -> np.ndarray:
        """A mask referenced by this recipe (checked and read at load time)."""
        if rel not in self._masks:
            raise KeyError(f"recipe {self.name!r} does not reference mask {rel!r}")
        return self._masks[rel][0]


def _err(source: str, errs: Errors) -> RecipeError:
    lines = []
    for path, msg in errs:
        lines.append(f"{source}: {fmt_path(path)}: {msg}")
    return RecipeError("\n".join(lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML would silently keep the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_recipe(path: str | Path, *, generator=None) -> Recipe:
    """Read and validate a recipe YAML file (RecipeError with file and field path on any problem).

    `generator`: the recipe's model, already loaded (e.g. by the app); saves loading it once
    to learn its classes and stages. Without it the model is loaded on the CPU (cached)."""
    p = Path(path)
    src = str(p)
    if not p.exists():
        raise RecipeError(f"{src}: no such recipe file. Check the path (recipes live in recipes/*.yaml)")
    if p.is_dir():
        raise RecipeError(f"{src}: is a directory, not a recipe file. Pass a .yaml file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{src}: cannot read the recipe file: {e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(f"{src}: {where}malformed YAML: {problem}. Fix the YAML syntax "
                          "(indentation, ':' after keys, matching brackets)") from None
    if data is None:
        raise RecipeError(f"{src}: the file is empty. A recipe needs at least `model:` and `edits:`")
    if not isinstance(data, dict):
        raise RecipeError(f"{src}: (top level): expected a mapping (key: value lines), got {_type_name(data)}")
    data = dict(data)
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_.-]+", "-", p.stem).strip("-.") or "recipe")
    return _parse(data, src, p.parent, text=text, path=p, generator=generator)


def parse_recipe(data: dict, source: str = "<recipe>", base_dir: str | Path = ".", *, generator=None) -> Recipe:
    """Validate a recipe given as a dict (e.g. built in the app); `base_dir` anchors relative paths.
    `generator`: as for `load_recipe`."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: (top level): expected a mapping, got {_type_name(data)}")
    return _parse(copy.deepcopy(data), source, Path(base_dir), text=None, path=None, generator=generator)


def validate_schema(data, source: str = "<recipe>") -> None:
    """Structural checks only (keys, types, ranges): what can be said without the model or the
    mask files, e.g. for a recipe whose weights the user has not downloaded yet. RecipeError."""
    errs: Errors = []
    RECIPE.check(data, (), errs)
    if errs:
        raise _err(source, errs)


def _resolve_path(rel: str, base_dir: Path, what: str) -> Path:
    """A path from a recipe, resolved against its folder; refuses escapes (ValueError)."""
    raw = Path(os.path.expanduser(rel))
    if raw.is_absolute():
        return raw.resolve()
    base = base_dir.resolve()
    full = (base / raw).resolve()
    if not full.is_relative_to(base):
        raise ValueError(f"{rel!r} points outside the recipe's folder ({base}); {what} must live in that "
                         "folder or below it (e.g. masks/eyes.png)")
    return full


def _parse(data: dict, source: str, base_dir: Path, *, text: str | None, path: Path | None,
           mask_overrides: dict | None = None, generator=None) -> Recipe:
    validate_schema(data, source)
    errs: Errors = []
    data = fill_defaults(RECIPE, data)
    data.setdefault("name", "recipe")

    # -- the model ----------------------------------------------------------------------------------
    from . import zoo
    model = data["model"]
    if model in zoo.ZOO:
        ref = model
    else:
        try:
            ref = str(_resolve_path(model, base_dir, "model files"))
        except ValueError as e:
            raise _err(source, [(("model",), str(e))]) from None
        if generator is None and not Path(ref).exists():
            raise _err(source, [(("model",), f"unknown model {model!r}: not a zoo name "
                                 f"({', '.join(sorted(zoo.ZOO))}) and no file {ref} exists")])
    if generator is not None:
        info = dataclasses.replace(info_from_generator(generator), ref=ref, name=model)
    else:
        try:
            info = dataclasses.replace(model_info(ref), name=model)
        except Exception as e:  # noqa: BLE001 - any load failure is reported against the field
            raise _err(source, [(("model",), f"cannot load model {model!r}: {e}")]) from None
    masks: dict[str, tuple] = {}
    _check_semantics(data, info, base_dir, masks, mask_overrides or {}, errs)
    if errs:
        raise _err(source, errs)

    h = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    for rel in sorted(masks):
        h.update(rel.encode())
        h.update(masks[rel][1].encode())
    text = dump_recipe(data) if text is None else text
    return Recipe(name=data["name"], model=info.ref, seed=data["seed"], count=data["count"], data=data,
                  text=text, sha256=h.hexdigest(), path=path, base_dir=base_dir, info=info, _masks=masks)


def _regions(region: dict):
    """The concrete-region alternatives of a region spec (a choice holds several)."""
    return region["choice"] if "choice" in region else [region]


def _check_semantics(data: dict, info: ModelInfo, base_dir: Path, masks: dict, overrides: dict, errs: Errors):
    """Rules that depend on the model or the file system (the schema cannot say them)."""
    def check_classes(spec, path, allow_source=False):
        items = [((), spec)] if not isinstance(spec, (dict, list)) else \
            [(("choice", k), c) for k, c in enumerate(spec["choice"])] if isinstance(spec, dict) else \
            [((k,), c) for k, c in enumerate(spec)]
        for sub, c in items:
            if c == "all" and sub == () and path == ("source", "classes"):
                continue
            if c == "source" and allow_source:
                continue      # a blend reference may name the variant's own source class
            try:
                info.class_id(c)
            except ValueError as e:
                errs.append((path + sub, str(e)))

    src = data["source"]
    if info.n_classes:
        src.setdefault("classes", "all")
        check_classes(src["classes"], ("source", "classes"))
    elif "classes" in src:
        errs.append((("source", "classes"), f"model {info.name} is unconditional (it has no classes): remove `classes`"))
    if "truncation" in src and not info.supports_truncation:
        errs.append((("source", "truncation"), f"model {info.name} has no truncation setting: remove `truncation`"))

    swap_stages = None
    for j, edit in enumerate(data["edits"]):
        kind = "label_swap" if "label_swap" in edit else "blend"
        spec = edit[kind]
        path = ("edits", j, kind)
        for k, r in enumerate(_regions(spec["region"])):
            rpath = path + ("region",) + (("choice", k) if "choice" in spec["region"] else ())
            if "mask" in r:
                _check_mask(r["mask"], base_dir, masks, overrides, rpath + ("mask",), errs)
        if kind == "label_swap":
            if not info.n_classes:
                errs.append((path, f"model {info.name} is unconditional (it has no classes): label swap needs a "
                             "class-conditional model; use a `blend` edit instead"))
                continue
            check_classes(spec["to"], path + ("to",))
            st = spec["stages"]
            ranges = st["choice"] if isinstance(st, dict) else ([] if st == "all" else [st])
            for k, (a, b) in enumerate(ranges):
                sp = path + ("stages",) + (("choice", k) if isinstance(st, dict) else ())
                if not a <= b < info.n_stages:
                    errs.append((sp, f"[{a}, {b}] is not a stage range of {info.name}: it has stages 0..{info.n_stages - 1}; "
                                 "write [first, last] with first ≤ last"))
            if swap_stages is None:
                swap_stages = st
            elif st != swap_stages:
                errs.append((path + ("stages",), "all label_swap edits render in one pass and must have the same "
                             f"`stages` (the first one has {swap_stages!r})"))
        else:
            ref = spec["reference"]
            if "class" in ref:
                if not info.n_classes:
                    errs.append((path + ("reference", "class"), f"model {info.name} is unconditional: remove `class`"))
                else:
                    check_classes(ref["class"], path + ("reference", "class"), allow_source=True)
            p = info.n_blend_points
            st = spec["strength"]
            for k, s in enumerate(st["choice"] if isinstance(st, dict) and "choice" in st else [st]):
                if isinstance(s, list) and len(s) != p:
                    sp = path + ("strength",) + (("choice", k) if isinstance(st, dict) else ())
                    errs.append((sp, f"{len(s)} strengths given; model {info.name} has {p} blend points (after the "
                                 f"stem and after each of its {info.n_stages} stages): give {p} values or a preset"))
            if "points" in spec:
                a, b = spec["points"]
                if not a <= b < p:
                    errs.append((path + ("points",), f"[{a}, {b}] is not a blend-point range of {info.name}: it has "
                                 f"points 0..{p - 1}; write [first, last] with first ≤ last"))
                if not (isinstance(st, (int, float)) or (isinstance(st, dict) and "range" in st)):
                    errs.append((path + ("points",), "`points` only applies to a number or {range} strength; "
                                 "a list or preset already says the strength at every point"))


def _check_mask(rel: str, base_dir: Path, masks: dict, overrides: dict, path: tuple, errs: Errors):
    if rel in masks:
        return
    if rel in overrides:
        masks[rel] = overrides[rel]     # (array, sha256 of the PNG bytes about to be written)
        return
    if Path(os.path.expanduser(rel)).is_absolute():
        errs.append((path, f"{rel!r} is an absolute path: mask paths are relative to the recipe's folder "
                     "(e.g. masks/eyes.png), so recipes can be shared"))
        return
    try:
        full = _resolve_path(rel, base_dir, "mask files")
        masks[rel] = (M.load_mask_file(full), sha256_file(full))
    except (ValueError, M.MaskFileError) as e:
        errs.append((path, str(e)))


# ==============================================================================================
# Expansion: recipe + i → concrete parameters
# ==============================================================================================
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


def _class_entry(info: ModelInfo, c) -> dict:
    cid = info.class_id(c)
    return {"class": info.class_names[cid], "class_id": cid}


def _concrete_region(spec: dict, rng: np.random.Generator) -> dict:
    """Draw a region's random parts (choice, blob, jitter) → concrete region (see toolkit.masks)."""
    if "choice" in spec:
        spec = spec["choice"][int(rng.integers(len(spec["choice"])))]
    jit = spec.get("jitter") or {}
    # Always draw the jitter numbers (even when not asked for) so streams stay aligned.
    t = jit.get("translate", 0.0)
    tx, ty = (t, t) if isinstance(t, (int, float)) else t
    translate = [_r6(tx * (2 * rng.random() - 1)), _r6(ty * (2 * rng.random() - 1))]
    sc = jit.get("scale", 1.0)
    lo, hi = (sc, sc) if isinstance(sc, (int, float)) else sc
    scale = _r6(lo + (hi - lo) * rng.random())
    rotate = _r6(jit.get("rotate", 0.0) * (2 * rng.random() - 1))
    feather = float(spec.get("feather", 0.0))
    if "mask" in spec:
        out = {"mask": spec["mask"], "translate": translate, "scale": scale, "rotate": rotate}
    else:
        if "blob" in spec:
            b = spec["blob"]
            size = b["size"]
            size = _r6(size[0] + (size[1] - size[0]) * rng.random()) if isinstance(size, list) else float(size)
            c = b["center"]
            if isinstance(c, dict):
                x0, y0, x1, y1 = c["range"]
                c = [_r6(x0 + (x1 - x0) * rng.random()), _r6(y0 + (y1 - y0) * rng.random())]
            pts = M.random_blob_points(rng, c, size)
            center = c
        elif spec["shape"] == "rectangle":
            x0, y0, x1, y1 = spec["box"]
            pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
            center = [(x0 + x1) / 2, (y0 + y1) / 2]
        elif spec["shape"] == "polygon":
            pts = spec["points"]
            center = [float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))]
        else:  # ellipse: stays an ellipse (exact), with the jitter folded in
            cx, cy = spec["center"]
            w, h = spec["size"]
            out = {"shape": "ellipse", "center": [_r6(cx + translate[0]), _r6(cy + translate[1])],
                   "size": [_r6(w * scale), _r6(h * scale)], "angle": _r6(spec.get("angle", 0.0) + rotate)}
            if feather:
                out["feather"] = feather
            return out
        pts = M.transform_points(pts, center, translate, scale, rotate)
        out = {"shape": "polygon", "points": [[_r6(x), _r6(y)] for x, y in pts]}
    if feather:
        out["feather"] = feather
    return out


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


def _blend_strength(spec, points, rng, n_points: int) -> list[float]:
    s = spec
    if isinstance(s, dict) and "choice" in s:
        s = s["choice"][int(rng.integers(len(s["choice"])))]
    if isinstance(s, str):
        return blend_preset(s, n_points)
    if isinstance(s, list):
        return [_r6(_draw(x, rng)) for x in s]
    v = _r6(_draw(s, rng))
    a, b = points if points is not None else (0, n_points - 1)
    return [v if a <= k <= b else 0.0 for k in range(n_points)]


def _expand(recipe: Recipe, i: int, seed: int) -> dict:
    info, data = recipe.info, recipe.data
    src = data["source"]
    rng = _rng(recipe.seed, i, "source")
    source: dict = {"seed": seed}
    if info.n_classes:
        cl = src["classes"]
        ids = list(range(info.n_classes)) if cl == "all" else [info.class_id(c) for c in (cl if isinstance(cl, list) else [cl])]
        source.update(_class_entry(info, ids[int(rng.integers(len(ids)))]))
    if "truncation" in src:
        source["truncation"] = float(_draw(src["truncation"], rng))
    stage_rng = _rng(recipe.seed, i, "swap-stages")
    stages = None
    edits = []
    for j, edit in enumerate(data["edits"]):
        rng = _rng(recipe.seed, i, "edit", j)
        if "label_swap" in edit:
            spec = edit["label_swap"]
            if stages is None:
                st = _draw(spec["stages"], stage_rng)
                stages = [0, info.n_stages - 1] if st == "all" else list(st)
            e = {**_class_entry(info, _draw(spec["to"], rng)),
                 "strength": float(_draw(spec["strength"], rng)),
                 "stages": stages,
                 "region": _concrete_region(spec["region"], rng)}
            e = {"to": e.pop("class"), "to_id": e.pop("class_id"), **e}
            edits.append({"label_swap": e})
        else:
            spec = edit["blend"]
            ref = spec["reference"]
            r = {"seed": int(_draw(ref["seed"], rng, integer=True))}
            if info.n_classes:
                c = _draw(ref.get("class", "source"), rng)
                r.update(_class_entry(info, source["class_id"] if c == "source" else c))
            e = {"reference": r,
                 "strength": _blend_strength(spec["strength"], spec.get("points"), rng, info.n_blend_points),
                 "region": _concrete_region(spec["region"], rng)}
            edits.append({"blend": e})
    return {"source": source, "edits": edits}


# ==============================================================================================
# Rendering a batch of variants
# ==============================================================================================
@dataclass
class RenderedVariant:
    index: int
    seed: int
    params: dict
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


RASTER_CACHE_BYTES = 64 << 20


def edit_masks(recipe: Recipe, variant: Variant, resolution: int) -> list[np.ndarray]:
    """Each edit's region rasterised at `resolution` (before compositing), in edit order.

    Regions without random parts are the same for every variant: they are rasterised once per
    recipe (a small cache; it is emptied when it would exceed RASTER_CACHE_BYTES)."""
    out = []
    cache = recipe._rasters
    for edit in variant.params["edits"]:
        (kind, e), = edit.items()
        key = (json.dumps(e["region"], sort_keys=True), resolution)
        m = cache.get(key)
        if m is None:
            m = M.rasterize_region(e["region"], resolution, recipe.load_mask)
            m.setflags(write=False)       # shared between variants: nobody may edit it in place
            if (len(cache) + 1) * m.nbytes > RASTER_CACHE_BYTES:
                cache.clear()
            cache[key] = m
        out.append(m)
    return out


def _composite(ms: list[np.ndarray]) -> list[np.ndarray]:
    """Later regions cover earlier ones: m'_j = m_j · Π_{k>j} (1 − m_k); Σ_j m'_j ≤ 1."""
    out = [None] * len(ms)
    cover = np.ones_like(ms[0]) if ms else None
    for j in range(len(ms) - 1, -1, -1):
        out[j] = ms[j] * cover
        cover = cover * (1 - ms[j])
    return out


def class_weight_maps(recipe: Recipe, variant: Variant, resolution: int,
                      masks: list[np.ndarray] | None = None) -> np.ndarray:
    """`[n_classes, R, R]` final per-pixel class weights of a conditional variant (sum to 1).

    Base class weight 1 − Σ swap weights; label swaps (strength × composited region) move weight
    to their class; then each blend moves (its largest strength × its composited mask) of every
    pixel's weight to its reference's class, since those pixels' features come from it."""
    info = recipe.info
    p = variant.params
    ms = edit_masks(recipe, variant, resolution) if masks is None else masks
    swaps = [(j, e["label_swap"]) for j, e in enumerate(p["edits"]) if "label_swap" in e]
    blends = [(j, e["blend"]) for j, e in enumerate(p["edits"]) if "blend" in e]
    sw = _composite([e["strength"] * ms[j] for j, e in swaps]) if swaps else []
    bm = _composite([ms[j] for j, _ in blends]) if blends else []
    w = np.zeros((info.n_classes, resolution, resolution), np.float64)
    w[p["source"]["class_id"]] = 1.0
    for (j, e), m in zip(swaps, sw):
        w[p["source"]["class_id"]] -= m
        w[e["to_id"]] += m
    for (j, e), m in zip(blends, bm):
        a = max(e["strength"]) * m
        w *= (1 - a)[None]
        w[e["reference"]["class_id"]] += a
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
                    masks: list[list[np.ndarray]] | None = None) -> list[RenderedVariant]:
    """Render variants in one batched `render` call for the edits and one for the unedited sources
    (one pair per distinct truncation value, when the recipe randomises it), on the generator's device.

    `masks`: the result of `prepare_masks(recipe, variants, generator.resolution)` when the caller
    prepared them ahead (default: prepared here)."""
    if not variants:
        return []
    if masks is not None and len(masks) != len(variants):
        raise ValueError(f"got masks for {len(masks)} variants but {len(variants)} variants")
    info, gen = recipe.info, generator
    if (gen.n_classes, gen.n_blend_points) != (info.n_classes, info.n_blend_points):
        raise ValueError(f"recipe {recipe.name!r} was validated for model {info.name} "
                         f"({info.n_classes} classes, {info.n_blend_points} blend points); this generator has "
                         f"{gen.n_classes} classes and {gen.n_blend_points} blend points")
    res = gen.resolution
    if masks is None:
        masks = prepare_masks(recipe, variants, res)
    groups: dict = {}
    for k, v in enumerate(variants):
        groups.setdefault(v.params["source"].get("truncation"), []).append(k)
    results: list = [None] * len(variants)
    for trunc, idx in groups.items():
        group = _render_group(gen, recipe, [variants[k] for k in idx], [masks[k] for k in idx], res, trunc)
        for k, rv in zip(idx, group):
            results[k] = rv
    return results


def _render_group(gen, recipe: Recipe, variants: list[Variant], per_masks: list[list[np.ndarray]], res: int,
                  trunc) -> list[RenderedVariant]:
    info = recipe.info
    dev = gen.device
    z = sample_latents(gen, [v.seed for v in variants], trunc)
    y = torch.tensor([v.params["source"]["class_id"] for v in variants], device=dev) if info.n_classes else None
    edits0 = variants[0].params["edits"]
    swap_idx = [j for j, e in enumerate(edits0) if "label_swap" in e]
    blend_idx = [j for j, e in enumerate(edits0) if "blend" in e]
    swap = None
    if swap_idx:
        cls = torch.tensor([[v.params["edits"][j]["label_swap"]["to_id"] for j in swap_idx] for v in variants])
        w = np.stack([np.stack(_composite([v.params["edits"][j]["label_swap"]["strength"] * ms[j] for j in swap_idx]))
                      for v, ms in zip(variants, per_masks)])
        stages = [range(a, b_ + 1) for a, b_ in (v.params["edits"][swap_idx[0]]["label_swap"]["stages"] for v in variants)]
        swap = LabelSwap(cls, torch.from_numpy(w).float(), stages)
    blends = []
    if blend_idx:
        bm = [_composite([ms[j] for j in blend_idx]) for ms in per_masks]
        for n, j in enumerate(blend_idx):
            refs = [v.params["edits"][j]["blend"] for v in variants]
            zr = sample_latents(gen, [r["reference"]["seed"] for r in refs], trunc)
            yr = torch.tensor([r["reference"]["class_id"] for r in refs], device=dev) if info.n_classes else None
            mask = torch.from_numpy(np.stack([m[n] for m in bm])).float()
            strength = torch.tensor([r["strength"] for r in refs], dtype=torch.float32)
            blends.append(Blend(zr, mask, strength, yr))
    images = to_uint8(render(gen, z, y, swap=swap, blends=blends, truncation=trunc))
    sources = to_uint8(render(gen, z, y, truncation=trunc))

    out = []
    for k, v in enumerate(variants):
        ms = per_masks[k]
        union = 1 - np.prod([1 - m for m in ms], axis=0) if ms else np.zeros((res, res), np.float32)
        union_u8 = np.round(np.clip(union, 0, 1) * 255).astype(np.uint8)
        p = v.params
        edit_classes = []
        for e in p["edits"]:
            if "label_swap" in e:
                edit_classes.append(e["label_swap"]["to"])
            elif "class" in e["blend"]["reference"]:
                edit_classes.append(e["blend"]["reference"]["class"])
        if info.n_classes:
            weights = class_weight_maps(recipe, v, res, ms)
            label_map = weights.argmax(0).astype(np.uint8 if info.n_classes <= 256 else np.uint16)
            counts = np.bincount(label_map.ravel(), minlength=info.n_classes)
            soft = {info.class_names[c]: float(counts[c] / label_map.size) for c in np.nonzero(counts)[0]}
            label_id = int(counts.argmax())
            label = info.class_names[label_id]
            source_class = p["source"]["class"]
        else:
            label_map = None
            label = recipe.data["output"].get("label") or recipe.name
            label_id, soft, source_class = 0, {label: 1.0}, None
        out.append(RenderedVariant(
            index=v.index, seed=v.seed, params=p, image=images[k], source_image=sources[k],
            label_map=label_map, mask=union_u8, label=label, label_id=label_id, soft_label=soft,
            source_class=source_class, edit_classes=edit_classes,
            locality=locality(images[k], sources[k], union)))
    return out


# ==============================================================================================
# Writing recipes
# ==============================================================================================
class _Dumper(yaml.SafeDumper):
    pass


def _repr_list(dumper, data):
    flow = all(not isinstance(x, (dict, list)) for x in data) or \
        all(isinstance(x, list) and all(not isinstance(y, (dict, list)) for y in x) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_dict(dumper, data):
    # short mappings of scalars/flat lists read best inline ({choice: [a, b]}, {range: [0, 1]})
    def flat(v):
        return not isinstance(v, (dict, list)) or \
            (isinstance(v, list) and all(not isinstance(x, dict) and (not isinstance(x, list) or all(map(flat, x)))
                                         for x in v))
    flow = len(data) <= 3 and all(flat(v) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(dict, _repr_dict)


def _ordered(v, node: Node | None):
    """Keys in the schema's order (so dumped recipes read top-down like the docs)."""
    if isinstance(v, dict):
        fields = node.fields if isinstance(node, Obj) else {}
        if isinstance(node, OneOf):
            hit = [o for o in node.options if o.matches(v)]
            fields = hit[0].fields if hit and isinstance(hit[0], Obj) else {}
        keys = [k for k in fields if k in v] + [k for k in v if k not in fields]
        return {k: _ordered(v[k], fields[k].node if k in fields else None) for k in keys}
    if isinstance(v, list):
        item = node.item if isinstance(node, Seq) else None
        if isinstance(node, OneOf):
            hit = [o for o in node.options if o.matches(v)]
            item = hit[0].item if hit and isinstance(hit[0], Seq) else None
        return [_ordered(x, item) for x in v]
    return v


def dump_recipe(data: dict) -> str:
    """Canonical YAML text for a recipe dict (schema key order, short lists inline)."""
    return yaml.dump(_ordered(data, RECIPE), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _atomic_write(path: Path, payload: bytes) -> None:
    atomic_write_bytes(path, payload, make_parents=True)


def _walk_regions(data: dict):
    """Every region mapping of a recipe dict (choices included)."""
    for edit in data.get("edits") or []:
        if not isinstance(edit, dict):
            continue
        for spec in edit.values():
            region = spec.get("region") if isinstance(spec, dict) else None
            if isinstance(region, dict):
                yield from (region["choice"] if isinstance(region.get("choice"), list) else [region])


def save_recipe(data: dict, name: str, recipes_dir: str | Path, masks: dict = {}) -> Path:  # noqa: B006
    """Validate, then write `<recipes_dir>/<name>.yaml` and each mask as `masks/<name>/<key>.png`.

    Regions `{mask: "<key>"}` whose key is in `masks` are rewritten to the PNG's relative path.
    Nothing is written if validation fails; every file is written atomically (masks first, so a
    recipe file never refers to a mask that is not there yet)."""
    import io

    from PIL import Image

    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise RecipeError(f"{name!r}: not a valid recipe name: use letters, digits, '_', '.', '-' "
                          "(no path separators, no '..')")
    recipes_dir = Path(recipes_dir)
    data = copy.deepcopy(data)
    data["name"] = name
    pngs: dict[str, bytes] = {}
    overrides: dict[str, tuple] = {}
    for region in _walk_regions(data):
        key = region.get("mask")
        if isinstance(key, str) and key in masks:
            if not re.match(r"^[A-Za-z0-9_.-]+$", key) or ".." in key:
                raise RecipeError(f"mask key {key!r}: use letters, digits, '_', '.', '-' only")
            rel = f"masks/{name}/{key}.png"
            if rel not in pngs:
                img = masks[key]
                arr = M.mask_from_image(img) if isinstance(img, Image.Image) else \
                    np.round(np.clip(np.asarray(img, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(arr, mode="L").save(buf, format="PNG")
                pngs[rel] = buf.getvalue()
                overrides[rel] = (arr.astype(np.float32) / 255.0, hashlib.sha256(pngs[rel]).hexdigest())
            region["mask"] = rel
    target = recipes_dir / f"{name}.yaml"
    recipe = _parse(copy.deepcopy(data), str(target), recipes_dir, text=None, path=None, mask_overrides=overrides)
    del recipe
    for rel, payload in pngs.items():
        _atomic_write(recipes_dir / rel, payload)
    _atomic_write(target, dump_recipe(data).encode("utf-8"))
    return target
