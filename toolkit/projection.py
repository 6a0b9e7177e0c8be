"""Projection: real photos → a latent, a class vector and inverted features the engine can edit.

A GAN can only edit what it generated, so a photo is first *projected*: we search for the
inputs that make the generator reproduce it. Two phases, both Adam on the CPU or GPU the model
lives on, through `engine.run_stages` (the differentiable stage loop; no second loop here):

1. Latent phase: optimise z (and, for class-conditional models given no `y`, a soft class vector
   `softmax(logits)`, which also tells the user which class the photo looks like). A 64-px GAN
   rarely reproduces a real texture from z alone (terrain64: ~23 dB, a flat mean colour is ~25),
   so this phase finds the photo's class and layout, not its detail.
2. Feature phase: capture the stage state at blend point `point` and optimise that state directly,
   resuming the loop there (`engine.Start`).

Edits (`render_projection`) follow the original's real-image editing: the edited image is generated
from the projected latent and class with the edits at every stage asked for, and the inverted features
are pasted at `point` outside the edit region, so the region gets the new class while the rest stays
the reconstruction (and, after compositing, the photo).

Default point: the last blend point whose resolution is ≤ a quarter of the output (16×16 for the
64-px models, 32×32 for 128-px BigGAN). Earlier points reconstruct worse; later ones paste the
photo's features at a finer grid, so the soft edge between photo and edit is narrower.
Measured on terrain64 (FACTS.md, bench/projection.py).

Loss: mean squared error (what PSNR measures) plus a weights-free perceptual term, the L1 distance
of image gradients (finite differences) at full, half and quarter resolution. Why this and not
LPIPS/VGG: those need downloaded weights; the gradient term rewards matching edges and texture
frequency, which pure MSE lets the generator blur away, and the coarser scales pull the global
colour layout early in the latent phase. The feature phase adds a small L2 pull towards the
latent phase's features so the state stays close to what the generator itself produces there.

The generator is never mutated and its parameters never get gradients (they have
requires_grad False; we optimise fresh tensors only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .engine import Blend, LabelSwap, Start, render, run_stages
from .masks import gaussian_feather, resize_weights
from .photos import Photo


@dataclass(frozen=True)
class Crop:
    """The square of the photo the model sees: columns x..x+size, rows y..y+size of a width×height photo."""
    x: int
    y: int
    size: int
    width: int
    height: int

    def to_json(self) -> dict:
        return {"x": self.x, "y": self.y, "size": self.size, "width": self.width, "height": self.height}


def centre_crop(width: int, height: int) -> Crop:
    side = min(width, height)
    return Crop((width - side) // 2, (height - side) // 2, side, width, height)


@dataclass(frozen=True)
class ProjectionSettings:
    """Everything that changes a projection's result (the cache key holds all of it)."""
    latent_steps: int = 300
    feature_steps: int = 200
    point: int | None = None          # None: the architecture default (see module docstring)
    latent_lr: float = 0.05
    feature_lr: float = 0.02          # relative to each photo's captured-feature standard deviation
    gradient_weight: float = 0.5      # weight of the multi-scale image-gradient L1 term
    feature_pull: float = 1e-3        # L2 pull of the inverted features towards the latent phase's
    seed: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


PRESETS = {"default": ProjectionSettings(), "fast": ProjectionSettings(latent_steps=150, feature_steps=100)}


