"""The engine's fast paths equal the plain definitions they replace.

- Label swap in delta form (`Condition.modulate`): base-class affine everywhere plus the swap's
  correction inside the swapped box, against the full per-pixel mixture of per-class parameters.
- Fixed blend references (same latent and class in every variant) run as one stream row.
"""
from __future__ import annotations

import pytest
import torch

import toolkit.engine as engine
from toolkit import Blend, LabelSwap, render, sample_classes, sample_latents
from toolkit.generators.biggan import TruncatedBatchNorm
from toolkit.layers import Condition, ConditionalBatchNorm2d

N_CLASSES = 6


def _full_form(cbn: ConditionalBatchNorm2d, x: torch.Tensor, cond: Condition) -> torch.Tensor:
    """The per-pixel definition: gain/bias maps mixed from all components, then x̂·γ(p) + β(p)."""
    x_hat = torch.nn.functional.batch_norm(x, cbn.running_mean, cbn.running_var, None, None, False, 0.0, cbn.eps)
    p = cond.project(lambda v: v @ torch.cat([cbn.gammas, cbn.betas], 1), x.shape[-2:])
    c = cbn.num_features
    return x_hat * p[:, :c] + p[:, c:]


def _cbn(c: int = 8) -> ConditionalBatchNorm2d:
    g = torch.Generator().manual_seed(0)
    cbn = ConditionalBatchNorm2d(c, N_CLASSES).eval()
    with torch.no_grad():
        cbn.gammas.copy_(1 + 0.5 * torch.randn(N_CLASSES, c, generator=g))
        cbn.betas.copy_(torch.randn(N_CLASSES, c, generator=g))
        cbn.running_mean.copy_(torch.randn(c, generator=g))
        cbn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return cbn


def _condition(base: list[int], swap_classes: list[list[int]], w: torch.Tensor) -> Condition:
    """Swap weights `[B, K, H, W]` → the engine's mixture condition (component 0 = base class)."""
    cls = torch.cat([torch.tensor(base)[:, None], torch.tensor(swap_classes)], 1)        # [B, 1+K]
    vectors = torch.nn.functional.one_hot(cls, N_CLASSES).float()
    return Condition(vectors, torch.cat([1 - w.sum(1, keepdim=True), w], 1))


def _maps(kind: str, b: int, k: int, size: int, g: torch.Generator) -> torch.Tensor:
    w = torch.zeros(b, k, size, size)
    if kind == "shared box":           # one central box for the whole batch, soft inside
        w[:, :, 4:11, 3:9] = torch.rand(1, k, 7, 6, generator=g) / k
    elif kind == "per-variant boxes":  # each variant its own box, one at the image border, one empty
        w[0, :, 0:5, 10:16] = 1 / k                                     # top-right corner: touches the border
        w[1, :, 7:9, 2:13] = torch.rand(k, 2, 11, generator=g) / k
        w[3, :, 12:16, 0:16] = 0.5 / k                                  # whole bottom band
    elif kind == "full image soft":
        w = torch.softmax(3 * torch.randn(b, k + 1, size, size, generator=g), 1)[:, 1:]
    return w


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("kind", ["shared box", "per-variant boxes", "full image soft"])
@pytest.mark.parametrize("map_size", [16, 64, 4])
def test_delta_form_equals_per_pixel_form(kind, k, map_size):
    g = torch.Generator().manual_seed(k * 7 + map_size)
    cbn, b = _cbn(), 4
    w = _maps(kind, b, k, 16, g)
    w = torch.nn.functional.interpolate(w, size=(map_size, map_size), mode="nearest") if map_size != 16 else w
    cond = _condition([0, 1, 2, 3], [[(i + j + 1) % N_CLASSES for j in range(k)] for i in range(b)], w)
    x = torch.randn(b, 8, 16, 16, generator=g)
    fast, full = cbn(x, cond), _full_form(cbn, x, cond)
    assert torch.allclose(fast, full, atol=1e-5, rtol=1e-5), (fast - full).abs().max()
    # Outside the swapped pixels the delta form is the plain per-sample code path, bit for bit.
    plain = cbn(x, Condition(cond.vectors[:, :1]))
    untouched = (cond.weights_at((16, 16))[:, 1:].sum(1, keepdim=True) == 0).expand_as(x)
    assert torch.equal(fast[untouched], plain[untouched])
    assert (fast - plain).abs().max() > 0.01


