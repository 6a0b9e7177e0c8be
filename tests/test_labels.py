"""Labels that were checked: judges, rendered maps, label_agreement, and recipe filters.

The tiny model gets a seeded random judge (its figures mean nothing, but they are real outputs of
the same code path the shipped terrain64 judge runs); the shipped judge is tested for what it
must be (loads, fits terrain64's classes, records its held-out accuracy).
"""
from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit import judges, pipeline, zoo
from toolkit.batch import FILTER_CAP, run_batch
from toolkit.checkpoints import CheckpointError
from toolkit.dataset import COLUMNS, DatasetError, read_manifest
from toolkit.dataset.manifest import BASE_COLUMNS, read_rows
from toolkit.recipes import RecipeError, load_recipe, parse_recipe
from toolkit.sampling import sample_latents

RECIPE = """\
name: judged-swap
model: tiny
seed: 3
count: 4
source: {classes: [red, green]}
edits:
  - label_swap:
      to: {choice: [blue, yellow]}
      region: {blob: {size: [0.3, 0.7]}}
      stages: [0, 2]
output: {save_source: false}
"""


def tiny_judge(path: Path, tiny) -> Path:
    """A judge of the tiny model's classes, trained for a few steps on the model's own samples (so
    that its maps vary with the content, like a real judge's), saved like a shipped one."""
    torch.manual_seed(0)
    y = torch.arange(tiny.n_classes).repeat(8)
    with torch.no_grad():
        x = tiny(sample_latents(tiny, list(range(len(y)))), y)
    net = judges.JudgeNet(tiny.n_classes, width=8)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return judges.Judge(net.eval(), tuple(tiny.class_names), {"name": "tiny-judge", "width": 8}).save(path)


@pytest.fixture(scope="module")
def tiny_judge_file(tmp_path_factory, tiny) -> Path:
    return tiny_judge(tmp_path_factory.mktemp("judges") / "tiny.safetensors", tiny)


@pytest.fixture
def judged_tiny(tiny_judge_file, monkeypatch):
    """The zoo's tiny model with a small judge file."""
    path = tiny_judge_file
    monkeypatch.setitem(zoo.ZOO, "tiny", dataclasses.replace(zoo.ZOO["tiny"], judge=path))
    return path


@pytest.fixture
def recipe_dir(tmp_path) -> Path:
    d = tmp_path / "recipes"
    d.mkdir()
    return d


def write_recipe(d: Path, text: str, name: str = "r.yaml") -> Path:
    (d / name).write_text(text)
    return d / name


# -- the judge ---------------------------------------------------------------------------------------
def test_judge_round_trip_and_refusals(tmp_path, tiny, judged_tiny):
    j = judges.Judge.load(judged_tiny)
    with torch.no_grad():
        raw = tiny(sample_latents(tiny, [5, 6, 7]), torch.tensor([0, 2, 4]))
    images = judges.to_uint8_images(raw)
    maps = j.classify(images)
    assert maps.shape == (3, 32, 32) and maps.dtype == np.uint8 and maps.max() < tiny.n_classes
    # one image at a time: the batch it comes in does not change a map
    assert np.array_equal(maps[1], j.classify(images[1:2])[0])
    assert len(np.unique(maps)) > 1                      # the judge does not say one class everywhere
    with pytest.raises(CheckpointError, match="trained for the classes"):
        j.check_classes(["a", "b"], "other")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors judge"):
        judges.Judge.load(bad)


def test_dense_pass_matches_the_patch_classifier_at_window_centres(tiny):
    """Cell i of the dense pass is the patch classifier on the 32-px window centred at pixel 8i,
    except for the zero padding at the window's edge: inside an image of one repeated texture
    tile (period 8) both see the same pixels, so the logits must agree closely."""
    torch.manual_seed(1)
    net = judges.JudgeNet(4, width=8).eval()
    tile = torch.rand(1, 3, 8, 8) * 2 - 1
    x = tile.repeat(1, 1, 8, 8)                                  # 64×64, period 8
    with torch.no_grad():
        dense = net.dense(x)[0, :, 32, 32]
        patch = net(x[..., 16:48, 16:48])[0]
    assert torch.allclose(dense, patch, atol=0.35 * patch.abs().max().item()), (dense, patch)


def test_agreement_is_the_share_of_label_pixels_the_judge_confirms():
    asked = np.array([[0, 0], [1, 1]])
    seen = np.array([[0, 1], [1, 1]])
    assert judges.agreement(asked, seen) == 0.75
    assert judges.agreement(asked, asked) == 1.0


