"""Hostile and unusual photo files: each is converted in one documented way or refused clearly."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from toolkit.photos import PhotoError, decode_photo, find_photos, load_photo


def png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A valid PNG header claiming side×side RGB pixels with a tiny body: a few hundred bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(PhotoError, match=r"bomb\.png: .*(pixel limit|decompression bomb)"):
        decode_photo(bomb_png(), "bomb.png")


@pytest.mark.parametrize("data, match", [
    (b"this is not an image", "not an image Pillow can read"),
    (png_bytes(Image.new("RGB", (1, 1))), r"1×1 pixels is too small"),
    (png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))[:6000],
     "damaged or truncated"),
    (png_bytes(Image.new("RGBA", (32, 32), (10, 20, 30, 128))), "transparent pixels"),
    (b"", "not an image"),
])
def test_bad_files_say_what_is_wrong(data, match):
    with pytest.raises(PhotoError, match=match):
        decode_photo(data, "x.png")


def test_float_images_are_refused():
    buf = io.BytesIO()
    Image.new("F", (32, 32), 0.5).save(buf, format="TIFF")
    with pytest.raises(PhotoError, match="floating-point"):
        decode_photo(buf.getvalue(), "f.tif")


def test_modes_are_converted_to_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    # Opaque alpha is dropped, palette and grey expanded, CMYK converted (Pillow's naive formula).
    p = decode_photo(png_bytes(im.convert("RGBA")), "a.png")
    assert p.converted_from == "RGBA" and np.array_equal(p.pixels, rgb)
    pal = im.convert("P")
    assert np.array_equal(decode_photo(png_bytes(pal), "p.png").pixels, np.asarray(pal.convert("RGB")))
    grey = decode_photo(png_bytes(im.convert("L")), "l.png")
    assert grey.pixels.shape == (20, 30, 3) and (grey.pixels[..., 0] == grey.pixels[..., 2]).all()
    buf = io.BytesIO()
    im.convert("CMYK").save(buf, format="JPEG", quality=95)
    c = decode_photo(buf.getvalue(), "c.jpg")
    assert c.converted_from == "CMYK" and c.pixels.shape == (20, 30, 3)
    # 16-bit grey keeps the top 8 bits (Pillow's own convert would clip everything above 255).
    deep = Image.fromarray(np.full((20, 30), 40000, np.uint16))
    d = decode_photo(png_bytes(deep), "d.png")
    assert d.converted_from.startswith("I") and (d.pixels == 40000 >> 8).all()
    # EXIF orientation is applied: a photo stored sideways comes out as viewers show it.
    exif = Image.Exif()
    exif[0x0112] = 6        # rotate 90° clockwise to display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    assert decode_photo(buf.getvalue(), "r.jpg").pixels.shape == (30, 20, 3)


def test_paths_are_confined(tmp_path, monkeypatch):
    inside = tmp_path / "work"
    (inside / "photos").mkdir(parents=True)
    Image.new("RGB", (40, 30), (1, 2, 3)).save(inside / "photos" / "a.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "secret.png")
    (inside / "photos" / "link.png").symlink_to(tmp_path / "secret.png")
    monkeypatch.chdir(inside)
    p = load_photo("photos/a.png")
    assert p.name == "photos/a.png" and p.size == (40, 30) and len(p.sha256) == 64
    for bad in ("../secret.png", str(tmp_path / "secret.png"), "photos/link.png"):
        with pytest.raises(PhotoError, match="outside"):
            load_photo(bad)
    with pytest.raises(PhotoError, match="no such file"):
        load_photo("photos/missing.png")
    with pytest.raises(PhotoError, match="outside"):
        find_photos("../", inside)
    with pytest.raises(PhotoError, match="link.png.*outside"):
        find_photos("photos", inside)                  # a folder's escaping symlink is an error, not skipped
    (inside / "photos" / "link.png").unlink()
    (inside / "photos" / "notes.txt").write_text("not a photo")
    assert [q.name for q in find_photos("photos", inside)] == ["a.png"]
    assert [q.name for q in find_photos("photos/*.png", inside)] == ["a.png"]
