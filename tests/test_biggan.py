"""BigGAN-deep: parity with pytorch-pretrained-biggan (random weights, no download), label swap
and blending invariants, truncation, class names, and bad inputs.

The reference (`pytorch_pretrained_biggan.BigGAN`, a test-only dependency) is built from a
config with random weights, stored spectral-norm vectors off their fixed point and random BN
statistics for every truncation level; its state dict + config.json form the directory our
loader reads, exactly as the released files are laid out.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("scipy")                       # pytorch_pretrained_biggan imports scipy.stats
ppb = pytest.importorskip("pytorch_pretrained_biggan")

import toolkit  # noqa: E402
from toolkit import Blend, LabelSwap, render, sample_latents  # noqa: E402
from toolkit.checkpoints import CheckpointError, load_file, save_generator  # noqa: E402
from toolkit.layers import Condition  # noqa: E402

TOL = 1e-4
N_CLASSES = 1000            # the ImageNet class count, so class names work on the small model too
# Small but complete: narrowing and constant-width blocks, upsampling and not, attention mid-way.
SMALL = dict(output_dim=32, z_dim=16, class_embed_dim=16, channel_width=4, num_classes=N_CLASSES,
             layers=[(True, 16, 8), (True, 8, 4), (False, 4, 2), (True, 2, 1)], attention_layer_position=2,
             eps=1e-4, n_stats=51)
TRUNCATIONS = [1.0, 0.5, 0.37, 0.3, 0.013]   # stored levels, between levels, 0.3/0.02 = 14.999…


@torch.no_grad()
def randomize_reference(model, seed: int):
    """Random weights with non-trivial stored spectral-norm vectors, BN statistics per truncation
    level, attention gain and head BN, scaled so that activations stay O(1) through the depth."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "weight_u"):
            w = m.weight_orig.reshape(m.weight_orig.shape[0], -1)
            u0 = F.normalize(torch.randn(w.shape[0], generator=g), dim=0)
            v = F.normalize(w.t() @ u0, dim=0)
            u = F.normalize(w @ v, dim=0)
            # Off the power-iteration fixed point, so only the exact stored-(u, v) sigma matches.
            m.weight_u.copy_(F.normalize(u + 0.5 * torch.randn(u.shape, generator=g) / u.numel() ** 0.5, dim=0))
            m.weight_v.copy_(F.normalize(v + 0.5 * torch.randn(v.shape, generator=g) / v.numel() ** 0.5, dim=0))
        if hasattr(m, "running_means"):
            m.running_means.copy_(0.3 * torch.randn(m.running_means.shape, generator=g))
            m.running_vars.copy_(0.5 + torch.rand(m.running_vars.shape, generator=g))
        if hasattr(m, "gamma"):
            m.gamma.fill_(0.7)
    bn = model.generator.bn
    bn.weight.copy_(0.5 + 0.1 * torch.randn(bn.weight.shape, generator=g))
    bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=g))
    model.embeddings.weight.mul_(8)      # default init is tiny for 1000 inputs: make classes matter
    return model.eval()