def default_point(generator) -> int:
    """The last blend point at ≤ resolution/4 (at least point 0)."""
    res = generator.blend_resolutions
    ok = [i for i, r in enumerate(res) if r <= generator.resolution // 4]
    return ok[-1] if ok else 0


@dataclass
class Projection:
    """The result for a batch of photos; row i belongs to image i."""
    z: torch.Tensor                      # [B, z_dim]
    class_vector: torch.Tensor | None    # [B, n_classes] soft class (None for unconditional models)
    point: int                           # blend point of the inverted features
    features: torch.Tensor | tuple       # the stage state at `point` (a tuple for StyleGAN2)
    reconstruction: torch.Tensor         # [B, 3, R, R] in [-1, 1]: render(start=features), no edits
    target: torch.Tensor                 # [B, 3, R, R] the photos' crops at model resolution
    psnr: torch.Tensor                   # [B] dB of reconstruction vs target (peak-to-peak 2)
    crops: list[Crop]
    settings: ProjectionSettings = field(default_factory=ProjectionSettings)

    @property
    def classes(self) -> list[int] | None:
        """The class each photo looks like (argmax of the soft class); None for unconditional models."""
        return None if self.class_vector is None else self.class_vector.argmax(1).tolist()

    def __len__(self) -> int:
        return self.z.shape[0]

    def rows(self, idx: Sequence[int]) -> "Projection":
        idx = list(idx)
        pick = lambda t: t[idx]
        feats = tuple(pick(t) for t in self.features) if isinstance(self.features, tuple) else pick(self.features)
        return replace(self, z=pick(self.z), class_vector=None if self.class_vector is None else pick(self.class_vector),
                       features=feats, reconstruction=pick(self.reconstruction), target=pick(self.target),
                       psnr=pick(self.psnr), crops=[self.crops[i] for i in idx])

    def start(self) -> Start:
        return Start(self.point, self.features)


# -- inputs ---------------------------------------------------------------------------------------------
def _one_image(img) -> torch.Tensor:
    """uint8 [H, W, 3] / PIL / Photo → float [3, H, W] in [-1, 1]."""
    if isinstance(img, Photo):
        img = img.pixels
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            raise ValueError(f"PIL image in mode {img.mode!r}: convert it to RGB (or load it with toolkit.photos)")
        img = np.asarray(img)
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"photos must be uint8 [H, W, 3] arrays, RGB PIL images or a [B, 3, H, W] tensor in "
                         f"[-1, 1]; got {a.dtype} {list(a.shape)}")
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 127.5 - 1


def prepare_images(images, resolution: int) -> tuple[torch.Tensor, list[Crop]]:
    """Any-size photos → `[B, 3, R, R]` centre crops at model resolution, and the crops taken."""
    if torch.is_tensor(images):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"an image tensor must be [B, 3, H, W] in [-1, 1], got {list(images.shape)}")
        items = list(images.float().cpu())
    else:
        items = [_one_image(im) for im in (images if isinstance(images, (list, tuple)) else [images])]
    if not items:
        raise ValueError("no images to project")
    out, crops = [], []
    for x in items:
        h, w = x.shape[-2:]
        c = centre_crop(w, h)
        x = x[:, c.y:c.y + c.size, c.x:c.x + c.size][None]
        if c.size != resolution:
            mode = "area" if c.size > resolution else "bicubic"
            x = F.interpolate(x, size=(resolution, resolution), mode=mode,
                              **({} if mode == "area" else {"align_corners": False})).clamp(-1, 1)
        out.append(x[0])
        crops.append(c)
    return torch.stack(out), crops


# -- losses ------------------------------------------------------------------------------------------------
def _grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image L1 of horizontal and vertical differences, at 1, 1/2 and 1/4 scale: `[B]`."""
    total = 0
    for s in range(3):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        for dim in (-1, -2):
            total = total + (a.diff(dim=dim) - b.diff(dim=dim)).abs().mean((1, 2, 3))
    return total / 6


def image_loss(x: torch.Tensor, target: torch.Tensor, gradient_weight: float) -> torch.Tensor:
    """Per-image loss `[B]`: MSE + gradient_weight · multi-scale gradient L1."""
    return (x - target).square().mean((1, 2, 3)) + gradient_weight * _grad_l1(x, target)


def psnr(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of images in [-1, 1] (peak-to-peak 2, as 0..255 for uint8)."""
    mse = (x.clamp(-1, 1) - target).square().mean((1, 2, 3)).clamp_min(1e-12)
    return 10 * torch.log10(4 / mse)


