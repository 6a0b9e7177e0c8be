"""Projection of photos into a generator (toolkit.projection) and edits that start from it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import toolkit
from toolkit import Blend, LabelSwap, render, sample_classes, sample_latents
from toolkit.images import to_uint8
from toolkit.projection import Crop, default_point, edit_region, prepare_images, project, psnr, render_projection

STEPS = (60, 60)


@pytest.fixture(scope="module")
def generated(tiny):
    z, y = sample_latents(tiny, [1, 2]), sample_classes(tiny, [1, 2])
    return render(tiny, z, y), y


@pytest.fixture(scope="module")
def proj(tiny, generated):
    return project(tiny, generated[0], steps=STEPS, seed=3)


def test_a_generated_image_is_recovered_with_its_class(tiny, generated, proj):
    img, y = generated
    # Real 64-px texture photos reach ~30 dB (bench/projection.py); a generated image is reachable exactly.
    assert proj.psnr.min() > 40, proj.psnr
    assert proj.classes == y.tolist()
    assert proj.point == default_point(tiny) == 1          # 8×8 of a 32-px model: resolution / 4
    assert torch.allclose(proj.reconstruction, render_projection(tiny, proj))
    assert torch.allclose(psnr(proj.reconstruction, img), proj.psnr.to(img))
    assert torch.allclose(proj.class_vector.sum(1), torch.ones(2))
    # The latent phase alone is far worse: the feature phase is what reaches the photo.
    latent_only = project(tiny, img, steps=(STEPS[0], 0), seed=3)
    assert (latent_only.psnr < proj.psnr - 5).all()


def test_projection_is_seeded_and_rows_are_independent(tiny, generated, proj):
    few = (10, 10)
    both = project(tiny, generated[0], steps=few, seed=3)
    again = project(tiny, generated[0], steps=few, seed=3)
    assert torch.equal(again.z, both.z) and torch.equal(again.features, both.features)
    alone = project(tiny, generated[0][:1], steps=few, seed=3)      # row 0 starts from the same z
    assert torch.allclose(alone.z, both.z[:1], atol=1e-5)
    assert torch.allclose(alone.reconstruction, both.reconstruction[:1], atol=1e-4)
    other = project(tiny, generated[0][:1], steps=few, seed=4)
    assert not torch.allclose(other.z, alone.z)


def test_the_generator_is_not_touched(tiny, generated):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    project(tiny, generated[0][:1], steps=(3, 3))
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in tiny.parameters())
    assert not tiny.training


def test_photo_edit_is_the_reconstruction_outside_and_the_edited_generation_inside(tiny, proj):
    w = torch.zeros(1, 32, 32)
    w[:, :20, :20] = 1                     # the top-left 5×5 cells of the 8×8 projection point
    edited = render_projection(tiny, proj, swap=LabelSwap(["blue"], w))
    generation = render(tiny, proj.z, proj.class_vector, swap=LabelSwap(["blue"], w))   # no photo features
    # Beyond the reach of the two stages after the point (≈ 7 px here): the reconstruction.
    far = torch.zeros(32, 32, dtype=torch.bool)
    far[28:, :] = far[:, 28:] = True
    assert torch.allclose(edited[..., far], proj.reconstruction[..., far], atol=1e-6)
    # Well inside: the swap generated at every stage from the projected latent and class (up to the
    # inward soft edge of the paste, which still reaches the 8×8 cells here a little).
    assert torch.allclose(edited[..., :8, :8], generation[..., :8, :8], atol=5e-3)
    assert (edited - proj.reconstruction).abs()[..., :20, :20].mean() > 0.05
    # The old "resume from the inverted point" edit (the swap after the point only) is another image.
    resumed = render(tiny, proj.z, proj.class_vector, swap=LabelSwap(["blue"], w), start=proj.start())
    assert not torch.allclose(resumed[..., :8, :8], edited[..., :8, :8], atol=5e-2)


def test_a_uniform_full_swap_is_a_generation_of_the_target_class(tiny, proj):
    full = torch.ones(1, 32, 32)
    edited = render_projection(tiny, proj, swap=LabelSwap(["blue"], full))
    assert torch.allclose(edited, render(tiny, proj.z, ["blue", "blue"]), atol=1e-5)
    # Early stages only (0..1: stage 0 lies before the 8×8 point, which a resume could not reach).
    early = render_projection(tiny, proj, swap=LabelSwap(["blue"], full, stages=range(0, 2)))
    want = render(tiny, proj.z, proj.class_vector, swap=LabelSwap(["blue"], full, stages=range(0, 2)))
    assert torch.allclose(early, want, atol=1e-5)
    assert (early - render(tiny, proj.z, ["blue", "blue"])).abs().max() > 1e-2   # stage 2 kept the photo's class


def test_an_empty_region_leaves_the_reconstruction(tiny, proj):
    nothing = torch.zeros(1, 32, 32)
    assert torch.equal(render_projection(tiny, proj, swap=LabelSwap(["blue"], nothing)), proj.reconstruction)
    blend = Blend(sample_latents(tiny, [7, 8]), nothing, [1, 1, 1, 1])
    assert torch.equal(render_projection(tiny, proj, blends=[blend]), proj.reconstruction)
    assert torch.equal(edit_region(None, [blend], 2, 32), torch.zeros(2, 32, 32))


def test_any_size_photo_is_cropped_and_the_crop_recorded(tiny, generated):
    # A generated image upsampled ×2 and placed in the middle of a wider, noisy photo.
    img = F.interpolate(generated[0][:1], scale_factor=2, mode="nearest")
    photo = np.random.default_rng(0).integers(0, 256, (64, 100, 3), dtype=np.uint8)
    photo[:, 18:82] = to_uint8(img)[0]
    x, crops = prepare_images([photo], 32)
    assert crops == [Crop(18, 0, 64, 100, 64)]
    assert x.shape == (1, 3, 32, 32)
    p = project(tiny, photo, steps=STEPS, seed=3)
    assert p.crops == crops and p.psnr[0] > 35          # the crop holds exactly the generated image


def test_inputs_are_checked(tiny):
    with pytest.raises(ValueError, match="uint8"):
        project(tiny, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        project(tiny, np.zeros((32, 32, 3), np.uint8), point=9)
    with pytest.raises(ValueError, match="unknown projection preset"):
        project(tiny, np.zeros((32, 32, 3), np.uint8), steps="slowest")
    faces_like = toolkit.load_generator("tiny", device="cpu")
    with pytest.raises(ValueError, match="got 2 classes for 1 images"):
        project(faces_like, np.zeros((32, 32, 3), np.uint8), y=[0, 1], steps=(1, 1))
