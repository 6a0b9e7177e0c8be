"""Parts: discovery (deterministic, every architecture), segmentation (covers every pixel, one pass
with the render), part model files (round trip, refuses another model), the CLI and shipped models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit
from toolkit import Blend, sample_classes, sample_latents
from toolkit.cli import main as cli_main
from toolkit.engine import render, render_with_features
from toolkit.generators.biggan import BigGANConfig, BigGANGenerator
from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
from toolkit.generators.sngan import randomize
from toolkit.generators.stylegan2 import StyleGAN2Generator, tiny_config as sg2_tiny, randomize as sg2_randomize
from toolkit.parts import (PartModel, PartModelError, adjusted_rand_index, default_points, discover, segment,
                           segment_features, shipped, shipped_path)


def tiny_dcgan():
    return randomize(DCGANGenerator(DCGANConfig(z_dim=8, ngf=4)), seed=3).eval()


def tiny_biggan():
    cfg = BigGANConfig(resolution=32, z_dim=16, n_classes=6, channel_width=4,
                       layers=[[True, 16, 8], [True, 8, 4], [False, 4, 2], [True, 2, 1]], attention_position=2,
                       class_names=[f"c{i}" for i in range(6)])
    torch.manual_seed(0)
    return randomize(BigGANGenerator(cfg), seed=4).eval()


def tiny_stylegan2():
    return sg2_randomize(StyleGAN2Generator(sg2_tiny()), seed=0).eval()


def inputs(g, seeds):
    return sample_latents(g, seeds), (sample_classes(g, seeds) if g.n_classes else None)


def test_discovery_is_deterministic_and_depends_on_the_seed(tiny):
    a = discover(tiny, 4, n_samples=12, seed=5, restarts=2)
    b = discover(tiny, 4, n_samples=12, seed=5, restarts=2)
    c = discover(tiny, 4, n_samples=12, seed=6, restarts=2)
    assert torch.equal(a.centroids, b.centroids) and a.info == b.info
    assert not torch.equal(a.centroids, c.centroids)
    assert a.points == default_points(tiny) == (1, 2)          # 8×8 and 16×16 of a 32-pixel model
    assert torch.allclose(a.centroids.norm(dim=1), torch.ones(4), atol=1e-5)
    cov = a.info["coverage"]
    assert cov == sorted(cov, reverse=True) and abs(sum(cov) - 1) < 1e-3   # numbered by coverage


@pytest.mark.parametrize("build", [tiny_dcgan, tiny_biggan, tiny_stylegan2], ids=["dcgan", "biggan", "stylegan2"])
def test_every_architecture_segments_every_pixel(build):
    g = build()
    pm = discover(g, 3, n_samples=8, seed=0, restarts=1)
    z, y = inputs(g, [1, 2, 3])
    labels = segment(g, pm, z, y)
    assert labels.dtype == torch.long and labels.shape == (3, g.resolution, g.resolution)
    assert labels.min() >= 0 and labels.max() < 3
    assert len(labels.unique()) >= 2          # not one part everywhere: the clusters mean something


def test_segment_shares_the_rendering_pass_and_follows_edits(tiny):
    pm = discover(tiny, 4, n_samples=12, seed=0, restarts=1)
    z, y = inputs(tiny, [7, 8])
    img, states = render_with_features(tiny, z, y, capture=pm.points)
    assert torch.equal(img, render(tiny, z, y))
    shared = segment_features(pm, states, tiny.resolution)
    assert torch.equal(shared, segment(tiny, pm, z, y))
    # With an edit, the part map is that of the edited image, not of the plain source.
    zr, _ = inputs(tiny, [30, 31])
    edited = segment(tiny, pm, z, y, blends=[Blend(zr, torch.ones(32, 32), [1, 1, 1, 1])])
    plain_ref = segment(tiny, pm, zr, y)
    assert torch.equal(edited, plain_ref)


def test_part_model_round_trip_and_refuses_another_model(tiny, tmp_path):
    pm = discover(tiny, 3, n_samples=8, seed=1, restarts=1).with_names(["a", "b", "b"])
    path = pm.save(tmp_path / "p.safetensors")
    back = PartModel.load(path)
    assert torch.equal(back.centroids, pm.centroids) and back.points == pm.points
    assert back.names == ["a", "b", "b"] and back.sha256 == tiny.provenance.sha256 and back.smooth == pm.smooth
    assert back.ids("b") == [1, 2] and back.ids(["a", 2]) == [0, 2]
    with pytest.raises(PartModelError, match="unknown part 'eyes'"):
        back.ids("eyes")
    other = randomize(toolkit.generators.sngan.SNGANGenerator(toolkit.generators.sngan.tiny_config()), seed=9).eval()
    with pytest.raises(PartModelError, match="belongs to tiny .* Discover parts for this model"):
        segment(other, back, *inputs(other, [1]))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(PartModelError, match="not a readable safetensors"):
        PartModel.load(tmp_path / "bad.safetensors")


def test_adjusted_rand_index():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, (a + 1) % 3) == pytest.approx(1.0)      # renaming does not matter
    # Hand-computed: table [[2,0],[1,1]] for a=[0,0,1,1], b=[0,0,0,1]: sum_ij=1, a=2, b=3, n=6 → (1-1)/(2.5-1) = 0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)
    assert adjusted_rand_index([0, 1, 0, 1], [0, 0, 1, 1]) < 0


def test_cli_parts_writes_model_and_sheet(tmp_path, capsys):
    out, sheet = tmp_path / "tiny-parts.safetensors", tmp_path / "sheet.png"
    assert cli_main(["parts", "tiny", "--parts", "3", "--samples", "8", "--out", str(out), "--sheet", str(sheet),
                     "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "3 parts of tiny" in text and "% of pixels" in text
    assert PartModel.load(out).n_parts == 3 and sheet.stat().st_size > 1000
    named = tmp_path / "named.safetensors"
    assert cli_main(["parts", "tiny", "--from", str(out), "--names", "x,y,z", "--out", str(named),
                     "--device", "cpu"]) == 0
    assert PartModel.load(named).names == ["x", "y", "z"]


@pytest.mark.parametrize("name", ["faces64", "terrain64"])
def test_shipped_part_models_match_their_models(name, request):
    assert shipped_path(name).is_file(), f"{shipped_path(name)} should ship with the toolkit"
    g = request.getfixturevalue("faces64") if name == "faces64" else toolkit.load_generator(name, device="cpu")
    pm = shipped(g)
    assert pm is not None and all(not n.startswith("part") for n in pm.names)   # a person named them
    labels = segment(g, pm, *inputs(g, [0, 1, 2, 3]))
    assert labels.shape == (4, 64, 64)


# -- recipes: part regions and matched references --------------------------------------------------
def _recipe(tmp_path, g, text: str):
    from toolkit.recipes import load_recipe
    pm = discover(g, 4, n_samples=12, seed=0, restarts=1).with_names(["a", "b", "c", "d"])
    pm.save(tmp_path / "parts.safetensors")
    (tmp_path / "r.yaml").write_text(text)
    return load_recipe(tmp_path / "r.yaml").for_generator(g), pm


def test_part_region_is_the_hand_computed_mask_of_each_source(tiny, tmp_path):
    from toolkit.part_edits import dilate
    from toolkit.pipeline import render_variants
    r, pm = _recipe(tmp_path, tiny, """