# -- the optimisation ------------------------------------------------------------------------------------
def _settings(steps, point, seed) -> ProjectionSettings:
    if steps is None:
        s = PRESETS["default"]
    elif isinstance(steps, str):
        if steps not in PRESETS:
            raise ValueError(f"unknown projection preset {steps!r}; choose one of {sorted(PRESETS)}")
        s = PRESETS[steps]
    elif isinstance(steps, ProjectionSettings):
        s = steps
    elif isinstance(steps, int):
        s = replace(PRESETS["default"], latent_steps=math.ceil(steps * 0.6), feature_steps=steps - math.ceil(steps * 0.6))
    else:
        a, b = steps
        s = replace(PRESETS["default"], latent_steps=int(a), feature_steps=int(b))
    if s.latent_steps < 0 or s.feature_steps < 0:
        raise ValueError(f"projection steps must be ≥ 0, got {s.latent_steps} and {s.feature_steps}")
    return replace(s, point=s.point if point is None else int(point), seed=int(seed))


def project(generator, images, y=None, *, steps=None, point: int | None = None, seed: int = 0,
            progress: Callable[[int, int], None] | None = None) -> Projection:
    """Project photos into `generator` (see the module docstring for the method).

    images: uint8 `[H, W, 3]` arrays / RGB PIL images / `Photo`s (one or a list), or a `[B, 3, H, W]`
            tensor in [-1, 1]; any size: each is centre-cropped to a square and resized (crop recorded).
    y:      classes for a class-conditional model (ids or names); None: a soft class is optimised.
    steps:  None / "default" (300 latent + 200 feature steps), "fast" (150 + 100), an int (split
            60/40), a pair `(latent, feature)`, or a `ProjectionSettings`.
    point:  blend point of the inverted features (default: `default_point(generator)`).
    progress: called as `progress(step, total)` after each optimisation step.
    """
    s = _settings(steps, point, seed)
    p = default_point(generator) if s.point is None else s.point
    if not 0 <= p < generator.n_blend_points:
        raise ValueError(f"projection point {p} is out of range: this model has blend points "
                         f"0..{generator.n_blend_points - 1} (resolutions {generator.blend_resolutions})")
    s = replace(s, point=p)
    dev, dt = generator.device, generator.dtype
    target, crops = prepare_images(images, generator.resolution)
    target = target.to(dev, dt)
    b = target.shape[0]
    total = s.latent_steps + s.feature_steps
    rng = torch.Generator().manual_seed(s.seed)
    z = torch.randn(b, generator.z_dim, generator=rng).to(dev, dt).requires_grad_(True)
    logits = None
    if generator.n_classes and y is None:
        logits = torch.zeros(b, generator.n_classes, device=dev, dtype=dt, requires_grad=True)
        fixed_cv = None
    elif generator.n_classes:
        fixed_cv = generator.class_vectors(y if torch.is_tensor(y) or isinstance(y, (list, tuple)) else [y] * b)
        if fixed_cv.shape[0] != b:
            raise ValueError(f"got {fixed_cv.shape[0]} classes for {b} images")
    elif y is not None:
        raise ValueError(f"{generator.name_for_errors} is unconditional: do not pass classes (y)")
    else:
        fixed_cv = None

    def class_vector():
        return torch.softmax(logits, 1) if logits is not None else fixed_cv

    was_grad = torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    try:
        params = [z] + ([logits] if logits is not None else [])
        opt = torch.optim.Adam(params, lr=s.latent_lr)
        for i in range(s.latent_steps):
            opt.zero_grad(set_to_none=True)
            img, _ = run_stages(generator, z, class_vector())
            loss = image_loss(img, target, s.gradient_weight) + 1e-4 * z.square().mean(1)
            loss.sum().backward()       # a sum of per-image losses: rows never influence each other
            opt.step()
            if progress:
                progress(i + 1, total)
        z = z.detach()
        cv = class_vector().detach() if generator.n_classes else None
        with torch.no_grad():
            _, feats = run_stages(generator, z, cv, capture=[p])
        h0 = feats[p]
        parts = list(h0) if isinstance(h0, tuple) else [h0]
        anchors = [t.detach().clone() for t in parts]
        # h = anchor + scale·delta with one scale per row (the row's feature std), so Adam's step on
        # delta is relative to each photo's own features and rows stay independent of the batch.
        scale = [t.flatten(1).std(1).clamp_min(1e-3).view(-1, *[1] * (t.dim() - 1)) for t in anchors]
        deltas = [torch.zeros_like(t, requires_grad=True) for t in anchors]
        opt = torch.optim.Adam(deltas, lr=s.feature_lr)
        pack = (lambda xs: tuple(xs)) if isinstance(h0, tuple) else (lambda xs: xs[0])
        current = lambda: [a + sc * d for a, sc, d in zip(anchors, scale, deltas)]
        for i in range(s.feature_steps):
            opt.zero_grad(set_to_none=True)
            img, _ = run_stages(generator, z, cv, start=Start(p, pack(current())))
            pull = sum(d.square().mean(tuple(range(1, d.dim()))) for d in deltas)
            loss = image_loss(img, target, s.gradient_weight) + s.feature_pull * pull
            loss.sum().backward()
            opt.step()
            if progress:
                progress(s.latent_steps + i + 1, total)
    finally:
        torch.set_grad_enabled(was_grad)
    with torch.no_grad():
        features = pack([h.detach() for h in current()])
    recon = render(generator, z, cv, start=Start(p, features))
    return Projection(z=z, class_vector=cv, point=p, features=features, reconstruction=recon, target=target,
                      psnr=psnr(recon, target).cpu(), crops=crops, settings=s)


