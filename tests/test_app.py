"""The Streamlit app, driven headlessly with `streamlit.testing.v1.AppTest` (no browser).

The drawing canvas cannot be drawn on here; a drawing is injected as the component's value
under its key (`{"drawing": {"raw": ..., "data": <PNG data URL>}}`), exactly what the browser
sends. Result images are compared by their media URLs, which Streamlit derives from a hash of
the image bytes: a different URL means a different picture.
"""
from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit import dataset, recipes
from toolkit.batch import run_batch
from toolkit.ui import jobs
from toolkit.ui.recipe_builder import Randomise, blend_recipe, swap_recipe
from toolkit.ui.strokes import PALETTE, hex_to_rgb

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 90


@pytest.fixture(autouse=True)
def isolated_dirs(app_dirs):
    """Each test gets its own workspace and recipes folder (the app never writes into the repo here)."""
    yield app_dirs
    for job in jobs.all_jobs():           # the run registry is per server process: start each test clean
        job.stop.set()
        if job.thread is not None:
            job.thread.join(60)
        jobs.dismiss(job.out_dir)


def app(page: str | None = None, model: str = "tiny", **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = model
    at.session_state["_model_picked"] = True        # as if the user had chosen it in the sidebar
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def images(at) -> dict[str, str]:
    """caption → media URL of every st.image on the page."""
    return {i.caption: i.url for el in at.get("image") for i in el.proto.imgs}


def find(at, prefix: str) -> str:
    hits = [u for c, u in images(at).items() if c.startswith(prefix)]
    assert len(hits) == 1, (prefix, list(images(at)))
    return hits[0]


def strokes(boxes: list[tuple[str, tuple[int, int, int, int]]], size: int = 256) -> dict:
    """A canvas value as the browser sends it: transparent PNG with opaque coloured strokes."""
    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    for colour, box in boxes:
        im.paste((*hex_to_rgb(colour), 255), box)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "rect"}] * len(boxes)}, "data": url}}


def messages(at) -> str:
    return " | ".join(str(e.value) for kind in ("error", "warning", "info", "success") for e in getattr(at, kind))


def wait_for(job: jobs.Job, timeout: float = 120) -> None:
    job.thread.join(timeout)
    assert not job.running, "the background run did not finish in time"


# -- editor pages --------------------------------------------------------------------------------------
def test_default_launch_is_feature_blend_on_faces64(faces64):   # the fixture fetches the weights once
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error, messages(at)
    assert at.session_state["model_choice"] == "faces64"
    assert at.title[0].value == "Feature blend"
    before = find(at, "Result")
    # Moving the eyes of reference 1 into the source: one click on a quick region.
    at.multiselect(key="ref0_parts").set_value(["eyes"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert find(at, "Result") != before


def test_blend_drawing_changes_the_result():
    at = app()
    before = find(at, "Result")
    regions_before = find(at, "Regions")
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (64, 64, 192, 192))])
    at.run()
    assert not at.exception and not at.error, messages(at)
    after = find(at, "Result")
    assert after != before and find(at, "Regions") != regions_before
    # A different strength preset gives a different picture; all strengths 0 gives the source back.
    at.button(key="preset_texture").click().run()
    assert find(at, "Result") != after
    for i in range(4):
        at.slider(key=f"blend_point_{i}").set_value(0.0)
    at.run()
    assert find(at, "Result: all strengths are 0") == before


def test_blend_with_two_references_uses_both_colours():
    at = app(blend_n_refs=2)
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 0, 128, 256))])
    at.run()
    one = find(at, "Result")
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 0, 128, 256)), (PALETTE[1], (128, 0, 256, 256))])
    at.run()
    assert not at.exception and not at.error, messages(at)
    assert find(at, "Result") != one


def test_label_swap_drawing_changes_result_and_shows_morph_strip():
    at = app("pages/label_swap.py")
    assert at.title[0].value == "Label swap"
    before = find(at, "Result")
    assert not any(c.startswith("strength ") for c in images(at))
    at.session_state["swap_canvas"] = strokes([(PALETTE[0], (32, 32, 224, 224))])
    at.run()
    assert not at.exception and not at.error, messages(at)
    after = find(at, "Result")
    assert after != before
    strip = [u for c, u in images(at).items() if c.startswith("strength ")]
    assert len(strip) == 5 and len(set(strip)) >= 3
    # Other stages → another picture.
    at.select_slider(key="swap_stages").set_value((2, 2)).run()
    assert find(at, "Result") != after


