"""Per-pixel part maps in datasets (issue 17, section 3): written for every variant whenever a part
model is known, palette and run info recorded, resume/export/merge carry them, older datasets
still work, two part models never mix, and recipe validation knows the part names.

The tiny model gets a small part model discovered from its own features (seeded); the faces64
checks use its shipped part model file only (no weights needed for validation).
"""
from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit import LabelSwap, pipeline
from toolkit.batch import run_batch
from toolkit.checkpoints import sha256_file
from toolkit.cli import main
from toolkit.dataset import COLUMNS, DatasetError, export_subset, merge, read_manifest
from toolkit.dataset.manifest import read_rows
from toolkit.parts import PALETTE, PartModel, discover, segment
from toolkit.recipes import RecipeError, load_recipe
from toolkit.sampling import sample_latents
from toolkit.ui.review_view import row_picture, zip_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = """\
name: parted
model: tiny
parts: parts.safetensors
seed: 5
count: 4
source: {classes: [red, green]}
edits:
  - label_swap: {to: blue, region: {shape: rectangle, box: [0, 0, 0.5, 1]}, stages: all}
output: {save_source: false}
"""


@pytest.fixture(scope="module")
def part_file(tmp_path_factory, tiny) -> Path:
    torch.set_num_threads(1)
    pm = discover(tiny, 4, n_samples=12, seed=0, restarts=1).with_names(["a", "b", "c", "d"])
    return pm.save(tmp_path_factory.mktemp("pm") / "parts.safetensors")


@pytest.fixture
def recipe(tmp_path, part_file) -> Path:
    d = tmp_path / "recipes"
    d.mkdir()
    (d / "parts.safetensors").write_bytes(part_file.read_bytes())
    (d / "r.yaml").write_text(RECIPE)
    return d / "r.yaml"


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def test_part_maps_are_written_and_are_the_segmentation_of_each_image(recipe, tmp_path, tiny, part_file):
    s = run_batch(recipe, tmp_path / "out", count=4, batch_size=4, device="cpu", command="c")
    assert s.complete and s.written == 4
    d = tmp_path / "out"
    df = read_manifest(d)
    assert list(df["part_map_file"]) == [f"part_maps/{i:06d}.png" for i in range(4)]
    # by hand: the same sources and swap, segmented with the part model (one pass of the whole batch)
    r = load_recipe(recipe).for_generator(tiny)
    vs = r.variants(range(4))
    z = sample_latents(tiny, [v.seed for v in vs])
    y = torch.tensor([v.source.class_id for v in vs])
    w = torch.zeros(1, 32, 32)
    w[:, :, :16] = 1
    pm = PartModel.load(part_file)
    hand = segment(tiny, pm, z, y, swap=LabelSwap(torch.full((4, 1), 2), w)).numpy()
    for k in range(4):
        with Image.open(d / df["part_map_file"][k]) as im:
            assert im.mode == "P"
            assert np.array_equal(np.asarray(im), hand[k])
            assert im.getpalette()[:12] == [c for rgb in PALETTE[:4] for c in rgb]
    assert len(np.unique(hand)) > 1          # a map that could be wrong
    # the palette file, the run info and the card
    with open(d / "part_palette.csv", newline="") as f:
        assert list(csv.reader(f)) == [["id", "name", "r", "g", "b"]] + [
            [str(i), n, *map(str, PALETTE[i])] for i, n in enumerate("abcd")]
    info = json.loads((d / "dataset.json").read_text())
    assert info["part_model_sha256"] == sha256_file(recipe.parent / "parts.safetensors")
    assert info["part_names"] == list("abcd") and info["part_points"] == list(pm.points)
    assert info["part_model"].startswith("parts.safetensors")
    card = (d / "README.md").read_text()
    assert "part_maps/NNNNNN.png" in card and info["part_model_sha256"] in card and "| 3 | d |" in card
    # the Review page's "part map" layer shows it in the part colours
    pic = row_picture(d, df.iloc[1].to_dict(), "part_map_file")
    assert np.array_equal(np.asarray(pic), np.array(PALETTE[:4], np.uint8)[hand[1]])


def test_no_part_model_no_part_maps(tmp_path, tiny):
    (tmp_path / "r.yaml").write_text(RECIPE.replace("parts: parts.safetensors\n", ""))
    run_batch(tmp_path / "r.yaml", tmp_path / "out", count=2, batch_size=2, device="cpu")
    df = read_manifest(tmp_path / "out")
    assert list(df["part_map_file"]) == ["", ""]
    assert not (tmp_path / "out" / "part_maps").exists() and not (tmp_path / "out" / "part_palette.csv").exists()
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["part_model_sha256"] == ""


