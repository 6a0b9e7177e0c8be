"""Hostile and careless input to recipes, counts and the render pipeline (issue 13: items 3, 6, 8).

Each test asserts the clear error and that nothing else changed: no file outside the target was
touched, nothing half-written was left behind.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from recipe_cases import BASE, error_of, with_, write  # noqa: F401
from toolkit.batch import run_batch
from toolkit.cli import main
from toolkit.dataset import DatasetError
from toolkit.masks import MaskFileError
from toolkit.pipeline import edit_masks
from toolkit.recipes import MAX_COUNT, MAX_NAME_LENGTH, RecipeError, load_recipe, save_recipe
from toolkit.recipes.files import MAX_MASK_BYTES, load_mask_file
from toolkit.recipes.raster_cache import RasterCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _snapshot(folder) -> dict:
    """Every file under `folder`: (inode, mode, bytes)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p)] = (st.st_ino, st.st_mode, p.read_bytes() if p.is_file() else None)
    return out


# -- YAML ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000, "- " * 5000 + "x", "{a: " * 3000 + "1" + "}" * 3000])
def test_deeply_nested_yaml_is_a_clear_error(tmp_path, text):
    msg = error_of(tmp_path, text)
    assert "nested more than" in msg and "line 1" in msg


def test_yaml_aliases_are_refused(tmp_path):
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    t = time.perf_counter()
    msg = error_of(tmp_path, "model: tiny\n" + laughs)
    assert "aliases" in msg and "line 3" in msg and time.perf_counter() - t < 5


def test_huge_mask_file_is_refused_without_reading_it_whole(tmp_path):
    big = tmp_path / "mask.png"
    with open(big, "wb") as f:         # sparse: costs no disk, but reading it whole would cost 33 MB
        f.truncate(MAX_MASK_BYTES + 1)
    with pytest.raises(MaskFileError, match="larger than 32 MB"):
        load_mask_file(big)


def test_huge_and_binary_recipe_files(tmp_path):
    assert "larger than 1024 KiB" in error_of(tmp_path, "model: tiny\n# " + "x" * (1 << 20))
    (tmp_path / "bin.yaml").write_bytes(b"model: \xff\xfe\n")
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(tmp_path / "bin.yaml")