def edit_region(swap: LabelSwap | None, blends: Sequence[Blend], batch: int, resolution: int) -> torch.Tensor:
    """Where edits act, `[B, R, R]` in [0, 1]: the swap weights summed over classes, and the blend masks
    (maximum of all). Maps of any resolution are resized to R (area average when shrinking)."""
    maps = [torch.zeros(batch, resolution, resolution)]
    if swap is not None:
        w = torch.as_tensor(swap.weights, dtype=torch.float32).cpu()
        w = w.expand(batch, *w.shape) if w.dim() == 3 else w
        maps.append(resize_weights(w.sum(1).clamp(0, 1), (resolution, resolution)))
    for bl in blends:
        m = torch.as_tensor(bl.mask, dtype=torch.float32).cpu()
        maps.append(resize_weights(m.expand(batch, *m.shape[-2:]) if m.dim() == 2 else m, (resolution, resolution)))
    return torch.stack(torch.broadcast_tensors(*maps)).amax(0).clamp(0, 1)


def photo_start(generator, point: int, features, region: torch.Tensor) -> Start:
    """The inverted features pasted at `point` outside `region` (`[B, R, R]`): `Start(mask=1 − soft region)`.

    The region's edge is softened *inwards* (the minimum of the region and its Gaussian blur with σ = one
    cell of the point's grid): a hard 16×16 edge leaves coloured fringes along it, and softening only
    inwards keeps the pasted features exact outside the region. The engine then resizes the mask to
    the point's resolution by area average."""
    cell = generator.resolution / generator.blend_resolutions[point]
    r = region.detach().cpu().numpy()
    blurred = np.stack([gaussian_feather(m, cell) for m in r.reshape(-1, *r.shape[-2:])]).reshape(r.shape)
    soft = torch.from_numpy(np.minimum(r, blurred).astype(np.float32)).to(region)
    return Start(point, features, mask=1 - soft)


def render_projection(generator, projection: Projection, *, swap: LabelSwap | None = None,
                      blends: Sequence[Blend] = (), **options) -> torch.Tensor:
    """Edit projected photos the way Neural Collage edits real images: `[B, 3, R, R]` in [-1, 1].

    The image is generated from the projection's latent and class vector with the edits as asked (label
    swap at its stages, all by default; blends at their points), and the photo's inverted features are
    pasted at the projection point outside the edit region (`edit_region`; `photo_start`), so away from
    the region the result is the reconstruction and inside it the edited generation: a swapped region
    gets the new class's content at every stage, not only after the point. With no edits (or an empty
    region) it is `projection.reconstruction`.
    """
    if swap is None and not blends:
        return render(generator, projection.z, projection.class_vector, start=projection.start(), **options)
    region = edit_region(swap, blends, len(projection), generator.resolution).to(generator.device, generator.dtype)
    return render(generator, projection.z, projection.class_vector, swap=swap, blends=blends,
                  start=photo_start(generator, projection.point, projection.features, region), **options)