def test_label_swap_class_search_filters_targets():
    at = app("pages/label_swap.py")
    at.text_input(key="swap_targets_q").input("yel").run()
    ms = at.multiselect(key="swap_targets")
    # the matches, plus what is already chosen (the default target green) so it stays selected
    assert sorted(ms.options) == ["green", "yellow"] and ms.value == ["green"]
    at.text_input(key="swap_src_class_q").input("blu").run()
    assert at.selectbox(key="swap_src_class").options == ["blue (2)"]


def _unconditional_file(tmp_path) -> Path:
    from toolkit.checkpoints import save_generator
    from toolkit.generators.dcgan import DCGANConfig, DCGANGenerator
    torch.manual_seed(0)
    path = tmp_path / "dcgan.safetensors"
    save_generator(DCGANGenerator(DCGANConfig(z_dim=8, ngf=4)).eval(), path)
    return path


def test_label_swap_on_unconditional_model_points_to_blending(tmp_path):
    path = _unconditional_file(tmp_path)
    at = app("pages/label_swap.py", model="local file…", model_path=str(path))
    assert not at.exception and not at.error, messages(at)
    assert "unconditional" in at.warning[0].value and "blending" in at.warning[0].value
    assert not at.get("bidi_component")     # no canvas offered


@pytest.mark.parametrize("content", [None, b"garbage bytes", b""])
def test_model_path_that_does_not_load_is_a_message(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    if content is not None:
        path.write_bytes(content)
    for page in (None, "pages/label_swap.py"):
        at = app(page, model="local file…", model_path=str(path))
        assert not at.exception
        assert "could not be loaded" in at.error[0].value


def test_malformed_canvas_value_is_a_message_not_a_traceback():
    at = app()
    at.session_state["blend_canvas"] = {"drawing": {"raw": {"objects": []}, "data": "data:image/png;base64,AAAA"}}
    at.run()
    assert not at.exception
    assert "could not be read" in at.warning[0].value


# -- save as recipe ------------------------------------------------------------------------------------
def _save(at, prefix: str, name: str) -> None:
    at.text_input(key=f"{prefix}_recipe_name").input(name)
    at.number_input(key=f"{prefix}_recipe_count").set_value(3)
    at.button(key=f"FormSubmitter:{prefix}_save-Save recipe").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_editors_offer_the_result_mask_and_label_map_as_downloads(isolated_dirs):
    at = app("pages/label_swap.py")
    at.session_state["swap_canvas"] = strokes([(PALETTE[0], (0, 0, 128, 128))])
    at.run()
    assert not at.exception and not at.error, messages(at)
    keys = [el.key for el in at.get("download_button")]
    assert keys == ["swap_download_result", "swap_download_mask", "swap_download_label_map"], keys
    at = app()
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 128, 256, 256))])
    at.run()
    keys = [el.key for el in at.get("download_button")]
    assert keys == ["blend_download_result", "blend_download_mask", "blend_download_label_map"], keys


def test_saved_swap_recipe_validates_and_runs_in_the_batch_runner(isolated_dirs):
    ws, rd = isolated_dirs
    at = app("pages/label_swap.py")
    at.session_state["swap_canvas"] = strokes([(PALETTE[0], (0, 0, 128, 128))])
    at.run()
    at.slider(key="swap_jit_t").set_value(0.05)
    at.multiselect(key="swap_extra_classes").set_value(["purple"])
    _save(at, "swap", "drawn-swap")
    assert not at.error, messages(at)
    path = ws / "recipes" / "drawn-swap.yaml"       # the workspace, never the shipped recipes folder
    assert path.is_file() and (ws / "recipes" / "masks" / "drawn-swap" / "swap0.png").is_file()
    assert not (rd / "drawn-swap.yaml").exists()
    rec = recipes.load_recipe(path)
    edit = rec.data["edits"][0]["label_swap"]
    assert edit["to"] == {"choice": ["green", "purple"]} and edit["region"]["jitter"] == {"translate": 0.05}
    assert rec.data["source"]["classes"] == ["red"]
    summary = run_batch(path, ws / "out", count=3, device="cpu", batch_size=3)
    assert summary.written == 3 and summary.failed == 0
    df = dataset.read_manifest(ws / "out")
    assert len(df) == 3 and set(df["source_class"]) == {"red"}
    assert set(json.loads(df["edit_classes"][0])) <= {"green", "purple"}


