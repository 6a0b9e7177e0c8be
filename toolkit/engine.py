"""The collage engine: runs a generator's stage loop and applies label swap and feature blending.

One batched pass per call. Rows of the batch are variants; each may have its own swap map,
swap classes, stage range, references, masks and strengths. Reference streams are stacked
under the source rows in the same batch (one kernel launch per layer for all streams) and
ordered so the streams that stop earliest sit at the bottom: dropping a finished stream is a
slice, not a copy. A fixed reference (the same latent and class in every variant) is one
stream row, broadcast when blended. Label swap is applied in delta form by the conditioned norms
(`Condition.modulate`): the plain per-sample affine everywhere, plus a correction only where the
swap map is non-zero, so a small region costs about what plain generation does. Semantics are those of DESIGN.md ("Edit semantics"); they must match the
original Neural Collage code, so change them only with a parity test.

Two hooks serve the rest of the toolkit without a second loop: `capture` returns the source
rows' stage state at chosen blend points (part segmentation reads the features of the very pass
that renders the image), and `start` gives the source rows' state at a blend point: everywhere (a
resume: the projection optimises its inverted features through it) or inside a mask (a paste: a
projected photo's edit keeps the photo's inverted features outside the edit region). Without edits the loop equals
the generator's plain `forward` (parity-tested). It does no I/O and never mutates the generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from .layers import Condition
from .masks import resize_weights

StageSpec = Union[None, range, Sequence[int], Sequence[Union[range, None]], torch.Tensor]
_TOL = 1e-5


@dataclass
class LabelSwap:
    """Swap regions to other classes (spatial class-conditional BN).

    classes: K class ids or names, or a `[B, K]` tensor of ids (per-variant classes).
    weights: `[K, H, W]` or `[B, K, H, W]` in [0, 1], summing to ≤ 1 per pixel; the rest of
             each pixel's weight stays with the variant's base class. Any resolution: the engine
             resizes per layer (area average when shrinking, nearest when growing).
    stages:  which stages use the swap: `None` (all), a `range`/list of stage indices, one such
             entry per variant, or a bool tensor `[K, S]`/`[B, K, S]` saying per class (and
             variant) which of the S stages use that class's weights (a class inactive at a stage
             leaves its pixels' weight with the base class there). The stem counts as part of
             stage 0 (it matters for models whose stem is class-conditioned, such as BigGAN).
    transplant: optional strengths per blend point (`[P]` or `[B, P]`, as `Blend.strength`): also
             paste the same latent rendered with each target class into the source at those points,
             inside that class's swap map — an extension of the paper for models whose class acts
             only at coarse layers (input-conditioned GANs, see docs/EYES128.md). Run as extra
             reference streams, so it is exactly a `Blend` per target class (mask = swap weights).
    """
    classes: Union[Sequence[Union[int, str]], torch.Tensor]
    weights: torch.Tensor
    stages: StageSpec = None
    transplant: Union[Sequence[float], torch.Tensor, None] = None


@dataclass
class Blend:
    """One reference per variant whose features are pasted into the source inside `mask`.

    z: `[B, z_dim]` reference latents; y: optional reference classes `[B]` (default: the base class).
    mask: `[H, W]` or `[B, H, W]` in [0, 1]. strength: one float per blend point (after the stem,
    then after each stage), as a sequence `[P]` or a tensor `[P]`/`[B, P]`.
    When every row of z (and of the classes) is the same, the reference runs once for the batch.
    """
    z: torch.Tensor
    mask: torch.Tensor
    strength: Union[Sequence[float], torch.Tensor]
    y: Union[torch.Tensor, Sequence, None] = None


# -- helpers for stage states that are a tensor or a tuple of tensors (e.g. features + RGB skip) --
def _map(h, fn):
    return tuple(fn(t) for t in h) if isinstance(h, tuple) else fn(h)


def _first(h) -> torch.Tensor:
    return h[0] if isinstance(h, tuple) else h


def _active_stages(stages: StageSpec, n_stages: int, batch: int, n_classes: int) -> torch.Tensor:
    """`[B, K, S]` bool: which stages use each swapped class's weights, per variant."""
    if torch.is_tensor(stages):
        act = stages.to(torch.bool)
        if act.dim() == 2:
            act = act.unsqueeze(0).expand(batch, *act.shape)
        if act.dim() != 3 or act.shape[0] != batch or act.shape[1:] != (n_classes, n_stages):
            raise ValueError(f"label swap stages tensor has shape {list(stages.shape)}; expected "
                             f"[{n_classes}, {n_stages}] or [{batch}, {n_classes}, {n_stages}] (classes × stages)")
        return act

    def row(spec) -> torch.Tensor:
        r = torch.zeros(n_stages, dtype=torch.bool)
        idx = range(n_stages) if spec is None else spec
        for i in idx:
            if not -n_stages <= int(i) < n_stages:
                raise ValueError(f"label swap stage {i} is out of range: this model has stages 0..{n_stages - 1}")
            r[int(i)] = True
        return r
    per_variant = (isinstance(stages, (list, tuple)) and len(stages) > 0
                   and all(s is None or isinstance(s, (range, list, tuple)) for s in stages))
    if per_variant:
        if len(stages) != batch:
            raise ValueError(f"per-variant label swap stages: got {len(stages)} entries for a batch of {batch}")
        act = torch.stack([row(s) for s in stages])
    else:
        act = row(stages).expand(batch, n_stages)
    return act[:, None, :].expand(batch, n_classes, n_stages)


