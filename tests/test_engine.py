"""Edit semantics of the collage engine (DESIGN.md, "Edit semantics") on the tiny SNGAN and faces64."""
from __future__ import annotations

import pytest
import torch

from toolkit import Blend, LabelSwap, render, sample_classes, sample_latents
from toolkit.generators.sngan import SNGANConfig, SNGANGenerator, randomize

ATOL = 1e-5


def test_forward_is_the_plain_render(tiny):
    z, y = sample_latents(tiny, [1, 2, 3]), sample_classes(tiny, [1, 2, 3])
    assert torch.equal(tiny(z, y), render(tiny, z, y))


def test_uniform_label_swap_equals_plain_generation_of_target(tiny):
    z = sample_latents(tiny, [4, 5])
    y = torch.tensor([0, 3])
    w = torch.ones(1, 32, 32)
    swapped = render(tiny, z, y, swap=LabelSwap(["blue"], w))
    plain_blue = render(tiny, z, torch.tensor([2, 2]))
    assert torch.allclose(swapped, plain_blue, atol=ATOL)
    assert (swapped - render(tiny, z, y)).abs().max() > 0.1  # the swap did something


def test_uniform_half_swap_equals_averaged_class_parameters(tiny):
    z = sample_latents(tiny, [6])
    half = render(tiny, z, torch.tensor([1]), swap=LabelSwap([4], torch.full((1, 8, 8), 0.5)))
    soft = torch.zeros(1, tiny.n_classes)
    soft[0, 1] = soft[0, 4] = 0.5
    assert torch.allclose(half, render(tiny, z, soft), atol=ATOL)


def test_zero_swap_weights_change_nothing(tiny):
    z, y = sample_latents(tiny, [7, 8]), sample_classes(tiny, [7, 8])
    out = render(tiny, z, y, swap=LabelSwap([0, 2], torch.zeros(2, 32, 32)))
    assert torch.allclose(out, render(tiny, z, y), atol=1e-6)


def test_swap_outside_its_stage_range_changes_nothing(tiny):
    z, y = sample_latents(tiny, [9]), sample_classes(tiny, [9])
    out = render(tiny, z, y, swap=LabelSwap([1], torch.ones(1, 32, 32), stages=[]))
    assert torch.equal(out, render(tiny, z, y))


def test_late_swap_is_local(tiny):
    """A swap at the last stage only can reach at most its receptive field beyond the mask.

    Bound: the last tiny stage sees the map at 16×16 (b1: area resizing dilates a 32-px mask by
    at most one 16-px cell = 2 px) and at 32×32 (b2); after b1 come the ×2 upsample + 3×3 c1
    (1 px), c2 (1 px) and the head's 3×3 conv (1 px): 2 + 3 = 5 px. Farther pixels are computed
    from identical inputs, so they may differ only by float rounding (≤ 1e-5).
    """
    z, y = sample_latents(tiny, [10, 11]), torch.tensor([0, 1])
    w = torch.zeros(1, 32, 32)
    w[:, 12:20, 12:20] = 1
    base = render(tiny, z, y)
    late = render(tiny, z, y, swap=LabelSwap([2], w, stages=[tiny.n_stages - 1]))
    early = render(tiny, z, y, swap=LabelSwap([2], w, stages=None))
    diff = (late - base).abs().amax(dim=(0, 1))
    far = torch.ones(32, 32, dtype=torch.bool)
    far[12 - 5:20 + 5, 12 - 5:20 + 5] = False
    assert diff[far].max() <= 1e-5, diff[far].max()
    assert diff[12:20, 12:20].mean() > 0.05            # inside, the class really changed
    # Swapping from the first stage on spreads further (the contrast that makes the bound meaningful).
    assert (early - base).abs().amax(dim=(0, 1))[far].max() > 1e-3


def test_blend_strength_zero_is_the_source(tiny):
    z, y = sample_latents(tiny, [12, 13]), sample_classes(tiny, [12, 13])
    ref = sample_latents(tiny, [99, 98])
    out = render(tiny, z, y, blends=[Blend(ref, torch.ones(32, 32), [0.0] * tiny.n_blend_points)])
    assert torch.equal(out, render(tiny, z, y))