def test_saved_blend_recipe_matches_the_preview_and_runs(isolated_dirs):
    """The saved mask is what the page drew, and the batch runner renders it."""
    ws, rd = isolated_dirs
    at = app()
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 128, 256, 256))])
    at.run()
    at.checkbox(key="blend_rand_refs").check()
    _save(at, "blend", "drawn-blend")
    assert not at.error, messages(at)
    rec = recipes.load_recipe(ws / "recipes" / "drawn-blend.yaml")
    mask = np.asarray(Image.open(ws / "recipes" / "masks" / "drawn-blend" / "ref0.png"))
    assert mask.shape == (32, 32) and mask[:16].max() == 0 and mask[16:].min() == 255
    assert rec.data["edits"][0]["blend"]["reference"]["seed"] == {"range": [0, 1_000_000]}
    assert rec.data["edits"][0]["blend"]["strength"] == [at.slider(key=f"blend_point_{i}").value for i in range(4)]
    summary = run_batch(ws / "recipes" / "drawn-blend.yaml", ws / "b", count=3, device="cpu", batch_size=3)
    assert summary.written == 3
    assert len(dataset.read_manifest(ws / "b")) == 3


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ""])
def test_recipe_names_with_path_separators_are_refused(isolated_dirs, name):
    ws, rd = isolated_dirs
    at = app()
    at.session_state["blend_canvas"] = strokes([(PALETTE[0], (0, 0, 64, 64))])
    at.run()
    _save(at, "blend", name)
    assert at.error and "not a valid recipe name" in at.error[0].value
    assert not any(rd.rglob("*")) and not (rd.parent / "evil.yaml").exists()


def test_saving_an_empty_drawing_is_refused(isolated_dirs):
    ws, rd = isolated_dirs
    at = app()
    _save(at, "blend", "empty")
    assert "nothing is drawn" in at.error[0].value
    assert not any(rd.rglob("*"))


def test_recipe_builder_output_is_valid_without_the_page(tmp_path):
    m = np.zeros((2, 32, 32), np.float32)
    m[0, :8] = 1
    data, masks = swap_recipe("tiny", "red", ["blue", "green"], m, (0, 2), 0.5, Randomise(scale=(0.9, 1.1)))
    assert [e["label_swap"]["to"] for e in data["edits"]] == ["blue"]          # empty target skipped
    recipes.save_recipe(data, "x", tmp_path, masks)
    data, masks = blend_recipe("tiny", [{"seed": 5, "class": "green"}, {"seed": 6}], m, [0, 1, 1, 0],
                               source_class="red")
    rec = recipes.load_recipe(recipes.save_recipe(data, "y", tmp_path, masks))
    assert rec.variant(0).params["edits"][0]["blend"]["reference"] == {"seed": 5, "class": "green", "class_id": 1}


# -- batch page --------------------------------------------------------------------------------------
def _recipe(rd: Path, count: int = 4) -> Path:
    text = (ROOT / "recipes" / "tiny-label-swap.yaml").read_text().replace("count: 32", f"count: {count}")
    (rd / "tiny-label-swap.yaml").write_text(text)
    return rd / "tiny-label-swap.yaml"


def test_batch_page_runs_in_background_and_refuses_a_second_start(isolated_dirs):
    ws, rd = isolated_dirs
    _recipe(rd)
    at = app("pages/batch.py")
    at.text_input(key="batch_out_tiny-label-swap").input("ds/one")
    at.selectbox(key="batch_device").set_value("cpu")
    at.number_input(key="batch_size").set_value(2)
    at.button(key="batch_start").click().run()
    assert not at.exception and not at.error, messages(at)
    job = jobs.get(ws / "ds" / "one")
    assert job is not None
    wait_for(job)
    assert job.summary.written == 4 and job.error is None
    # Progress and summary survive a page switch (the registry is module level).
    at.switch_page("pages/review.py").run()
    at.switch_page("pages/batch.py").run()
    assert any("wrote 4" in s.value for s in at.success), messages(at)
    at.text_input(key="batch_out_tiny-label-swap").input("ds/one")
    # A second start while another runner holds the directory is refused by the library's lock.
    with dataset.runner_lock(ws / "ds" / "one"):
        at.button(key="batch_start").click().run()
    assert any("Not started" in e.value and "another batch runner" in e.value for e in at.error), messages(at)