def test_part_model_loads_once_per_run_and_resume_is_byte_identical(recipe, tmp_path, monkeypatch):
    r = load_recipe(recipe)
    loads, real_load = [], PartModel.load.__func__
    monkeypatch.setattr(PartModel, "load", classmethod(lambda cls, p: loads.append(p) or real_load(cls, p)))
    run_batch(r, tmp_path / "ref", count=6, batch_size=2, device="cpu", command="c")
    assert len(loads) == 1                   # three batches, one load
    stop, real = threading.Event(), pipeline.render_variants

    def render_then_stop(gen, recipe, variants, **kw):
        if variants[0].index == 2:
            stop.set()
        return real(gen, recipe, variants, **kw)

    monkeypatch.setattr(pipeline, "render_variants", render_then_stop)
    s1 = run_batch(recipe, tmp_path / "ds", count=6, batch_size=2, device="cpu", stop=stop, command="c")
    monkeypatch.setattr(pipeline, "render_variants", real)
    assert s1.stopped and s1.written == 4
    run_batch(recipe, tmp_path / "ds", count=6, batch_size=2, device="cpu", command="c")
    assert files(tmp_path / "ds") == files(tmp_path / "ref")
    assert sum(k.startswith("part_maps/") for k in files(tmp_path / "ref")) == 6