# -- counts ------------------------------------------------------------------------------------------------
def test_huge_counts_are_capped_in_recipe_cli_and_library(tmp_path, capsys):
    msg = error_of(tmp_path, with_(("count",), 10 ** 23))
    assert f"cap of {MAX_COUNT:,} variants" in msg and "--shard K/N" in msg and "torchrun" in msg
    good = write(tmp_path, BASE, "ok.yaml")
    assert main(["batch", str(good), "--out", str(tmp_path / "out"), "--count", "99999999999999", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cap of 10,000,000 variants" in err and "--shard K/N" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DatasetError, match="cap of 10,000,000"):
        run_batch(good, tmp_path / "out2", count=MAX_COUNT + 1, device="cpu")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_a_huge_count_is_never_enumerated(tmp_path, monkeypatch):
    """The runner walks indices as a range: a run at the cap starts at once, and a stop after the
    first batch leaves a resumable dataset (no list of ten million indices was built)."""
    import threading

    import toolkit.pipeline as pipeline
    stop = threading.Event()
    real = pipeline.render_variants

    def render_then_stop(*a, **k):
        stop.set()
        return real(*a, **k)
    monkeypatch.setattr(pipeline, "render_variants", render_then_stop)
    t = time.perf_counter()
    s = run_batch(write(tmp_path, BASE), tmp_path / "big", count=MAX_COUNT, device="cpu", batch_size=2, stop=stop)
    assert s.stopped and s.written == 2 and s.total == MAX_COUNT and time.perf_counter() - t < 60


# -- save_recipe: overwrite, names, all or nothing -------------------------------------------------------------
def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    first = save_recipe(BASE, "mine", tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(RecipeError, match="already exists; choose another name"):
        save_recipe(with_(("seed",), 9), "mine", tmp_path)
    assert _snapshot(tmp_path) == before
    save_recipe(with_(("seed",), 9), "mine", tmp_path, overwrite=True)
    assert load_recipe(first).seed == 9


def test_save_caps_the_name_length(tmp_path):
    with pytest.raises(RecipeError, match=f"at most {MAX_NAME_LENGTH}"):
        save_recipe(BASE, "a" * 300, tmp_path, masks={})
    assert list(tmp_path.iterdir()) == []


def test_save_is_all_or_nothing(tmp_path, monkeypatch):
    """The YAML write fails after the masks were written: the masks are removed again (and a
    replaced mask gets its old bytes back), so nothing half-written stays."""
    import toolkit.recipes.save as save_mod
    m = np.zeros((32, 32), np.float32)
    m[:8] = 1
    data = with_(("edits", 0, "label_swap", "region"), {"mask": "k"})
    real = save_mod.atomic_write_bytes

    def failing(path, payload, **kw):
        if str(path).endswith(".yaml"):
            raise OSError(28, "No space left on device", str(path))
        return real(path, payload, **kw)
    monkeypatch.setattr(save_mod, "atomic_write_bytes", failing)
    with pytest.raises(OSError):
        save_recipe(data, "half", tmp_path, masks={"k": m})
    assert list(tmp_path.rglob("*")) == []
    # with overwrite=True, a mask that existed before is restored
    monkeypatch.setattr(save_mod, "atomic_write_bytes", real)
    save_recipe(data, "half", tmp_path, masks={"k": m})
    before = _snapshot(tmp_path)
    monkeypatch.setattr(save_mod, "atomic_write_bytes", failing)
    with pytest.raises(OSError):
        save_recipe(data, "half", tmp_path, masks={"k": 1 - m}, overwrite=True)
    after = _snapshot(tmp_path)
    assert {k: v[1:] for k, v in after.items()} == {k: v[1:] for k, v in before.items()}


# -- NaN weights, raster cache -----------------------------------------------------------------------------------
def test_nan_weights_fail_the_variants_and_the_run_is_not_complete(tmp_path, monkeypatch, tiny):
    from toolkit.generators.sngan import SNGANGenerator, tiny_config
    import toolkit.batch as batch_mod
    bad = SNGANGenerator(tiny_config())
    bad.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        next(bad.parameters()).fill_(float("nan"))
    bad.eval()
    bad.provenance = tiny.provenance
    monkeypatch.setattr(batch_mod, "load_generator", lambda *a, **k: bad)
    s = run_batch(write(tmp_path, BASE), tmp_path / "out", count=3, device="cpu", batch_size=2)
    assert s.written == 0 and s.failed == 3 and not s.complete
    assert all("weights contain non-finite values" in msg for _, msg in s.failures)
    assert not list((tmp_path / "out").rglob("*.png"))


def test_raster_cache_is_bounded_by_bytes():
    c = RasterCache(max_bytes=10_000)
    for i in range(50):
        c.put(("k", i), np.zeros((32, 32), np.float32))      # 4096 bytes each
    assert c.nbytes <= 10_000 and len(c) == 2 and c.get(("k", 49)) is not None and c.get(("k", 0)) is None
    assert c.put("huge", np.zeros((100, 100), np.float32)) is not None and c.get("huge") is None


def test_fixed_mask_regions_stay_cached_random_ones_do_not(tmp_path):
    Image.new("L", (32, 32), 255).save(tmp_path / "m.png")
    d = with_(("edits", 0, "label_swap", "region"), {"mask": "m.png"})
    r = load_recipe(write(tmp_path, d))
    for i in range(10):
        edit_masks(r, r.variant(i), 32)
    assert len(r.rasters) == 1           # the fixed mask; the blob of edit 1 changes every variant


def test_app_asks_before_replacing_a_recipe(app_dirs):
    """"Save as recipe" under an existing name: refused with a message (the file stays as it
    was) until the user ticks "Replace"."""
    from streamlit.testing.v1 import AppTest
    from test_app import APP, PALETTE, TIMEOUT, strokes
    ws, rd = app_dirs
    user = ws / "recipes"                     # where the app saves (never the shipped folder)
    user.mkdir()
    (user / "mine.yaml").write_text("# a user's recipe\n")
    before, shipped = _snapshot(user), _snapshot(rd)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "tiny"
    at.session_state["_model_picked"] = True
    at.run()
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 0, 64, 64))])
    at.run()
    at.text_input(key="blend_recipe_name").input("mine")
    at.button(key="FormSubmitter:blend_save-Save recipe").click().run()
    assert not at.exception and at.error and "already exists" in at.error[0].value
    assert _snapshot(user) == before
    at.checkbox(key="blend_replace").check()
    at.button(key="FormSubmitter:blend_save-Save recipe").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert load_recipe(user / "mine.yaml").name == "mine" and _snapshot(rd) == shipped
