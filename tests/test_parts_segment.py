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
from toolkit.parts import default_points, discover, part_scores, pixel_features, segment_features, shipped

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_scores(pm, states, size=None):
    """The computation segment_features did before the fast path (kept here only, as the oracle):
    k-means models, the cosine to the unit concatenated vector; class-anchored models (a bias),
    their linear scores on the concatenation as it is."""
    x = pixel_features(states, pm.points, pm.means, pm.smooth, pm.per_image, unit=pm.bias is None)
    s = (pm.centroids @ x.flatten(2)).view(x.shape[0], -1, *x.shape[2:])
    if pm.bias is not None:
        s = s + pm.bias.view(1, -1, 1, 1)
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


# -- class-anchored parts (discover(by_class=True)) ----------------------------------------------------
def test_class_anchored_parts_are_the_classes_deterministic_and_scored_exactly(tiny, tmp_path):
    a = discover(tiny, 5, n_samples=24, seed=2, by_class=True)
    b = discover(tiny, 5, n_samples=24, seed=2, by_class=True)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.bias, b.bias) and a.info == b.info
    assert a.names == list(tiny.class_names) and a.info["method"] == "by_class" and not a.per_image
    # Plain samples of a class are mostly that class (chance: 1/5); measured 0.83 on this tiny model.
    assert a.info["own_class_share"] > 0.6
    st = states_of(tiny, a, list(range(40, 52)))
    grid, ref = reference_scores(a, st), reference_scores(a, st, tiny.resolution)
    assert torch.allclose(part_scores(a, st), grid, atol=1e-5)       # linear scores: no normalising factor
    same = (segment_features(a, st, tiny.resolution) == ref.argmax(1)).float().mean()
    assert same > 0.999
    back = type(a).load(a.save(tmp_path / "c.safetensors"))
    assert torch.equal(back.bias, a.bias) and back.names == a.names
    assert torch.equal(segment_features(back, st, 32), segment_features(a, st, 32))


def test_class_anchored_parts_refuse_what_they_cannot_do(tiny):
    from test_parts import tiny_dcgan
    with pytest.raises(ValueError, match="unconditional: discover without by_class"):
        discover(tiny_dcgan(), 3, n_samples=8, by_class=True)
    with pytest.raises(ValueError, match="one part per class.*n_parts must be 5, not 4"):
        discover(tiny, 4, n_samples=24, by_class=True)
    pm = discover(tiny, 2, n_samples=16, by_class=True, classes=["red", "blue"])   # only the classes drawn
    assert pm.names == ["red", "blue"]


def test_shipped_terrain64_parts_are_its_materials():
    """The shipped terrain64 part model is class-anchored: plain samples of each material are
    mostly that part (measured over 200 seeds × 7 classes: 0.87 on average, grass/snow 0.98, dirt 0.68)."""
    g = toolkit.load_generator("terrain64", device="cpu")
    pm = shipped(g)
    assert pm.info["method"] == "by_class" and pm.names == list(g.class_names)
    seeds = list(range(300, 308))
    z = sample_latents(g, seeds)
    shares = []
    for c in range(7):
        st = render_with_features(g, z, torch.full((8,), c), capture=pm.points)[1]
        shares.append(float((segment_features(pm, st, g.resolution) == c).float().mean()))
    assert np.mean(shares) > 0.75 and min(shares) > 0.4, shares


def test_cli_by_class_writes_one_part_per_class(tmp_path, capsys):
    from toolkit.cli import main as cli_main
    out = tmp_path / "c.safetensors"
    assert cli_main(["parts", "tiny", "--by-class", "--samples", "16", "--out", str(out), "--device", "cpu"]) == 0
    assert "5 parts of tiny" in capsys.readouterr().out
    pm = toolkit.parts.PartModel.load(out)
    assert pm.names == ["red", "green", "blue", "yellow", "purple"] and pm.bias is not None


def test_class_anchored_parts_on_biggan_with_chosen_classes():
    from test_parts import tiny_biggan
    g = tiny_biggan()
    pm = discover(g, 3, n_samples=18, seed=0, by_class=True, classes=["c1", "c3", "c4"])
    assert pm.names == ["c1", "c3", "c4"] and pm.points == default_points(g)
    z = sample_latents(g, [5, 6, 7])
    y = torch.tensor([1, 3, 4])
    labels = segment_features(pm, render_with_features(g, z, y, capture=pm.points)[1], g.resolution)
    assert labels.shape == (3, 32, 32) and labels.min() >= 0 and labels.max() < 3
    assert pm.info["own_class_share"] > 1 / 3            # better than chance on its own samples


def test_fast_box_average_is_the_plain_one():
    from toolkit.parts import blur
    m = torch.randn(2, 3, 7, 5, generator=torch.Generator().manual_seed(0))
    plain = F.avg_pool2d(m, 2, 1, 1, count_include_pad=False)[..., :7, :5]     # window: this pixel and up/left
    assert torch.allclose(blur(m, 2), plain, atol=1e-6)
    assert torch.allclose(blur(m, 3), F.avg_pool2d(m, 3, 1, 1, count_include_pad=False))


def test_parts_cost_bench_runs(capsys):
    from bench.parts_cost import main
    assert main(["--models", "terrain64", "--batch", "2", "--repeats", "1", "--no-write"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| terrain64")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2" and float(cells[5]) > 0 and float(cells[6]) > 0     # segment ms, ratio