def test_an_older_dataset_without_part_maps_resumes_exports_and_merges(recipe, tmp_path):
    d = tmp_path / "old"
    run_batch(recipe, d, count=2, batch_size=2, device="cpu", command="c")
    # as a toolkit before part maps wrote it: no column, no part_maps/, no palette, no part keys
    lines = (d / "metadata.csv").read_text().splitlines()
    cut = lambda line: ",".join(line.split(",")[:-1])     # part_map_file is the last column
    assert lines[0].endswith(",part_map_file")
    (d / "metadata.csv").write_text("\n".join(cut(x) for x in lines) + "\n")
    for p in (d / "part_maps").iterdir():
        p.unlink()
    (d / "part_maps").rmdir()
    (d / "part_palette.csv").unlink()
    info = {k: v for k, v in json.loads((d / "dataset.json").read_text()).items() if not k.startswith("part_")}
    (d / "dataset.json").write_text(json.dumps(info))
    assert list(read_manifest(d)["part_map_file"]) == ["", ""]
    s = run_batch(recipe, d, count=4, batch_size=2, device="cpu", command="c")
    assert s.skipped == 2 and s.written == 2
    rows = read_rows(d / "metadata.csv")
    assert (d / "metadata.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert [r["part_map_file"] for r in rows] == ["", "", "part_maps/000002.png", "part_maps/000003.png"]
    assert "2 of 4 rows have one" in (d / "README.md").read_text()
    export_subset(d, tmp_path / "x", ["images/000001.png", "images/000003.png"])
    assert (tmp_path / "x" / "part_maps" / "000003.png").read_bytes() == (d / "part_maps" / "000003.png").read_bytes()
    assert (tmp_path / "x" / "part_palette.csv").is_file()
    # an older target + a source with part maps: the merged run info takes the part model
    old2 = tmp_path / "old2"
    export_subset(d, old2, ["images/000000.png"])
    (old2 / "part_palette.csv").unlink()
    info2 = {k: v for k, v in json.loads((old2 / "dataset.json").read_text()).items() if not k.startswith("part_")}
    (old2 / "dataset.json").write_text(json.dumps(info2))
    merge(old2, tmp_path / "x")
    assert json.loads((old2 / "dataset.json").read_text())["part_names"] == list("abcd")
    assert [r["part_map_file"] for r in read_rows(old2 / "metadata.csv")] == ["", "", "part_maps/000003.png"]
    assert (old2 / "part_palette.csv").read_bytes() == (d / "part_palette.csv").read_bytes()


def test_export_and_merge_carry_part_maps_exactly(recipe, tmp_path):
    a = tmp_path / "a"
    run_batch(recipe, a, count=4, batch_size=2, device="cpu", command="c")
    export_subset(a, tmp_path / "x", ["images/000000.png", "images/000001.png"])
    export_subset(a, tmp_path / "y", ["images/000002.png", "images/000003.png"])
    assert sorted(p.name for p in (tmp_path / "x" / "part_maps").iterdir()) == ["000000.png", "000001.png"]
    m = merge(tmp_path / "m", tmp_path / "x", tmp_path / "y")
    assert m.rows == 4 and not m.missing
    got, want = files(tmp_path / "m"), files(a)
    for k in [k for k in want if k.startswith("part_maps/")] + ["part_palette.csv", "metadata.csv"]:
        assert got[k] == want[k], k
    with zipfile.ZipFile(io.BytesIO(zip_dataset(tmp_path / "x"))) as zf:     # the Review page's download
        assert {"x/part_palette.csv", "x/part_maps/000000.png", "x/part_maps/000001.png"} <= set(zf.namelist())
        assert zf.read("x/part_maps/000001.png") == want["part_maps/000001.png"]


def test_two_part_models_never_mix_in_one_dataset(recipe, tmp_path, tiny):
    run_batch(recipe, tmp_path / "a", count=2, batch_size=2, device="cpu", command="c")
    other = discover(tiny, 3, n_samples=12, seed=9, restarts=1).with_names(["x", "y", "z"])
    other.save(recipe.parent / "parts.safetensors")     # same recipe text, another part model
    with pytest.raises(DatasetError, match=r"part model .*parts a, b, c, d.*parts x, y, z"):
        run_batch(recipe, tmp_path / "a", count=4, batch_size=2, device="cpu", command="c")
    run_batch(recipe, tmp_path / "b", count=4, batch_size=2, device="cpu", command="c")
    before = files(tmp_path / "a")
    with pytest.raises(DatasetError, match="one dataset's part ids must mean the same parts"):
        merge(tmp_path / "a", tmp_path / "b")
    assert files(tmp_path / "a") == before


# -- validation ---------------------------------------------------------------------------------------
def test_validation_catches_unknown_part_names_with_file_line_and_suggestion(recipe, tmp_path, capsys):
    bad = recipe.parent / "bad.yaml"
    bad.write_text(RECIPE.replace("{shape: rectangle, box: [0, 0, 0.5, 1]}", "{part: [a, bb]}"))
    with pytest.raises(RecipeError, match=r"bad.yaml: line 8: edits\[0\]\.label_swap\.region\.part: unknown part "
                                          r"'bb'.*Did you mean 'b'\?.*\(part model parts.safetensors\)"):
        load_recipe(bad)
    # a zoo model's shipped part model, found without its weights: `match:` and `choice` regions too
    faces = tmp_path / "faces.yaml"
    faces.write_text("model: faces64\nedits:\n  - blend:\n      reference: {seed: 1, match: eyes_mouht}\n"
                     "      region: {choice: [{part: eyes_mouth}, {part: hiar}]}\n")
    assert main(["validate", str(faces)]) == 1
    err = capsys.readouterr().err
    assert "faces.yaml: line 4: edits[0].blend.reference.match: unknown part 'eyes_mouht'" in err
    assert "Did you mean 'eyes_mouth'?" in err and "toolkit/weights/parts/faces64.safetensors" in err
    assert "line 5: edits[0].blend.region.choice[1].part: unknown part 'hiar'" in err
    # parts used, but no part model anywhere; a `parts:` file that is not there
    (tmp_path / "none.yaml").write_text("model: tiny\nedits:\n  - label_swap: {to: blue, region: {part: a}}\n")
    with pytest.raises(RecipeError, match=r"line 3: edits\[0\].label_swap.region.part: uses parts, but no part model"):
        load_recipe(tmp_path / "none.yaml")
    (tmp_path / "missing.yaml").write_text("model: tiny\nparts: nope.safetensors\nedits:\n"
                                           "  - label_swap: {to: blue, region: {shape: rectangle, box: [0, 0, 1, 1]}}\n")
    with pytest.raises(RecipeError, match=r"line 2: parts: part model file .*nope.safetensors does not exist"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "out.yaml").write_text((tmp_path / "missing.yaml").read_text().replace("nope", "../x"))
    with pytest.raises(RecipeError, match=r"line 2: parts: '../x.safetensors' points outside the recipe's folder"):
        load_recipe(tmp_path / "sub" / "out.yaml")


def test_a_zoo_model_with_a_shipped_part_model_gets_part_maps_without_asking(tmp_path):
    """terrain64 ships a part model: any of its recipes (here one without parts) writes part maps."""
    from toolkit.parts import shipped_path
    root = Path(__file__).resolve().parents[1]
    run_batch(root / "recipes" / "terrain64-stages.yaml", tmp_path / "t", count=2, batch_size=2, device="cpu",
              command="c")
    df = read_manifest(tmp_path / "t")
    assert list(df["part_map_file"]) == ["part_maps/000000.png", "part_maps/000001.png"]
    info = json.loads((tmp_path / "t" / "dataset.json").read_text())
    assert info["part_model_sha256"] == sha256_file(shipped_path("terrain64"))
    assert info["part_model"] == "terrain64.safetensors (shipped with the toolkit for terrain64)"
    assert info["part_names"] == PartModel.load(shipped_path("terrain64")).names
