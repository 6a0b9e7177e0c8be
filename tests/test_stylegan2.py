"""StyleGAN2: layer arithmetic against independent computations, the rosinality checkpoint
layout, blending, (regional) style mixing, noise and truncation — tiny random-weight models, CPU."""
from __future__ import annotations

import argparse
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import toolkit
from toolkit import Blend, LabelSwap, StyleMix, render, sample_latents
from toolkit.checkpoints import CheckpointError, save_generator
from toolkit.generators.stylegan2 import (EqualLinear, ModulatedConv2d, StyleGAN2Config, StyleGAN2Generator,
                                          randomize, tiny_config)

ATOL = 2e-5
SQRT2 = math.sqrt(2)


@pytest.fixture(scope="module")
def gen():
    return randomize(StyleGAN2Generator(tiny_config()), seed=0).eval()


# -- an independent, reference-style computation ----------------------------------------------------
def fir_direct(x, taps, up=1, pad=(0, 0)):
    """Zero-insert by `up`, pad, then a true 2-D convolution with outer(taps)/sum·up², tap by tap."""
    k = torch.tensor(taps, dtype=torch.float64)
    k = (k[:, None] * k[None, :]) / k.sum() ** 2 * up * up
    n, c, h, w = x.shape
    u = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    u[:, :, ::up, ::up] = x
    p = F.pad(u, [pad[0], pad[1], pad[0], pad[1]])
    kh = k.shape[0]
    oh, ow = p.shape[2] - kh + 1, p.shape[3] - kh + 1
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    kf = torch.flip(k, [0, 1]).to(x.dtype)
    for i in range(kh):
        for j in range(kh):
            out += kf[i, j] * p[:, :, i:i + oh, j:j + ow]
    return out


