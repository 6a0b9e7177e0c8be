"""Weight loading: the paper's Chainer layout, our safetensors format, DCGAN faces64, error reports."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import toolkit
from toolkit import Blend, render, sample_classes, sample_latents
from toolkit.checkpoints import CheckpointError, save_generator
from toolkit.generators.sngan import SNGANConfig, SNGANGenerator, randomize

_TO_CHAINER = {"weight": "W", "bias": "b", "running_mean": "avg_mean", "running_var": "avg_var"}


def to_chainer_arrays(gen: SNGANGenerator) -> dict[str, np.ndarray]:
    """Write a state in the key layout of Chainer's serializers.save_npz for ResNetGenerator
    (an independent mapping from the loader's, including the BN counters it must ignore)."""
    out = {}
    for name, t in gen.state_dict().items():
        parts = name.split(".")
        leaf = parts[-1]
        if leaf == "num_batches_tracked":       # PyTorch-only counter; Chainer stores N instead
            continue
        is_plain_bn = parts[0].startswith("b") and not parts[0].startswith("block")
        if leaf in ("gammas", "betas"):
            key = "/".join(parts) + "/W"
        elif is_plain_bn and leaf in ("weight", "bias"):
            key = "/".join(parts[:-1] + [{"weight": "gamma", "bias": "beta"}[leaf]])
        else:
            key = "/".join(parts[:-1] + [_TO_CHAINER[leaf]])
        out[key] = t.numpy().copy()
    for bn in [k[: -len("/avg_mean")] for k in list(out) if k.endswith("/avg_mean")]:
        out[bn + "/N"] = np.array(1234)
    return out


@pytest.mark.parametrize("channels, last", [([16, 16, 8, 8, 4, 2], "7"), ([8, 8, 8, 4, 4, 4, 2], "8")])
def test_chainer_npz_round_trip_reproduces_the_model_exactly(tmp_path, channels, last):
    """128-px layout (block2–6, b7/l7) and 256-px layout (block2–7, b8/l8), small channels."""
    cfg = SNGANConfig(z_dim=12, n_classes=6, channels=channels)
    gen = randomize(SNGANGenerator(cfg), seed=3).eval()
    arrays = to_chainer_arrays(gen)
    assert f"l{last}/W" in arrays and f"b{last}/gamma" in arrays and "block2/b1/gammas/W" in arrays
    path = tmp_path / "ResNetGenerator_test.npz"
    np.savez(path, **arrays)
    loaded = toolkit.load_generator(str(path), device="cpu")
    assert loaded.config.channels == channels and loaded.n_classes == 6 and loaded.z_dim == 12
    assert loaded.resolution == 4 * 2 ** (len(channels) - 1)
    z, y = sample_latents(loaded, [1, 2]), torch.tensor([0, 5])
    assert torch.equal(render(loaded, z, y), render(gen, z, y))


def test_chainer_file_with_trainer_prefix_loads(tmp_path):
    gen = randomize(SNGANGenerator(SNGANConfig(z_dim=8, n_classes=3, channels=[8, 4])), seed=1).eval()
    path = tmp_path / "snapshot.npz"
    np.savez(path, **{f"updater/model:gen/{k}": v for k, v in to_chainer_arrays(gen).items()})
    loaded = toolkit.load_generator(str(path), device="cpu")
    z = sample_latents(loaded, [3])
    assert torch.equal(render(loaded, z, [1]), render(gen, z, [1]))


def test_missing_and_misshaped_chainer_arrays_are_named(tmp_path):
    gen = randomize(SNGANGenerator(SNGANConfig(z_dim=8, n_classes=3, channels=[8, 8, 4])), seed=1)
    arrays = to_chainer_arrays(gen)
    del arrays["block3/c2/b"]
    arrays["block2/b2/betas/W"] = np.zeros((3, 5), np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError) as e:
        toolkit.load_generator(str(path), device="cpu")
    msg = str(e.value)
    assert "missing keys (1): block3.c2.bias" in msg
    assert "block2.b2.betas has (3, 5), expected (3, 8)" in msg
    assert str(path) in msg


def test_truncated_npz_gives_a_clear_error(tmp_path):
    gen = randomize(SNGANGenerator(SNGANConfig(z_dim=8, n_classes=3, channels=[8, 4])), seed=1)
    path = tmp_path / "cut.npz"
    np.savez(path, **to_chainer_arrays(gen))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.npz.*(cannot read|truncated)"):
        toolkit.load_generator(str(path), device="cpu")


def test_npz_that_is_not_a_generator_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, foo=np.zeros(3))
    with pytest.raises(CheckpointError, match="no 'l1/W'"):
        toolkit.load_generator(str(path), device="cpu")


def test_own_format_round_trip_float32_and_float16(tmp_path, tiny):
    z, y = sample_latents(tiny, [1, 2]), sample_classes(tiny, [1, 2])
    save_generator(tiny, tmp_path / "t.safetensors")
    again = toolkit.load_generator(str(tmp_path / "t.safetensors"), device="cpu")
    assert again.class_names == tiny.class_names
    assert torch.equal(render(again, z, y), render(tiny, z, y))
    save_generator(tiny, tmp_path / "h.safetensors", dtype=torch.float16)
    half = toolkit.load_generator(str(tmp_path / "h.safetensors"), device="cpu")
    assert (render(half, z, y) - render(tiny, z, y)).abs().max() < 0.05


def test_unknown_model_name_lists_the_zoo():
    with pytest.raises(CheckpointError, match="unknown model 'nope'.*faces64"):
        toolkit.load_generator("nope")


def test_pickles_with_code_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))
    path = tmp_path / "evil.pt"
    torch.save({"main.0.weight": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        toolkit.load_generator(str(path), device="cpu")


def test_faces64_produces_distinct_plausible_faces(faces64):
    assert faces64.n_classes == 0 and faces64.resolution == 64 and faces64.z_dim == 100
    imgs = render(faces64, sample_latents(faces64, range(8)))
    assert imgs.shape == (8, 3, 64, 64) and torch.isfinite(imgs).all()
    # Photos, not saturated noise or a constant: moderate brightness and contrast per image.
    assert imgs.mean().abs() < 0.6
    assert (imgs.std(dim=(1, 2, 3)) > 0.15).all() and (imgs.std(dim=(1, 2, 3)) < 0.8).all()
    # Distinct seeds give distinct faces.
    pair_diff = (imgs[:, None] - imgs[None]).abs().mean(dim=(2, 3, 4))
    assert pair_diff[~torch.eye(8, dtype=torch.bool)].min() > 0.05
    # Spatial structure: neighbouring pixels correlate strongly (noise would not).
    dx = (imgs[..., 1:] - imgs[..., :-1]).abs().mean()
    assert dx < 0.5 * (imgs - imgs.mean(dim=(2, 3), keepdim=True)).abs().mean()


def test_faces64_blend_moves_the_masked_region_toward_the_reference(faces64):
    src, ref = sample_latents(faces64, [11]), sample_latents(faces64, [21])
    mask = torch.zeros(64, 64)
    mask[20:34, 10:54] = 1
    a, b = render(faces64, src), render(faces64, ref)
    out = render(faces64, src, blends=[Blend(ref, mask, [0.0, 1.0, 1.0, 0.0])])
    inside = mask.bool()
    assert (out - b).abs()[..., inside].mean() < (a - b).abs()[..., inside].mean() * 0.7
    far = torch.zeros(64, 64, dtype=torch.bool)
    far[50:, :] = True
    assert (out - a).abs()[..., far].mean() < (out - a).abs()[..., inside].mean()