def test_batch_page_refuses_outputs_outside_the_workspace(isolated_dirs):
    ws, rd = isolated_dirs
    _recipe(rd)
    at = app("pages/batch.py")
    at.text_input(key="batch_out_tiny-label-swap").input("../../outside").run()
    assert "outside the workspace root" in at.error[0].value
    assert not any(b.key == "batch_start" for b in at.button)


def test_batch_page_shows_recipe_errors(isolated_dirs):
    ws, rd = isolated_dirs
    (rd / "broken.yaml").write_text("model: tiny\nedits: [{label_swap: {to: nosuchclass, region: {blob: {}}}}]\n")
    at = app("pages/batch.py")
    assert not at.exception
    assert "cannot be run" in at.error[0].value and "nosuchclass" in at.error[0].value


def test_batch_page_lists_unrunnable_recipes_and_always_draws_runs(isolated_dirs):
    ws, rd = isolated_dirs
    _recipe(rd)
    # Alphabetically first, but its weights are absent: marked in the list, never a page-stopping error.
    (rd / "aaa-absent.yaml").write_text("model: weights/nothing-here.pt\nedits: [{blend: {region: {blob: {}}}}]\n")
    at = app("pages/batch.py")
    assert not at.exception and not at.error, messages(at)
    choice = at.selectbox(key="batch_recipe_choice")
    assert Path(choice.value).name == "tiny-label-swap.yaml"        # the default is one that can run
    labels = list(choice.options)
    assert any("aaa-absent.yaml" in l and "cannot run" in l and "not found" in l for l in labels), labels
    job = jobs.start(rd / "tiny-label-swap.yaml", ws / "ds" / "runs", count=2, device="cpu", batch_size=2)
    wait_for(job)
    choice.set_value(str((rd / "aaa-absent.yaml").resolve())).run()
    assert any("cannot run on this machine" in w.value for w in at.warning), messages(at)
    # The Runs section is there all the same, with the finished run and its contact sheet.
    assert any("wrote 2" in s.value for s in at.success), messages(at)
    at.button(key=f"dismiss_{job.out_dir}").click().run()
    assert jobs.get(job.out_dir) is None and (job.out_dir / "metadata.csv").is_file()


def test_batch_page_reads_recipes_only_from_its_folders(isolated_dirs, tmp_path):
    ws, rd = isolated_dirs
    _recipe(rd)
    secret = tmp_path / "secret.yaml"
    secret.write_text("model: tiny\nTOP-SECRET-LINE: 1\n" * 50)
    at = app("pages/batch.py")
    at.selectbox(key="batch_recipe_choice").set_value("another file…").run()
    for text in (str(secret), "../secret.yaml", "/etc/passwd"):
        at.text_input(key="batch_recipe_path").input(text).run()
        assert not at.exception
        msg = messages(at)
        assert "outside the recipes folder" in msg and "TOP-SECRET" not in msg and "root:" not in msg, msg
        assert not any(b.key == "batch_start" for b in at.button)


def test_batch_page_without_cuda_says_so_once(isolated_dirs):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ws, rd = isolated_dirs
    _recipe(rd)
    at = app("pages/batch.py")
    at.selectbox(key="batch_device").set_value("cuda").run()
    assert [e.value for e in at.error] == ["This machine has no CUDA device: choose cpu or auto."]
    assert not any(b.key == "batch_start" for b in at.button)


def test_start_right_after_stop_waits_for_the_closing_runner(isolated_dirs):
    ws, rd = isolated_dirs
    rec = _recipe(rd, 40)
    out = ws / "restart"
    first = jobs.start(rec, out, count=40, device="cpu", batch_size=1)
    assert first.error is None
    first.stop.set()                       # the user pressed Stop; the runner finishes its batch
    second = jobs.start(rec, out, count=40, device="cpu", batch_size=1)
    assert second.error is None, second.error      # not refused by our own closing runner
    assert not first.running
    second.stop.set()
    wait_for(second)
    assert second.done >= first.done and second.progress_text().startswith(f"{second.done} / 40")


