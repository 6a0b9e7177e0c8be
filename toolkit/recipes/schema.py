"""The recipe format as one JSON Schema (draft 2020-12), kept as Python data.

This is the schema the validator (`toolkit.recipes.spec`) runs and the one `python -m toolkit
schema` prints: one description, so they cannot drift apart. Besides the standard keywords,
nodes may carry `x-expected`: the wording error messages use for "what is allowed here" (JSON
Schema validators ignore unknown keywords). Model-dependent rules (class names, stage and
blend-point counts) and mask files cannot be said here; `toolkit.recipes.recipe` checks them.
"""
from __future__ import annotations

SCHEMA_ID = "https://neural-collage-toolkit.invalid/recipe.schema.json"
MAX_SEED = 2 ** 63 - 1
MAX_COUNT = 10_000_000          # variants in one dataset; more: shard one run, or several datasets
MAX_PINNED_SEEDS = 1000
DEFAULT_REFERENCE_SEEDS = [0, 2 ** 31 - 1]
BLEND_PRESETS = ("coarse", "parts", "texture")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def num(lo=None, hi=None, *, integer=False, lo_open=False, **kw) -> dict:
    d: dict = {"type": "integer" if integer else "number"}
    if lo is not None:
        d["exclusiveMinimum" if lo_open else "minimum"] = lo
    if hi is not None:
        d["maximum"] = hi
    return {**d, **kw}


def string(enum=None, **kw) -> dict:
    d: dict = {"type": "string"}
    if enum is not None:
        d["enum"] = list(enum)
    return {**d, **kw}


def seq(item: dict, min_items: int = 0, max_items: int | None = None, **kw) -> dict:
    d = {"type": "array", "items": item, "minItems": min_items}
    if max_items is not None:
        d["maxItems"] = max_items
    return {**d, **kw}


def obj(props: dict, required=(), **kw) -> dict:
    d: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        d["required"] = list(required)
    return {**d, **kw}


def tagged(key: str, value: str, props: dict, required=(), **kw) -> dict:
    """An object told apart from its siblings by a constant `key` (e.g. `shape: ellipse`)."""
    return obj({key: {"type": "string", "const": value}, **props}, [key, *required], **kw)


def any_of(*options: dict, **kw) -> dict:
    return {"anyOf": list(options), **kw}


def rand(base: dict, *, allow_range: bool = True, **kw) -> dict:
    """A value that is fixed, `{choice: [...]}` (uniform over the list) or `{range: [lo, hi]}`
    (uniform; integers: lo..hi inclusive)."""
    opts = [base, obj({"choice": seq(base, 1)}, ["choice"], **{"x-expected": "{choice: [value, ...]}"})]
    if allow_range and base["type"] in ("number", "integer"):
        opts.append(obj({"range": seq(base, 2, 2)}, ["range"], **{"x-expected": "{range: [low, high]}"}))
    return any_of(*opts, **kw)


def _x(text: str) -> dict:
    return {"x-expected": text}


CLASS = any_of(string(), num(0, integer=True), **_x("a class name or id"))
CLASS_CHOICE = obj({"choice": seq(CLASS, 1)}, ["choice"], **_x("{choice: [class, ...]}"))
REL = num(-1, 2)        # relative coordinates may lie a little outside the image (partly visible shapes)
POINT = seq(REL, 2, 2, **_x("[x, y] (relative: 0..1, y down)"))
SIZE = seq(num(0, 2, lo_open=True), 2, 2, **_x("[width, height] (relative)"))

JITTER = obj({
    "translate": any_of(num(0, 1), seq(num(0, 1), 2, 2), **_x("a number or [x, y]")),
    "scale": any_of(num(0, 10, lo_open=True), seq(num(0, 10, lo_open=True), 2, 2), **_x("a factor or [low, high]")),
    "rotate": num(0, 180),
}, description="Random per-variant transform of the region: translate up to ±t (relative; or [tx, ty]), "
               "scale by a factor drawn from [low, high], rotate by up to ±degrees (about the region's centre).")


def _common() -> dict:
    return {"jitter": JITTER, "feather": num(0, 0.5, default=0.0)}


SHAPE_RECT = tagged("shape", "rectangle", {"box": seq(REL, 4, 4, **_x("[x0, y0, x1, y1] (relative)")), **_common()},
                    ["box"], **_x("{shape: rectangle, box: [x0, y0, x1, y1]}"))
SHAPE_ELLIPSE = tagged("shape", "ellipse", {"center": POINT, "size": SIZE, "angle": num(-360, 360), **_common()},
                       ["center", "size"], **_x("{shape: ellipse, center: [x, y], size: [w, h]}"))
SHAPE_POLY = tagged("shape", "polygon", {"points": seq(POINT, 3, **_x("a list of 3+ [x, y] points")), **_common()},
                    ["points"], **_x("{shape: polygon, points: [[x, y], ...]}"))
