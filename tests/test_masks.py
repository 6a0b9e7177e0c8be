"""Per-layer resizing of swap weights and masks: area fractions when shrinking, nearest when growing."""
import torch

from toolkit.masks import resize_weights


def test_area_resize_uses_covered_fractions_for_non_integer_ratios():
    w = torch.zeros(3, 3)
    w[:, 0] = 1                          # the left third is covered
    out = resize_weights(w, (2, 2))      # each output cell covers 1.5 input cells per axis
    # Left output column: 1 full input column of 1.5 → 2/3; right column: none.
    assert torch.allclose(out, torch.tensor([[2 / 3, 0.0], [2 / 3, 0.0]]))


def test_area_resize_preserves_totals_and_partition_of_unity():
    w = torch.rand(2, 3, 37, 29)
    w = w / w.sum(1, keepdim=True)       # weights summing to one per pixel
    out = resize_weights(w, (8, 5))
    assert torch.allclose(out.sum(1), torch.ones(2, 8, 5), atol=1e-5)
    assert torch.allclose(out.mean((-2, -1)), w.mean((-2, -1)), atol=1e-5)


def test_growing_repeats_cells():
    w = torch.tensor([[0.0, 1.0], [0.25, 0.5]])
    out = resize_weights(w, (4, 4))
    assert torch.equal(out[:2, 2:], torch.ones(2, 2))
    assert torch.equal(out[2:, :2], torch.full((2, 2), 0.25))


def test_broadcast_maps_resize_like_materialised_ones():
    w = torch.rand(1, 2, 40, 40)
    view = w.expand(5, 2, 40, 40)
    assert torch.equal(resize_weights(view, (16, 16)), resize_weights(view.contiguous(), (16, 16)))
    assert torch.equal(resize_weights(view, (80, 80)), resize_weights(view.contiguous(), (80, 80)))