def _batch(t: torch.Tensor, dims: int, batch: int, what: str) -> torch.Tensor:
    """Broadcast a per-batch tensor with `dims` trailing dims to a leading batch dimension."""
    if t.dim() == dims:
        return t.unsqueeze(0).expand(batch, *t.shape)
    if t.dim() == dims + 1 and t.shape[0] in (1, batch):
        return t.expand(batch, *t.shape[1:])
    raise ValueError(f"{what} has shape {list(t.shape)}; expected {dims} dims or a leading batch of {batch}")


def _swap_components(gen, swap: LabelSwap, base_cv: torch.Tensor, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """Class vectors `[B, 1+K, C]` (base first) and mixture weights `[B, 1+K, H, W]`."""
    b = base_cv.shape[0]
    cls = swap.classes
    if not torch.is_tensor(cls):
        cls = torch.tensor([gen.class_index(c) for c in cls])
    cls = _batch(cls.long(), 1, b, "label swap classes").to(dev)
    w = torch.as_tensor(swap.weights, dtype=gen.dtype).to(dev)
    w = _batch(w, 3, b, "label swap weights")
    if w.shape[1] != cls.shape[1]:
        raise ValueError(f"label swap has {cls.shape[1]} classes but {w.shape[1]} weight maps")
    if w.min() < -_TOL or w.max() > 1 + _TOL:
        raise ValueError("label swap weights must lie in [0, 1]")
    total = w.sum(1, keepdim=True)
    if total.max() > 1 + _TOL:
        raise ValueError(f"label swap weights sum to {total.max().item():.3f} > 1 at some pixel; "
                         "overlapping regions must share the pixel (e.g. 0.5 each)")
    cv = torch.cat([base_cv[:, None], gen.class_vectors(cls.reshape(-1)).view(b, -1, gen.n_classes)], 1)
    return cv, torch.cat([1 - total, w], 1)


@dataclass
class Start:
    """Given source state at blend point `point`: `state` is what the stem/stages produce there (a
    `[B, C, H, W]` tensor, or a tuple such as StyleGAN2's features + RGB skip).

    mask None: a *resume*. The state replaces everything before `point`, those stages are not run,
    and so label swap acts only on stages `point..` and blending only at points `point..` (asking
    for earlier ones is an error). Projection optimises the inverted features through this.
    mask `[H, W]` / `[B, H, W]` in [0, 1]: a *paste*, i.e. a blend whose reference is the given state
    instead of a generated stream. The source runs from the stem with all its edits, and at `point`
    (after that point's blending) its state becomes `(1 − m)·h + m·state`, `m` the mask resized to
    the point's resolution (area average). Used to edit projected photos the way the original does:
    generate the edit from the projected latent and class at every stage, and keep the photo's
    inverted features outside the edit region (`projection.render_projection`).
    """
    point: int
    state: Union[torch.Tensor, tuple]
    mask: Optional[torch.Tensor] = None

    @property
    def resumes(self) -> bool:
        """Whether the stages before `point` are skipped (no mask: nothing of them survives)."""
        return self.mask is None


@dataclass
class _Ref:
    z: torch.Tensor          # [R, z_dim]: R = B, or 1 for a fixed reference shared by all variants
    cv: torch.Tensor         # [R, C] class vectors
    mask: torch.Tensor       # [B, H, W]
    strength: torch.Tensor   # [B, P]
    points: frozenset        # blend points where some variant has a non-zero strength

    @property
    def rows(self) -> int:
        return self.z.shape[0]

    @property
    def last(self) -> int:
        """Last blend point with a non-zero strength (-1: never used); the stream stops there."""
        return max(self.points, default=-1)


def _shared(z: torch.Tensor, cv: torch.Tensor) -> bool:
    """Whether every variant's reference has the same latent and class (a fixed reference)."""
    return z.shape[0] > 1 and bool((z == z[:1]).all() & (cv == cv[:1]).all())


def _prepare_refs(gen, blends: Sequence[Blend], base_cv, b, dev, share: bool = True) -> list[_Ref]:
    """Validated references, longest-running first. With `share`, a fixed reference (same latent
    and class in every row) runs as one stream row, broadcast at blend time, instead of B rows."""
    refs = []
    p = gen.n_blend_points
    for j, bl in enumerate(blends):
        z = torch.as_tensor(bl.z, dtype=gen.dtype).to(dev)
        if z.shape != (b, gen.z_dim):
            raise ValueError(f"blend {j}: z must be [{b}, {gen.z_dim}], got {list(z.shape)}")
        cv = base_cv if bl.y is None else gen.class_vectors(bl.y)
        mask = _batch(torch.as_tensor(bl.mask, dtype=gen.dtype).to(dev), 2, b, f"blend {j} mask")
        if mask.min() < -_TOL or mask.max() > 1 + _TOL:
            raise ValueError(f"blend {j}: mask values must lie in [0, 1]")
        s = torch.as_tensor(bl.strength, dtype=gen.dtype).to(dev)
        s = _batch(s, 1, b, f"blend {j} strength")
        if s.shape[1] != p:
            raise ValueError(f"blend {j}: {s.shape[1]} strengths given; this model has {p} blend points "
                             f"(after the stem and after each of its {gen.n_stages} stages)")
        if share and _shared(z, cv):
            z, cv = z[:1], cv[:1]
        refs.append(_Ref(z, cv, mask, s, frozenset((s != 0).any(0).nonzero().flatten().tolist())))
    refs = [r for r in refs if r.last >= 0]
    refs.sort(key=lambda r: -r.last)   # streams that run longest first: finished ones drop off the end
    for pt in range(p):
        acc = sum((r.strength[:, pt, None, None] * r.mask for r in refs), torch.zeros((), device=dev))
        if torch.is_tensor(acc) and acc.dim() and acc.max() > 1 + _TOL:
            raise ValueError(f"blend strengths × masks sum to {acc.max().item():.3f} > 1 at blend point {pt}; "
                             "lower the strengths or make the reference masks disjoint")
    return refs


def _check_start(gen, start: Start | None, swap: LabelSwap | None, active, refs, b: int) -> torch.Tensor | None:
    """Validate `start`; return its paste mask as `[B, 1, H, W]` (None for a resume or no start)."""
    if start is None:
        return None
    p = int(start.point)
    if not 0 <= p < gen.n_blend_points:
        raise ValueError(f"start point {p} is out of range: this model has blend points 0..{gen.n_blend_points - 1}")
    rows = _first(start.state).shape[0]
    if rows != b:
        raise ValueError(f"start state has {rows} rows for {b} latents")
    if not start.resumes:
        mask = _batch(torch.as_tensor(start.mask, dtype=gen.dtype).to(gen.device), 2, b, "start mask")
        if mask.min() < -_TOL or mask.max() > 1 + _TOL:
            raise ValueError("start mask values must lie in [0, 1]")
        return mask[:, None]
    if swap is not None and swap.stages is not None and bool(active[..., :p].any()):
        raise ValueError(f"the source starts from inverted features at blend point {p}: label swap can act only "
                         f"on stages {p}..{gen.n_stages - 1} (the stages after that point); earlier stages are "
                         "fixed by the inversion. Ask for later stages, or paste the features with a mask "
                         "(Start(..., mask=...), as projection.render_projection does)")
    early = sorted({q for r in refs for q in r.points if q < p})
    if early:
        raise ValueError(f"the source starts from inverted features at blend point {p}: blending at point(s) "
                         f"{early} has no effect there. Use blend points {p}..{gen.n_blend_points - 1}, or "
                         "paste the features with a mask (Start(..., mask=...))")
    return None


def run_stages(gen, z: torch.Tensor, y=None, *, swap: LabelSwap | None = None,
               blends: Sequence[Blend] = (), truncation: float | None = None,
               capture: Sequence[int] = (), start: Start | None = None,
               **options) -> tuple[torch.Tensor, dict]:
    """The stage loop with edits: `(images, {point: source state at that point})`.

    Differentiable (projection optimises through it); `render` is the no-grad public entry.
    Captured states are taken after blending at their point and belong to the source rows only.
    """
    gen.check_truncation(truncation)
    call_options = gen.call_options(**options)
    dev = gen.device
    z = torch.as_tensor(z, dtype=gen.dtype).to(dev)
    if z.dim() != 2 or z.shape[1] != gen.z_dim:
        raise ValueError(f"z must be [B, {gen.z_dim}], got {list(z.shape)}")
    b = z.shape[0]
    if gen.n_classes:
        if y is None:
            raise ValueError(f"{gen.name_for_errors} is class-conditional: pass a class per sample (y)")
        base_cv = gen.class_vectors(y)
        if base_cv.shape[0] != b:
            raise ValueError(f"got {base_cv.shape[0]} classes for {b} latents")
    else:
        if y is not None:
            raise ValueError(f"{gen.name_for_errors} is unconditional: do not pass classes (y)")
        if swap is not None:
            gen.class_index(0)  # raises the "unconditional: use blending" message
        base_cv = torch.zeros(b, 0, device=dev, dtype=gen.dtype)
    capture = sorted({int(q) for q in capture})
    if capture and not (0 <= capture[0] and capture[-1] < gen.n_blend_points):
        raise ValueError(f"capture points {capture} out of range: this model has blend points "
                         f"0..{gen.n_blend_points - 1}")

    if swap is not None:
        src_cv, src_w = _swap_components(gen, swap, base_cv, dev)
        active = _active_stages(swap.stages, gen.n_stages, b, src_w.shape[1] - 1).to(dev)
        if swap.transplant is not None:   # one reference stream per target class: same z, mask = its map
            if torch.as_tensor(swap.transplant).shape[-1:] != (gen.n_blend_points,):
                raise ValueError(f"label swap transplant: give one strength per blend point ({gen.n_blend_points}: "
                                 f"after the stem and after each of the {gen.n_stages} stages)")
            blends = list(blends) + [Blend(z, src_w[:, k], swap.transplant, y=src_cv[:, k])
                                     for k in range(1, src_cv.shape[1])]
    else:
        src_cv, src_w, active = base_cv[:, None], None, None
    # Per-call options (e.g. per-variant noise) may differ between the rows of a reference stream.
    refs = _prepare_refs(gen, blends, base_cv, b, dev, share=not options)
    paste_mask = _check_start(gen, start, swap, active, refs, b)
    resume = start is not None and start.resumes
    if resume and active is not None:
        active = active.clone()
        active[..., :int(start.point)] = False    # "all stages" from a start point: those after it
    m = src_cv.shape[1]

    # Stack streams: [source | ref_0 | ref_1 | ...]; references are plain generations.
    offsets = [b + sum(r.rows for r in refs[:j]) for j in range(len(refs))]
    zs = torch.cat([z] + [r.z for r in refs])
    cvs = torch.cat([src_cv] + [r.cv[:, None].expand(r.rows, m, -1) for r in refs])
    vectors = gen.embed(zs, cvs)
    plain = Condition(vectors, None, truncation, call_options, variants=b)
    cond_cache: dict = {}

    def cond_for(stage: int) -> Condition:
        if src_w is None:
            return plain
        act = active[:, :, stage]                        # [B, K]
        key = tuple(act.flatten().tolist())
        if not any(key):
            return plain
        if key not in cond_cache:
            e0 = torch.zeros_like(src_w[:1])
            e0[:, 0] = 1
            if all(key):
                w = src_w
            else:
                # Classes not active at this stage give their pixels back to the base class.
                w_k = src_w[:, 1:] * act[:, :, None, None]
                w = torch.cat([1 - w_k.sum(1, keepdim=True), w_k], 1)
            if zs.shape[0] > b:     # reference streams are plain generations: component 0 only
                w = torch.cat([w, e0.expand(zs.shape[0] - b, *e0.shape[1:])])
            cond_cache[key] = Condition(vectors, w, truncation, call_options, variants=b)
        return cond_cache[key]

    mask_cache: dict = {}

    def blend(h, point: int):
        users = [(j, r) for j, r in enumerate(refs) if point in r.points]
        if not users:
            return h

        def mix(t: torch.Tensor) -> torch.Tensor:
            size = tuple(t.shape[-2:])
            alphas = []
            for j, r in users:
                key = (j, size)
                if key not in mask_cache:
                    mask_cache[key] = resize_weights(r.mask, size)[:, None]
                alphas.append((j, r.strength[:, point, None, None, None] * mask_cache[key]))  # [B, 1, h, w]
            def ref(j: int) -> torch.Tensor:     # [B or 1, ...]: a fixed reference broadcasts
                return t[offsets[j]: offsets[j] + refs[j].rows]
            if torch.is_grad_enabled():
                src = t[:b] * (1 - sum(a for _, a in alphas))
                for j, a in alphas:
                    src = src + a * ref(j)
                return torch.cat([src, t[b:]])
            # In place on the source rows: (1 − Σ a_j)·h_src + Σ a_j·h_ref_j, without copying the batch.
            src = t[:b]
            if len(alphas) == 1:
                j, a = alphas[0]
                src.lerp_(ref(j).expand_as(src), a)
            else:
                src.mul_(1 - sum(a for _, a in alphas))
                for j, a in alphas:
                    src.addcmul_(a, ref(j))
            return t
        return _map(h, mix)

    def rows_for(point: int) -> int:
        return b + sum(r.rows for r in refs if r.last >= point)

    first = int(start.point) if resume else 0
    features: dict = {}

    def paste(h, point: int):
        """A masked start: the given state where the mask is 1, after the point's blending."""
        if paste_mask is None or point != int(start.point):
            return h

        def mix(t: torch.Tensor, st) -> torch.Tensor:
            st = torch.as_tensor(st).to(t)
            m = resize_weights(paste_mask, tuple(t.shape[-2:]))
            if torch.is_grad_enabled():
                return torch.cat([t[:b] * (1 - m) + m * st, t[b:]])
            t[:b].lerp_(st, m)
            return t
        return tuple(mix(t, st) for t, st in zip(h, start.state)) if isinstance(h, tuple) else mix(h, start.state)

    def take(h, point: int):
        if point in capture:
            features[point] = _map(h, lambda t: t[:b].clone())

    if resume and not refs:
        # Nothing runs before the start point: the source begins there, alone.
        h = _map(start.state, lambda t: torch.as_tensor(t).to(dev, gen.dtype))
    else:
        n = rows_for(0)
        c0 = cond_for(0).narrow(n) if gen.n_stages else plain.narrow(n)
        h = gen.stem(zs[:n], c0)
        for s in range(first):
            n = rows_for(s + 1)
            h = _map(h, lambda t: t[:n])
            h = gen.stage(s, h, cond_for(s).narrow(n))
        if resume:
            # Reference streams ran up to the start point; the source rows are replaced there.
            h = tuple(torch.cat([torch.as_tensor(st).to(t), t[b:]]) for st, t in zip(start.state, h)) \
                if isinstance(h, tuple) else torch.cat([torch.as_tensor(start.state).to(h), h[b:]])
        h = blend(h, first)
    h = paste(h, first)
    take(h, first)
    for s in range(first, gen.n_stages):
        n = rows_for(s + 1)
        h = _map(h, lambda t: t[:n])
        h = gen.stage(s, h, cond_for(s).narrow(n))
        h = blend(h, s + 1)
        h = paste(h, s + 1)
        take(h, s + 1)
    h = _map(h, lambda t: t[:b])
    return gen.head(h), features


def _check_eval(generator) -> None:
    if generator.training:
        raise RuntimeError("render() needs the generator in eval mode (batch statistics would leak "
                           "between variants); call generator.eval() or use toolkit.load_generator")


@torch.no_grad()
def render(generator, z: torch.Tensor, y=None, *, swap: LabelSwap | None = None,
           blends: Sequence[Blend] = (), truncation: float | None = None, start: Start | None = None,
           **options) -> torch.Tensor:
    """Render a batch of variants: images `[B, 3, H, W]` in [-1, 1] (raw output for models without tanh).

    `y` (class ids, names or soft class vectors) is required for class-conditional models and
    must be omitted for unconditional ones. `start` gives the sources' state at a blend point,
    everywhere or inside a mask (see `Start`). No gradients; the generator must be in eval mode.
    """
    _check_eval(generator)
    return run_stages(generator, z, y, swap=swap, blends=blends, truncation=truncation, start=start,
                      **options)[0]


@torch.no_grad()
def render_with_features(generator, z: torch.Tensor, y=None, *, capture: Sequence[int],
                         swap: LabelSwap | None = None, blends: Sequence[Blend] = (),
                         truncation: float | None = None, start: Start | None = None,
                         **options) -> tuple[torch.Tensor, dict]:
    """`render` plus the source rows' stage state at each blend point in `capture` (after blending
    there): `(images, {point: state})`. One pass: the features are those of the rendered images."""
    _check_eval(generator)
    return run_stages(generator, z, y, swap=swap, blends=blends, truncation=truncation, capture=capture,
                      start=start, **options)
