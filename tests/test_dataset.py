"""Dataset layer: layout, manifest, atomic writes, locks, resume, the card.

Uses small synthetic rendered variants (tests/dataset_fakes.py), so these tests need no
generator; tests/test_curate.py covers merge, review and export, tests/test_batch.py the real
runner end to end, tests/hostile/test_datasets.py hostile dataset folders.
"""
from __future__ import annotations

import errno
import json
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataset_fakes import CLASSES, fake_variant, run_info, tree, write_run
from toolkit import dataset as ds
from toolkit import io as tio
from toolkit.dataset import locks, manifest
from toolkit.dataset import (COLUMNS, DatasetError, DatasetLockedError, DatasetWriter, RunInfo, manifest_lock,
                             read_manifest, update_review)


def test_layout_loads_with_pandas_and_pil(tmp_path):
    write_run(tmp_path, range(6))
    df = pd.read_csv(tmp_path / "metadata.csv")
    assert list(df.columns) == COLUMNS
    assert df["variant_index"].tolist() == list(range(6))
    assert (df["review"] == "pending").all()
    for _, r in df.iterrows():
        v = fake_variant(int(r.variant_index))
        img = Image.open(tmp_path / r.file_name)
        assert img.mode == "RGB" and np.array_equal(np.asarray(img), v.image)
        lm = Image.open(tmp_path / r.label_map_file)
        assert lm.mode == "P" and np.array_equal(np.asarray(lm), v.label_map)   # palette index = class id
        assert tuple(lm.getpalette()[3:6]) == ds.class_palette(CLASSES)[1] == (0, 128, 0)   # 'green'
        assert np.array_equal(np.asarray(Image.open(tmp_path / r.mask_file)), v.mask)
        assert np.array_equal(np.asarray(Image.open(tmp_path / r.source_file).convert("RGB")), v.source_image)
        assert r.label == v.label and r.label_id == v.label_id and r.variant_seed == v.seed
        assert json.loads(r.params) == {"to": v.params["to"], "strength": v.params["strength"], "np": 0.25}
        assert json.loads(r.soft_label) == {"red": 0.25, "blue": 0.75}
        assert r.locality == pytest.approx(v.locality, abs=1e-6)
    # the shared reader types the columns and keeps empty strings as strings
    m = read_manifest(tmp_path)
    assert m["label_id"].dtype == np.int64 and m["file_name"][0] == "images/000000.png"
    pal = pd.read_csv(tmp_path / "label_maps" / "palette.csv")
    assert pal["name"].tolist() == CLASSES
    card = (tmp_path / "README.md").read_text()
    for needle in ("b" * 64, "a" * 64, "MIT (test)", "name: test-recipe\nmodel: tiny", "--out X",
                   "6 written of 10 requested", "| label_id | label | images |"):
        assert needle in card
    counts = df.groupby(["label_id", "label"]).size()
    for (lid, lab), n in counts.items():
        assert f"| {lid} | {lab} | {n} |" in card


def test_unconditional_layout_has_no_label_maps(tmp_path):
    info = run_info(conditional=False, save_source=False)
    with DatasetWriter(tmp_path) as w:
        w.begin(info)
        w.commit([w.write_variant(fake_variant(i, conditional=False)) for i in range(3)])
        w.finish(True)
    df = read_manifest(tmp_path)
    assert (df["label_map_file"] == "").all() and (df["source_file"] == "").all()
    assert (df["label"] == "faces").all() and (df["source_class"] == "").all()
    assert not (tmp_path / "label_maps").exists() and not (tmp_path / "sources").exists()


def test_png_bytes_are_deterministic_and_16bit_label_maps_for_many_classes():
    v = fake_variant(3)
    assert tio.encode_png(v.image) == tio.encode_png(v.image.copy())
    many = np.arange(300 * 4, dtype=np.int64).reshape(30, 40) % 1000
    im = Image.open(__import__("io").BytesIO(tio.encode_png(many, ds.class_palette([f"c{i}" for i in range(1000)]))))
    assert im.mode.startswith("I") and np.array_equal(np.asarray(im).astype(np.int64), many)


