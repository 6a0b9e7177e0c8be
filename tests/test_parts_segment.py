"""The fast segmentation path (`part_scores` scores each point at its own resolution and upsamples
K score maps, not C feature channels) against the reference computation it replaced: the cosine
to the concatenated, upsampled, normalised `pixel_features` vector, upsampled to the image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import toolkit
from toolkit import sample_classes, sample_latents
from toolkit.engine import render_with_features
from toolkit.parts import discover, part_scores, pixel_features, segment_features, shipped

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_scores(pm, states, size=None):
    """The computation segment_features did before the fast path (kept here only, as the oracle)."""
    x = pixel_features(states, pm.points, pm.means, pm.smooth, pm.per_image)
    s = (pm.centroids @ x.flatten(2)).view(x.shape[0], -1, *x.shape[2:])
    return s if size is None else F.interpolate(s, size=(size, size), mode="bilinear", align_corners=False)


def states_of(g, pm, seeds):
    z = sample_latents(g, seeds)
    y = sample_classes(g, seeds) if g.n_classes else None
    return render_with_features(g, z, y, capture=pm.points)[1]


def on_a_border(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per pixel of `where`: does the 3×3 neighbourhood of `labels` hold more than one part?"""
    p = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = labels.shape[1:]
    shifted = [p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.any([s != labels for s in shifted], axis=0)[where]


def check_agreement(g, pm, seeds, min_share):
    st = states_of(g, pm, seeds)
    ref_grid, fast_grid = reference_scores(pm, st), part_scores(pm, st)
    # On the finest feature grid the fast scores are the cosine times a positive per-pixel factor:
    # the same best part everywhere.
    assert torch.equal(fast_grid.argmax(1), ref_grid.argmax(1))
    ref = reference_scores(pm, st, g.resolution).argmax(1).numpy()
    fast = segment_features(pm, st, g.resolution).numpy()
    same = fast == ref
    assert same.mean() >= min_share, f"{same.mean():.5f} of pixels agree with the reference"
    # Where they differ, the final upsampling mixes neighbours of different parts: a part border.
    assert on_a_border(ref, ~same).all()
    return same.mean()


@pytest.mark.parametrize("per_image,smooth", [(True, 2), (False, 1), (False, 3)])
def test_fast_path_agrees_with_the_reference_on_a_tiny_model(tiny, per_image, smooth):
    pm = discover(tiny, 4, n_samples=12, seed=0, restarts=1, per_image=per_image, smooth=smooth)
    check_agreement(tiny, pm, list(range(20, 36)), 0.99)


@pytest.mark.parametrize("name", ["faces64", "terrain64"])
def test_fast_path_agrees_with_the_reference_on_the_shipped_models(name, request):
    g = request.getfixturevalue("faces64") if name == "faces64" else toolkit.load_generator(name, device="cpu")
    check_agreement(g, shipped(g), list(range(100, 116)), 0.998)


def test_segmentation_is_deterministic_batch_independent_and_leaves_states_alone(tiny):
    pm = discover(tiny, 4, n_samples=12, seed=1, restarts=1, per_image=False, smooth=1)   # no blur: x is m
    st = states_of(tiny, pm, list(range(8)))
    before = {p: v.clone() for p, v in st.items()}
    a = segment_features(pm, st, tiny.resolution)
    assert all(torch.equal(st[p], before[p]) for p in st)          # never written into the caller's states
    assert torch.equal(a, segment_features(pm, st, tiny.resolution))
    one = segment_features(pm, {p: v[3:4] for p, v in st.items()}, tiny.resolution)
    assert torch.equal(one[0], a[3])
