"""Dataset layer: layout, manifest, atomic writes, locks, resume, review, merge, export.

Uses small synthetic rendered variants (the RenderedVariant fields of the recipes contract), so
these tests need no generator; tests/test_batch.py covers the real runner end to end.
"""
from __future__ import annotations

import errno
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from toolkit import dataset as ds
from toolkit import io as tio
from toolkit.dataset import locks, manifest
from toolkit.dataset import (COLUMNS, DatasetError, DatasetLockedError, DatasetWriter, RunInfo, export_subset,
                             manifest_lock, merge, read_manifest, update_review)

CLASSES = ["red", "green", "blue", "yellow", "cyan"]


@dataclass
class FakeVariant:
    index: int
    seed: int
    params: dict
    image: np.ndarray
    source_image: np.ndarray | None
    label_map: np.ndarray | None
    mask: np.ndarray
    label: str
    label_id: int
    soft_label: dict = field(default_factory=dict)
    source_class: str | None = None
    edit_classes: list = field(default_factory=list)
    locality: float = 0.0


def fake_variant(i: int, conditional: bool = True, size: int = 16) -> FakeVariant:
    rng = np.random.default_rng(i)
    lm = rng.integers(0, len(CLASSES), (size, size)).astype(np.uint8) if conditional else None
    lab = int(np.bincount(lm.ravel(), minlength=5).argmax()) if conditional else 0
    return FakeVariant(
        index=i, seed=1000 + i, params={"to": CLASSES[i % 5], "strength": 0.5 + i / 100, "np": np.float32(0.25)},
        image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        source_image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        label_map=lm, mask=(rng.random((size, size)) > 0.5).astype(np.uint8) * 255,
        label=CLASSES[lab] if conditional else "faces", label_id=lab,
        soft_label={"red": 0.25, "blue": 0.75}, source_class="red" if conditional else None,
        edit_classes=["blue"], locality=0.125 + i / 1000)


def run_info(conditional=True, save_source=True, recipe_sha="a" * 64, model_sha="b" * 64, count=10) -> RunInfo:
    return RunInfo(recipe_name="test-recipe", recipe_sha256=recipe_sha, recipe_text="name: test-recipe\nmodel: tiny\n",
                   recipe_path="recipes/test.yaml", model_id="tiny", model_sha256=model_sha,
                   model_license="MIT (test)", model_architecture="sngan",
                   class_names=CLASSES if conditional else [], count=count, save_source=save_source,
                   toolkit_version="0.0-test", commands=["python -m toolkit batch recipes/test.yaml --out X"])


def write_run(d: Path, indices, shard=None, info=None, finish=True) -> DatasetWriter:
    with DatasetWriter(d, shard) as w:
        w.begin(info or run_info())
        w.commit([w.write_variant(fake_variant(i)) for i in indices if i not in w.done])
        if finish:
            w.finish(complete=True)
    return w


def tree(d: Path, skip=()) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in skip}


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


def test_update_review_and_errors(tmp_path):
    write_run(tmp_path, range(4))
    assert update_review(tmp_path, {"images/000001.png": "accepted", "images/000003.png": "rejected"}) == 2
    df = read_manifest(tmp_path)
    assert df["review"].tolist() == ["pending", "accepted", "pending", "rejected"]
    before = (tmp_path / "metadata.csv").read_bytes()
    with pytest.raises(DatasetError, match="'maybe'.*accepted, rejected"):
        update_review(tmp_path, {"images/000001.png": "maybe"})
    with pytest.raises(DatasetError, match="no row with file_name 'images/999.png'"):
        update_review(tmp_path, {"images/000000.png": "accepted", "images/999.png": "accepted"})
    assert (tmp_path / "metadata.csv").read_bytes() == before


def test_review_while_a_runner_appends_loses_no_rows(tmp_path):
    n = 120
    with DatasetWriter(tmp_path) as w:
        w.begin(run_info(count=n))
        first = w.write_variant(fake_variant(0))
        w.commit([first])
        template = dict(first)

        def appender():
            for i in range(1, n):   # rows only (files are irrelevant to the race)
                w.commit([{**template, "variant_index": str(i), **ds.layout_files(i, CLASSES, True)}])

        t = threading.Thread(target=appender)
        t.start()
        reviewed, rounds = {}, 0
        # bounded: once the appender is done, the last row is always the same name
        while (t.is_alive() or len(reviewed) < 40) and rounds < 400:
            rounds += 1
            rows = read_manifest(tmp_path)
            name = rows["file_name"].iloc[-1]
            state = "accepted" if len(reviewed) % 2 else "rejected"
            update_review(tmp_path, {name: state})
            reviewed[name] = state
            if len(reviewed) > 200:
                break
        t.join()
    df = read_manifest(tmp_path)
    assert sorted(df["variant_index"]) == list(range(n))
    got = dict(zip(df["file_name"], df["review"]))
    assert all(got[k] == v for k, v in reviewed.items())
    assert len(reviewed) > 5