def conv_transpose_direct(x, weight):
    """Stride-2 transposed conv (no padding) by scattering each input pixel: weight [out, in, k, k]."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    out = torch.zeros(n, weight.shape[0], 2 * h + k - 2, 2 * w + k - 2, dtype=x.dtype)
    for a in range(k):
        for b in range(k):
            out[:, :, a:a + 2 * h:2, b:b + 2 * w:2] += torch.einsum("nchw,oc->nohw", x, weight[:, :, a, b])
    return out


def modconv_reference(conv, x, w, demodulate=True, upsample=False):
    """Per-sample modulated (and demodulated) weight, one convolution per sample."""
    in_ch, k = conv.weight.shape[2], conv.weight.shape[-1]
    style_dim = conv.modulation.weight.shape[1]
    s = w @ (conv.modulation.weight / math.sqrt(style_dim)).t() + conv.modulation.bias
    outs = []
    for i in range(x.shape[0]):
        weight = conv.weight[0] / math.sqrt(in_ch * k * k) * s[i].view(1, -1, 1, 1)
        if demodulate:
            weight = weight / torch.sqrt(weight.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        if upsample:
            o = fir_direct(conv_transpose_direct(x[i:i + 1], weight), (1, 3, 3, 1), up=1, pad=(1, 1)) * 4
        else:
            o = F.conv2d(x[i:i + 1], weight, padding=k // 2)
        outs.append(o)
    return torch.cat(outs)


def mapping_reference(g, z):
    lr = g.config.lr_mlp
    x = z / torch.sqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, g.config.n_mlp + 1):
        lin = g.style[i]
        x = F.leaky_relu(x @ (lin.weight * lr / math.sqrt(x.shape[1])).t() + lin.bias * lr, 0.2) * SQRT2
    return x


def forward_reference(g, latents, noises):
    """The reference generator's loop: latents `[B, n_latent, D]` (one w per style layer),
    `noises` one tensor per noise layer; style index i shared by a ToRGB and the next up conv."""
    def styled(block, x, w, noise, up=False):
        out = modconv_reference(block.conv, x, w, upsample=up) + block.noise.weight * noise
        return F.leaky_relu(out + block.activate.bias.view(1, -1, 1, 1), 0.2) * SQRT2

    def to_rgb(m, x, w, skip):
        out = modconv_reference(m.conv, x, w, demodulate=False) + m.bias
        return out if skip is None else out + fir_direct(skip, (1, 3, 3, 1), up=2, pad=(2, 1))

    x = g.input.input.expand(latents.shape[0], -1, -1, -1)
    x = styled(g.conv1, x, latents[:, 0], noises[0])
    skip = to_rgb(g.to_rgb1, x, latents[:, 1], None)
    i = 1
    for s in range(len(g.to_rgbs)):
        x = styled(g.convs[2 * s], x, latents[:, i], noises[i], up=True)
        x = styled(g.convs[2 * s + 1], x, latents[:, i + 1], noises[i + 1])
        skip = to_rgb(g.to_rgbs[s], x, latents[:, i + 2], skip)
        i += 2
    return skip


def stored_noise(g):
    return [getattr(g.noises, f"noise_{i}") for i in range(g.num_noise)]


# -- layer arithmetic -------------------------------------------------------------------------------
def test_equalized_lr_scales():
    torch.manual_seed(0)
    lin = EqualLinear(24, 10, bias_init=0.5, lr_mul=0.01, activation=True)
    x = torch.randn(3, 24)
    expect = F.leaky_relu(x @ (lin.weight * 0.01 / math.sqrt(24)).t() + lin.bias * 0.01, 0.2) * SQRT2
    assert torch.allclose(lin(x), expect, atol=1e-6)
    assert torch.allclose(lin.bias, torch.full((10,), 0.5))
    conv = ModulatedConv2d(6, 5, 3, style_dim=12)
    assert conv.scale == pytest.approx(1 / math.sqrt(6 * 9))
    assert conv.modulation.scale == pytest.approx(1 / math.sqrt(12))
    assert torch.equal(conv.modulation.bias.data, torch.ones(6))   # styles start at 1


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_direct_conv_with_per_sample_weight(demodulate):
    torch.manual_seed(1)
    conv = ModulatedConv2d(6, 5, 3, style_dim=12, demodulate=demodulate)
    with torch.no_grad():
        conv.modulation.bias.add_(torch.randn(6))
    x, w = torch.randn(3, 6, 7, 7), torch.randn(3, 12)
    got = conv(x, conv.modulation(w))
    assert torch.allclose(got, modconv_reference(conv, x, w, demodulate=demodulate), atol=1e-5)
    if demodulate:   # demodulation: every output channel of the effective weight has unit norm
        assert got.shape == (3, 5, 7, 7)


def test_upsampling_conv_and_blur_equal_direct_computation():
    torch.manual_seed(2)
    conv = ModulatedConv2d(4, 3, 3, style_dim=8, upsample=True)
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 8)
    got = conv(x, conv.modulation(w))
    assert got.shape == (2, 3, 10, 10)
    assert torch.allclose(got, modconv_reference(conv, x, w, upsample=True), atol=1e-5)


def test_rgb_skip_upsampling_equals_direct_fir_and_keeps_constants(gen):
    torch.manual_seed(3)
    skip = torch.randn(2, 3, 6, 6)
    up = gen.to_rgbs[0].upsample_skip(skip)
    assert up.shape == (2, 3, 12, 12)
    assert torch.allclose(up, fir_direct(skip, (1, 3, 3, 1), up=2, pad=(2, 1)), atol=1e-6)
    const = gen.to_rgbs[0].upsample_skip(torch.full((1, 1, 6, 6), 2.0))
    assert torch.allclose(const[..., 2:-2, 2:-2], torch.full((8, 8), 2.0), atol=1e-6)  # DC gain 1


def test_whole_generator_equals_reference_loop(gen):
    z = sample_latents(gen, [1, 2])
    w = mapping_reference(gen, z)
    assert torch.allclose(gen.mapping(z), w, atol=1e-5)
    expect = forward_reference(gen, w[:, None].expand(-1, gen.n_latent, -1), stored_noise(gen))
    got = render(gen, z)
    assert got.shape == (2, 3, 32, 32)
    assert torch.allclose(got, expect, atol=1e-4), (got - expect).abs().max()
    assert torch.equal(gen(z), got)      # forward is the same loop


# -- options: noise, truncation, style mixing ---------------------------------------------------------
def test_stored_noise_is_deterministic_and_explicit_noise_is_honoured(gen):
    z = sample_latents(gen, [4, 5])
    a = render(gen, z)
    assert torch.equal(a, render(gen, z)) and torch.equal(a, render(gen, z, noise="stored"))
    assert torch.allclose(render(gen, z, noise=stored_noise(gen)), a, atol=1e-6)
    noise = gen.noise_from_seeds([7, 8])
    assert torch.equal(noise[3][1:], gen.noise_from_seeds([8])[3])          # per-row seeds
    b = render(gen, z, noise=noise)
    assert (b - a).abs().max() > 1e-3
    expect = forward_reference(gen, gen.mapping(z)[:, None].expand(-1, gen.n_latent, -1), noise)
    assert torch.allclose(b, expect, atol=1e-4)
    with pytest.raises(ValueError, match=r"noise\[1\] has shape \[2, 1, 4, 4\]; expected \[1 or 2, 1, 8, 8\]"):
        render(gen, z, noise=[noise[0]] * gen.num_noise)
    with pytest.raises(ValueError, match="list of 7 tensors"):
        render(gen, z, noise=noise[:3])
    with pytest.raises(TypeError, match="does not take option"):
        render(gen, z, nosie="stored")


def test_truncation_toward_latent_avg(gen):
    z = sample_latents(gen, [6])
    w = torch.lerp(gen.latent_avg, gen.mapping(z), 0.5)
    expect = forward_reference(gen, w[:, None].expand(-1, gen.n_latent, -1), stored_noise(gen))
    assert torch.allclose(render(gen, z, truncation=0.5), expect, atol=1e-4)
    assert torch.equal(render(gen, z, truncation=1.0), render(gen, z))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        render(gen, z, truncation=1.5)
    fresh = StyleGAN2Generator(tiny_config()).eval()
    with pytest.raises(ValueError, match="estimate_latent_avg"):
        render(fresh, z, truncation=0.7)


def test_style_mixing_at_a_layer_equals_reference_latent_split(gen):
    z, z2 = sample_latents(gen, [1, 2]), sample_latents(gen, [11, 12])
    w, w2 = gen.mapping(z), gen.mapping(z2)
    k = 3
    lat = torch.cat([w[:, None].expand(-1, k, -1), w2[:, None].expand(-1, gen.n_latent - k, -1)], 1)
    expect = forward_reference(gen, lat, stored_noise(gen))
    assert torch.allclose(render(gen, z, style_mix=StyleMix(z2, layers=k)), expect, atol=1e-4)


def test_regional_style_mix_full_mask_is_style_mixing_zero_mask_changes_nothing(gen):
    z, z2 = sample_latents(gen, [3, 4]), sample_latents(gen, [13, 14])
    layers = range(2, 6)
    plain = render(gen, z)
    mixed = render(gen, z, style_mix=StyleMix(z2, layers))
    assert (mixed - plain).abs().max() > 0.1
    full = render(gen, z, style_mix=StyleMix(z2, layers, mask=torch.ones(32, 32)))
    assert torch.allclose(full, mixed, atol=1e-5)
    zero = render(gen, z, style_mix=StyleMix(z2, layers, mask=torch.zeros(32, 32)))
    assert torch.allclose(zero, plain, atol=1e-6)
    # A late-layer regional mix stays near its region (3×3 convs at 32 px, the up conv's blur at 16 px).
    m = torch.zeros(32, 32)
    m[:, :12] = 1
    late = render(gen, z, style_mix=StyleMix(z2, range(5, gen.n_latent), mask=m))
    diff = (late - plain).abs().amax((0, 1))
    assert diff[:, :10].max() > 0.05 and diff[:, 20:].max() < 1e-5


def test_style_mix_errors_are_explained(gen):
    z = sample_latents(gen, [1])
    with pytest.raises(ValueError, match=r"layers \[9\] out of range.*0\.\.7"):
        render(gen, z, style_mix=StyleMix(z, [9]))
    half = torch.zeros(32, 32)
    half[:, :20] = 1
    with pytest.raises(ValueError, match="masks sum to 2.000 > 1 at style layer 2"):
        render(gen, z, style_mix=[StyleMix(z, [2], half), StyleMix(z, [2, 3], half)])


# -- blending --------------------------------------------------------------------------------------
def test_blend_strength_zero_is_source_and_full_mask_is_reference(gen):
    z, ref = sample_latents(gen, [1, 2]), sample_latents(gen, [21, 22])
    noise = gen.noise_from_seeds([5, 6])
    p = gen.n_blend_points
    src = render(gen, z, noise=noise)
    assert torch.equal(render(gen, z, noise=noise, blends=[Blend(ref, torch.ones(32, 32), [0.0] * p)]), src)
    full = render(gen, z, noise=noise, blends=[Blend(ref, torch.ones(32, 32), [1.0] * p)])
    assert torch.allclose(full, render(gen, ref, noise=noise), atol=1e-5)


def test_batched_mixed_edits_equal_one_by_one(gen):
    seeds = [31, 32, 33]
    z, ref, z2 = sample_latents(gen, seeds), sample_latents(gen, [41, 42, 43]), sample_latents(gen, [51, 52, 53])
    noise = gen.noise_from_seeds(seeds)
    masks = torch.zeros(3, 32, 32)
    masks[0, 4:20, 4:20] = 1
    masks[1, :, 16:] = 0.5
    masks[2, 10:30, :] = 1
    strength = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    mix_masks = masks.flip(-1)
    batched = render(gen, z, blends=[Blend(ref, masks, strength)], noise=noise,
                     style_mix=StyleMix(z2, range(3, 7), mix_masks), truncation=0.8)
    for i in range(3):
        one = render(gen, z[i:i + 1], blends=[Blend(ref[i:i + 1], masks[i], strength[i])],
                     noise=[t[i:i + 1] for t in noise],
                     style_mix=StyleMix(z2[i:i + 1], range(3, 7), mix_masks[i]), truncation=0.8)
        assert torch.allclose(batched[i:i + 1], one, atol=1e-5), i


# -- checkpoints ---------------------------------------------------------------------------------------
def rosinality_keys(n_mlp: int, n_res: int) -> set[str]:
    """The g_ema key layout of rosinality/stylegan2-pytorch, written out by hand."""
    keys = {f"style.{i}.{p}" for i in range(1, n_mlp + 1) for p in ("weight", "bias")}
    keys |= {"input.input", "conv1.conv.weight", "conv1.conv.modulation.weight", "conv1.conv.modulation.bias",
             "conv1.noise.weight", "conv1.activate.bias", "to_rgb1.conv.weight", "to_rgb1.conv.modulation.weight",
             "to_rgb1.conv.modulation.bias", "to_rgb1.bias"}
    for j in range(2 * n_res):
        keys |= {f"convs.{j}.conv.weight", f"convs.{j}.conv.modulation.weight", f"convs.{j}.conv.modulation.bias",
                 f"convs.{j}.noise.weight", f"convs.{j}.activate.bias"}
        if j % 2 == 0:
            keys.add(f"convs.{j}.conv.blur.kernel")
    for r in range(n_res):
        keys |= {f"to_rgbs.{r}.conv.weight", f"to_rgbs.{r}.conv.modulation.weight",
                 f"to_rgbs.{r}.conv.modulation.bias", f"to_rgbs.{r}.bias", f"to_rgbs.{r}.upsample.kernel"}
    return keys | {f"noises.noise_{i}" for i in range(2 * n_res + 1)}


def to_rosinality(g) -> dict[str, torch.Tensor]:
    k = torch.tensor([1.0, 3, 3, 1])
    kernel = (k[:, None] * k[None]) / 64 * 4
    sd = {k: v.clone() for k, v in g.state_dict().items() if k != "latent_avg"}
    for j in range(0, len(g.convs), 2):
        sd[f"convs.{j}.conv.blur.kernel"] = kernel.clone()
    for r in range(len(g.to_rgbs)):
        sd[f"to_rgbs.{r}.upsample.kernel"] = kernel.clone()
    return sd


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_rosinality_checkpoint_round_trip(tmp_path, gen, zip_format):
    """A training checkpoint (optimiser state, argparse options) in the zip and pre-1.6 formats."""
    g_ema = to_rosinality(gen)
    assert set(g_ema) == rosinality_keys(n_mlp=2, n_res=3)
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": g_ema, "latent_avg": gen.latent_avg.clone(), "g_optim": {"state": {}},
                "args": argparse.Namespace(size=32, n_mlp=2)}, path, _use_new_zipfile_serialization=zip_format)
    loaded = toolkit.load_generator(str(path), device="cpu")
    assert isinstance(loaded, StyleGAN2Generator)
    assert loaded.config.size == 32 and loaded.config.n_mlp == 2 and loaded.config.channels == [32, 32, 16, 16]
    z = sample_latents(gen, [1, 2])
    assert torch.equal(render(loaded, z, truncation=0.7), render(gen, z, truncation=0.7))
    # our safetensors format keeps everything, latent_avg and noise buffers included
    save_generator(loaded, tmp_path / "sg2.safetensors")
    again = toolkit.load_generator(str(tmp_path / "sg2.safetensors"), device="cpu")
    assert torch.equal(render(again, z, truncation=0.7), render(gen, z, truncation=0.7))


def test_rosinality_layout_infers_standard_channel_multiplier(tmp_path):
    """A 64-px, multiplier-1 model with a 1-layer mapping (real widths, so the config is the table's)."""
    from toolkit.checkpoints import stylegan2_config_from_rosinality
    g = StyleGAN2Generator(StyleGAN2Config(size=64, style_dim=16, n_mlp=1, channel_multiplier=1))
    cfg = stylegan2_config_from_rosinality(to_rosinality(g), "x")
    assert (cfg.size, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier, cfg.channels) == (64, 16, 1, 1, None)


def test_rosinality_without_latent_avg_estimates_it(tmp_path, gen):
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": to_rosinality(gen)}, path)
    loaded = toolkit.load_generator(str(path), device="cpu")
    assert torch.isfinite(loaded.latent_avg).all()
    assert torch.allclose(loaded.latent_avg, gen.mapping(torch.randn(4096, gen.z_dim,
                          generator=torch.Generator().manual_seed(0))).mean(0), atol=1e-5)


def test_wrong_rosinality_tensors_give_a_readable_report(tmp_path, gen):
    g_ema = to_rosinality(gen)
    del g_ema["noises.noise_3"]
    g_ema["convs.1.conv.modulation.weight"] = torch.zeros(7, 32)
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": g_ema}, path)
    with pytest.raises(CheckpointError) as e:
        toolkit.load_generator(str(path), device="cpu")
    msg = str(e.value)
    assert str(path) in msg and "missing keys (1): noises.noise_3" in msg
    assert "convs.1.conv.modulation.weight has (7, 32), expected (32, 32)" in msg
    g_ema = to_rosinality(gen)
    g_ema["to_rgbs.1.upsample.kernel"] = torch.ones(4, 4) / 4
    torch.save({"g_ema": g_ema}, path)
    with pytest.raises(CheckpointError, match=r"to_rgbs\.1\.upsample\.kernel is not the \[1,3,3,1\] blur filter"):
        toolkit.load_generator(str(path), device="cpu")


def test_dcgan_pt_files_still_load_by_content(tmp_path):
    from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
    d = DCGANGenerator(DCGANConfig(z_dim=8, ngf=2)).eval()
    path = tmp_path / "netG.pt"
    torch.save({"netG_state_dict": d.state_dict()}, path)
    assert toolkit.load_generator(str(path), device="cpu").architecture == "dcgan"


# -- class-conditional StyleGAN2 (NVIDIA's c_dim) and conv_clamp, built in code ------------------------
@pytest.fixture(scope="module")
def cgen():
    cfg = StyleGAN2Config(size=16, style_dim=8, n_mlp=2, channels=[8, 8, 4], z_dim=6, c_dim=4, embed_dim=5,
                          mapping_dim=7, conv_clamp=0.5, class_names=["a", "b", "c", "d"])
    return randomize(StyleGAN2Generator(cfg), seed=3).eval()


def test_conditional_mapping_is_normalised_z_and_embedding(cgen):
    z = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    c = F.one_hot(torch.tensor([0, 3, 1]), 4).float()
    norm = lambda x: x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)   # noqa: E731
    e = cgen.class_embed
    y = c @ (e.weight / math.sqrt(4)).t() + e.bias
    x = torch.cat([norm(z), norm(y)], 1)
    for i in (1, 2):
        lin = cgen.style[i]
        lr = cgen.config.lr_mlp
        x = F.leaky_relu(x @ (lin.weight * lr / math.sqrt(x.shape[1])).t() + lin.bias * lr, 0.2) * SQRT2
    assert x.shape == (3, 8) and torch.allclose(cgen.mapping(z, c), x, atol=1e-6)
    with pytest.raises(ValueError, match="class-conditional: mapping needs class vectors"):
        cgen.mapping(z)