def test_shipped_terrain64_judge_fits_the_model_and_records_its_accuracy():
    entry = zoo.ZOO["terrain64"]
    assert entry.judge is not None and entry.judge.stat().st_size < 1_000_000
    j = judges.Judge.load(entry.judge)
    gen_names = load_recipe(Path(__file__).parents[1] / "recipes" / "terrain64-segmentation.yaml").info.class_names
    assert j.class_names == tuple(gen_names)
    acc = j.meta["accuracy"]
    assert 0 < acc["heldout_pixel_accuracy"] <= 1 and set(acc["heldout_pixel_accuracy_per_class"]) == set(gen_names)
    assert "python -m toolkit.judges train terrain64" in j.meta["command"]


# -- the pipeline ------------------------------------------------------------------------------------
def test_pipeline_adds_the_rendered_map_and_agreement_only_with_a_judge(recipe_dir, tiny, monkeypatch,
                                                                        tiny_judge_file):
    recipe = load_recipe(write_recipe(recipe_dir, RECIPE)).for_generator(tiny)
    plain = pipeline.render_variants(tiny, recipe, recipe.variants(range(3)))
    assert all(rv.rendered_map is None and rv.label_agreement is None for rv in plain)
    path = tiny_judge_file
    monkeypatch.setitem(zoo.ZOO, "tiny", dataclasses.replace(zoo.ZOO["tiny"], judge=path))
    judged = pipeline.render_variants(tiny, recipe, recipe.variants(range(3)))
    j = judges.Judge.load(path)
    for a, b in zip(plain, judged):
        assert np.array_equal(a.image, b.image)          # judging changes no pixel
        seen = j.classify(b.image[None])[0]
        assert np.array_equal(b.rendered_map, seen)
        assert b.label_agreement == round(float((seen == b.label_map).mean()), 6)


def test_recipe_filter_needs_a_model_with_a_judge(recipe_dir):
    with pytest.raises(RecipeError, match=r"filter\.min_label_agreement: model tiny has no judge"):
        load_recipe(write_recipe(recipe_dir, RECIPE + "filter: {min_label_agreement: 0.5}\n"))
    with pytest.raises(RecipeError, match=r"filter\.min_label_agreement: 1\.5 is out of range"):
        parse_recipe({"model": "tiny", "edits": [{"label_swap": {"to": "blue", "region": {"shape": "ellipse",
                      "center": [0.5, 0.5], "size": [0.5, 0.5]}}}], "filter": {"min_label_agreement": 1.5}})


# -- the dataset and the filter ----------------------------------------------------------------------
def figures(recipe_path, tiny, n) -> list[float]:
    recipe = load_recipe(recipe_path).for_generator(tiny)
    return [rv.label_agreement for rv in pipeline.render_variants(tiny, recipe, recipe.variants(range(n)))]


def test_unfiltered_run_writes_rendered_maps_and_agreement(recipe_dir, tmp_path, tiny, judged_tiny):
    path = write_recipe(recipe_dir, RECIPE)
    run_batch(path, tmp_path / "out", count=3, batch_size=2, device="cpu")
    df = read_manifest(tmp_path / "out")
    assert list(df["rendered_map_file"]) == [f"rendered_maps/{i:06d}.png" for i in range(3)]
    assert np.allclose(df["label_agreement"], figures(path, tiny, 3), atol=1e-6)
    im = Image.open(tmp_path / "out" / df["rendered_map_file"][0])
    assert im.mode == "P" and im.getpalette()[:15] == Image.open(tmp_path / "out" / df["label_map_file"][0]).getpalette()[:15]
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["judge"] == "tiny-judge" and len(info["judge_sha256"]) == 64