def test_full_mask_strength_one_from_point_zero_is_the_reference(tiny):
    z, y = sample_latents(tiny, [14]), torch.tensor([0])
    ref_z, ref_y = sample_latents(tiny, [15]), torch.tensor([3])
    out = render(tiny, z, y, blends=[Blend(ref_z, torch.ones(32, 32), [1.0] * tiny.n_blend_points, y=ref_y)])
    assert torch.allclose(out, render(tiny, ref_z, ref_y), atol=ATOL)


def test_blend_formula_at_one_point_matches_manual_computation(faces64):
    """Point 2 (after stage 1) only, half strength, a box mask: compare with a hand-run loop."""
    g = faces64
    z, ref = sample_latents(g, [1]), sample_latents(g, [2])
    mask = torch.zeros(64, 64)
    mask[16:48, 8:40] = 1
    strength = [0.0, 0.0, 0.5, 0.0]
    out = render(g, z, blends=[Blend(ref, mask, strength)])
    with torch.no_grad():
        from toolkit.layers import Condition
        from toolkit.masks import resize_weights
        cond = Condition.per_sample(torch.zeros(1, 0))
        hs, hr = g.stem(z, cond), g.stem(ref, cond)
        for i in range(2):
            hs, hr = g.stage(i, hs, cond), g.stage(i, hr, cond)
        m = 0.5 * resize_weights(mask, hs.shape[-2:])
        hs = (1 - m) * hs + m * hr
        hs = g.stage(2, hs, cond)
        expected = g.head(hs)
    assert torch.allclose(out, expected, atol=ATOL)


def test_blend_sums_over_one_are_refused(tiny):
    z, y = sample_latents(tiny, [1]), torch.tensor([0])
    b = Blend(sample_latents(tiny, [2]), torch.ones(32, 32), [0.7] * tiny.n_blend_points)
    with pytest.raises(ValueError, match="sum to"):
        render(tiny, z, y, blends=[b, b])


def test_batched_mixed_edits_equal_one_by_one(tiny):
    """Different maps, classes, stage ranges, references (one stopping early) per variant."""
    seeds = [20, 21, 22]
    z, y = sample_latents(tiny, seeds), torch.tensor([0, 1, 4])
    w = torch.zeros(3, 2, 32, 32)
    w[0, 0, :16] = 1
    w[1, 1, :, 16:] = 0.7
    w[2, 0, 8:24, 8:24] = 0.5
    w[2, 1, 8:24, 8:24] = 0.5
    classes = torch.tensor([[2, 3], [3, 0], [1, 2]])
    stages = [range(0, 3), range(1, 3), [2]]
    masks = torch.zeros(3, 32, 32)
    masks[0, 4:12] = 1
    masks[1, :, :10] = 0.8
    masks[2, 20:] = 1
    ref1 = Blend(sample_latents(tiny, [30, 31, 32]), masks,
                 torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]]),
                 y=torch.tensor([3, 3, 0]))
    ref2 = Blend(sample_latents(tiny, [40, 41, 42]), 1 - masks, [1.0, 0.0, 0.0, 0.0])  # stops after the stem
    batched = render(tiny, z, y, swap=LabelSwap(classes, w, stages), blends=[ref1, ref2])
    for i in range(3):
        one = render(tiny, z[i:i + 1], y[i:i + 1],
                     swap=LabelSwap(classes[i:i + 1], w[i:i + 1], [stages[i]]),
                     blends=[Blend(ref1.z[i:i + 1], masks[i], ref1.strength[i], y=ref1.y[i:i + 1]),
                             Blend(ref2.z[i:i + 1], 1 - masks[i], ref2.strength)])
        assert torch.allclose(batched[i:i + 1], one, atol=ATOL), i


