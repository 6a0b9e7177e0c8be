"""The editor pages' "upload a photo" source, driven headlessly with AppTest (no browser)."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolkit import projection
from toolkit.projection import ProjectionSettings

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def quick(tmp_path, monkeypatch):
    monkeypatch.setenv("NCT_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(ROOT)
    # AppTest runs the pages in this process: a short preset keeps the test fast.
    monkeypatch.setitem(projection.PRESETS, "fast", ProjectionSettings(latent_steps=4, feature_steps=4))


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def canvas_value(w: int, h: int, box) -> dict:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    im.paste((230, 25, 75, 255), box)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return {"drawing": {"raw": {"objects": [{"type": "rect"}]}, "data": "data:image/png;base64,"
                        + base64.b64encode(buf.getvalue()).decode()}}


def open_page(page: str, source_key: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model_choice"] = "tiny"
    at.session_state["_model_picked"] = True
    at.run()
    at.switch_page(page).run()
    at.radio(key=source_key).set_value("upload a photo").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page, prefix", [("pages/label_swap.py", "swap"), ("pages/feature_blend.py", "blend")])
def test_upload_project_paint_and_download(page, prefix):
    at = open_page(page, f"{prefix}_source")
    assert any("Upload a photo" in i.value for i in at.info)
    photo = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    at.session_state[f"{prefix}_preset"] = "fast"
    at.file_uploader(key=f"{prefix}_photo").upload("wide.png", png(photo), "image/png").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert any("PSNR" in c.value and "60×40" in c.value for c in at.caption)
    # The canvas shows the photo at its own size (60×40): paint a box in its middle.
    at.session_state[f"{prefix}_photo_canvas"] = canvas_value(60, 40, (20, 10, 40, 30))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert any(c.startswith("Result at the photo's size (60×40)") for c in captions), captions
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download result (PNG)", "Download mask (PNG)"]


def test_a_bad_upload_is_a_message():
    at = open_page("pages/label_swap.py", "swap_source")
    at.file_uploader(key="swap_photo").upload("notes.png", b"not an image at all", "image/png").run()
    assert not at.exception
    assert any("not an image" in e.value for e in at.error)
