"""Compositing edits of projected photos back into the photo (toolkit.composite)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit import Blend, LabelSwap, render, sample_classes, sample_latents
from toolkit.composite import composite, edit_photo, poisson_blend, to_model_frame, to_photo_frame
from toolkit.images import to_uint8
from toolkit.projection import Crop, project

STEPS = (30, 30)


def test_poisson_keeps_the_source_in_place():
    """Source = photo + a constant offset: the Poisson solution is the photo itself (same gradients,
    photo on the border), which also proves the clone is not shifted by OpenCV's centre rule."""
    rng = np.random.default_rng(0)
    photo = rng.integers(40, 200, (50, 70, 3), dtype=np.uint8)
    region = np.zeros((50, 70), bool)
    region[10:31, 5:44] = True
    out = poisson_blend(photo, (photo.astype(int) + 30).astype(np.uint8), region)
    assert np.abs(out.astype(int) - photo).max() <= 2
    # A region touching the border works too (the images are padded before cloning).
    region[:, :3] = True
    out = poisson_blend(photo, (photo.astype(int) + 30).astype(np.uint8), region)
    assert np.abs(out.astype(int) - photo).max() <= 2


@pytest.mark.parametrize("blend", ["poisson", "feather"])
def test_composite_changes_only_the_dilated_region(blend):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    crop = Crop(16, 0, 48, 80, 48)
    edited = np.full((16, 16, 3), 255, np.uint8)
    mask = np.zeros((48, 80), np.float32)
    mask[10:20, 30:40] = 1
    mask[:, :10] = 1                     # outside the crop: never edited
    out, region = composite(photo, edited, crop, mask, blend=blend, dilate=2)
    assert np.array_equal(out[~region], photo[~region])
    assert not region[:, :16].any() and region[10:20, 30:40].all()
    assert not region[25:, :].any()      # dilation by 2 px only
    if blend == "feather":
        assert out[12:18, 32:38].mean() > photo[12:18, 32:38].mean() + 40
    else:   # Poisson: the flat source's (zero) gradients inside, the photo's values on the border
        assert out[12:18, 32:38].std() < photo[12:18, 32:38].std() / 2


def test_frames_round_trip():
    crop = Crop(10, 0, 40, 60, 40)
    m = np.zeros((40, 60), np.float32)
    m[8:24, 18:34] = 1
    small = to_model_frame(m, crop, 20)
    assert small.shape == (20, 20) and float(small.sum()) == pytest.approx(16 * 16 / 4)
    back = to_photo_frame(small, crop)
    assert np.array_equal(back, m)
    with pytest.raises(ValueError, match="photo-sized"):
        to_model_frame(np.zeros((20, 20)), crop, 20)


@pytest.fixture(scope="module")
def wide_photo(tiny):
    """A generated image upsampled ×2 in a wider photo with noise either side."""
    img = render(tiny, sample_latents(tiny, [5]), sample_classes(tiny, [5]))
    big = torch.nn.functional.interpolate(img, scale_factor=2, mode="nearest")
    photo = np.random.default_rng(2).integers(0, 256, (64, 90, 3), dtype=np.uint8)
    photo[:, 13:77] = to_uint8(big)[0]
    return photo


@pytest.fixture(scope="module")
def wide_projection(tiny, wide_photo):
    return project(tiny, wide_photo, steps=STEPS, seed=1)


@pytest.mark.parametrize("blend", ["poisson", "feather"])
def test_edit_photo_is_bit_identical_outside_the_dilated_region(tiny, wide_photo, wide_projection, blend):
    w = np.zeros((64, 90), np.float32)
    w[16:48, 30:60] = 1
    e = edit_photo(tiny, wide_photo, swap=LabelSwap(["purple"], w), projection=wide_projection, blend=blend)
    assert e.image.shape == wide_photo.shape and e.mask.shape == w.shape
    assert np.array_equal(e.image[~e.mask], wide_photo[~e.mask])
    assert e.mask[16:48, 30:60].all() and not e.mask[:, :13].any() and not e.mask[:, 77:].any()
    assert e.mask.sum() < 2 * w.sum()
    diff = np.abs(e.image.astype(int) - wide_photo)[16:48, 30:60].mean()
    assert diff > 5, diff
    assert e.crop == Crop(13, 0, 64, 90, 64) and e.psnr == pytest.approx(float(wide_projection.psnr[0]))
    assert e.reconstruction.shape == (32, 32, 3)
    # The label map: the photo's class outside the edit, the swapped class inside.
    assert e.label_map.shape == w.shape
    assert (e.label_map[20:40, 35:55] == 4).all()
    assert (e.label_map[:, :13] == wide_projection.classes[0]).all()


def test_edit_photo_with_a_blend_and_clear_errors(tiny, wide_photo, wide_projection):
    m = np.zeros((64, 90), np.float32)
    m[8:40, 20:50] = 1
    e = edit_photo(tiny, wide_photo, blends=[Blend(sample_latents(tiny, [9]), m, [0, 1, 1, 0])],
                   projection=wide_projection)
    assert np.array_equal(e.image[~e.mask], wide_photo[~e.mask]) and e.label_map is None
    # Blending before the projection point (point 0) acts too: the edit is generated at every point.
    early = edit_photo(tiny, wide_photo, blends=[Blend(sample_latents(tiny, [9]), m, [1, 0, 0, 0])],
                       projection=wide_projection)
    assert np.array_equal(early.image[~early.mask], wide_photo[~early.mask])
    assert np.abs(early.edited.astype(int) - early.reconstruction)[6:18, 5:17].mean() > 5
    outside = np.zeros((64, 90), np.float32)
    outside[:, :10] = 1
    with pytest.raises(ValueError, match="outside the part of the photo the model sees"):
        edit_photo(tiny, wide_photo, swap=LabelSwap([1], outside), projection=wide_projection)
    with pytest.raises(ValueError, match="nothing to edit"):
        edit_photo(tiny, wide_photo, projection=wide_projection)
    with pytest.raises(ValueError, match="not this"):
        edit_photo(tiny, wide_photo[:, :80], swap=LabelSwap([1], outside[:, :80]), projection=wide_projection)