def test_label_swap_on_unconditional_model_is_refused(faces64):
    z = sample_latents(faces64, [1])
    with pytest.raises(ValueError, match="unconditional.*blending"):
        render(faces64, z, swap=LabelSwap([0], torch.ones(1, 64, 64)))


@pytest.mark.parametrize("bad, match", [
    (dict(classes=["blue"], weights=torch.full((1, 32, 32), 1.5)), r"\[0, 1\]"),
    (dict(classes=["blue", "red"], weights=torch.full((2, 32, 32), 0.6)), "sum to"),
    (dict(classes=["blu"], weights=torch.ones(1, 32, 32)), "Did you mean.*blue"),
    (dict(classes=[7], weights=torch.ones(1, 32, 32)), "out of range"),
    (dict(classes=["blue"], weights=torch.ones(1, 32, 32), stages=[5]), "stage 5 is out of range"),
])
def test_bad_label_swaps_say_what_is_wrong(tiny, bad, match):
    z, y = sample_latents(tiny, [1]), torch.tensor([0])
    with pytest.raises(ValueError, match=match):
        render(tiny, z, y, swap=LabelSwap(**bad))


def test_wrong_number_of_strengths_is_explained(tiny):
    z, y = sample_latents(tiny, [1]), torch.tensor([0])
    with pytest.raises(ValueError, match="4 blend points"):
        render(tiny, z, y, blends=[Blend(sample_latents(tiny, [2]), torch.ones(32, 32), [1.0, 1.0])])


def test_render_refuses_training_mode():
    g = randomize(SNGANGenerator(SNGANConfig(z_dim=8, n_classes=2, channels=[8, 8])), 0).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        render(g, torch.zeros(1, 8), torch.tensor([0]))


def test_latents_depend_only_on_their_seed(tiny):
    both = sample_latents(tiny, [5, 6])
    assert torch.equal(both[1], sample_latents(tiny, 6)[0])
    assert torch.equal(sample_classes(tiny, [5, 6])[1:], sample_classes(tiny, [6]))


def test_per_class_stage_ranges(tiny):
    """`stages` as a [B, K, S] tensor: each swapped class has its own stage range."""
    z, y = sample_latents(tiny, [21, 22]), torch.tensor([0, 1])
    w = torch.zeros(2, 32, 32)
    w[0, :, :16] = 1
    w[1, :, 16:] = 0.7
    s = tiny.n_stages
    all_on = torch.ones(2, 2, s, dtype=torch.bool)
    ref = render(tiny, z, y, swap=LabelSwap([2, 3], w))
    assert torch.equal(render(tiny, z, y, swap=LabelSwap([2, 3], w, stages=all_on)), ref)
    assert torch.equal(render(tiny, z, y, swap=LabelSwap([2, 3], w, stages=all_on[0])), ref)   # [K, S]
    # A class active at no stage is the same as not swapping it at all.
    only_first = all_on.clone()
    only_first[:, 1] = False
    assert torch.equal(render(tiny, z, y, swap=LabelSwap([2, 3], w, stages=only_first)),
                       render(tiny, z, y, swap=LabelSwap([2], w[:1])))
    # Class 0 at stages 1.. and class 1 at the last stage only: per class what a swap of that
    # class alone with that range gives, where the other class has no weight.
    mixed = torch.zeros(2, 2, s, dtype=torch.bool)
    mixed[:, 0, 1:] = True
    mixed[:, 1, s - 1] = True
    out = render(tiny, z, y, swap=LabelSwap([2, 3], w, stages=mixed))
    w_first = w.clone()
    w_first[1] = 0
    alone = render(tiny, z, y, swap=LabelSwap([2, 3], w_first, stages=mixed))
    assert torch.equal(alone, render(tiny, z, y, swap=LabelSwap([2], w[:1], stages=range(1, s))))
    assert not torch.equal(out, alone)          # the second class's late swap did something
    with pytest.raises(ValueError, match=r"classes × stages"):
        render(tiny, z, y, swap=LabelSwap([2, 3], w, stages=torch.ones(3, s, dtype=torch.bool)))