def test_resume_skips_committed_and_sorts_rows(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        w.commit([w.write_variant(fake_variant(i)) for i in (5, 1)])   # out of order on purpose
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        assert w.done == {1, 5}
        w.commit([w.write_variant(fake_variant(i)) for i in (0, 2, 3, 4) if i not in w.done])
        w.finish(True)
    ref = tmp_path.parent / "ref"
    write_run(ref, range(6))
    assert tree(tmp_path) == tree(ref)


def test_torn_last_line_is_cut_and_rendered_again(tmp_path):
    write_run(tmp_path, range(3), finish=False)
    path = tmp_path / "metadata.csv"
    full = path.read_bytes()
    path.write_bytes(full[: full.rstrip(b"\n").rfind(b"\n") + 30])   # crash in the middle of row 2
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        assert w.done == {0, 1}


@pytest.mark.parametrize("damage, msg", [
    (lambda t: t.replace("file_name,label", "file,label", 1), "line 1: the header"),
    (lambda t: t + "images/000009.png,red\n", "line 5: 2 fields"),
    (lambda t: t + t.splitlines()[2] + "\n", "already appears on line 3"),
])
def test_corrupt_manifest_is_a_clear_error(tmp_path, damage, msg):
    write_run(tmp_path, range(3))
    path = tmp_path / "metadata.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(DatasetError, match=msg) as e:
        read_manifest(tmp_path)
    assert "metadata.csv" in str(e.value)
    with pytest.raises(DatasetError, match=msg):
        with DatasetWriter(tmp_path) as w:
            w.begin(run_info())


def test_out_dir_problems(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        DatasetWriter(f).__enter__()
    with pytest.raises(DatasetError, match="is a file"):
        DatasetWriter(f / "sub").__enter__()
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a dataset made by this toolkit .*notes.txt"):
        DatasetWriter(foreign).__enter__()
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]      # untouched
    with pytest.raises(DatasetError, match="no manifest"):
        read_manifest(tmp_path / "nothing")


def test_failure_before_writing_leaves_no_directory(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "new"):
            raise RuntimeError("model failed to load")
    assert not (tmp_path / "new").exists()


def test_read_only_copy_can_be_read(tmp_path, monkeypatch):
    write_run(tmp_path / "ds", range(2))

    def read_only(path, mode, what):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(locks, "lock_fd", read_only)   # what a read-only mount does to the lock file
    assert len(read_manifest(tmp_path / "ds")) == 2
    # issue 13: a clear DatasetError (was a raw OSError), still naming the cause
    with pytest.raises(DatasetError, match="Read-only.*Nothing was changed"):
        update_review(tmp_path / "ds", {"images/000000.png": "accepted"})


def test_other_recipe_or_model_refuses_to_resume(tmp_path):
    write_run(tmp_path, range(2))
    with pytest.raises(DatasetError, match="recipe 'test-recipe'.*new --out"):
        with DatasetWriter(tmp_path) as w:
            w.begin(run_info(recipe_sha="c" * 64))
    with pytest.raises(DatasetError, match="made with model"):
        with DatasetWriter(tmp_path) as w:
            w.begin(run_info(model_sha="c" * 64))


def test_lock_refuses_second_runner(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        with pytest.raises(DatasetLockedError, match=r"another batch runner .*pid \d+.*another --out"):
            DatasetWriter(tmp_path).__enter__()
        with pytest.raises(DatasetLockedError):
            DatasetWriter(tmp_path, (0, 2)).__enter__()
    # shards of one split share the directory; the same shard twice is refused
    with DatasetWriter(tmp_path / "s", (0, 2)), DatasetWriter(tmp_path / "s", (1, 2)):
        with pytest.raises(DatasetLockedError, match="shard 0/2"):
            DatasetWriter(tmp_path / "s", (0, 2)).__enter__()
        with pytest.raises(DatasetLockedError, match="or a shard of one"):
            DatasetWriter(tmp_path / "s").__enter__()
    with DatasetWriter(tmp_path / "s"):    # released
        pass


def test_orphan_temp_files_are_removed(tmp_path):
    write_run(tmp_path, range(2), finish=False)
    junk = [tmp_path / "images" / ".000007.png.0123abcd.tmp", tmp_path / ".metadata.csv.89abcdef.tmp"]
    for p in junk:
        p.write_bytes(b"partial")
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
    assert not any(p.exists() for p in junk)


def test_shard_cleans_only_its_own_temp_files(tmp_path):
    write_run(tmp_path, [0, 2], shard=(0, 2), finish=False)
    mine, theirs = tmp_path / "images" / ".000004.png.0123abcd.tmp", tmp_path / "images" / ".000003.png.0123abcd.tmp"
    mine.write_bytes(b"x")
    theirs.write_bytes(b"x")
    with DatasetWriter(tmp_path, (0, 2)) as w:
        w.begin(run_info())
        assert w.done == {0, 2}
    assert not mine.exists() and theirs.exists()


def test_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    real = tio.write_file
    calls = {"n": 0}

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 7:   # variant 1's third file
            real(path, data[: len(data) // 2])   # a partial temp file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        monkeypatch.setattr(tio, "write_file", flaky)
        rows = [w.write_variant(fake_variant(0))]
        with pytest.raises(OSError, match="No space"):
            w.write_variant(fake_variant(1))
        w.commit(rows)
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert not list(tmp_path.rglob("000001.png"))           # the variant's earlier files were removed
    assert (tmp_path / "label_maps" / "000000.png").exists() and calls["n"] == 7
    assert read_manifest(tmp_path)["variant_index"].tolist() == [0]


def test_sharded_parts_merge_to_the_single_process_files(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    write_run(single, range(7), info=run_info(count=7))
    w0 = write_run(sharded, [i for i in range(7) if i % 2 == 0], shard=(0, 2), info=run_info(count=7))
    assert (sharded / "parts").is_dir() and not (sharded / "metadata.csv").exists()
    w1 = write_run(sharded, [i for i in range(7) if i % 2 == 1], shard=(1, 2), info=run_info(count=7))
    assert w0.shard == (0, 2) and w1.shard == (1, 2)
    assert not (sharded / "parts").exists()
    assert tree(sharded, skip={"README.md", "dataset.json"}) == tree(single, skip={"README.md", "dataset.json"})


def test_manifest_lock_is_exclusive_across_threads(tmp_path):
    order = []
    with manifest_lock(tmp_path):
        t = threading.Thread(target=lambda: (manifest_lock(tmp_path).__enter__(), order.append("t")))
        t.start()
        t.join(0.3)
        order.append("main")
    t.join(5)
    assert order == ["main", "t"]


def test_failed_shard_start_keeps_a_running_siblings_lock(tmp_path):
    d = tmp_path / "new"
    with DatasetWriter(d, (1, 2)):         # still starting up: the directory holds only lock files
        w = DatasetWriter(d, (0, 2)).__enter__()
        w._created = True          # as if both had found the directory missing at start
        w.__exit__(None, None, None)   # failed before begin()
        assert (d / ".lock").exists()
        with pytest.raises(DatasetLockedError):
            DatasetWriter(d).__enter__()


def test_many_class_models_get_16bit_label_maps_and_say_so(tmp_path):
    names = [f"class {i}" for i in range(300)]
    info = run_info()
    info.class_names = names
    v = fake_variant(0)
    v.label_map = (np.arange(16 * 16).reshape(16, 16) % 300).astype(np.uint16)
    with DatasetWriter(tmp_path) as w:
        w.begin(info)
        w.commit([w.write_variant(v)])
        w.finish(True)
    lm = Image.open(tmp_path / "label_maps" / "000000.png")
    assert lm.mode.startswith("I") and np.array_equal(np.asarray(lm), v.label_map)
    assert "16-bit grey" in (tmp_path / "README.md").read_text()
    assert len(pd.read_csv(tmp_path / "label_maps" / "palette.csv")) == 300


def test_append_after_a_half_written_append_repairs_first(tmp_path):
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info())
        w.commit([w.write_variant(fake_variant(0))])
        row1 = w.write_variant(fake_variant(1))
        line = manifest.rows_to_csv([row1], header=False)
        with open(tmp_path / "metadata.csv", "a") as f:     # a full disk stopped this append mid-line
            f.write(line[: len(line) // 2])
        w.commit([w.write_variant(fake_variant(2))])
    assert read_manifest(tmp_path)["variant_index"].tolist() == [0, 2]
    big = tmp_path / "big.csv"
    big.write_bytes(b"h\n" + b"x" * 200_000)        # torn tail longer than one read block
    manifest.repair_torn_tail(big)
    assert big.read_bytes() == b"h\n"


def test_resume_with_a_smaller_count_says_what_is_true(tmp_path):
    write_run(tmp_path, range(8), info=run_info(count=8))
    write_run(tmp_path, range(3), info=run_info(count=3))
    card = (tmp_path / "README.md").read_text()
    assert "8 written of 3 requested" not in card
    assert "8 written: 3 of the 3 the latest run requested (indices 0..2) and 5 beyond them" in card
    assert "(up to index 7)" in card


def test_run_info_from_provenance_and_older_run_info(tmp_path):
    from toolkit.provenance import Provenance
    base = {k: v for k, v in run_info().__dict__.items()
            if k not in ("model_id", "model_sha256", "model_license", "model_source", "model_nonfinite")}
    info = RunInfo.from_provenance(Provenance("tiny", "b" * 64, "zoo", "MIT", ("stem.weight",)), **base)
    assert (info.model_id, info.model_sha256, info.model_license, info.model_source) == ("tiny", "b" * 64, "MIT", "zoo")
    write_run(tmp_path / "nan", range(2), info=info)
    assert "NaN or infinite values in 1 tensor(s) (e.g. `stem.weight`)" in (tmp_path / "nan" / "README.md").read_text()
    write_run(tmp_path / "ok", range(2))
    assert "NaN" not in (tmp_path / "ok" / "README.md").read_text()
    # a dataset.json written before these fields existed still loads (and resumes)
    old = json.loads((tmp_path / "ok" / "dataset.json").read_text())
    del old["model_source"], old["model_nonfinite"]
    (tmp_path / "ok" / "dataset.json").write_text(json.dumps(old))
    assert RunInfo.load(tmp_path / "ok" / "dataset.json").model_nonfinite == []
    write_run(tmp_path / "ok", range(3))
    assert len(read_manifest(tmp_path / "ok")) == 3
