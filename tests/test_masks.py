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


# -- regions: rasterising, jitter, feathering (toolkit.masks second half) ------------------------------
import io  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from toolkit import masks as M  # noqa: E402
from toolkit.masks import Ellipse, Polygon  # noqa: E402
from toolkit.recipes.files import load_mask_file  # noqa: E402


def test_region_rasterisation_and_jitter():
    rect = M.rasterize_region(Polygon(((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))), 32)
    assert rect.sum() == 256 and rect[8:24, 8:24].min() == 1
    ell = M.rasterize_region(Ellipse((0.5, 0.5), (0.5, 0.25), 30), 64)
    assert ell.sum() == pytest.approx(np.pi * 16 * 8, rel=0.01)
    feathered = M.gaussian_feather(rect, 2.0)
    assert feathered.sum() == pytest.approx(256, rel=0.01) and 0 < feathered[8, 8] < 1
    square = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
    assert np.array_equal(M.rasterize_region(Polygon(square, feather=2 / 32), 32),
                          M.gaussian_feather(M.rasterize_polygon(square, 32), 2.0))
    mask = np.zeros((64, 64), np.float32)
    mask[16:32, 16:32] = 1
    moved = M.transform_mask(mask, 32, translate=(0.25, 0.0))
    assert moved[8:16, 16:24].min() > 0.99 and moved.sum() == pytest.approx(64, rel=0.02)
    spun = M.transform_mask(mask, 32, rotate=45, scale=1.0)
    assert spun.sum() == pytest.approx(64, rel=0.05)
    assert M.mask_centroid(spun) == pytest.approx(M.mask_centroid(M.transform_mask(mask, 32)), abs=0.02)


def test_mask_images_need_a_loader():
    with pytest.raises(ValueError, match="no mask loader"):
        M.rasterize_region(M.MaskImage("masks/a.png"), 32)
    with pytest.raises(TypeError, match="not a concrete region"):
        M.rasterize_region({"shape": "polygon", "points": [[0, 0], [1, 0], [1, 1]]}, 32)


def test_decompression_bomb_is_refused(tmp_path):
    """An image whose header claims more pixels than PIL's own bomb limit: refused without decoding."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    w = h = 20000     # 400 M pixels: above 2 × PIL's default limit (PIL raises DecompressionBombError)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(M.MaskFileError, match="bomb.png"):
        load_mask_file(tmp_path / "bomb.png")
    with pytest.raises(M.MaskFileError, match="too large|more than the limit"):
        load_mask_file(tmp_path / "bomb.png", max_pixels=10 ** 12)
    with pytest.raises(M.MaskFileError, match="upload.png"):
        M.decode_mask(png, "upload.png")


def test_mask_images_decode_alpha_or_grey():
    buf = io.BytesIO()
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 4, 8))
    im.save(buf, format="PNG")
    m = M.decode_mask(buf.getvalue())
    assert m.dtype == np.float32 and m[:, :4].min() == 1 and m[:, 4:].max() == 0


def test_numpy_resize_matches_resize_weights_and_feather_matches_convolution():
    rng = np.random.default_rng(0)
    for shape, size in [((64, 64), (32, 32)), ((50, 70), (32, 32)), ((16, 24), (64, 64)), ((100, 30), (64, 12))]:
        x = rng.random(shape).astype(np.float32)
        ref = M.resize_weights(torch.from_numpy(x), size).numpy()
        assert np.allclose(M.resize_mask(x, size), ref, atol=1e-5), (shape, size)
    x = (rng.random((20, 20)) > 0.5).astype(np.float32)
    sigma = 1.5
    radius = int(np.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x.astype(np.float64), radius, mode="edge")
    direct = np.array([[(padded[i:i + 2 * radius + 1, j:j + 2 * radius + 1] * np.outer(k, k)).sum()
                        for j in range(20)] for i in range(20)])
    assert np.allclose(M.gaussian_feather(x, sigma), direct, atol=1e-6)


def test_mask_file_jitter_matches_shape_jitter():
    """The same jitter moves a mask file exactly as it moves the equivalent polygon."""
    pts = [[0.2, 0.3], [0.6, 0.3], [0.6, 0.5], [0.2, 0.5]]
    img = M.rasterize_polygon(pts, 256)                     # a high-resolution "mask file"
    center = [0.4, 0.4]                                     # = its centroid and the polygon's centre
    for t, s, rot in [((0.1, -0.05), 1.0, 0.0), ((0.0, 0.0), 1.2, 0.0), ((0.0, 0.0), 1.0, 30.0), ((0.05, 0.1), 0.8, -50.0)]:
        shape = M.rasterize_polygon(M.transform_points(pts, center, t, s, rot), 64)
        mask = M.transform_mask(img, 64, t, s, rot)
        iou = np.minimum(shape, mask).sum() / np.maximum(shape, mask).sum()
        assert iou > 0.95, (t, s, rot, iou)
        assert shape.sum() == pytest.approx(mask.sum(), rel=0.02)
        assert M.mask_centroid(shape) == pytest.approx(M.mask_centroid(mask), abs=0.002)
        assert M.mask_centroid(shape) == pytest.approx([center[0] + t[0], center[1] + t[1]], abs=0.002)


def test_high_resolution_rasterisation_is_capped_and_accurate():
    assert M._supersample(64, None, 4) == 4 and M._supersample(256, None, 4) == 2 and M._supersample(1024, None, 4) == 1
    for res in (64, 256, 1024):
        ell = M.rasterize_region(Ellipse((0.5, 0.5), (0.4, 0.3)), res)
        assert ell.shape == (res, res) and ell.sum() == pytest.approx(np.pi * 0.2 * 0.15 * res * res, rel=0.006)


def test_wide_feather_matches_the_exact_blur():
    from toolkit.masks import _gaussian_exact
    for res, sigma, region in [(256, 16, Polygon(((-0.1, -0.1), (0.5, -0.1), (0.5, 0.4), (-0.1, 0.4)))),
                               (200, 9.5, Ellipse((0.4, 0.6), (0.5, 0.3), 20))]:
        m = M.rasterize_region(region, res)
        fast, exact = M.gaussian_feather(m, sigma), _gaussian_exact(m, sigma)
        assert fast.shape == exact.shape and np.abs(fast - exact).max() < 0.003
