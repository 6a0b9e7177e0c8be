"""The engine's two hooks: `capture` (features of the rendering pass) and `start` (resume the
sources from given features, as for projected photos)."""
from __future__ import annotations

import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file as st_load, save_file as st_save

from toolkit import Blend, LabelSwap, load_generator, render, sample_classes, sample_latents
from toolkit.checkpoints import save_generator, sha256_file
from toolkit.engine import Start, render_with_features, run_stages
from toolkit.layers import Condition


def hand_states(gen, z, y):
    """The stage states of the plain loop, run by hand from the generator's pieces."""
    cond = Condition(gen.embed(z, gen.class_vectors(y)[:, None]))
    h = gen.stem(z, cond)
    states = [h]
    for i in range(gen.n_stages):
        h = gen.stage(i, h, cond)
        states.append(h)
    return states


def test_captured_features_are_those_of_the_rendering_pass(tiny):
    z, y = sample_latents(tiny, [1, 2]), sample_classes(tiny, [1, 2])
    img, feats = render_with_features(tiny, z, y, capture=[0, 2])
    assert torch.equal(img, render(tiny, z, y))
    with torch.no_grad():
        states = hand_states(tiny, z, y)
    assert sorted(feats) == [0, 2]
    for p in (0, 2):
        assert torch.allclose(feats[p], states[p], atol=1e-6)


def test_captured_features_follow_the_edit(tiny):
    z, y = sample_latents(tiny, [3]), sample_classes(tiny, [3])
    w = torch.ones(1, 32, 32)
    _, plain = render_with_features(tiny, z, y, capture=[3])
    _, swapped = render_with_features(tiny, z, y, capture=[3], swap=LabelSwap([4], w))
    _, target = render_with_features(tiny, z, torch.tensor([4]), capture=[3])
    assert torch.allclose(swapped[3], target[3], atol=1e-5)
    assert (swapped[3] - plain[3]).abs().max() > 1e-2


@pytest.mark.parametrize("point", [0, 1, 2, 3])
def test_start_from_own_features_reproduces_the_image(tiny, point):
    z, y = sample_latents(tiny, [4, 5]), sample_classes(tiny, [4, 5])
    img, feats = render_with_features(tiny, z, y, capture=[point])
    again = render(tiny, z, y, start=Start(point, feats[point]))
    assert torch.allclose(again, img, atol=1e-6)


def test_start_then_swap_equals_a_swap_of_the_later_stages(tiny):
    z, y = sample_latents(tiny, [6, 7]), sample_classes(tiny, [6, 7])
    w = torch.zeros(1, 32, 32)
    w[:, 8:24, 4:20] = 1
    _, feats = render_with_features(tiny, z, y, capture=[1])
    late = render(tiny, z, y, swap=LabelSwap(["blue"], w, stages=range(1, 3)))
    from_start = render(tiny, z, y, start=Start(1, feats[1]), swap=LabelSwap(["blue"], w))   # "all" = 1..2
    assert torch.allclose(from_start, late, atol=1e-5)
    with pytest.raises(ValueError, match=r"label swap can act only on stages 1\.\.2"):
        render(tiny, z, y, start=Start(1, feats[1]), swap=LabelSwap(["blue"], w, stages=range(0, 3)))


def test_start_with_blending_at_later_points(tiny):
    z, y = sample_latents(tiny, [8, 9]), sample_classes(tiny, [8, 9])
    zr = sample_latents(tiny, [10, 11])
    mask = torch.zeros(32, 32)
    mask[4:20, 4:28] = 1
    blend = Blend(zr, mask, [0, 0, 1, 1])
    _, feats = render_with_features(tiny, z, y, capture=[2])
    want = render(tiny, z, y, blends=[blend])
    got = render(tiny, z, y, start=Start(2, feats[2]), blends=[blend])
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match=r"blending at point\(s\) \[1\]"):
        render(tiny, z, y, start=Start(2, feats[2]), blends=[Blend(zr, mask, [0, 1, 1, 1])])


