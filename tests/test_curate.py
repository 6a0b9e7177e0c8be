"""Curation: merge, review updates (library and CLI), filters, export (library and CLI).

The Review page and `python -m toolkit merge|review|export` call these same functions.
"""
from __future__ import annotations

import threading

import pytest

from dataset_fakes import CLASSES, fake_variant, run_info, tree, write_run
from toolkit import dataset as ds
from toolkit.dataset import (DatasetError, DatasetWriter, RunInfo, export_subset, merge, read_manifest,
                             update_review)


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

        review_done = threading.Event()

        def appender():
            for i in range(1, n):   # rows only (files are irrelevant to the race)
                w.commit([{**template, "variant_index": str(i), **ds.layout_files(i, CLASSES, True)}])
                if i <= 40:         # the first rows wait (bounded) for a review, so the two surely overlap
                    review_done.wait(5)
                    review_done.clear()

        t = threading.Thread(target=appender)
        t.start()
        reviewed = {}
        # (was `while alive or < 40 reviewed`: looped forever when the appender finished first)
        while t.is_alive():
            rows = read_manifest(tmp_path)
            name = rows["file_name"].iloc[-1]
            state = "accepted" if len(reviewed) % 2 else "rejected"
            update_review(tmp_path, {name: state})
            reviewed[name] = state
            review_done.set()
            if len(reviewed) > 200:
                break
        t.join()
    df = read_manifest(tmp_path)
    assert sorted(df["variant_index"]) == list(range(n))
    got = dict(zip(df["file_name"], df["review"]))
    assert all(got[k] == v for k, v in reviewed.items())
    assert len(reviewed) > 5


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