MASK_FILE = obj({"mask": string(description="PNG path relative to the recipe's folder (white or opaque = inside)"),
                 **_common()}, ["mask"], **_x("{mask: masks/file.png}"))
BLOB = obj({"blob": obj({
    "size": any_of(num(0, 1.5, lo_open=True), seq(num(0, 1.5, lo_open=True), 2, 2), default=[0.2, 0.5],
                   **_x("a number or [low, high]")),
    "center": any_of(POINT, obj({"range": seq(REL, 4, 4, **_x("[x0, y0, x1, y1]"))}, ["range"],
                                **_x("{range: [x0, y0, x1, y1]}")),
                     default={"range": [0.25, 0.25, 0.75, 0.75]}, **_x("[x, y] or {range: [x0, y0, x1, y1]}")),
}, description="A smooth random outline: diameter drawn from `size`, centre from `center`."), **_common()},
    ["blob"], **_x("{blob: {size: [low, high]}}"))
PART_NAME = any_of(string(), num(0, integer=True), **_x("a part name or id"))
PART_SPEC = any_of(PART_NAME, seq(PART_NAME, 1), **_x("a part name or id, or a list of them"))
PART = obj({"part": PART_SPEC,
            "grow": num(0, 64, integer=True, default=0, description="Dilate the part's pixels by this many pixels"),
            "feather": num(0, 0.5, default=0.0)}, ["part"],
           description="The source's own pixels of these parts (its part map: the recipe's `parts` file or the "
                       "part model shipped for the model), so the region follows every sample.",
           **_x("{part: eyes_mouth} or {part: [skin, 3]}"))
_REGION_KINDS = [SHAPE_RECT, SHAPE_ELLIPSE, SHAPE_POLY, MASK_FILE, BLOB, PART]
_REGION_WHAT = "a region: {shape: rectangle|ellipse|polygon, ...}, {mask: file.png}, {blob: {...}} or {part: name}"
REGION_ONE = any_of(*_REGION_KINDS, **_x(_REGION_WHAT))
REGION = any_of(*_REGION_KINDS, obj({"choice": seq(REGION_ONE, 1)}, ["choice"], **_x("{choice: [region, ...]}")),
                description="Where the edit applies, in relative coordinates (0..1, x right, y down).",
                **_x(_REGION_WHAT + ", or {choice: [region, ...]}"))

STAGE_RANGE = seq(num(0, integer=True), 2, 2, **_x("[first, last] (inclusive stage indices)"))
STAGES = any_of(string(["all"]), STAGE_RANGE, obj({"choice": seq(STAGE_RANGE, 1)}, ["choice"], **_x("{choice: [[a, b], ...]}")),
                default="all", description="Stages (0 = the first stage after the stem) that use this edit's class.",
                **_x("'all', [first, last] or {choice: [[a, b], ...]}"))
STRENGTH01 = num(0, 1)
_BLEND_ONE = [string(BLEND_PRESETS), num(0, 1), seq(rand(STRENGTH01), 1, **_x("a list with one strength per blend point"))]
_BLEND_ONE_WHAT = "a preset (coarse, parts, texture), a number in [0, 1], or one strength per blend point"
BLEND_STRENGTH = any_of(
    *_BLEND_ONE,
    obj({"range": seq(STRENGTH01, 2, 2)}, ["range"], **_x("{range: [low, high]}")),
    obj({"choice": seq(any_of(*_BLEND_ONE, **_x(_BLEND_ONE_WHAT)), 1)}, ["choice"], **_x("{choice: [...]}")),
    default="parts", description="Blend strength per blend point (after the stem, then after each stage).",
    **_x(_BLEND_ONE_WHAT + ", {range: [low, high]} or {choice: [...]}"))