# -- review page ---------------------------------------------------------------------------------------
def _dataset(ws: Path, rd: Path, count: int = 4) -> Path:
    out = ws / "ds" / "r"
    run_batch(_recipe(rd, count), out, count=count, device="cpu", batch_size=count)
    return out


def test_review_edits_persist_filters_charts_and_export(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd)
    at = app("pages/review.py", review_dir=str(out), review_mode="Table")
    assert not at.exception and not at.error, messages(at)
    editor_key = at.get("dataframe")[0].key
    at.session_state[editor_key] = {"edited_rows": {0: {"review": "accepted"}, 2: {"review": "rejected"}},
                                    "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception and not at.error, messages(at)
    df = dataset.read_manifest(out)
    assert list(df["review"]) == ["accepted", "pending", "rejected", "pending"]
    # A fresh session sees the saved state (it is in metadata.csv, not in the session).
    at2 = app("pages/review.py", review_dir=str(out), review_status=["accepted"], review_mode="Table")
    assert "1 of 4 rows match" in " ".join(c.value for c in at2.caption)
    # Export the accepted subset.
    at2.text_input(key="review_export_dest").input("accepted-only")
    at2.button(key="review_export").click().run()
    assert not at2.error, messages(at2)
    sub = dataset.read_manifest(ws / "accepted-only")
    assert list(sub["file_name"]) == [df["file_name"][0]] and (ws / "accepted-only" / sub["file_name"][0]).is_file()


def test_review_table_saves_every_edit_without_rebuilding_the_editor(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd)
    at = app("pages/review.py", review_dir=str(out), review_mode="Table")
    key = at.get("dataframe")[0].key
    edits = {"edited_rows": {0: {"review": "accepted"}}, "added_rows": [], "deleted_rows": []}
    for step in ({1: {"review": "rejected"}}, {3: {"review": "accepted"}}, {1: {"review": "pending"}}):
        at.session_state[key] = edits
        at.run()
        assert not at.exception and not at.error, messages(at)
        assert at.get("dataframe")[0].key == key          # the same editor: the next click lands
        edits = {**edits, "edited_rows": {**edits["edited_rows"], **step}}
    at.session_state[key] = edits
    at.run()
    assert list(dataset.read_manifest(out)["review"]) == ["accepted", "pending", "pending", "accepted"]


def test_review_gallery_decides_and_moves_on(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd)
    at = app("pages/review.py", review_dir=str(out))
    assert not at.exception and not at.error, messages(at)
    assert any(i.caption.startswith("#0 ") for el in at.get("image") for i in el.proto.imgs), images(at)
    assert "label map" in images(at) and "mask" in images(at) and "source" in images(at)
    at.button(key="review_accept").click().run()
    at.button(key="review_reject").click().run()
    at.button(key="review_prev").click().run()
    at.button(key="review_pending").click().run()
    assert list(dataset.read_manifest(out)["review"]) == ["accepted", "pending", "pending", "pending"]
    assert any(i.caption.startswith("#2 ") for el in at.get("image") for i in el.proto.imgs)
    # Filter + sort by any column; bulk actions act on every matching row.
    at.radio(key="review_overlay").set_value("label map").run()
    assert not at.exception
    at.selectbox(key="review_sort").set_value("variant_seed").run()
    at.toggle(key="review_desc").set_value(True).run()
    at.selectbox(key="review_extra_col").set_value("variant_index").run()
    at.multiselect(key="review_extra_vals_variant_index").set_value(["1", "3"]).run()
    assert "2 of 4 rows match" in " ".join(c.value for c in at.caption)
    at.button(key="review_reject_all").click().run()
    assert list(dataset.read_manifest(out)["review"]) == ["accepted", "rejected", "pending", "rejected"]


def test_review_exports_into_datasets_and_offers_a_zip(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd)
    dataset.update_review(out, {dataset.read_manifest(out)["file_name"][1]: "accepted"})
    at = app("pages/review.py", review_dir=str(out))
    btn = at.button(key="review_export")
    assert btn.label == "Export 1 accepted row"
    btn.click().run()
    assert not at.error, messages(at)
    dest = ws / "datasets" / "r-accepted"
    assert len(dataset.read_manifest(dest)) == 1
    assert any(el.key == "review_zip" for el in at.get("download_button")), [e.key for e in at.get("download_button")]


def test_review_view_pictures_overlays_and_zip(isolated_dirs, tmp_path):
    from toolkit.ui.review_view import overlay, row_picture, zip_dataset
    ws, rd = isolated_dirs
    out = _dataset(ws, rd, 2)
    row = dataset.read_manifest(out).iloc[0].to_dict()
    im, lm, mask = (row_picture(out, row, c) for c in ("file_name", "label_map_file", "mask_file"))
    assert im.size == lm.size == mask.size and im.mode == lm.mode == "RGB"
    assert overlay(im, mask, "mask_file").size == im.size
    crafted = {**row, "mask_file": "../../etc/passwd"}
    assert row_picture(out, crafted, "mask_file") is None
    import zipfile
    z = zipfile.ZipFile(io.BytesIO(zip_dataset(out)))
    assert f"{out.name}/metadata.csv" in z.namelist() and not any("/." in n for n in z.namelist())
    (tmp_path / "plain").mkdir()
    with pytest.raises(dataset.DatasetError, match="not a dataset folder"):
        zip_dataset(tmp_path / "plain")
    with pytest.raises(dataset.DatasetError, match="too large"):
        zip_dataset(out, limit=10)


def test_review_thumbnails_are_data_urls(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd, 2)
    at = app("pages/review.py", review_dir=str(out), review_mode="Table")
    tbl = at.get("dataframe")[0].value
    assert len(tbl) == 2
    for col in ("image", "source"):
        for url in tbl[col]:
            assert url.startswith("data:image/png;base64,")
            im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            assert im.size == (64, 64)


def test_review_bulk_accept_and_label_filter(isolated_dirs):
    ws, rd = isolated_dirs
    out = _dataset(ws, rd)
    df = dataset.read_manifest(out)
    label = df["label"][0]
    at = app("pages/review.py", review_dir=str(out), review_labels=[label])
    at.button(key="review_accept_all").click().run()
    after = dataset.read_manifest(out)
    assert set(after.loc[after["label"] == label, "review"]) == {"accepted"}
    assert set(after.loc[after["label"] != label, "review"]) <= {"pending"}


def test_review_bad_directories_are_messages(isolated_dirs):
    ws, rd = isolated_dirs
    (ws / "empty").mkdir()
    at = app("pages/review.py", review_dir=str(ws / "empty"))
    assert not at.exception and "no manifest" in at.error[0].value
    (ws / "corrupt").mkdir()
    (ws / "corrupt" / "metadata.csv").write_text("file_name,label\n\"unterminated,\n1,2,3,4\n")
    at = app("pages/review.py", review_dir=str(ws / "corrupt"))
    assert not at.exception and at.error, messages(at)
    at = app("pages/review.py", review_dir="/etc")
    assert not at.exception and "outside the workspace" in at.error[0].value


@pytest.mark.slow
def test_review_while_the_batch_page_is_still_appending_loses_no_rows(isolated_dirs):
    ws, rd = isolated_dirs
    rec = _recipe(rd, 400)
    out = ws / "live"
    job = jobs.start(rec, out, count=400, device="cpu", batch_size=1)
    assert job.error is None
    deadline = time.time() + 60
    while job.done < 3 and time.time() < deadline:
        time.sleep(0.02)
    at = app("pages/review.py", review_dir=str(out), review_mode="Table")
    at.session_state[at.get("dataframe")[0].key] = {"edited_rows": {0: {"review": "rejected"}, 1: {"review": "accepted"}},
                                                    "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception and not at.error, messages(at)
    rows_at_edit = job.done
    assert job.running, "the run ended before the review edit: the test no longer overlaps them"
    time.sleep(0.5)
    job.stop.set()
    wait_for(job)
    df = dataset.read_manifest(out)
    assert len(df) > rows_at_edit                                 # the runner kept appending after the edit
    assert sorted(df["variant_index"]) == list(range(len(df)))    # and no row was lost
    assert list(df["review"][:2]) == ["rejected", "accepted"] and set(df["review"][2:]) == {"pending"}


def test_editor_pages_open_on_their_own_default_model_until_the_user_picks_one():
    """Label swap needs a class-conditional model; blending opens on faces64."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/label_swap.py").run()
    assert not at.exception, [e.value for e in at.exception]
    from toolkit.ui.widgets import CONDITIONAL_DEFAULT
    assert at.session_state["model_choice"] == CONDITIONAL_DEFAULT
    assert not any("unconditional" in w.value for w in at.warning)
