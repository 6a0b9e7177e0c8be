"""Which feature construction makes terrain64's parts follow the materials: many variants of the
part model's features, scored in one process on the same samples and layouts.

The features of the discovery samples (`toolkit.parts.sample_inputs`) and of the band layouts of
`bench.parts_quality` are captured once at every blend point together with the images; each
variant builds its per-pixel vectors from them, runs the toolkit's spherical k-means and scores
the part maps of the layouts by the adjusted Rand index (pooled over all pixels) against

- the *asked* label map (two regions per layout; not always what was rendered), and
- the *judged* map: what the terrain64 judge (`toolkit/judges.py`, 74% held-out pixel accuracy
  on real crops) says each pixel shows, i.e. what was rendered as far as we can measure it.

k-means on pixel colours (K as the variant) is scored the same way as the baseline. Variants
(`--variants`, names below): points, per-point weights, the output RGB as extra channels
(hypercolumn), PCA whitening before the clustering, K.

    nice -n 19 .venv/bin/python -m bench.parts_variants [--samples 256] [--layouts 64]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from bench.parts_quality import band_layouts, colour_kmeans
from toolkit import LabelSwap, load_generator
from toolkit.engine import render_with_features
from toolkit.images import to_uint8
from toolkit.judges import judge_for
from toolkit.parts import (PartModel, _tensor, adjusted_rand_index, blur, sample_inputs,
                           segment_features, shipped_path, spherical_kmeans)
from toolkit.sampling import derive_seed

# name: (points, weights, rgb weight, pca dims (0: none; -1: Fisher LDA on the samples' classes), K[, "pos"])
VARIANTS = {
    "16+32 pos": ((2, 3), (1, 1), 0, 0, 7, "pos"),
    "16+32+rgb pos": ((2, 3), (1, 1), 1, 0, 7, "pos"),
    "16+32 lda": ((2, 3), (1, 1), 0, -1, 7),
    "16+32+rgb lda": ((2, 3), (1, 1), 1, -1, 7),
    "all lda": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 0, -1, 7),
    "16+32 pos lda": ((2, 3), (1, 1), 0, -1, 7, "pos"),
    "16+32 lda means": ((2, 3), (1, 1), 0, -1, 7, "", "means"),
    "16 lda means": ((2,), (1,), 0, -1, 7, "", "means"),
    "32 lda means": ((3,), (1,), 0, -1, 7, "", "means"),
    "8+16+32 lda means": ((1, 2, 3), (1, 1, 1), 0, -1, 7, "", "means"),
    "all lda means": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 0, -1, 7, "", "means"),
    "base16+32": ((2, 3), (1, 1), 0, 0, 7),
    "16": ((2,), (1,), 0, 0, 7),
    "32": ((3,), (1,), 0, 0, 7),
    "8+16+32": ((1, 2, 3), (1, 1, 1), 0, 0, 7),
    "16+32+64": ((2, 3, 4), (1, 1, 1), 0, 0, 7),
    "all": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 0, 0, 7),
    "16+32+rgb": ((2, 3), (1, 1), 1, 0, 7),
    "16+32+rgb2": ((2, 3), (1, 1), 2, 0, 7),
    "all+rgb": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 1, 0, 7),
    "16+32+pca32": ((2, 3), (1, 1), 0, 32, 7),
    "all+pca32": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 0, 32, 7),
    "all+rgb+pca32": ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 1, 32, 7),
    "16+32 K14": ((2, 3), (1, 1), 0, 0, 14),
    "rgb only": ((), (), 1, 0, 7),
}


def unit_maps(states: dict, img: torch.Tensor, points, weights, rgb: float, means=None, size: int = 32,
              pos: bool = False):
    """Per-pixel vectors `[N, D, size, size]`: per point, 2×2 box average, minus the dataset mean,
    L2-normalised, times its weight, upsampled or averaged to `size`; the image (average-pooled to
    `size`, centred on the dataset mean colour) as 3 channels scaled to norm ~`rgb`; the whole
    vector normalised. Returns the vectors and the means used (fitted when `means` is None)."""
    out, fitted = [], []
    for i, (p, w) in enumerate(zip(points, weights)):
        m = blur(_tensor(states[p]).float(), 2)
        mu = (m.mean(0) if pos else m.mean((0, 2, 3)).view(-1, 1, 1)) if means is None else means[i]
        fitted.append(mu)
        m = F.normalize(m - mu, dim=1) * w
        if m.shape[-1] > size:
            m = F.avg_pool2d(m, m.shape[-1] // size)
        elif m.shape[-1] < size:
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
        out.append(m)
    if rgb:
        x = F.avg_pool2d(img.float(), img.shape[-1] // size)
        mu = x.mean((0, 2, 3)).view(-1, 1, 1) if means is None else means[len(points)]
        fitted.append(mu)
        out.append((x - mu) * rgb)           # colour differences of ~1 are large: no normalising
    return F.normalize(torch.cat(out, 1), dim=1), fitted


def lda(x: torch.Tensor, labels: torch.Tensor, n_classes: int, ridge: float = 1e-3):
    """Fisher discriminant directions `[D, n_classes - 1]` (within-class whitened)."""
    mu = x.mean(0)
    sw = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    sb = torch.zeros_like(sw)
    for c in range(n_classes):
        xc = x[labels == c].double()
        mc = xc.mean(0)
        sw += (xc - mc).T @ (xc - mc)
        sb += len(xc) * torch.outer(mc - mu.double(), mc - mu.double())
    sw = sw / len(x)
    sw += ridge * sw.trace() / len(sw) * torch.eye(len(sw), dtype=torch.float64)
    ev, evec = torch.linalg.eigh(sw)
    wh = evec / ev.sqrt()                                          # Sw^-1/2 (one side)
    e2, v2 = torch.linalg.eigh(wh.T @ (sb / len(x)) @ wh)
    return (wh @ v2[:, -(n_classes - 1):]).float()


def run_variant(name, disc, lay, judged, asked, seed=0, max_pixels=150_000):
    points, weights, rgb, pca, k = VARIANTS[name][:5]
    pos = "pos" in VARIANTS[name][5:]
    t = time.perf_counter()
    x, means = unit_maps(disc[0], disc[1], points, weights, rgb, pos=pos)
    flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    rng = torch.Generator().manual_seed(derive_seed("parts-fit", seed))
    pick = torch.randperm(len(flat), generator=rng)[:max_pixels]
    fit = flat[pick]
    proj = None
    if pca < 0:
        cls = disc[2].repeat_interleave(x.shape[2] * x.shape[3])[pick]
        mu = fit.mean(0)
        proj = (mu, lda(fit, cls, int(disc[2].max()) + 1))
        fit = F.normalize((fit - mu) @ proj[1], dim=1)
        if "means" in VARIANTS[name][5:]:       # no k-means: the class means are the parts
            c = F.normalize(torch.stack([fit[cls == j].mean(0) for j in range(k)]), dim=1)
    elif pca:
        mu = fit.mean(0)
        _, s, v = torch.linalg.svd(fit - mu, full_matrices=False)
        proj = (mu, v[:pca].T / (s[:pca, None].T / len(fit) ** 0.5))           # whiten: unit variance per axis
        fit = F.normalize((fit - mu) @ proj[1], dim=1)
    if "means" not in VARIANTS[name][5:]:
        c, _ = spherical_kmeans(fit, k, seed=derive_seed("kmeans", seed), restarts=2)
    y, _ = unit_maps(lay[0], lay[1], points, weights, rgb, means, pos=pos)
    yf = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
    if proj is not None:
        yf = F.normalize((yf - proj[0]) @ proj[1], dim=1)
    s = (yf @ c.T).view(y.shape[0], y.shape[2], y.shape[3], k).permute(0, 3, 1, 2)
    labels = F.interpolate(s, size=asked.shape[1:], mode="bilinear", align_corners=False).argmax(1).numpy()
    if "means" in VARIANTS[name][5:]:       # parts are classes: how often they say what was asked / judged
        off = asked != judged
        print(f"    class-anchored: = asked {np.mean(labels == asked):.3f}, = judged {np.mean(labels == judged):.3f}; "
              f"where asked != judged ({off.mean():.3f} of pixels): = judged {np.mean(labels[off] == judged[off]):.3f}, "
              f"= asked {np.mean(labels[off] == asked[off]):.3f}")
    return {"variant": name, "K": k, "asked": adjusted_rand_index(labels, asked),
            "judged": adjusted_rand_index(labels, judged),
            "judged_per_image": float(np.mean([adjusted_rand_index(a, b) for a, b in zip(labels, judged)])),
            "seconds": time.perf_counter() - t}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--layouts", type=int, default=64)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0", help="comma-separated k-means seeds; mean ± sd over them")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g = load_generator("terrain64", device="cpu")
    allp = list(range(g.n_blend_points))
    z, y = sample_inputs(g, args.samples, 0)
    with torch.no_grad():
        imgs, st = [], {p: [] for p in allp}
        for i in range(0, len(z), 32):
            im, s = render_with_features(g, z[i:i + 32], y[i:i + 32], capture=allp)
            imgs.append(im)
            for p in allp:
                st[p].append(_tensor(s[p]))
        disc = ({p: torch.cat(v) for p, v in st.items()}, torch.cat(imgs), y)
        zl, src, band, w, asked = band_layouts(g, args.layouts)
        img, sl = render_with_features(g, zl, src, capture=allp, swap=LabelSwap(band, w))
    lay = ({p: _tensor(v) for p, v in sl.items()}, img)
    judged = judge_for(g).classify(to_uint8(img)).astype(np.int64)
    print(f"terrain64: {args.samples} discovery samples, {args.layouts} layouts; judged map = asked map on "
          f"{np.mean(judged == asked):.3f} of pixels (ARI {adjusted_rand_index(judged, asked):.3f})")
    pm = PartModel.load(shipped_path("terrain64"))
    lab = segment_features(pm, sl, g.resolution).numpy()
    print(f"{'shipped':>16}: asked {adjusted_rand_index(lab, asked):.3f}  judged {adjusted_rand_index(lab, judged):.3f}")
    px = to_uint8(img).reshape(-1, 3)
    seeds = [int(v) for v in args.seeds.split(",")]
    sd = lambda v: f"{np.mean(v):.3f}±{np.std(v):.3f}"
    for k in sorted({VARIANTS[v][4] for v in args.variants.split(",")}):
        res = [(adjusted_rand_index(col, asked), adjusted_rand_index(col, judged))
               for col in (colour_kmeans(px, k, seed=s).reshape(asked.shape) for s in seeds)]
        print(f"{'colours K=' + str(k):>16}: asked {sd([r[0] for r in res])}  judged {sd([r[1] for r in res])}", flush=True)
    for name in args.variants.split(","):
        rs = [run_variant(name, disc, lay, judged, asked, seed=s) for s in seeds]
        print(f"{name:>16}: asked {sd([r['asked'] for r in rs])}  judged {sd([r['judged'] for r in rs])}  "
              f"(per image {sd([r['judged_per_image'] for r in rs])}; {rs[0]['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