def test_delta_form_on_biggan_norm_and_under_autograd():
    """BigGAN's gain `1 + c @ S` (the +1 cancels in the delta); gradients flow through both terms."""
    g = torch.Generator().manual_seed(3)
    bn = TruncatedBatchNorm(8, 10, n_stats=51, eps=1e-4)
    with torch.no_grad():
        bn.gain_bias.weight.copy_(0.3 * torch.randn(16, 10, generator=g))
    vectors = torch.randn(3, 3, 10, generator=g)
    w = torch.zeros(3, 2, 8, 8)
    w[0, 0, :3, :3], w[1, 1, 5:, 2:7], w[2, :, :, :] = 1.0, 0.7, 0.25
    cond = Condition(vectors, torch.cat([1 - w.sum(1, keepdim=True), w], 1))
    x = torch.randn(3, 8, 8, 8, generator=g, requires_grad=True)
    fast = bn(x, cond)
    x_hat = (x - bn.running_means[50][:, None, None]) / torch.sqrt(bn.running_vars[50] + bn.eps)[:, None, None]
    p = cond.project(bn.gain_bias, (8, 8))
    assert torch.allclose(fast, x_hat * (p[:, :8] + 1) + p[:, 8:], atol=1e-5)
    fast.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("per_variant", [False, True])
def test_label_swap_render_equals_the_per_pixel_form(tiny, per_variant, monkeypatch):
    """The whole model: the delta form against the previous per-pixel implementation."""
    z, y = sample_latents(tiny, [1, 2, 3]), sample_classes(tiny, [1, 2, 3])
    w = torch.zeros(3, 2, 32, 32)
    w[:, 0, 20:32, 0:9] = 0.6
    w[:, 1, 0:6, 0:32] = 1.0
    if per_variant:
        w[1] = torch.roll(w[1], 5, dims=-1)
        w[2, :, 10:14, 10:14] = 0.3
    swap = LabelSwap(torch.tensor([[4, 1]] * 3), w, stages=[range(0, 3), range(1, 3), None])
    fast = render(tiny, z, y, swap=swap)

    def full_modulate(self, x_hat, fn, apply):
        p = self.project(fn, x_hat.shape[-2:])
        return apply(x_hat, p)
    monkeypatch.setattr(Condition, "modulate", full_modulate)
    assert torch.allclose(fast, render(tiny, z, y, swap=swap), atol=1e-5)


def _fixed_blends(gen, b: int) -> list[Blend]:
    r, p = gen.resolution, gen.n_blend_points
    mask = torch.zeros(b, r, r)
    mask[:, : r // 2] = 1
    mask[1, :, : r // 3] = 0.5
    fixed = Blend(sample_latents(gen, [99]).expand(b, -1).clone(), mask, [0.8] * (p - 1) + [0.0],
                  y=torch.tensor([3] * b))
    varying = Blend(sample_latents(gen, range(50, 50 + b)), torch.flip(mask, [1]) * 0.2, [0.0, 1.0] + [0.0] * (p - 2))
    return [fixed, varying]


def test_fixed_reference_runs_once_and_equals_the_unshared_path(tiny, monkeypatch):
    z, y = sample_latents(tiny, [1, 2, 3]), sample_classes(tiny, [1, 2, 3])
    blends = _fixed_blends(tiny, 3)
    rows = []
    stem = tiny.stem
    monkeypatch.setattr(tiny, "stem", lambda zz, cond: (rows.append(zz.shape[0]), stem(zz, cond))[1])
    shared = render(tiny, z, y, blends=blends)
    assert rows == [3 + 1 + 3]              # sources, the fixed reference once, the varying one per variant
    monkeypatch.setattr(engine, "_shared", lambda z, cv: False)
    unshared = render(tiny, z, y, blends=blends)
    assert rows[-1] == 9
    assert torch.allclose(shared, unshared, atol=1e-6), (shared - unshared).abs().max()
    # With a swap too, and differentiable (projection's path)
    sw = LabelSwap([2], torch.ones(1, 32, 32) * 0.5, stages=[2])
    monkeypatch.undo()
    with torch.enable_grad():
        a = engine.run_stages(tiny, z, y, swap=sw, blends=blends)[0]
    assert torch.allclose(a, render(tiny, z, y, swap=sw, blends=blends), atol=1e-6)


def test_a_reference_with_different_classes_is_not_shared(tiny, monkeypatch):
    z, y = sample_latents(tiny, [1, 2]), sample_classes(tiny, [1, 2])
    ref_z = sample_latents(tiny, [7]).expand(2, -1)
    rows = []
    stem = tiny.stem
    monkeypatch.setattr(tiny, "stem", lambda zz, cond: (rows.append(zz.shape[0]), stem(zz, cond))[1])
    out = render(tiny, z, y, blends=[Blend(ref_z, torch.ones(32, 32), [1.0] + [0.0] * 3, y=torch.tensor([0, 1]))])
    assert rows == [4]
    want = render(tiny, z[:1], y[:1], blends=[Blend(ref_z[:1], torch.ones(32, 32), [1.0] + [0.0] * 3,
                                                    y=torch.tensor([0]))])
    assert torch.allclose(out[:1], want, atol=1e-6)