model: tiny
parts: parts.safetensors
edits:
  - label_swap: {to: blue, region: {part: [b, 2], grow: 1}}
""")
    vs = r.variants(range(3))
    out = render_variants(tiny, r, vs)
    z = sample_latents(tiny, [v.seed for v in vs])
    y = torch.tensor([v.source.class_id for v in vs])
    labels = segment(tiny, pm, z, y).numpy()
    for k, rv in enumerate(out):
        hand = dilate(np.isin(labels[k], [1, 2]), 1)
        assert np.array_equal(rv.mask, np.where(hand, 255, 0).astype(np.uint8))
        assert rv.params["edits"][0]["label_swap"]["region"] == {"part": ["b", 2], "grow": 1}
    assert not np.array_equal(out[0].mask, out[1].mask)      # the region follows each source


def test_matched_references_raise_part_iou_and_are_batch_independent(faces64, tmp_path):
    from toolkit.part_edits import _render_candidates, match_scores
    from toolkit.pipeline import render_variants
    from toolkit.recipes import load_recipe
    (tmp_path / "r.yaml").write_text("""
model: faces64
edits:
  - blend:
      reference: {seed: {range: [0, 100000]}, match: eyes_mouth, candidates: 8}
      region: {part: eyes_mouth, grow: 1}
      strength: parts
