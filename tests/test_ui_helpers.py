"""The app's plain-Python helpers (no Streamlit runtime): canvas strokes → weight maps, uploaded
masks, and the workspace path check. The page tests (AppTest) are in tests/test_app.py."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from toolkit.ui.strokes import PALETTE, MaskError, hex_to_rgb, mask_from_upload, strokes_to_weights
from toolkit.ui.workspace import WorkspaceError, inside_workspace


def test_strokes_map_to_one_target_per_pixel_and_resize():
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[0:128, 0:128] = (*hex_to_rgb(PALETTE[0]), 255)
    rgba[128:, 128:] = (*hex_to_rgb(PALETTE[1]), 128)           # half-transparent stroke
    w = strokes_to_weights(rgba, PALETTE[:2], 32)
    assert w.shape == (2, 32, 32)
    assert np.allclose(w[0, :16, :16], 1) and np.allclose(w[0, 16:, 16:], 0)
    assert np.allclose(w[1, 16:, 16:], 128 / 255, atol=1e-6) and np.allclose(w[1, :16, :16], 0)
    assert (w.sum(0) <= 1 + 1e-6).all()
    assert not strokes_to_weights(None, PALETTE[:2], 32).any()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"not an image", "not an image"),
    (_png(Image.new("L", (100, 50), 255)), "must be square"),
    (_png(Image.new("L", (4097, 4097))), "more than the limit"),
    (b"\x89PNG" + b"0" * (21 * 2**20), "at most 20 MB"),
])
def test_bad_uploaded_masks_are_refused_with_reasons(data, message):
    with pytest.raises(MaskError, match=message):
        mask_from_upload(data, 64, name="m.png")


def test_uploaded_masks_of_any_square_size_and_mode():
    for im in [Image.new("L", (128, 128), 255), Image.new("RGB", (64, 64), "white"),
               Image.new("P", (32, 32), 1), Image.new("1", (16, 16), 1)]:
        m = mask_from_upload(_png(im), 64)
        assert m.shape == (64, 64) and m.dtype == np.float32
    half = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    half.paste((255, 0, 0, 255), (0, 0, 32, 64))
    m = mask_from_upload(_png(half), 32)
    assert np.allclose(m[:, :16], 1) and np.allclose(m[:, 16:], 0)


def test_workspace_refuses_escaping_paths(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert inside_workspace("a/b", root) == root / "a" / "b"
    for bad in ["../x", "/etc", "a/../../x", ""]:
        with pytest.raises(WorkspaceError):
            inside_workspace(bad, root)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(WorkspaceError):
        inside_workspace("link/x", root)