def test_sharded_parts_merge_to_the_single_process_files(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    write_run(single, range(7), info=run_info(count=7))
    w0 = write_run(sharded, [i for i in range(7) if i % 2 == 0], shard=(0, 2), info=run_info(count=7))
    assert (sharded / "parts").is_dir() and not (sharded / "metadata.csv").exists()
    w1 = write_run(sharded, [i for i in range(7) if i % 2 == 1], shard=(1, 2), info=run_info(count=7))
    assert w0.shard == (0, 2) and w1.shard == (1, 2)
    assert not (sharded / "parts").exists()
    assert tree(sharded, skip={"README.md", "dataset.json"}) == tree(single, skip={"README.md", "dataset.json"})


def test_merge_dirs_from_separate_machines_and_keep_reviews(tmp_path):
    single = tmp_path / "single"
    write_run(single, range(6), info=run_info(count=6))
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, [0, 2, 4], shard=(0, 2), info=run_info(count=6))
    write_run(b, [1, 3, 5], shard=(1, 2), info=run_info(count=6))
    res = merge(a, b)
    assert res.rows == 6 and res.missing == []
    assert tree(a, skip={"README.md", "dataset.json"}) == tree(single, skip={"README.md", "dataset.json"})
    update_review(a, {"images/000002.png": "accepted"})
    merge(a)   # idempotent; keeps the review
    assert read_manifest(a)["review"].tolist()[2] == "accepted"
    c = tmp_path / "c"
    write_run(c, [0], info=run_info(recipe_sha="d" * 64, count=6))
    with pytest.raises(DatasetError, match="recipe"):
        merge(a, c)
    partial = tmp_path / "partial"
    write_run(partial, [0, 2, 4], shard=(0, 2), info=run_info(count=6))
    assert merge(partial).missing == [1, 3, 5]


def test_export_subset(tmp_path):
    src = tmp_path / "src"
    write_run(src, range(5))
    update_review(src, {"images/000001.png": "accepted", "images/000003.png": "accepted"})
    dest = export_subset(src, tmp_path / "dest", ["images/000003.png", "images/000001.png"])
    df = read_manifest(dest)
    assert df["file_name"].tolist() == ["images/000001.png", "images/000003.png"]
    assert (df["review"] == "accepted").all()
    for col in ("file_name", "label_map_file", "mask_file", "source_file"):
        for f in df[col]:
            assert (dest / f).read_bytes() == (src / f).read_bytes()
    assert "2 written" in (dest / "README.md").read_text()
    assert not (dest / "images" / "000000.png").exists()
    with pytest.raises(DatasetError, match="not empty"):
        export_subset(src, dest, ["images/000000.png"])
    with pytest.raises(DatasetError, match="no row with file_name"):
        export_subset(src, tmp_path / "d2", ["nope.png"])


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


# -- curation: filters, CLI review/export, merge edge cases (issues 11 and 13) ------------------------
def test_select_rows_and_parse_where(tmp_path):
    write_run(tmp_path, range(6))
    df = read_manifest(tmp_path)
    W = ds.Where
    assert ds.parse_where("label=red") == W("label", ("red",))
    assert ds.parse_where("locality<=0.5") == W("locality", hi=0.5)
    assert ds.parse_where("label_id>=2") == W("label_id", lo=2.0)
    for bad in ("label", "=red", "locality<=x"):
        with pytest.raises(DatasetError, match="--where"):
            ds.parse_where(bad)
    labels = sorted(set(df["label"]))
    got = ds.select_rows(df, [W("label", (labels[0],)), W("label", (labels[-1],))])
    assert set(got["label"]) == {labels[0], labels[-1]}
    assert len(got) == df["label"].isin([labels[0], labels[-1]]).sum()
    got = ds.select_rows(df, [W("locality", lo=0.1265, hi=0.1285), W("variant_index", ("1", "2", "3", "5"))])
    assert got["variant_index"].tolist() == [2, 3]          # locality 0.127, 0.128; 1 and 5 outside the range
    assert ds.select_rows(df, [W("label_id", (str(df.label_id[0]),))])["label_id"].eq(df.label_id[0]).all()
    with pytest.raises(DatasetError, match="no column 'colour'.*file_name"):
        ds.select_rows(df, [W("colour", ("red",))])
    with pytest.raises(DatasetError, match="not numeric"):
        ds.select_rows(df, [W("label", lo=1.0)])