def test_conditional_uniform_swap_equals_target_and_classes_differ(cgen):
    z = sample_latents(cgen, [1, 2])
    plain_c = render(cgen, z, ["c", "c"])
    assert (plain_c - render(cgen, z, ["a", "a"])).abs().max() > 1e-3
    swapped = render(cgen, z, ["a", "b"], swap=LabelSwap(["c"], torch.ones(1, 16, 16)))
    assert torch.allclose(swapped, plain_c, atol=1e-5)
    half = torch.zeros(1, 16, 16)
    half[..., 8:] = 1
    part = render(cgen, z, ["a", "a"], swap=LabelSwap(["c"], half), truncation=0.8)
    assert part.shape == (2, 3, 16, 16)


def test_conv_clamp_bounds_every_layer(cgen):
    """With conv_clamp 0.5 each ToRGB output lies in ±0.5, so the image is within ±0.5 × (number of ToRGBs)."""
    img = render(cgen, sample_latents(cgen, range(6)), [0, 1, 2, 3, 0, 1])
    assert img.abs().max() <= 0.5 * 3 + 1e-6
    loose = StyleGAN2Generator(dataclasses.replace(cgen.config, conv_clamp=None))
    loose.load_state_dict(cgen.state_dict())
    assert (render(loose.eval(), sample_latents(cgen, range(6)), [0, 1, 2, 3, 0, 1]) - img).abs().max() > 1e-3


def test_conditional_round_trip_through_safetensors(tmp_path, cgen):
    save_generator(cgen, tmp_path / "c.safetensors")
    again = toolkit.load_generator(str(tmp_path / "c.safetensors"), device="cpu")
    assert again.n_classes == 4 and again.class_names == ["a", "b", "c", "d"] and again.z_dim == 6
    z = sample_latents(cgen, [5])
    assert torch.equal(render(again, z, ["d"], truncation=0.7), render(cgen, z, ["d"], truncation=0.7))