LABEL_SWAP = obj({
    "to": any_of(CLASS, CLASS_CHOICE, **_x("a class name or id, or {choice: [class, ...]}")),
    "region": REGION,
    "stages": STAGES,
    "strength": rand(num(0, 1, lo_open=True), default=1.0),
    "reference": obj({
        "seed": rand(num(0, MAX_SEED, integer=True), default={"range": DEFAULT_REFERENCE_SEEDS}),
        "strength": BLEND_STRENGTH | {"default": 1.0},
        "points": seq(num(0, integer=True), 2, 2, description="Blend points [first, last] that a number or {range} "
                      "strength applies to (default: 0 to the middle point, the coarse layers).",
                      **_x("[first, last] (inclusive blend points)")),
    }, description="Also blend a generated sample of the swap's target class (latent `seed`) into the swap's "
                   "region: the swap gives the region the class's colour, the reference its texture "
                   "(docs/PHOTOS.md). Recorded in params as the seed and the strength per blend point."),
}, ["to", "region"], description="Swap the region to another class (spatial class-conditional BN).")
BLEND = obj({
    "reference": obj({
        "seed": rand(num(0, MAX_SEED, integer=True), default={"range": DEFAULT_REFERENCE_SEEDS}),
        "class": any_of(CLASS, CLASS_CHOICE, description="Reference class (default 'source': the variant's own class)",
                        **_x("'source', a class, or {choice: [class or 'source', ...]}")),
        "match": any_of(PART_SPEC, description="Pick, per variant, the candidate reference that fits the source "
                        "best around these parts (part-mask IoU minus a colour penalty in a ring around them; "
                        "docs/PARTS.md)", **_x("a part name or id, or a list of them")),
        "candidates": num(2, 256, integer=True,
                          description="With `match`: how many candidate seeds (drawn from `seed`) are compared "
                                      "(default 16)"),
    }, description="Which image the features come from: its latent seed and (conditional models) its class.",
        default={"seed": {"range": DEFAULT_REFERENCE_SEEDS}}),
    "region": REGION,
    "strength": BLEND_STRENGTH,
    "points": seq(num(0, integer=True), 2, 2, description="Blend points [first, last] that a number or {range} "
                  "strength applies to (default: all).", **_x("[first, last] (inclusive blend points)")),
}, ["region"], description="Paste a reference image's features into the region (feature blending).")
EDIT = any_of(obj({"label_swap": LABEL_SWAP}, ["label_swap"], **_x("{label_swap: {...}}")),
              obj({"blend": BLEND}, ["blend"], **_x("{blend: {...}}")),
              **_x("{label_swap: {...}} or {blend: {...}}"))

RECIPE_BODY = obj({
    "name": string(pattern=NAME_PATTERN, description="Recipe name (default: the file name without .yaml)"),
    "description": string(),
    "model": string(description="Zoo name (python -m toolkit models) or a weights path (relative to the recipe's folder)",
                    **_x("a zoo name (tiny, faces64, ...) or a weights path")),
    "seed": num(0, MAX_SEED, integer=True, default=0, description="Base seed: variant i uses derive_seed(seed, i)"),
    "count": num(1, MAX_COUNT, integer=True, default=16,
                 description=f"Default number of variants (at most {MAX_COUNT:,}: larger runs are split)",
                 **_x("an integer ≥ 1")),
    "source": obj({
        "classes": any_of(string(["all", "folders"]), CLASS, seq(CLASS, 1),
                          description="Source class drawn uniformly from these (conditional models; default: all). "
                                      "With `images`: 'folders' = each photo's class is the name of the subfolder "
                                      "it lies in (an ImageFolder layout); the label map's base class is that class",
                          **_x("'all', 'folders' (photos), a class, or a list of classes")),
        "truncation": rand(num(0, 1, lo_open=True)),
        "seeds": seq(num(0, MAX_SEED, integer=True), 1, MAX_PINNED_SEEDS,
                     description="Latent seeds of the first variants, in order (e.g. the source a recipe was "
                                 "designed on in the app); later variants draw their own."),
        "images": string(description="Edit real photos instead of generated sources: a folder or glob inside "
                                     "the recipe's folder; variant i edits photo i mod N (see docs/PHOTOS.md)"),
        "projection": string(["default", "fast"],
                             description="Projection preset for `images` (default: 300+200 steps, fast: 150+100)"),
    }, description="How source images are drawn: the class (uniform over `classes`), and truncation where the "
                   "model has it.", default={}),
    "parts": string(description="Part model file (python -m toolkit parts) for {part: ...} regions and matched "
                             "references, relative to the recipe's folder (default: the one shipped for the model)"),
    "edits": seq(EDIT, 1, description="Applied together in one render, in order (later regions cover earlier ones).",
                 **_x("a list of 1+ edits ({label_swap: ...} or {blend: ...})")),
    "filter": obj({
        "min_label_agreement": num(0, 1, description="Keep variants whose label_agreement (the share of label-map "
                                   "pixels the model's judge confirms) is at least this; the others are written as "
                                   "review: rejected-auto and the run renders more (up to 10 × count indices) until "
                                   "`count` variants pass. Needs a model with a judge (terrain64)."),
    }, ["min_label_agreement"], description="Which rendered variants count toward `count`.",
        **_x("{min_label_agreement: a number in [0, 1]}")),
    "output": obj({
        "label": string(description="Label for unconditional models (default: the recipe name)"),
        "save_source": {"type": "boolean", "default": True,
                        "description": "Also write the unedited source image (before/after pairs)"},
    }, default={}),
}, ["model", "edits"], description="A Neural Collage Toolkit recipe: edits to apply to many generated images, "
                                   "with random parameters.")

SCHEMA: dict = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
                "title": "Neural Collage Toolkit recipe", **RECIPE_BODY}