""")
    r = load_recipe(tmp_path / "r.yaml").for_generator(faces64)
    vs = r.variants(range(6))
    together = render_variants(faces64, r, vs)
    alone = [render_variants(faces64, r, [v])[0] for v in vs[:2]]
    for a, b in zip(alone, together):
        assert a.params == b.params and np.array_equal(a.image, b.image)
    pm = shipped(faces64)
    chosen, random_mean = [], []
    for v, rv in zip(vs, together):
        cands = list(v.edits[0].reference.candidates)
        src_l, src_i = _render_candidates(faces64, pm, [v.seed], None, None)
        l, im = _render_candidates(faces64, pm, cands, None, None)
        sc = match_scores(src_l[0], src_i[0], l, im, pm.ids("eyes_mouth"), 4)
        m = rv.params["edits"][0]["blend"]["reference"]["match"]
        assert rv.params["edits"][0]["blend"]["reference"]["seed"] == cands[int(np.argmax(sc[:, 0]))]
        assert m["score"] == pytest.approx(sc[:, 0].max(), abs=1e-5)
        chosen.append(m["iou"])
        random_mean.append(sc[:, 1].mean())
    assert np.mean(chosen) > np.mean(random_mean) + 0.02


# -- the app's Parts mode --------------------------------------------------------------------------
def test_app_parts_mode_on_both_editors_saves_part_regions(app_dirs):
    pytest.importorskip("streamlit.testing.v1")
    from test_app import _save, app, find, messages
    from toolkit.recipes import load_recipe
    ws, rd = app_dirs
    # Label swap on terrain64 (its shipped part model): the target's region is parts of the source.
    at = app("pages/label_swap.py", model="terrain64")
    names = ["grass", "sand", "rock", "sky"]
    at.multiselect(key="swap_parts0").set_value(names).run()
    assert not at.exception and not at.error, messages(at)
    assert find(at, "Result: stages")                     # a region exists: the swap preview is shown
    _save(at, "swap", "parts-swap")
    rec = load_recipe(ws / "recipes" / "parts-swap.yaml")      # the app saves into the workspace
    assert rec.data["edits"][0]["label_swap"]["region"] == {"part": names, "grow": 1, "feather": 0.0}
    # Feature blend: eyes and mouth of reference 1 as a part region.
    if not toolkit.zoo.ZOO["faces64"].is_cached(None):
        pytest.skip("faces64 is not in the model cache")
    at = app("pages/feature_blend.py", model="faces64")
    before = find(at, "Result")
    at.multiselect(key="blend_parts0").set_value(["eyes_mouth"]).run()
    assert not at.exception and not at.error, messages(at)
    assert find(at, "Result") != before
    _save(at, "blend", "parts-blend")
    rec = load_recipe(ws / "recipes" / "parts-blend.yaml")
    assert rec.data["edits"][0]["blend"]["region"] == {"part": ["eyes_mouth"], "grow": 1, "feather": 0.0}


def test_pipeline_part_map_is_the_edited_images_own(tiny, tmp_path):
    """Any recipe of a model with a known part model gets the part map of what was rendered (the
    edited image), from the same pass: it equals segmenting the edit by hand."""
    from toolkit.pipeline import render_variants
    r, pm = _recipe(tmp_path, tiny, """
model: tiny
parts: parts.safetensors
edits:
  - label_swap: {to: blue, region: {shape: rectangle, box: [0, 0, 0.5, 1]}}
""")
    vs = r.variants(range(2))
    out = render_variants(tiny, r, vs)
    z = sample_latents(tiny, [v.seed for v in vs])
    y = torch.tensor([v.source.class_id for v in vs])
    w = torch.zeros(1, 32, 32)
    w[:, :, :16] = 1
    from toolkit import LabelSwap
    hand = segment(tiny, pm, z, y, swap=LabelSwap(torch.tensor([[2], [2]]), w)).numpy()
    for k, rv in enumerate(out):
        assert rv.part_map.dtype == np.uint8 and np.array_equal(rv.part_map, hand[k])
    from toolkit.recipes import load_recipe
    (tmp_path / "plain.yaml").write_text("model: tiny\nedits:\n  - label_swap: {to: blue, region: {shape: rectangle, "
                                         "box: [0, 0, 0.5, 1]}}\n")
    plain = load_recipe(tmp_path / "plain.yaml").for_generator(tiny)
    assert render_variants(tiny, plain, plain.variants([0]))[0].part_map is None    # no part model: no map