def test_a_masked_start_pastes_the_state_after_the_edits(tiny):
    z, y = sample_latents(tiny, [13, 14]), sample_classes(tiny, [13, 14])
    zo, yo = sample_latents(tiny, [15, 16]), sample_classes(tiny, [15, 16])
    other_img, other = render_with_features(tiny, zo, yo, capture=[1])
    w = torch.zeros(1, 32, 32)
    w[:, 8:24, 8:24] = 1
    swap = LabelSwap(["blue"], w)          # all stages, also stage 0 before the start point
    edited = render(tiny, z, y, swap=swap)
    # Mask 1: the given state everywhere (the source's own stages before the point leave no trace).
    assert torch.allclose(render(tiny, z, yo, start=Start(1, other[1], mask=torch.ones(32, 32))), other_img, atol=1e-6)
    # Mask 0: the edited source, untouched.
    assert torch.equal(render(tiny, z, y, swap=swap, start=Start(1, other[1], mask=torch.zeros(32, 32))), edited)
    # A half mask: the state at point 1 is the mix, area-resized to 8×8 (left half source, right half given).
    half = torch.zeros(32, 32)
    half[:, 16:] = 1
    _, got = render_with_features(tiny, z, y, capture=[1], swap=swap, start=Start(1, other[1], mask=half))
    _, own = render_with_features(tiny, z, y, capture=[1], swap=swap)
    assert torch.allclose(got[1][..., 4:], other[1][..., 4:]) and torch.allclose(got[1][..., :4], own[1][..., :4])
    with pytest.raises(ValueError, match="start mask values must lie in"):
        render(tiny, z, y, start=Start(1, other[1], mask=torch.full((32, 32), 2.0)))


def test_start_is_differentiable_in_the_features(tiny):
    z, y = sample_latents(tiny, [12]), sample_classes(tiny, [12])
    _, feats = render_with_features(tiny, z, y, capture=[2])
    h = feats[2].clone().requires_grad_(True)
    img, _ = run_stages(tiny, z, y, start=Start(2, h))
    img.square().mean().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())      # the shared model is never touched


def test_bad_hooks_are_explained(tiny):
    z, y = sample_latents(tiny, [1]), sample_classes(tiny, [1])
    with pytest.raises(ValueError, match="capture points"):
        render_with_features(tiny, z, y, capture=[9])
    with pytest.raises(ValueError, match="start point 7 is out of range"):
        render(tiny, z, y, start=Start(7, torch.zeros(1, 1, 1, 1)))
    with pytest.raises(ValueError, match="start state has 2 rows for 1 latents"):
        render(tiny, z, y, start=Start(1, torch.zeros(2, 32, 8, 8)))


def test_provenance_is_recorded_once_by_the_loader(tmp_path, caplog):
    g = load_generator("tiny", device="cpu")
    assert g.provenance.model_id == "tiny" and g.provenance.source == "zoo" and "MIT" in g.provenance.license
    assert len(g.provenance.sha256) == 64 and g.provenance.nonfinite == ()
    path = tmp_path / "m.safetensors"
    save_generator(g, path)
    f = load_generator(str(path), device="cpu")
    assert f.provenance.model_id == str(path.resolve()) and f.provenance.sha256 == sha256_file(path)
    assert f.provenance.source == "file" and f.provenance.license is None
    # A broken file (NaN weights) loads, but says so and records which tensors are bad.
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    state = st_load(str(path))
    key = sorted(k for k in state if state[k].is_floating_point())[0]
    state[key] = torch.full_like(state[key], float("nan"))
    bad = tmp_path / "nan.safetensors"
    st_save(state, str(bad), metadata=meta)
    with caplog.at_level(logging.WARNING):
        n = load_generator(str(bad), device="cpu")
    assert n.provenance.nonfinite == (key,) and "NaN or inf" in caplog.text
