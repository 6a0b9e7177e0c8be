"""The fitting behind part models (`toolkit.parts`): spherical k-means for parts found without any
labels, and class anchors (Fisher discriminant directions) for parts that are the classes of a
class-conditional model. Pure tensor maths, no I/O, no generator: kept apart so `toolkit.parts`
stays about rendering, segmenting and files.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _kmeanspp(x: torch.Tensor, k: int, rng: torch.Generator) -> torch.Tensor:
    """k-means++ seeding with cosine distance (1 − x·c): spread-out starting centroids."""
    c = [x[torch.randint(len(x), (1,), generator=rng)].squeeze(0)]
    d = 1 - x @ c[0]
    for _ in range(1, k):
        w = d.clamp_min(0) ** 2
        i = torch.multinomial(w / w.sum(), 1, generator=rng) if w.sum() > 0 else torch.randint(len(x), (1,), generator=rng)
        c.append(x[i].squeeze(0))
        d = torch.minimum(d, 1 - x @ c[-1])
    return torch.stack(c)


def spherical_kmeans(x: torch.Tensor, k: int, *, seed: int = 0, restarts: int = 4,
                     iters: int = 60) -> tuple[torch.Tensor, float]:
    """Centroids `[k, D]` (unit rows) maximising Σ max_j x·c_j over unit rows `x` `[N, D]`, and that
    objective divided by N. Empty clusters are re-seeded at the worst-fitting points."""
    if len(x) < k:
        raise ValueError(f"spherical k-means: {len(x)} vectors cannot make {k} clusters")
    rng = torch.Generator().manual_seed(seed)
    best, best_score = None, -float("inf")
    for _ in range(restarts):
        c = _kmeanspp(x[torch.randperm(len(x), generator=rng)[:20000]], k, rng)
        prev = None
        for _ in range(iters):
            sim, a = (x @ c.T).max(1)
            if prev is not None and torch.equal(a, prev):
                break
            prev = a
            acc = torch.zeros_like(c).index_add_(0, a, x)
            counts = torch.bincount(a, minlength=k)
            empty = (counts == 0).nonzero().flatten()
            if len(empty):
                acc[empty] = x[sim.argsort()[:len(empty)]]
            c = F.normalize(acc, dim=1)
        score = float((x @ c.T).max(1).values.mean())
        if score > best_score:
            best, best_score = c, score
    return best, best_score


def class_anchors(x: torch.Tensor, labels: torch.Tensor, n: int, ridge: float = 1e-3):
    """Linear part scores `(A [n, D], b [n])` from vectors `x` `[N, D]` labelled with `n` classes:
    Fisher's discriminant directions W (the within-class scatter whitened, with a small ridge; the
    n − 1 directions that separate the class means most), then per class the direction of its mean
    in that space; a pixel's score for class k is that direction · (x − mean) W, i.e. A x + b.
    Why: on terrain64 the directions along which k-means splits the features (position, lighting)
    are not the materials; the model's own conditioning says which sample is which material."""
    xd = x.double()
    mu = xd.mean(0)
    counts = torch.bincount(labels, minlength=n).double()
    if (counts == 0).any():
        raise ValueError(f"class-anchored parts: classes {(counts == 0).nonzero().flatten().tolist()} have no pixels")
    cm = torch.zeros(n, x.shape[1], dtype=torch.float64).index_add_(0, labels, xd) / counts[:, None]
    xc = xd - cm[labels]
    sw = xc.T @ xc / len(x)
    sw += ridge * sw.trace() / len(sw) * torch.eye(len(sw), dtype=torch.float64)
    sb = ((cm - mu).T * (counts / len(x))) @ (cm - mu)
    ev, evec = torch.linalg.eigh(sw)
    wh = evec / ev.sqrt()
    w = wh @ torch.linalg.eigh(wh.T @ sb @ wh)[1][:, -(n - 1):]                 # [D, n - 1]
    v = F.normalize((xd - mu) @ w, dim=1)
    dirs = F.normalize(torch.zeros(n, w.shape[1], dtype=torch.float64).index_add_(0, labels, v), dim=1)
    a = dirs @ w.T
    return a.float(), (-(a @ mu)).float()
