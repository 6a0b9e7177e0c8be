"""Parts: per-pixel part segmentation of a generator's own images, found without annotation.

Why: fixed masks ("the eyes are in this box") do not follow the content, and a label map says
what was asked, not what was rendered. "Editing in Style" (Collins et al., CVPR 2020) showed that
spherical k-means on a GAN's normalised intermediate activations gives parts (eyes, mouth, hair,
background; grass, rock, sky) that are consistent across samples. Here:

- `discover` renders seeded samples once, captures the features at one or more blend points
  (the engine's `capture` hook: the features of the very pass that renders the images), centres
  and L2-normalises every pixel's feature vector and runs spherical k-means (k-means++ seeding,
  several restarts, the best objective kept). Deterministic for a seed on a given machine.
  `by_class=True` (class-conditional models) anchors one part per class on the model's own
  conditioning instead (`toolkit.part_fit.class_anchors`): on terrain64 the k-means parts did
  not mean the same material across images, these do (docs/PARTS.md "How good").
- A `PartModel` holds the centroids (and, class-anchored, a bias), the points, the per-point
  feature means, the part names and the model it belongs to (id + sha256); it refuses any other.
- `segment_features` turns already-captured features into a part map at image resolution: the
  scores are computed per point on its own grid (K maps, not C channels), upsampled bilinearly
  to the image (the only smoothing), best part per pixel: about 0.1–0.25× the render that
  produced the features; `segment` renders and segments in one pass for callers without features.

This module renders through the engine and never mutates the generator. File I/O: `PartModel.save`
(atomic, through `toolkit.io`) and `load` (safetensors: no code runs on load).
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from .checkpoints import state_sha256
from .formats.core import read_tagged_safetensors
from .part_fit import class_anchors, spherical_kmeans
from .engine import render_with_features
from .images import grid, to_uint8
from .io import atomic_path
from .sampling import derive_seed, sample_classes, sample_latents


FORMAT_TAG = "nct-part-model-1"
SHIPPED_DIR = Path(__file__).parent / "weights" / "parts"
# One colour per part id for overlays, part-map palettes and the app (distinct, colour-blind-aware first 8).
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (120, 120, 120), (170, 255, 195), (128, 0, 0), (255, 215, 180), (0, 0, 128),
           (170, 110, 40), (128, 128, 0), (255, 250, 200), (60, 180, 75)]


class PartModelError(ValueError):
    """A part model that cannot be used here (wrong model, bad file); the message says how to fix it."""


def model_sha256(generator) -> str:
    """The identity a part model is tied to: the loaded weights' sha256 (`provenance`), or for a
    model built in code (no provenance) the hash of its state."""
    prov = getattr(generator, "provenance", None)
    return prov.sha256 if prov is not None else state_sha256(generator.state_dict())


def _model_id(generator) -> str:
    prov = getattr(generator, "provenance", None)
    return prov.model_id if prov is not None else f"unsaved {generator.architecture} model"


def default_points(generator) -> tuple[int, ...]:
    """Mid-resolution blend points, per architecture: those at 1/4 and 1/2 of the image side when
    the model has them (16×16 + 32×32 for 64-pixel models), else the two finest below the image.

    Why two: the coarser point carries what a region *is* (semantics), the finer one where its
    border runs; concatenated, terrain64's class-anchored parts beat either alone (ARI 0.56 against
    0.47 and 0.45; for its k-means parts all three were about 0.1: docs/PARTS.md)."""
    res = generator.blend_resolutions
    want = [i for i, r in enumerate(res) if r in (generator.resolution // 4, generator.resolution // 2)]
    if len(want) == 2:
        return tuple(want)
    below = [i for i, r in enumerate(res) if r < generator.resolution] or list(range(len(res)))
    return tuple(below[-2:])


@dataclass
class PartModel:
    """Centroids of parts in a generator's feature space, and the model they belong to."""
    centroids: torch.Tensor            # [K, D] unit rows; D = the points' channel counts summed
    points: tuple[int, ...]            # blend points whose features are concatenated (finest sets the grid)
    means: list[torch.Tensor]          # per point: the channel mean [C] subtracted before normalising
    model_id: str
    sha256: str
    names: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)   # how it was made: samples, seed, classes, objective, coverage
    smooth: int = 1                    # box average (feature pixels) before normalising; see pixel_features
    per_image: bool = False            # centre each image's features on its own mean; see pixel_features
    bias: torch.Tensor | None = None   # [K] class-anchored models (discover(by_class=True)): linear scores

    def __post_init__(self):
        self.points = tuple(int(p) for p in self.points)
        if not self.names:
            self.names = [f"part{i}" for i in range(self.n_parts)]
        if len(self.names) != self.n_parts:
            raise PartModelError(f"part model has {self.n_parts} parts but {len(self.names)} names")

    @property
    def n_parts(self) -> int:
        return self.centroids.shape[0]

    @property
    def point(self) -> int:
        """The finest point: the grid the part map is computed on before upsampling."""
        return max(self.points)

    # -- identity ---------------------------------------------------------------------------------
    def check(self, generator) -> None:
        """Raise PartModelError unless `generator` is the model these parts were found on."""
        sha = model_sha256(generator)
        if sha != self.sha256:
            raise PartModelError(
                f"this part model belongs to {self.model_id} (sha256 {self.sha256[:12]}…), not to "
                f"{_model_id(generator)} (sha256 {sha[:12]}…): parts are clusters of one model's features "
                f"and mean nothing for another. Discover parts for this model: "
                f"python -m toolkit parts MODEL --parts K --out FILE")

    def ids(self, parts) -> list[int]:
        """Part names and/or ids (one or a list) → sorted part ids. A name given to several parts
        (e.g. two clusters both named `skin`) selects all of them."""
        items = parts if isinstance(parts, (list, tuple)) else [parts]
        out: set[int] = set()
        for p in items:
            if isinstance(p, (int, np.integer)) or (isinstance(p, str) and p.strip().isdigit()):
                i = int(p)
                if not 0 <= i < self.n_parts:
                    raise PartModelError(f"part id {i} is out of range: this part model has ids 0..{self.n_parts - 1}")
                out.add(i)
                continue
            hits = [i for i, n in enumerate(self.names) if n.lower() == str(p).strip().lower()]
            if not hits:
                close = difflib.get_close_matches(str(p).lower(), [n.lower() for n in self.names], n=3, cutoff=0.5)
                raise PartModelError(f"unknown part {p!r}; the parts of {self.model_id} are "
                                     f"{', '.join(sorted(set(self.names)))}"
                                     + (f". Did you mean {', '.join(map(repr, close))}?" if close else ""))
            out.update(hits)
        if not out:
            raise PartModelError("no part given: name at least one part (or id)")
        return sorted(out)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write safetensors (centroids, means) with the rest as JSON metadata, atomically."""
        path = Path(path)
        tensors = {"centroids": self.centroids.float().contiguous().cpu()}
        tensors.update({f"mean.{p}": m.float().contiguous().cpu() for p, m in zip(self.points, self.means)})
        if self.bias is not None:
            tensors["bias"] = self.bias.float().contiguous().cpu()
        meta = {"format": FORMAT_TAG, "part_model": json.dumps({
            "points": list(self.points), "model_id": self.model_id, "sha256": self.sha256,
            "names": list(self.names), "info": self.info, "smooth": self.smooth,
            "per_image": self.per_image})}
        with atomic_path(path, make_parents=True) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PartModel":
        path = Path(path)
        if not path.is_file():
            raise PartModelError(f"part model file {path} does not exist; make one with "
                                 "python -m toolkit parts MODEL --parts K --out FILE")
        meta, tensors = read_tagged_safetensors(path, FORMAT_TAG, "part model", error=PartModelError,
                                                fix="make one with python -m toolkit parts")
        if "part_model" not in meta:
            raise PartModelError(f"{path}: no part model metadata; the file is damaged, rebuild it with "
                                 "python -m toolkit parts")
        d = json.loads(meta["part_model"])
        points = tuple(d["points"])
        missing = [k for k in ["centroids"] + [f"mean.{p}" for p in points] if k not in tensors]
        if missing:
            raise PartModelError(f"{path}: tensors {missing} are missing; the file is damaged, rebuild it")
        c = tensors["centroids"].float()
        means = [tensors[f"mean.{p}"].float() for p in points]
        bias = tensors.get("bias")
        if c.dim() != 2 or c.shape[1] != sum(m.numel() for m in means) or \
                (bias is not None and bias.shape != (c.shape[0],)):
            raise PartModelError(f"{path}: centroids {list(c.shape)} do not match the feature means "
                                 f"({[m.numel() for m in means]} channels) or the bias; the file is damaged, rebuild it")
        return cls(c, points, means, d["model_id"], d["sha256"], list(d["names"]), dict(d.get("info", {})),
                   int(d.get("smooth", 1)), bool(d.get("per_image", False)), None if bias is None else bias.float())

    def with_names(self, names: Sequence[str]) -> "PartModel":
        return PartModel(self.centroids, self.points, self.means, self.model_id, self.sha256, list(names),
                         self.info, self.smooth, self.per_image, self.bias)


def shipped_path(model_id: str) -> Path:
    return SHIPPED_DIR / f"{model_id}.safetensors"


def shipped(generator) -> PartModel | None:
    """The part model that ships with the toolkit for this generator (by zoo name, checked by
    sha256), or None when there is none."""
    prov = getattr(generator, "provenance", None)
    if prov is None or prov.source != "zoo" or not shipped_path(prov.model_id).is_file():
        return None
    pm = PartModel.load(shipped_path(prov.model_id))
    pm.check(generator)
    return pm


# -- features ---------------------------------------------------------------------------------------
def _tensor(state) -> torch.Tensor:
    """The feature map of a stage state (StyleGAN2's state is features + RGB skip: the features)."""
    return state[0] if isinstance(state, tuple) else state


def blur(m: torch.Tensor, k: int) -> torch.Tensor:
    """k×k box average on the feature grid (same size; borders average what is inside)."""
    if k == 2:   # the default, several times faster than avg_pool2d's count_include_pad=False path, the
        # same values: the top/left edge repeated (2·x there) averages to the mean of the pixels inside.
        # Separable (pairs along rows, then along columns), written in place of a padded copy
        # (replication padding alone cost as much as the rest of segment_features).
        h = torch.empty_like(m)
        torch.add(m[..., 1:], m[..., :-1], out=h[..., 1:])
        torch.mul(m[..., :1], 2, out=h[..., :1])
        v = torch.empty_like(m)
        torch.add(h[..., 1:, :], h[..., :-1, :], out=v[..., 1:, :])
        torch.mul(h[..., :1, :], 2, out=v[..., :1, :])
        return v.mul_(0.25)
    return m if k <= 1 else F.avg_pool2d(m, k, 1, k // 2, count_include_pad=False)[..., :m.shape[-2], :m.shape[-1]]


def _prepare(m: torch.Tensor, smooth: int, per_image: bool) -> torch.Tensor:
    m = blur(m.float(), smooth)
    return m - m.mean((2, 3), keepdim=True) if per_image else m


def _point_features(state, mean: torch.Tensor, smooth: int, per_image: bool) -> torch.Tensor:
    """One point's `[B, C, h, w]` features, box-averaged, centred and L2-normalised per pixel."""
    m = _tensor(state).float()
    return F.normalize(_prepare(m, smooth, per_image) - mean.to(m.device).view(1, -1, 1, 1), dim=1)


def pixel_features(states: dict, points: Sequence[int], means: Sequence[torch.Tensor], smooth: int = 1,
                   per_image: bool = False, unit: bool = True) -> torch.Tensor:
    """`[B, D, h, w]`: per point, box-averaged over `smooth`×`smooth` feature pixels (transposed
    convolutions leave a 2×2 checkerboard in the features that k-means would otherwise cluster
    on; an even size cancels it, at a shift of half a feature pixel), centred (`per_image`: on each
    image's own mean, so parts are what differs *within* a sample rather than global lighting or
    skin tone; then on the dataset mean `means`), L2-normalised per pixel, upsampled (bilinear) to
    the finest point's grid and concatenated; the whole vector is scaled back to unit length (`unit`; class-anchored models,
    whose scores have a bias, use the concatenation as it is)."""
    size = max(tuple(_tensor(states[p]).shape[-2:]) for p in points)
    out = []
    for st, mean in zip((states[p] for p in points), means):
        m = _point_features(st, mean, smooth, per_image)
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        out.append(m)
    return F.normalize(torch.cat(out, 1), dim=1) if unit else torch.cat(out, 1)


def part_scores(part_model: PartModel, states: dict, size: int | None = None) -> torch.Tensor:
    """`[B, K, H, W]` part scores, upsampled to `size` (bilinear); the best part per pixel is the
    argmax over K.

    Why not the cosine to the concatenated vector of `pixel_features` directly: preparing and
    upsampling every channel (192 on faces64) to the finest grid cost about as much as the render.
    The scores are computed per point instead, at that point's own resolution: each point's
    normalised features dotted with that point's slice of each centroid (K maps per point),
    upsampled (bilinear, a linear map, so it commutes with the dot product) to the finest grid and
    summed. That is the cosine to the concatenated vector times that vector's length before its
    final normalisation, a positive per-pixel factor: the best part of every feature pixel of the
    finest grid is the same as the full cosine's, and the image-resolution map differs only where
    the final bilinear upsampling mixes neighbours whose factors differ (a part border; measured in
    docs/PARTS.md and tests/test_parts.py)."""
    missing = [p for p in part_model.points if p not in states]
    if missing:
        raise PartModelError(f"features at blend point(s) {missing} were not captured; render with "
                             f"capture={list(part_model.points)} (part_model.points)")
    grid_size = max(tuple(_tensor(states[p]).shape[-2:]) for p in part_model.points)
    c = part_model.centroids
    total, start = None, 0
    for p, mean in zip(part_model.points, part_model.means):
        m = _tensor(states[p]).float()
        x = blur(m, part_model.smooth)
        shift = mean.to(m.device).view(1, -1, 1, 1)
        if part_model.per_image:
            shift = shift + x.mean((2, 3), keepdim=True)
        x = x.sub_(shift) if x is not m else x - shift       # one pass; never write into the caller's states
        cp = c[:, start:start + x.shape[1]].to(x.device)
        start += x.shape[1]
        # normalise the K dot products rather than the C channels: the same cosine, C/K times less work
        norm = (x * x).sum(1, keepdim=True).sqrt_().clamp_min_(1e-12)    # 5× faster than vector_norm here
        s = (cp @ x.flatten(2)).view(x.shape[0], -1, *x.shape[2:]) / norm                  # [B, K, h, w]
        if tuple(s.shape[-2:]) != grid_size:
            s = F.interpolate(s, size=grid_size, mode="bilinear", align_corners=False)
        total = s if total is None else total + s
    if part_model.bias is not None:      # class-anchored: linear scores on the concatenation (exact, see discover)
        total = total + part_model.bias.to(total.device).view(1, -1, 1, 1)
    if size is not None and tuple(total.shape[-2:]) != (size, size):
        # channels-last: the upsampling and segment_features' argmax over K run several times faster
        total = F.interpolate(total.contiguous(memory_format=torch.channels_last), size=(size, size),
                              mode="bilinear", align_corners=False)
    return total


def segment_features(part_model: PartModel, states: dict, size: int) -> torch.Tensor:
    """Part ids `[B, size, size]` (long) from features captured at `part_model.points` during a
    render (`render_with_features(..., capture=part_model.points)`): no second forward pass."""
    # contiguous when channels-last; max(-1).indices is argmax (first of ties too), 30% faster here
    return part_scores(part_model, states, size).permute(0, 2, 3, 1).max(-1).indices


@torch.no_grad()
def segment(generator, part_model: PartModel, z: torch.Tensor, y=None, **render_options) -> torch.Tensor:
    """Render `z` (with any edits in `render_options`: swap, blends, ...) and return its part map
    `[B, H, W]` at image resolution. Callers that also need the images should use
    `render_with_features` + `segment_features` (one pass for both)."""
    part_model.check(generator)
    _, states = render_with_features(generator, z, y, capture=part_model.points, **render_options)
    return segment_features(part_model, states, generator.resolution)


# -- discovery ------------------------------------------------------------------------------------
def sample_inputs(generator, n: int, seed: int, classes=None):
    """Latents (and classes, on conditional models) of the `n` seeded samples discovery uses."""
    if classes and not generator.n_classes:
        raise ValueError(f"{generator.name_for_errors} is unconditional: do not pass classes")
    seeds = [derive_seed("parts", seed, i) for i in range(n)]
    z = sample_latents(generator, seeds)
    return z, (sample_classes(generator, seeds, classes) if generator.n_classes else None)


@torch.no_grad()
def capture_states(generator, z, y, points: Sequence[int], batch_size: int = 32) -> dict:
    """Features at `points` for all rows, rendered in batches; tensors moved to the CPU."""
    chunks: dict = {p: [] for p in points}
    for i in range(0, len(z), batch_size):
        _, st = render_with_features(generator, z[i:i + batch_size], None if y is None else y[i:i + batch_size],
                                     capture=list(points))
        for p in points:
            chunks[p].append(_tensor(st[p]).float().cpu())
    return {p: torch.cat(v) for p, v in chunks.items()}


@torch.no_grad()
def discover(generator, n_parts: int, *, n_samples: int = 256, point: int | Sequence[int] | None = None,
             seed: int = 0, classes=None, restarts: int = 4, smooth: int = 2, per_image: bool = True,
             max_pixels: int = 150_000, by_class: bool = False) -> PartModel:
    """Find `n_parts` parts of `generator` from `n_samples` seeded samples (see the module docstring).

    point: a blend point or several (features concatenated); default `default_points`. classes:
    class ids/names the samples are drawn from (conditional models; default all). At most
    `max_pixels` pixel vectors (a seeded subset) enter the k-means; all pixels count for coverage.
    Parts are numbered by coverage, largest first, and named part0, part1, ... until named.

    by_class (class-conditional models): one part per class the samples are drawn from, anchored
    on the model's own conditioning instead of k-means (`class_anchors`; features centred on the
    dataset mean, not per image, and not rescaled after concatenation, since the scores are linear);
    parts keep the classes' order and names. `n_parts` must be that number of classes.
    """
    if n_parts < 2:
        raise ValueError(f"n_parts must be at least 2, got {n_parts}")
    if by_class and not generator.n_classes:
        raise ValueError(f"by_class anchors parts on classes, but {generator.name_for_errors} is unconditional: "
                         "discover without by_class")
    per_image = per_image and not by_class
    points = default_points(generator) if point is None else \
        ((int(point),) if isinstance(point, (int, np.integer)) else tuple(sorted({int(p) for p in point})))
    bad = [p for p in points if not 0 <= p < generator.n_blend_points]
    if bad:
        raise ValueError(f"blend point(s) {bad} out of range: {generator.name_for_errors} has points "
                         f"0..{generator.n_blend_points - 1} at resolutions {generator.blend_resolutions}")
    z, y = sample_inputs(generator, n_samples, seed, classes)
    states = capture_states(generator, z, y, points)
    means = [_prepare(_tensor(states[p]), smooth, per_image).mean((0, 2, 3)) for p in points]
    x = pixel_features(states, points, means, smooth, per_image, unit=not by_class)       # [N, D, h, w]
    flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    rng = torch.Generator().manual_seed(derive_seed("parts-fit", seed))
    pick = torch.randperm(len(flat), generator=rng)[:max_pixels] if len(flat) > max_pixels else torch.arange(len(flat))
    fit = flat[pick]
    if by_class:
        return _discover_by_class(generator, x, flat, fit, pick, y, n_parts, points, means, smooth, n_samples, seed)
    c, score = spherical_kmeans(fit, n_parts, seed=derive_seed("kmeans", seed), restarts=restarts)
    counts = torch.bincount((flat @ c.T).argmax(1), minlength=n_parts)
    order = counts.argsort(descending=True, stable=True)
    c = c[order]
    cover = (counts[order].float() / counts.sum()).tolist()
    info = {"n_samples": n_samples, "seed": seed, "classes": None if classes is None else [str(k) for k in classes],
            "objective": round(score, 6), "coverage": [round(v, 4) for v in cover],
            "grid": list(x.shape[-2:]), "restarts": restarts}
    return PartModel(c, points, means, _model_id(generator), model_sha256(generator), info=info, smooth=smooth,
                     per_image=per_image)


def _discover_by_class(generator, x, flat, fit, pick, y, n_parts, points, means, smooth, n_samples, seed):
    used = sorted(set(y.tolist()))
    if n_parts != len(used):
        raise ValueError(f"by_class makes one part per class: the {n_samples} samples are drawn from {len(used)} "
                         f"classes, so n_parts must be {len(used)}, not {n_parts}")
    lab = torch.as_tensor([used.index(int(v)) for v in y]).repeat_interleave(x.shape[2] * x.shape[3])
    a, b = class_anchors(fit, lab[pick], len(used))
    assign = (flat @ a.T + b).argmax(1)
    cover = (torch.bincount(assign, minlength=n_parts).float() / len(flat)).tolist()
    info = {"n_samples": n_samples, "seed": seed, "classes": [generator.class_names[i] for i in used],
            "method": "by_class", "coverage": [round(v, 4) for v in cover], "grid": list(x.shape[-2:]),
            "own_class_share": round(float((assign == lab).float().mean()), 4)}
    return PartModel(a, points, means, _model_id(generator), model_sha256(generator),
                     [generator.class_names[i] for i in used], info, smooth, False, b)


# -- figures ------------------------------------------------------------------------------------------
def coverage(labels: torch.Tensor, n_parts: int) -> dict[str, list[float]]:
    """Per part: share of all pixels, and share of images where it covers ≥ 1% (how often it occurs)."""
    flat = labels.reshape(labels.shape[0], -1)
    per = torch.stack([torch.bincount(r, minlength=n_parts) for r in flat]).float() / flat.shape[1]
    return {"pixels": per.mean(0).tolist(), "present": (per >= 0.01).float().mean(0).tolist()}


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labelings of the same pixels (1 = identical up to renaming,
    about 0 = chance), from the contingency table (Hubert & Arabie 1985)."""
    a = np.asarray(a).ravel().astype(np.int64)
    b = np.asarray(b).ravel().astype(np.int64)
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.float64)
    np.add.at(table, (ai, bi), 1)
    comb = lambda v: (v * (v - 1) / 2).sum()
    n = comb(np.array([a.size], dtype=np.float64))
    s_ij, s_a, s_b = comb(table), comb(table.sum(1)), comb(table.sum(0))
    expected = s_a * s_b / n if n else 0.0
    top = (s_a + s_b) / 2 - expected
    return float((s_ij - expected) / top) if top else 1.0


def overlay(images_u8: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """`[B, H, W, 3]` uint8 images tinted by part colour (`PALETTE`), for sheets and the app."""
    pal = np.array(PALETTE * (1 + int(labels.max(initial=0)) // len(PALETTE)), dtype=np.float32)
    tint = pal[labels]
    return (images_u8.astype(np.float32) * (1 - alpha) + tint * alpha).round().astype(np.uint8)


@torch.no_grad()
def part_sheet(generator, part_model: PartModel, n: int = 16, seed: int = 1, scale: int | None = None):
    """A sheet for naming parts: rows of samples, each over its part overlay, and a legend with
    every part's id, name, colour and pixel share. Samples are seeded (`sample_inputs(.., seed)`)."""
    part_model.check(generator)
    z, y = sample_inputs(generator, n, seed)
    img, states = render_with_features(generator, z, y, capture=part_model.points)
    labels = segment_features(part_model, states, generator.resolution).cpu().numpy()
    pics = to_uint8(img)
    tinted = overlay(pics, labels)
    cols = min(8, n)
    rows = []
    for r in range(0, n, cols):
        rows.append([Image.fromarray(a) for a in pics[r:r + cols]])
        rows.append([Image.fromarray(a) for a in tinted[r:r + cols]])
    scale = scale or max(1, 128 // generator.resolution)
    sheet = grid(rows, scale=scale)
    share = coverage(torch.as_tensor(labels), part_model.n_parts)["pixels"]
    line = 16
    out = Image.new("RGB", (max(sheet.width, 300), sheet.height + 8 + line * ((part_model.n_parts + 2) // 3)), "white")
    out.paste(sheet, (0, 0))
    draw = ImageDraw.Draw(out)
    colw = out.width // 3
    for i, name in enumerate(part_model.names):
        x, yy = 6 + (i % 3) * colw, sheet.height + 4 + line * (i // 3)
        draw.rectangle([x, yy + 2, x + 11, yy + 13], fill=PALETTE[i % len(PALETTE)])
        draw.text((x + 16, yy + 2), f"{i} {name} {100 * share[i]:.0f}%", fill="black")
    return out