def test_filter_is_deterministic_across_batch_sizes_and_resume(recipe_dir, tmp_path, tiny, judged_tiny, monkeypatch):
    base = write_recipe(recipe_dir, RECIPE, "probe.yaml")
    figs = figures(base, tiny, 12)
    threshold = float(np.median(figs))
    assert min(figs) < threshold <= max(figs)
    path = write_recipe(recipe_dir, RECIPE + f"filter: {{min_label_agreement: {threshold}}}\n")
    count = 3
    passing = [i for i, f in enumerate(figs) if f >= threshold]
    assert len(passing) >= count
    expected = list(range(passing[count - 1] + 1))          # every index up to the count-th pass
    s = run_batch(path, tmp_path / "b3", count=count, batch_size=3, device="cpu", command="c")
    assert s.complete and s.passed == count and s.written == len(expected)
    run_batch(path, tmp_path / "b5", count=count, batch_size=5, device="cpu", command="c", workers=1)
    # stopped after its first batch, resumed with the same batch size
    real, stop = pipeline.render_variants, threading.Event()

    def render_then_stop(gen, recipe, variants):
        stop.set()
        return real(gen, recipe, variants)

    monkeypatch.setattr(pipeline, "render_variants", render_then_stop)
    s1 = run_batch(path, tmp_path / "resumed", count=count, batch_size=2, device="cpu", stop=stop, command="c")
    monkeypatch.setattr(pipeline, "render_variants", real)
    assert s1.stopped and s1.written == 2
    s2 = run_batch(path, tmp_path / "resumed", count=count, batch_size=2, device="cpu", command="c")
    assert s2.complete and s2.skipped == 2
    ref = (tmp_path / "b3" / "metadata.csv").read_bytes()
    for other in ("b5", "resumed"):
        assert (tmp_path / other / "metadata.csv").read_bytes() == ref, other
    rows = read_rows(tmp_path / "b3" / "metadata.csv")
    assert [int(r["variant_index"]) for r in rows] == expected
    for r in rows:
        i, fig = int(r["variant_index"]), float(r["label_agreement"])
        assert abs(fig - figs[i]) < 1e-6
        assert r["review"] == ("pending" if fig >= threshold else "rejected-auto")


def test_a_threshold_nothing_meets_stops_at_the_cap(recipe_dir, tmp_path, tiny, judged_tiny):
    path = write_recipe(recipe_dir, RECIPE + "filter: {min_label_agreement: 1.0}\n")
    with pytest.raises(DatasetError, match=rf"only 0 of 1 variants reach filter.min_label_agreement 1.0 after "
                                           rf"rendering the cap of {FILTER_CAP} variant indices"):
        run_batch(path, tmp_path / "out", count=1, batch_size=4, device="cpu")
    df = read_manifest(tmp_path / "out")
    assert len(df) == FILTER_CAP and set(df["review"]) == {"rejected-auto"} and (df["label_agreement"] < 1).all()
    with pytest.raises(DatasetError, match="only 0 of 1"):       # a rerun says the same, renders nothing
        run_batch(path, tmp_path / "out", count=1, batch_size=4, device="cpu")


def test_an_older_manifest_reads_and_resumes(recipe_dir, tmp_path, tiny):
    """A dataset written before label_agreement/rendered_map_file existed: read with those empty; a
    resumed run rewrites the header and appends rows of this version."""
    path = write_recipe(recipe_dir, RECIPE)
    out = tmp_path / "old"
    run_batch(path, out, count=2, device="cpu")
    rows = read_rows(out / "metadata.csv")
    lines = [",".join(BASE_COLUMNS)] + [",".join(_csv(r[c]) for c in BASE_COLUMNS) for r in rows]
    (out / "metadata.csv").write_text("\n".join(lines) + "\n")
    df = read_manifest(out)
    assert list(df.columns) == COLUMNS and df["label_agreement"].isna().all() and (df["rendered_map_file"] == "").all()
    s = run_batch(path, out, count=3, device="cpu")
    assert s.written == 1 and s.skipped == 2
    assert (out / "metadata.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert len(read_manifest(out)) == 3


def _csv(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


def test_review_page_sorts_by_agreement_and_overlays_the_rendered_map(recipe_dir, tmp_path, tiny, judged_tiny,
                                                                     monkeypatch):
    from streamlit.testing.v1 import AppTest
    ws = tmp_path / "ws"
    run_batch(write_recipe(recipe_dir, RECIPE), ws / "judged", count=4, batch_size=4, device="cpu")
    monkeypatch.setenv("NCT_WORKSPACE", str(ws))
    monkeypatch.setenv("NCT_RECIPES_DIR", str(recipe_dir))
    monkeypatch.chdir(Path(__file__).parents[1])

    def page(**state) -> AppTest:
        at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=120)
        for k, v in {"model_choice": "tiny", "_model_picked": True, "review_dir": str(ws / "judged"), **state}.items():
            at.session_state[k] = v
        at.run()
        at.switch_page("pages/review.py").run()
        assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
        return at

    at = page(review_sort="label_agreement", review_mode="Table")
    figs = list(at.get("dataframe")[0].value["label_agreement"])
    assert len(figs) == 4 and figs == sorted(figs)
    assert list(read_manifest(ws / "judged")["label_agreement"]) != figs   # the sort did something
    at = page(review_overlay="rendered map")
    assert "rendered map" in at.radio(key="review_overlay").options