def make_reference(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    return randomize_reference(ppb.BigGAN(ppb.BigGANConfig.from_dict(config)), seed)


def write_dir(path, ref) -> None:
    path.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), path / "pytorch_model.bin")
    (path / "config.json").write_text(ref.config.to_json_string())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(reference, our generator loaded from the directory, the directory)."""
    d = tmp_path_factory.mktemp("biggan") / "biggan-small"
    ref = make_reference(SMALL)
    write_dir(d, ref)
    return ref, toolkit.load_generator(str(d), device="cpu"), d


def one_hot(ids) -> torch.Tensor:
    return F.one_hot(torch.tensor(ids), N_CLASSES).float()


def latents(n: int, seed: int, dim: int = 16) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def assert_nontrivial(img: torch.Tensor) -> None:
    assert img.std() > 0.05 and img.abs().mean() < 0.9, "test model output is flat or saturated"


# -- parity ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("truncation", TRUNCATIONS)
def test_parity_one_hot(small, truncation):
    ref, gen, _ = small
    z, y = latents(4, 1) * truncation, one_hot([0, 250, 259, 999])
    with torch.no_grad():
        want = ref(z, y, truncation)
    got = render(gen, z, y, truncation=truncation)
    assert_nontrivial(want)
    assert (got - want).abs().max() <= TOL


@pytest.mark.parametrize("truncation", [1.0, 0.37, 0.3])
def test_parity_soft_class_vectors(small, truncation):
    ref, gen, _ = small
    g = torch.Generator().manual_seed(2)
    y = torch.softmax(3 * torch.randn(3, N_CLASSES, generator=g), dim=1)
    z = latents(3, 3)
    with torch.no_grad():
        want = ref(z, y, truncation)
    assert_nontrivial(want)
    assert (render(gen, z, y, truncation=truncation) - want).abs().max() <= TOL


def test_truncation_statistics_matter(small):
    """Interpolated statistics are used: neighbouring truncations give different images."""
    _, gen, _ = small
    z, y = latents(1, 4), one_hot([7])
    a, b = render(gen, z, y, truncation=0.37), render(gen, z, y, truncation=0.375)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("position", [0, 3, 99])
def test_parity_attention_positions(tmp_path, position):
    """Self-attention after the stem, before the last block, and absent (position out of range)."""
    ref = make_reference(dict(SMALL, attention_layer_position=position), seed=5)
    write_dir(tmp_path / "m", ref)
    gen = toolkit.load_generator(str(tmp_path / "m"), device="cpu")
    assert gen.has_attention == (position < len(SMALL["layers"]))
    z, y = latents(2, 6), one_hot([3, 4])
    with torch.no_grad():
        want = ref(z, y, 0.63)
    assert (render(gen, z, y, truncation=0.63) - want).abs().max() <= TOL


def test_default_truncation_is_one(small):
    ref, gen, _ = small
    z, y = latents(2, 7), one_hot([1, 2])
    with torch.no_grad():
        want = ref(z, y, 1.0)
    assert (render(gen, z, y) - want).abs().max() <= TOL
    assert torch.equal(gen(z, y), render(gen, z, y))


# -- label swap and blending -----------------------------------------------------------------------
@pytest.mark.parametrize("w", [0.35, 1.0])
def test_uniform_label_swap_equals_reference_with_mixed_vector(small, w):
    ref, gen, _ = small
    z = latents(2, 8)
    swapped = render(gen, z, torch.tensor([250, 1]), swap=LabelSwap(["Pomeranian"], torch.full((1, 32, 32), w)),
                     truncation=0.45)
    mixed = (1 - w) * one_hot([250, 1]) + w * one_hot([259, 259])
    with torch.no_grad():
        want = ref(z, mixed, 0.45)
    assert (swapped - want).abs().max() <= TOL
    assert (swapped - render(gen, z, torch.tensor([250, 1]), truncation=0.45)).abs().max() > 0.01


def test_spatial_stem_is_the_per_pixel_mixture(small):
    """At the class-conditioned 4×4 stem every pixel gets the stem of its own mixed class vector."""
    _, gen, _ = small
    b, m = 2, 3
    cv = torch.softmax(torch.randn(b, m, N_CLASSES, generator=torch.Generator().manual_seed(9)), -1)
    vectors = gen.embed(latents(b, 10), cv)                                   # [B, M, D]
    w = torch.softmax(4 * torch.randn(b, m, 4, 4, generator=torch.Generator().manual_seed(11)), 1)
    spatial = gen.stem(None, Condition(vectors, w))                          # [B, C, 4, 4]
    for i in range(4):
        for j in range(4):
            mixed = (w[:, :, i, j, None] * vectors).sum(1)                   # [B, D]
            plain = gen.stem(None, Condition.per_sample(mixed))
            assert torch.allclose(spatial[:, :, i, j], plain[:, :, i, j], atol=1e-5)


def test_swap_at_stem_and_first_stage_changes_the_image(small):
    """A swap limited to one quadrant, at the stem + stage 0 only, still leaves a visible edit."""
    _, gen, _ = small
    z, y = latents(1, 12), torch.tensor([250])
    w = torch.zeros(1, 32, 32)
    w[:, :16, :16] = 1
    out = render(gen, z, y, swap=LabelSwap(["Pomeranian"], w, stages=[0]), truncation=0.5)
    assert (out - render(gen, z, y, truncation=0.5)).abs().max() > 1e-3


def test_swap_after_attention_stays_local(small):
    """A per-pixel swap in the last stage (after self-attention) changes only pixels within its
    receptive field: the map is area-resized to 16×16 (≤ 2 px of spread at 32×32), then the ×2
    upsample, two 3×3 convs and the head's 3×3 conv add 3 px. A misplaced per-pixel gain/bias
    (e.g. a transposed map) would change the far corner."""
    _, gen, _ = small
    z, y = latents(2, 21), torch.tensor([250, 3])
    w = torch.zeros(1, 32, 32)
    w[:, 2:12, 20:30] = 1                                              # top right, off the diagonal
    base = render(gen, z, y, truncation=0.5)
    out = render(gen, z, y, swap=LabelSwap(["Pomeranian"], w, stages=[gen.n_stages - 1]), truncation=0.5)
    diff = (out - base).abs().amax(1)                                  # [B, H, W]
    assert diff[:, 2:12, 20:30].max() > 1e-3
    far = torch.ones(32, 32, dtype=torch.bool)
    far[:12 + 5, 20 - 5:] = False
    assert diff[:, far].max() <= 1e-6


def test_full_blend_reproduces_the_reference_stream(small):
    _, gen, _ = small
    z, zr, y = latents(2, 13), latents(2, 14), torch.tensor([5, 6])
    ones = torch.ones(32, 32)
    out = render(gen, z, y, blends=[Blend(zr, ones, [0.0] * gen.n_stages + [1.0])], truncation=0.8)
    assert torch.allclose(out, render(gen, zr, y, truncation=0.8), atol=1e-5)


def test_batched_mixed_edits_equal_one_by_one(small):
    _, gen, _ = small
    b, t = 3, 0.6
    z, zr = latents(b, 15), latents(b, 16)
    y = torch.tensor([250, 10, 900])
    g = torch.Generator().manual_seed(17)
    weights = torch.rand(b, 2, 32, 32, generator=g) * 0.5                   # per variant, 2 classes
    classes = torch.tensor([[259, 1], [2, 3], [259, 4]])
    stages = [range(0, 2), None, [1, 3]]
    mask = (torch.rand(b, 32, 32, generator=g) > 0.5).float()
    strength = torch.rand(b, gen.n_blend_points, generator=g)
    batched = render(gen, z, y, swap=LabelSwap(classes, weights, stages),
                     blends=[Blend(zr, mask, strength, y=torch.tensor([3, 3, 3]))], truncation=t)
    for i in range(b):
        one = render(gen, z[i:i + 1], y[i:i + 1],
                     swap=LabelSwap(classes[i:i + 1], weights[i:i + 1], [stages[i]]),
                     blends=[Blend(zr[i:i + 1], mask[i:i + 1], strength[i:i + 1], y=torch.tensor([3]))],
                     truncation=t)
        assert (batched[i:i + 1] - one).abs().max() <= 1e-5


# -- sampling, truncation, classes ------------------------------------------------------------------
def test_sample_latents_is_the_reference_truncated_normal(small):
    from scipy import stats
    _, gen, _ = small
    t = 0.4
    z = torch.cat([gen.sample_latents(torch.Generator().manual_seed(s), 64, t) for s in range(8)])
    assert z.abs().max() <= 2 * t + 1e-6
    assert stats.kstest((z / t).flatten().double().numpy(), stats.truncnorm(-2, 2).cdf).pvalue > 1e-3
    ref = ppb.truncated_noise_sample(batch_size=512, dim_z=16, truncation=t, seed=0)   # scipy truncnorm × t
    assert stats.ks_2samp(z.flatten().numpy(), ref.flatten()).pvalue > 1e-3
    assert torch.equal(sample_latents(gen, [3, 4], t)[1], sample_latents(gen, [4], t)[0])


@pytest.mark.parametrize("bad", [0, -0.1, 1.01, 2])
def test_truncation_outside_range_is_refused(small, bad):
    _, gen, _ = small
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        render(gen, latents(1, 0), torch.tensor([0]), truncation=bad)
    with pytest.raises(ValueError, match=r"truncation must be in \(0, 1\]"):
        sample_latents(gen, [0], truncation=bad)


def test_imagenet_class_names(small):
    _, gen, _ = small
    assert gen.class_index("Pomeranian") == 259 and gen.class_index("siberian husky") == 250
    with pytest.raises(ValueError, match="Pomeranian") as e:
        gen.class_index("Pomeranain")
    assert "unknown class name 'Pomeranain'" in str(e.value) and "Did you mean" in str(e.value)


def test_our_safetensors_roundtrip(small, tmp_path):
    _, gen, _ = small
    save_generator(gen, tmp_path / "bg.safetensors")
    again = toolkit.load_generator(str(tmp_path / "bg.safetensors"), device="cpu")
    z, y = latents(2, 18), torch.tensor([1, 2])
    assert torch.equal(render(again, z, y, truncation=0.37), render(gen, z, y, truncation=0.37))
    assert again.stage_names == gen.stage_names and again.class_names == gen.class_names


# -- bad input -------------------------------------------------------------------------------------
def test_directory_without_config_json(small, tmp_path):
    shutil.copy(small[2] / "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"no config\.json in this directory.*pytorch-pretrained-biggan"):
        load_file(tmp_path)


def test_directory_without_weights(small, tmp_path):
    shutil.copy(small[2] / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match=r"no pytorch_model\.bin"):
        load_file(tmp_path)


def test_config_weights_mismatch(small, tmp_path):
    shutil.copy(small[2] / "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(dict(SMALL, channel_width=8)))
    with pytest.raises(CheckpointError) as e:
        load_file(tmp_path)
    msg = str(e.value)
    assert "pytorch_model.bin (with config.json): the weights do not match" in msg
    assert "misshaped" in msg and "generator.gen_z.weight_orig has (1024, 32), expected (2048, 32)" in msg


def test_config_with_missing_field_or_bad_json(small, tmp_path):
    shutil.copy(small[2] / "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in SMALL.items() if k != "layers"}))
    with pytest.raises(CheckpointError, match=r"config\.json: missing field\(s\) layers"):
        load_file(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not readable JSON"):
        load_file(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(SMALL, output_dim=64)))
    with pytest.raises(CheckpointError, match=r"resolution is 64 but layers upsample 4×4 to 32×32"):
        load_file(tmp_path)


def test_zoo_entry_without_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NCT_BIGGAN_DIR", str(tmp_path))
    with pytest.raises(CheckpointError) as e:
        toolkit.load_generator("biggan-deep-256", device="cpu")
    msg = str(e.value)
    assert str(tmp_path / "biggan-deep-256") in msg and "python -m toolkit fetch biggan-deep-256" in msg
    assert "NCT_BIGGAN_DIR" in msg and "Loading never downloads" in msg


def test_zoo_entry_loads_the_configured_directory(small, tmp_path, monkeypatch):
    monkeypatch.setenv("NCT_BIGGAN_DIR", str(tmp_path))
    shutil.copytree(small[2], tmp_path / "biggan-deep-256")       # no sha256 is pinned for 256
    with pytest.raises(CheckpointError, match=r"describes a 32×32 model, not 256×256"):
        toolkit.load_generator("biggan-deep-256", device="cpu")
    from toolkit import zoo
    assert zoo.get("biggan-deep-256").is_cached(zoo.get("biggan-deep-256"))
    assert not zoo.get("biggan-deep-512").is_cached(zoo.get("biggan-deep-512"))
    # 128 pins the published file's sha256: other weights under that name are refused.
    shutil.copytree(small[2], tmp_path / "biggan-deep-128")
    with pytest.raises(CheckpointError, match=r"not the published file.*load_generator\("):
        toolkit.load_generator("biggan-deep-128", device="cpu")


# -- the released configurations (random weights of the real shapes) -------------------------------
def real_reference(resolution: int):
    from pytorch_pretrained_biggan.convert_tf_to_pytorch import BigGAN128, BigGAN256, BigGAN512
    cfg = {128: BigGAN128, 256: BigGAN256, 512: BigGAN512}[resolution]
    torch.manual_seed(resolution)
    return randomize_reference(ppb.BigGAN(cfg), resolution)


@pytest.mark.slow
def test_real_128_parity_through_the_directory(tmp_path):
    """biggan-deep-128 shapes end to end: directory → our loader → one image at batch 1."""
    ref = real_reference(128)
    write_dir(tmp_path / "biggan-deep-128", ref)
    gen = toolkit.load_generator(str(tmp_path / "biggan-deep-128"), device="cpu")
    assert [gen.resolution, gen.n_stages, gen.stage_resolutions[7]] == [128, 10, 64]
    z, y = latents(1, 19, 128) * 0.37, one_hot([250])
    with torch.no_grad():
        want = ref(z, y, 0.37)
    assert (render(gen, z, y, truncation=0.37) - want).abs().max() <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("resolution", [256, 512])
def test_real_256_512_load_and_first_stages_match(resolution):
    """biggan-deep-256/512 shapes: the strict conversion, and the stem + stages up to the
    self-attention (64×64) and one block past it against the reference's layers (the full
    image costs too much CPU time for the suite; docs/BIGGAN.md lists full-image figures)."""
    from toolkit.checkpoints import biggan_reference_to_ours, load_state_strict
    from toolkit.generators.biggan import BigGANGenerator, biggan_deep_config
    ref = real_reference(resolution)
    gen = BigGANGenerator(biggan_deep_config(resolution))
    load_state_strict(gen, biggan_reference_to_ours(ref.state_dict(), gen, "memory"), "memory")
    gen.eval()
    z, y, t = latents(1, 20, 128) * 0.7, one_hot([259]), 0.7
    with torch.no_grad():
        cv = torch.cat([z, ref.embeddings(y)], 1)
        h = ref.generator.gen_z(cv).view(1, 4, 4, -1).permute(0, 3, 1, 2)
        cond = Condition.per_sample(gen.embed(z, y[:, None])[:, 0], truncation=t)
        ours = gen.stem(z, cond)
        pos = ref.config.attention_layer_position
        for i, layer in enumerate(ref.generator.layers[:pos + 2]):
            h = layer(h) if i == pos else layer(h, cv, t)
            if i != pos - 1:        # our stage pos-1 ends with the attention layer (reference index pos)
                ours = gen.stage(i if i < pos else i - 1, ours, cond)
                assert (ours - h).abs().max() <= TOL * max(1.0, h.abs().max().item()), f"reference layer {i}"


def test_shipped_recipe_names_real_classes_and_stages():
    """recipes/biggan-deep-256-husky-eyes.yaml against the real 256 layout (built on the meta
    device: shapes and names only). Full validation and rendering need the recipes module and
    the weights."""
    import yaml
    from pathlib import Path
    from toolkit.generators.biggan import BigGANGenerator, biggan_deep_config
    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "biggan-deep-256-husky-eyes.yaml").read_text())
    with torch.device("meta"):
        gen = BigGANGenerator(biggan_deep_config(256))
    assert recipe["model"] == "biggan-deep-256"
    assert [gen.class_index(c) for c in recipe["source"]["classes"]] == [250]
    swap = recipe["edits"][0]["label_swap"]
    assert gen.class_index(swap["to"]) == 259
    lo, hi = swap["stages"]
    assert 0 <= lo <= hi < gen.n_stages
    assert gen.stage_names == ["b4_0", "b8_0", "b8_1", "b16_0", "b16_1", "b32_0", "b32_1", "b64_0+attn",
                               "b64_1", "b128_0", "b128_1", "b256_0"]