def test_review_cli_from_csv_and_by_filter(tmp_path, capsys):
    from toolkit.cli import build_parser, main
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for cmd, flag in (("review", "set"), ("export", "status")):
        assert tuple(next(a for a in sub[cmd]._actions if a.dest == flag).choices) == ds.REVIEW_STATES
    d = tmp_path / "ds"
    write_run(d, range(6))
    review = tmp_path / "review.csv"
    review.write_text("file_name,review,note\nimages/000001.png,accepted,ok\nimages/000004.png,rejected,blurry\n")
    assert main(["review", str(d), "--from-csv", str(review)]) == 0
    assert "2 of 2 listed rows changed" in capsys.readouterr().out
    assert read_manifest(d)["review"].tolist() == ["pending", "accepted", "pending", "pending", "rejected", "pending"]
    before = (d / "metadata.csv").read_bytes()
    review.write_text("file_name,review\nimages/000002.png,accepted\nimages/000003.png,maybe\n")
    assert main(["review", str(d), "--from-csv", str(review)]) == 1
    err = capsys.readouterr().err
    assert "review.csv: line 3: review 'maybe'" in err and "Traceback" not in err
    review.write_text("name,status\nimages/000002.png,accepted\n")
    assert main(["review", str(d), "--from-csv", str(review)]) == 1
    assert "needs the columns file_name,review" in capsys.readouterr().err
    assert (d / "metadata.csv").read_bytes() == before
    # by filter: the same select_rows the Review page uses
    label = read_manifest(d)["label"][0]
    assert main(["review", str(d), "--where", f"label={label}", "--set", "rejected"]) == 0
    df = read_manifest(d)
    n = int((df["label"] == label).sum())
    assert f"{n} rows match" in capsys.readouterr().out
    assert set(df.loc[df["label"] == label, "review"]) == {"rejected"}
    assert df.loc[df["label"] != label, "review"].tolist() == \
        [s for s, lab in zip(["pending", "accepted", "pending", "pending", "rejected", "pending"], df["label"])
         if lab != label]
    assert main(["review", str(d), "--where", "label=red"]) == 1
    assert "--set" in capsys.readouterr().err
    assert main(["review", str(d)]) == 1 and "either --from-csv" in capsys.readouterr().err


def test_export_cli_by_status_and_filter(tmp_path, capsys):
    from toolkit.cli import main
    src = tmp_path / "src"
    write_run(src, range(6))
    update_review(src, {"images/000001.png": "accepted", "images/000002.png": "accepted",
                        "images/000005.png": "accepted"})
    assert main(["export", str(src), "--to", str(tmp_path / "acc"), "--status", "accepted"]) == 0
    assert "exported 3 rows" in capsys.readouterr().out
    assert read_manifest(tmp_path / "acc")["variant_index"].tolist() == [1, 2, 5]
    assert main(["export", str(src), "--to", str(tmp_path / "acc2"), "--status", "accepted",
                 "--where", "variant_index<=2"]) == 0
    assert read_manifest(tmp_path / "acc2")["variant_index"].tolist() == [1, 2]
    assert main(["export", str(src), "--to", str(tmp_path / "none"), "--where", "label=nothing"]) == 1
    assert "no rows match" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["export", str(src), "--to", str(src / "inside")]) == 1
    assert "inside the source" in capsys.readouterr().err and not (src / "inside").exists()


def test_merge_runs_of_one_recipe_with_different_counts(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, range(4), info=run_info(count=4))
    with DatasetWriter(b) as w:
        w.begin(run_info(count=7))
        vs = [fake_variant(i) for i in range(7)]
        vs[2].locality += 1e-3          # rendered in another batch composition: pixels may move by a level
        w.commit([w.write_variant(v) for v in vs])
        w.finish(True)
    res = merge(a, b)
    assert (res.rows, res.missing) == (7, [])
    assert RunInfo.load(a / "dataset.json").count == 7
    df = read_manifest(a)
    assert df["locality"][2] == pytest.approx(fake_variant(2).locality, abs=1e-6)   # the target's copy is kept
    assert "7 written of 7 requested" in (a / "README.md").read_text()


def test_resume_with_a_smaller_count_says_what_is_true(tmp_path):
    write_run(tmp_path, range(8), info=run_info(count=8))
    write_run(tmp_path, range(3), info=run_info(count=3))
    card = (tmp_path / "README.md").read_text()
    assert "8 written of 3 requested" not in card
    assert "8 written: 3 of the 3 the latest run requested (indices 0..2) and 5 beyond them" in card
    assert "(up to index 7)" in card


def test_merge_accepts_a_torn_last_line(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, [0, 2, 4], shard=(0, 2), info=run_info(count=6))
    write_run(b, [1, 3, 5], shard=(1, 2), info=run_info(count=6))
    part = b / "parts" / "shard-1-of-2.csv"
    full = part.read_bytes()
    part.write_bytes(full[: full.rstrip(b"\n").rfind(b"\n") + 25])   # b was killed while appending variant 5
    source_before = part.read_bytes()
    res = merge(a, b)
    assert res.rows == 5 and res.missing == [5]
    assert part.read_bytes() == source_before                  # the source is only read
    assert not (a / "images" / "000005.png").exists()
    # the target's own torn tail is cut under the lock, as a resume would
    m = a / "metadata.csv"
    m.write_bytes(m.read_bytes() + b"images/000009.png,re")
    assert merge(a).rows == 5 and m.read_bytes().endswith(b"\n")


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
