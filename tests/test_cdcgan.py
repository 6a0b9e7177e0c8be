"""Input-conditioned DCGANs (class one-hot concatenated to z): label swap at the first layer, the
transplant option, and the `eyes128` zoo model (fetched once from PyPI; skipped when unreachable)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from toolkit import LabelSwap, render, sample_latents
from toolkit.checkpoints import CheckpointError, load_file, save_generator, sha256_file
from toolkit.generators.cdcgan import CDCGANConfig, CDCGANGenerator
from toolkit.generators.sngan import randomize
from toolkit.layers import Condition
from toolkit.masks import Ellipse, rasterize_region, resize_weights
from toolkit.pipeline import render_variants
from toolkit.recipes import load_recipe

ATOL = 1e-5


@pytest.fixture(scope="module")
def small():
    """32×32, 4 classes, random weights and BN statistics: stem 4×4, stages 8 and 16, head 32."""
    cfg = CDCGANConfig(z_dim=16, n_classes=4, resolution=32, ngf=8, class_names=["a", "b", "c", "d"])
    return randomize(CDCGANGenerator(cfg), seed=1).eval()


def reference_forward(gen, z, onehot):
    """The plain conditional DCGAN written out with functional calls: [z; y] at 1×1 → … → tanh."""
    h = torch.cat([z, onehot], 1)[:, :, None, None]
    convs = [m for m in gen.main if isinstance(m, torch.nn.ConvTranspose2d)]
    bns = [m for m in gen.main if isinstance(m, torch.nn.BatchNorm2d)]
    for i, conv in enumerate(convs):
        h = F.conv_transpose2d(h, conv.weight, stride=1 if i == 0 else 2, padding=0 if i == 0 else 1)
        if i < len(bns):
            bn = bns[i]
            h = F.relu(F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
    return torch.tanh(h)


def disc(res: int, diameter: float = 0.45) -> torch.Tensor:
    return torch.from_numpy(rasterize_region(Ellipse((0.5, 0.5), (diameter, diameter)), res))


def hand_run(gen, z, y, target, w, strengths):
    """Swap + transplant by hand: the stem/stage/head pieces and the blending formula of DESIGN.md."""
    b = z.shape[0]
    base, tgt = F.one_hot(y, gen.n_classes).float(), F.one_hot(target, gen.n_classes).float()
    src_cond = Condition(torch.stack([base, tgt], 1), torch.stack([1 - w, w], 1))
    ref_cond = Condition.per_sample(tgt)
    hs, hr = gen.stem(z, src_cond), gen.stem(z, ref_cond)
    for point in range(gen.n_blend_points):
        if point:
            hs, hr = gen.stage(point - 1, hs, src_cond), gen.stage(point - 1, hr, ref_cond)
        a = strengths[point] * resize_weights(w, hs.shape[-2:])[:, None]
        hs = (1 - a) * hs + a * hr
    assert hs.shape[0] == b
    return gen.head(hs)


# -- the architecture ---------------------------------------------------------------------------------
def test_plain_forward_matches_the_functional_reference(small):
    z, y = sample_latents(small, [0, 1, 2]), torch.tensor([0, 3, 1])
    assert torch.allclose(render(small, z, y), reference_forward(small, z, F.one_hot(y, 4).float()), atol=1e-6)


def test_spatial_first_layer_equals_feeding_the_mixed_class_per_pixel(small):
    """Each of the 16 output pixels of the first layer sees the class vector mixed at that pixel."""
    z = sample_latents(small, [3, 4])
    vectors = torch.eye(4)[[0, 2, 1]].expand(2, 3, 4)                 # base a, then c and b
    w = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    w = w / w.sum(1, keepdim=True)
    out = small.first_layer(z, Condition(vectors, w))
    mixed = torch.einsum("bmhw,bmd->bdhw", w, vectors)                # [B, D, 4, 4]
    for i in range(4):
        for j in range(4):
            x = torch.cat([z, mixed[:, :, i, j]], 1)[:, :, None, None]
            assert torch.allclose(out[:, :, i, j], small.main[0](x)[:, :, i, j], atol=1e-6)


def test_uniform_swap_equals_the_mixed_class_vector(small):
    z, y = sample_latents(small, [5, 6]), torch.tensor([0, 1])
    for alpha in (0.3, 1.0):
        out = render(small, z, y, swap=LabelSwap([2], torch.full((1, 32, 32), alpha)))
        soft = (1 - alpha) * F.one_hot(y, 4).float() + alpha * F.one_hot(torch.tensor([2, 2]), 4).float()
        assert torch.allclose(out, render(small, z, soft), atol=ATOL)
        assert (out - render(small, z, y)).abs().max() > 0.01         # and the class really matters


def test_zero_swap_weights_change_nothing(small):
    z, y = sample_latents(small, [7]), torch.tensor([1])
    out = render(small, z, y, swap=LabelSwap([3], torch.zeros(1, 32, 32)))
    assert torch.allclose(out, render(small, z, y), atol=1e-6)


def test_swap_acts_at_the_stem_only(small):
    """The class enters at the first layer only: a swap whose stages leave out stage 0 does nothing."""
    z, y = sample_latents(small, [8]), torch.tensor([0])
    assert torch.equal(render(small, z, y, swap=LabelSwap([1], torch.ones(1, 32, 32), stages=[1])),
                       render(small, z, y))


def test_swap_in_one_cell_changes_the_stem_there_only(small):
    w = torch.zeros(1, 32, 32)
    w[:, :8, :8] = 1                                                   # the top-left cell of the 4×4 grid
    z, y = sample_latents(small, [9]), torch.tensor([0])
    cond = Condition(torch.eye(4)[[0, 2]][None], torch.stack([1 - w, w], 1))
    diff = (small.stem(z, cond) - small.stem(z, Condition.per_sample(F.one_hot(y, 4).float()))).abs().amax(1)[0]
    assert diff[0, 0] > 1e-3
    diff[0, 0] = 0
    assert diff.max() <= 1e-6


# -- transplant -----------------------------------------------------------------------------------------
def test_transplant_matches_the_hand_run_loop(small):
    z, y, target = sample_latents(small, [10, 11]), torch.tensor([0, 1]), torch.tensor([2, 3])
    w = torch.stack([disc(32), disc(32, 0.7)])                          # one map per variant
    strengths = [0.5, 1.0, 0.7]                                       # after the stem, 8×8, 16×16
    out = render(small, z, y, swap=LabelSwap(target[:, None], w[:, None], transplant=strengths))
    expected = hand_run(small, z, y, target, w, strengths)
    assert torch.allclose(out, expected, atol=ATOL), (out - expected).abs().max()
    plain_swap = render(small, z, y, swap=LabelSwap(target[:, None], w[:, None]))
    assert (out - plain_swap).abs().max() > 0.01                      # the transplant did something


def test_zero_transplant_is_the_plain_swap(small):
    z, y = sample_latents(small, [12]), torch.tensor([0])
    swap = LabelSwap([1], disc(32)[None])
    zero = LabelSwap([1], disc(32)[None], transplant=[0.0, 0.0, 0.0])
    assert torch.equal(render(small, z, y, swap=zero), render(small, z, y, swap=swap))


def test_full_transplant_from_the_stem_inside_a_full_map_is_the_target(small):
    z, y = sample_latents(small, [13]), torch.tensor([0])
    out = render(small, z, y, swap=LabelSwap([3], torch.ones(1, 32, 32), transplant=[1.0, 0.0, 0.0]))
    assert torch.allclose(out, render(small, z, torch.tensor([3])), atol=ATOL)


def test_transplant_with_the_wrong_number_of_points_is_explained(small):
    with pytest.raises(ValueError, match="transplant: give one strength per blend point \\(3"):
        render(small, sample_latents(small, [0]), torch.tensor([0]),
               swap=LabelSwap([1], disc(32)[None], transplant=[1.0, 1.0]))


# -- files ------------------------------------------------------------------------------------------------
def test_saved_model_rebuilds_itself(small, tmp_path):
    save_generator(small, tmp_path / "c.safetensors")
    back = load_file(tmp_path / "c.safetensors").eval()
    assert back.class_names == ["a", "b", "c", "d"] and back.resolution == 32
    z, y = sample_latents(small, [1]), torch.tensor([2])
    assert torch.equal(render(back, z, y), render(small, z, y))


def test_tutorial_layout_without_dropout(tmp_path):
    """`dropout=None`: the common tutorial layout (`main.3` is the first stage's ConvTranspose). A user's
    own state dict of that layout loads strictly and is saved in our self-describing format."""
    from toolkit.checkpoints import load_state_strict
    cfg = CDCGANConfig(z_dim=10, n_classes=3, resolution=16, ngf=4, dropout=None)
    theirs = randomize(CDCGANGenerator(cfg), seed=2).state_dict()
    assert tuple(theirs["main.3.weight"].shape) == (8, 4, 4, 4) and "main.10.weight" not in theirs
    gen = CDCGANGenerator(cfg)
    load_state_strict(gen, theirs, "their.pth")
    gen.eval()
    z, y = sample_latents(gen, [0, 1]), torch.tensor([0, 2])
    assert torch.allclose(render(gen, z, y), reference_forward(gen, z, F.one_hot(y, 3).float()), atol=1e-6)
    out = render(gen, z, y, swap=LabelSwap([1], torch.full((1, 16, 16), 0.5)))
    soft = 0.5 * F.one_hot(y, 3).float() + 0.5 * F.one_hot(torch.tensor([1, 1]), 3).float()
    assert torch.allclose(out, render(gen, z, soft), atol=ATOL)
    save_generator(gen, tmp_path / "mine.safetensors")
    assert torch.equal(render(load_file(tmp_path / "mine.safetensors").eval(), z, y), render(gen, z, y))
    with pytest.raises(CheckpointError, match="misshaped|unexpected|missing"):   # the other layout is refused
        load_state_strict(CDCGANGenerator(CDCGANConfig(z_dim=10, n_classes=3, resolution=16, ngf=4)), theirs, "x")


def test_bad_resolution_is_refused():
    with pytest.raises(ValueError, match="4·2\\^k"):
        CDCGANGenerator(CDCGANConfig(resolution=96))


# -- eyes128 (the real weights) -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eyes128():
    import toolkit
    try:
        return toolkit.load_generator("eyes128", device="cpu")
    except CheckpointError as e:
        if "could not fetch" in str(e):
            pytest.skip(f"eyes128 weights could not be fetched from PyPI: {e}")
        raise


def test_eyes128_loads_with_both_hashes_checked(eyes128, tmp_path):
    from toolkit import zoo
    path = zoo._eyes128_path()
    assert path.stat().st_size == 51_691_195 and sha256_file(path) == zoo.EYES128_WEIGHTS_SHA256
    assert eyes128.provenance.sha256 == zoo.EYES128_WEIGHTS_SHA256 and "MIT" in eyes128.provenance.license
    assert eyes128.class_names[2] == "brown" and eyes128.class_names[7] == "red"
    assert eyes128.blend_resolutions == [4, 8, 16, 32, 64] and eyes128.resolution == 128
    # The plain model is the original network (functional reference on the loaded weights).
    z, y = sample_latents(eyes128, [0, 1]), torch.tensor([2, 7])
    assert torch.allclose(render(eyes128, z, y), reference_forward(eyes128, z, F.one_hot(y, 8).float()), atol=1e-5)
    # Both pins are enforced: a wrong wheel hash, then a wrong member hash, are refused and leave nothing.
    args = ("eyes128", "omniart-eye-generator==0.1", zoo.EYES128_WHEEL)
    member = "omniart_eye_generator/generator_model_state.pth"
    with pytest.raises(CheckpointError, match="wheel's sha256 does not match"):
        zoo._fetch_wheel_member(*args, "0" * 64, member, zoo.EYES128_WEIGHTS_SHA256, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match="does not match its pinned sha256"):
        zoo._fetch_wheel_member(*args, zoo.EYES128_WHEEL_SHA256, member, "0" * 64, tmp_path / "b.pth")
    assert not any(tmp_path.iterdir())
    # And a fresh fetch with the right pins writes the weights file in one piece.
    fresh = zoo._fetch_wheel_member(*args, zoo.EYES128_WHEEL_SHA256, member, zoo.EYES128_WEIGHTS_SHA256,
                                    tmp_path / "c.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"] and sha256_file(fresh) == zoo.EYES128_WEIGHTS_SHA256


def test_eyes128_uniform_swap_equals_the_mixed_class(eyes128):
    z, y = sample_latents(eyes128, [3, 4]), torch.tensor([2, 2])
    out = render(eyes128, z, y, swap=LabelSwap(["red"], torch.full((1, 128, 128), 0.6)))
    soft = torch.zeros(2, 8)
    soft[:, 2], soft[:, 7] = 0.4, 0.6
    assert torch.allclose(out, render(eyes128, z, soft), atol=1e-4)


def test_eyes128_disc_swap_changes_the_disc_and_little_outside(eyes128):
    """Brown → red inside a centred disc (diameter 0.45 of the side). Measured on seeds 0–7 (2-core
    CPU, torch 2.13): mean |Δ| ≈ 0.11 inside, ≈ 0.006 in the outer 16-pixel frame (images in [-1, 1])."""
    z, y = sample_latents(eyes128, range(8)), ["brown"] * 8
    src = render(eyes128, z, y)
    out = render(eyes128, z, y, swap=LabelSwap(["red"], disc(128)[None]))
    diff = (out - src).abs().mean(1)                                   # [B, H, W]
    yy, xx = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    inside = ((xx - 64) ** 2 + (yy - 64) ** 2).sqrt() < 0.225 * 128
    frame = (xx < 16) | (xx > 112) | (yy < 16) | (yy > 112)
    d_in, d_out = diff[:, inside].mean().item(), diff[:, frame].mean().item()
    assert d_in > 0.05, d_in
    assert d_out < 0.02 and d_in > 5 * d_out, (d_in, d_out)
    redness = lambda t: (t[:, 0] - (t[:, 1] + t[:, 2]) / 2)[:, inside].mean()
    assert redness(out) > redness(src) + 0.03                          # the disc turned redder


def test_eyes128_on_the_label_swap_page(eyes128, tmp_path, monkeypatch):
    """The zoo model is selectable on the app's label-swap page: brown source, red target, a painted
    centre changes the result and the page explains the 4×4 resolution."""
    import base64
    import io
    from pathlib import Path

    from PIL import Image
    from streamlit.testing.v1 import AppTest

    from toolkit.ui.strokes import PALETTE, hex_to_rgb
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("NCT_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("NCT_RECIPES_DIR", str(tmp_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=90)
    for k, v in {"model_choice": "eyes128", "_model_picked": True, "swap_src_class": 2,
                 "swap_targets": ["red"], "source_seed": 52}.items():
        at.session_state[k] = v
    at.run()
    at.switch_page("pages/label_swap.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert any("4×4" in c.value for c in at.caption)
    urls = lambda: {i.caption: i.url for el in at.get("image") for i in el.proto.imgs}
    before = next(u for c, u in urls().items() if c.startswith("Result"))
    im = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    im.paste((*hex_to_rgb(PALETTE[0]), 255), (80, 80, 176, 176))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    at.session_state["swap_canvas"] = {"drawing": {"raw": {"objects": [{"type": "rect"}]},
                                                   "data": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
    at.run()
    assert not at.exception and not at.error
    assert next(u for c, u in urls().items() if c.startswith("Result")) != before


def test_eyes128_recipe_turns_the_disc_red(eyes128):
    r = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "eyes128-brown-to-red.yaml")
    out = render_variants(eyes128, r, r.variants(range(4)))
    red = lambda im, m: float(((im[..., 0] - (im[..., 1].astype(float) + im[..., 2]) / 2) * m).sum() / m.sum())
    gains = []
    for o in out:
        assert o.image.shape == (128, 128, 3) and o.source_class == "brown"
        m = o.mask.astype(float) / (255.0 if o.mask.max() > 1 else 1.0)
        gains.append(red(o.image.astype(float), m) - red(o.source_image.astype(float), m))
        assert o.locality < 0.5, o.locality                           # mostly inside the disc
    # Measured on variants 0-3: +13.8, +2.5, +6.7, +9.1 levels of R − (G+B)/2 inside the disc.
    assert min(gains) > 0 and sum(gains) / len(gains) > 5, gains


def test_switching_the_label_swap_page_to_eyes128_keeps_working(eyes128, tmp_path, monkeypatch):
    """Targets chosen for the previous model's classes (terrain64's 'sand') must not break the page
    when the user picks eyes128 in the sidebar (found while taking the app screenshot)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("NCT_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("NCT_RECIPES_DIR", str(tmp_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=90)
    at.session_state["model_choice"] = "terrain64"
    at.session_state["_model_picked"] = True
    at.run()
    at.switch_page("pages/label_swap.py").run()
    assert not at.exception and at.multiselect(key="swap_targets").value == ["sand"]
    at.session_state["model_choice"] = "eyes128"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(at.multiselect(key="swap_targets").value) <= set(eyes128.class_names)
