"""Hostile dataset folders (issue 13, items 1, 4, 5 and 8): crafted manifests, look-alike folders,
read-only datasets and a full disk.

Every test asserts the clear error AND that nothing outside the folders involved changed: a
sentinel file outside (mode 600, like a key) keeps its inode, mode, bytes and mtime, and its folder
gains no file. The read-only and disk-full cases mount a small tmpfs (root only; skipped with the
reason otherwise).
"""
from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from toolkit import dataset as ds
from toolkit import io as tio
from toolkit.cli import main
from toolkit.dataset import DatasetError, DatasetWriter, RunInfo, export_subset, merge, read_manifest, update_review

CLASSES = ["red", "green", "blue"]
ROOT = Path(__file__).resolve().parents[2]


def info(count: int = 8) -> RunInfo:
    return RunInfo(recipe_name="hostile", recipe_sha256="a" * 64, recipe_text="name: hostile\n", recipe_path="",
                   model_id="tiny", model_sha256="b" * 64, model_license="MIT", model_architecture="sngan",
                   class_names=CLASSES, count=count, save_source=True, toolkit_version="test", commands=["c"],
                   part_model="parts.safetensors", part_model_sha256="c" * 64, part_names=["p0", "p1"],
                   part_points=[2], part_colors=[[1, 2, 3], [4, 5, 6]])


def variant(i: int, size: int = 16):
    rng = np.random.default_rng(i)
    return SimpleNamespace(
        index=i, seed=100 + i, params={"i": i}, image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        source_image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        label_map=rng.integers(0, 3, (size, size)).astype(np.uint8),
        part_map=rng.integers(0, 2, (size, size)).astype(np.uint8),
        mask=(rng.random((size, size)) > 0.5).astype(np.uint8) * 255, label="red", label_id=0,
        soft_label={"red": 1.0}, source_class="red", edit_classes=["blue"], locality=0.1)


def make_dataset(d: Path, indices, count: int = 8) -> Path:
    with DatasetWriter(d) as w:
        w.begin(info(count))
        w.commit([w.write_variant(variant(i)) for i in indices])
        w.finish(True)
    return d


def tree(d: Path) -> dict[str, tuple]:
    """Every entry under d (links not followed): kind, inode, mode and bytes."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        body = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
        out[str(p.relative_to(d))] = (st.st_ino, st.st_mode, body)
    return out


@dataclass
class Sentinel:
    """A private file outside every dataset folder; `unchanged()` compares inode, mode, bytes,
    mtime and the listing of its folder."""
    path: Path
    before: tuple = ()

    def __post_init__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(tio.encode_png(np.full((8, 8, 3), 7, np.uint8)))   # a PNG: worth copying
        os.chmod(self.path, 0o600)
        self.before = self.snapshot()

    def snapshot(self) -> tuple:
        st = self.path.stat()
        return (st.st_ino, st.st_mode, st.st_mtime_ns, self.path.read_bytes(),
                sorted(p.name for p in self.path.parent.iterdir()))

    def unchanged(self) -> bool:
        return self.snapshot() == self.before


@pytest.fixture
def sentinel(tmp_path) -> Sentinel:
    return Sentinel(tmp_path / "outside" / "secret.png")


def craft(d: Path, line: int, column: str, value: str) -> None:
    """Replace one field of one data line of DIR/metadata.csv (line 2 = first row), as an attacker would."""
    path = d / "metadata.csv"
    lines = path.read_text().splitlines(keepends=True)
    cols = lines[0].rstrip("\n").split(",")
    fields = lines[line - 1].rstrip("\n").split(",")    # the rows written here have no quoted commas
    fields[cols.index(column)] = value
    lines[line - 1] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


# -- 1. manifest paths are untrusted ------------------------------------------------------------------
@pytest.mark.parametrize("column, value", [
    ("file_name", "ABS"),                      # an absolute path to the sentinel
    ("mask_file", "../../outside/secret.png"),
    ("source_file", "sources/../../outside/secret.png"),
    ("label_map_file", "images/000001.png"),   # inside, but not this row's file
    ("part_map_file", "../../outside/secret.png"),
    ("part_map_file", "part_maps/000003.png"),  # another row's part map
])
def test_crafted_paths_are_refused_by_merge_export_and_review(tmp_path, sentinel, column, value):
    value = str(sentinel.path) if value == "ABS" else value
    src = make_dataset(tmp_path / "ws" / "src", range(6))
    craft(src, 6, column, value)                     # row 5 of 6: rows before it are fine
    target = make_dataset(tmp_path / "ws" / "target", [6, 7])
    before_target, before_src = tree(target), tree(src)
    for call in (lambda: merge(target, src),
                 lambda: export_subset(src, tmp_path / "ws" / "export", [f"images/{i:06d}.png" for i in range(5)]),
                 lambda: read_manifest(src),
                 lambda: update_review(src, {"images/000000.png": "accepted"})):
        with pytest.raises(DatasetError, match=rf"metadata.csv: line 6 \(variant 4\): {column} .*Nothing was read"):
            call()
    assert main(["export", str(src), "--to", str(tmp_path / "ws" / "export")]) == 1
    assert tree(target) == before_target and tree(src) == before_src
    assert not (tmp_path / "ws" / "export").exists()
    assert sentinel.unchanged()


def test_symlinked_files_and_folders_are_not_followed_out(tmp_path, sentinel):
    src = make_dataset(tmp_path / "src", range(5))
    (src / "images" / "000003.png").unlink()
    (src / "images" / "000003.png").symlink_to(sentinel.path)          # a file link leading out
    target = make_dataset(tmp_path / "target", [5])
    before = tree(target)
    with pytest.raises(DatasetError, match=r"000003.png: file_name resolves to .*secret.png, outside"):
        merge(target, src)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        export_subset(src, tmp_path / "export", [f"images/{i:06d}.png" for i in range(5)])
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        ds.resolve_row_file(src, read_manifest(src).iloc[3].to_dict(), "file_name")
    assert ds.resolve_row_file(src, read_manifest(src).iloc[2].to_dict(), "file_name") == src / "images/000002.png"
    assert tree(target) == before and not (tmp_path / "export").exists()
    # a whole folder linked out: sources/ -> the sentinel's folder (holding 000000.png there)
    shutil.copy(sentinel.path, sentinel.path.parent / "000000.png")
    sentinel.before = sentinel.snapshot()
    (src / "images" / "000003.png").unlink()
    tio.atomic_write_bytes(src / "images" / "000003.png", tio.encode_png(variant(3).image))
    shutil.rmtree(src / "sources")
    (src / "sources").symlink_to(sentinel.path.parent, target_is_directory=True)
    with pytest.raises(DatasetError, match=r"sources/000000.png: source_file resolves to .*outside"):
        export_subset(src, tmp_path / "export", ["images/000000.png"])
    # a part map linked out
    (src / "sources").unlink()
    (src / "sources").mkdir()
    tio.atomic_write_bytes(src / "sources" / "000002.png", tio.encode_png(variant(2).source_image))
    (src / "part_maps" / "000002.png").unlink()
    (src / "part_maps" / "000002.png").symlink_to(sentinel.path)
    with pytest.raises(DatasetError, match=r"part_maps/000002.png: part_map_file resolves to .*outside"):
        export_subset(src, tmp_path / "export", ["images/000002.png"])
    # the merge target's own folder linked out: nothing is written through it
    ok = make_dataset(tmp_path / "ok", [0])
    shutil.rmtree(target / "masks")
    (target / "masks").symlink_to(sentinel.path.parent, target_is_directory=True)
    with pytest.raises(DatasetError, match="mask_file resolves to .*outside"):
        merge(target, ok)
    assert not (target / "images" / "000000.png").exists()
    assert sentinel.unchanged()


def test_review_page_thumbnails_never_read_outside(tmp_path, sentinel, monkeypatch):
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    ws = tmp_path / "ws"
    src = make_dataset(ws / "src", range(3))
    (src / "images" / "000001.png").unlink()
    (src / "images" / "000001.png").symlink_to(sentinel.path)
    monkeypatch.setenv("NCT_WORKSPACE", str(ws))
    monkeypatch.setenv("NCT_RECIPES_DIR", str(tmp_path / "recipes"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["model_choice"] = "tiny"
    at.session_state["_model_picked"] = True
    at.session_state["review_dir"] = str(src)
    at.session_state[f"review_cursor_{src.resolve()}"] = 1
    at.run()
    at.switch_page("pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("missing or refused" in w.value for w in at.warning)     # the gallery shows nothing of it
    at.segmented_control(key="review_mode").set_value("Table").run()
    urls = list(at.get("dataframe")[0].value["image"])
    assert urls[1] == "" and urls[0].startswith("data:image/png;base64,") and urls[2]
    shown = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    assert shown.size == (64, 64)
    assert sentinel.unchanged()


# -- 4. look-alike folders --------------------------------------------------------------------------
def look_alike(d: Path) -> Path:
    (d / "images").mkdir(parents=True)
    (d / "images" / "000000.png").write_bytes(tio.encode_png(np.zeros((4, 4, 3), np.uint8)))
    (d / "README.md").write_text("# my notes\n")
    return d


def test_a_folder_that_only_looks_like_a_dataset_is_never_written(tmp_path, sentinel, capsys):
    home = look_alike(tmp_path / "home")
    before = tree(home)
    with pytest.raises(DatasetError, match=r"not a dataset made by this toolkit \(found README.md, images; "
                                           r"no dataset.json\)"):
        DatasetWriter(home).__enter__()
    real = make_dataset(tmp_path / "real", range(2))
    with pytest.raises(DatasetError, match="not a dataset made by this toolkit"):
        merge(home, real)                                # would have replaced the user's README.md
    with pytest.raises(DatasetError, match="no dataset.json"):
        merge(home)
    with pytest.raises(DatasetError, match="not empty"):
        export_subset(real, home, ["images/000000.png"])
    # with a manifest too (a copied-by-hand dataset without its marker file)
    shutil.copy(real / "metadata.csv", home / "metadata.csv")
    before = tree(home)
    assert main(["merge", str(home), str(real)]) == 1
    assert "no dataset.json" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="no dataset.json.*not rewritten"):
        update_review(home, {"images/000000.png": "accepted"})
    # a marker that is a link is no marker
    (home / "dataset.json").symlink_to(real / "dataset.json")
    before = tree(home)
    with pytest.raises(DatasetError, match="not a dataset made by this toolkit"):
        DatasetWriter(home).__enter__()
    assert tree(home) == before and sentinel.unchanged()
    # a truly empty folder is accepted, and so is an existing dataset
    (tmp_path / "empty").mkdir()
    make_dataset(tmp_path / "empty", [0])
    assert merge(tmp_path / "empty", real).rows == 2


# -- 8. export into its own source, read-only datasets ------------------------------------------------
def test_export_into_its_own_source_is_refused(tmp_path, sentinel):
    src = make_dataset(tmp_path / "src", range(3))
    before = tree(src)
    for dest in (src / "accepted", src / "images" / "sub", src / "x" / ".." / "y"):
        with pytest.raises(DatasetError, match="inside the source dataset"):
            export_subset(src, dest, ["images/000000.png"])
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    with pytest.raises(DatasetError, match="inside the source dataset"):
        export_subset(src, tmp_path / "link" / "sub", ["images/000000.png"])
    assert tree(src) == before and sentinel.unchanged()


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (mount -t tmpfs) needs root; run as root to test this")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount -t tmpfs failed here ({r.stderr.strip()}); a container without CAP_SYS_ADMIN?")


@pytest.fixture
def tmpfs(tmp_path):
    mounts = []

    def mount(name: str, size: str = "1m") -> Path:
        p = tmp_path / name
        _mount_tmpfs(p, size)
        mounts.append(p)
        return p

    yield mount
    for p in mounts:
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def test_read_only_dataset(tmpfs, tmp_path, sentinel, capsys):
    mnt = tmpfs("ro")
    d = make_dataset(mnt / "ds", range(4))
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    before = tree(d)
    assert len(read_manifest(d)) == 4                          # reading needs no lock file
    with pytest.raises(DatasetError, match=r"cannot save review changes \(Read-only file system.*Nothing was "
                                           r"changed.*python -m toolkit export"):
        update_review(d, {"images/000001.png": "accepted"})
    assert main(["review", str(d), "--where", "variant_index=1", "--set", "accepted"]) == 1
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err
    # what the message suggests works: export to a writable folder, and merging from it works too
    assert main(["export", str(d), "--to", str(tmp_path / "copy")]) == 0
    assert update_review(tmp_path / "copy", {"images/000001.png": "accepted"}) == 1
    other = tmp_path / "merged"
    assert merge(other, d).rows == 4
    assert tree(d) == before and sentinel.unchanged()


# -- 5. a full disk while appending to the manifest -----------------------------------------------------
def fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as e:
        assert e.errno == 28, e           # ENOSPC: the disk is full now
    finally:
        os.close(fd)
    return filler


def test_disk_full_while_appending_says_where_and_how_to_resume(tmpfs, sentinel):
    mnt = tmpfs("small", "1m")
    d = mnt / "ds"
    with DatasetWriter(d) as w:
        w.begin(info(count=20))
        w.commit([w.write_variant(variant(i)) for i in range(3)])
        rows = [w.write_variant(variant(i)) for i in range(3, 15)]      # files on disk, rows not yet
        filler = fill(mnt)
        with pytest.raises(DatasetError) as e:
            w.commit(rows)
        msg = str(e.value)
        assert str(d) in msg and "No space left on device" in msg
        assert "Nothing was lost: the 3 variants already in the manifest are intact" in msg
        assert "rerun the same command to resume" in msg
        assert w.done == {0, 1, 2}
        # the append stopped part-way: whole rows (their files are durable) and maybe a torn line
        kept = read_manifest(d)["variant_index"].tolist()               # a torn tail is not a row
        assert kept == list(range(len(kept))) and 3 <= len(kept) < 15
        before = (d / "metadata.csv").read_bytes()
        with pytest.raises(DatasetError, match="cannot save review changes.*No space left.*Nothing was changed"):
            update_review(d, {"images/000000.png": "accepted"})
        assert before.startswith((d / "metadata.csv").read_bytes())      # at most the torn tail was cut
    filler.unlink()
    with DatasetWriter(d) as w:                                          # the resume
        w.begin(info(count=20))
        assert w.done == set(kept)
        w.commit([w.write_variant(variant(i)) for i in range(len(kept), 20)])
        w.finish(True)
    df = read_manifest(d)
    assert df["variant_index"].tolist() == list(range(20)) and (df["review"] == "pending").all()
    for i in range(20):
        assert np.array_equal(np.asarray(Image.open(d / f"images/{i:06d}.png")), variant(i).image)
    assert sentinel.unchanged()


RECIPE = """\
name: hostile-swap
model: tiny
seed: 3
count: 40
source:
  classes: all
edits:
  - label_swap:
      to: {choice: [blue, yellow]}
      region: {shape: rectangle, box: [0.2, 0.2, 0.7, 0.7]}
      stages: [0, 2]
output:
  save_source: true
"""


def test_batch_run_on_a_full_disk_then_resume_is_byte_identical(tmpfs, tmp_path, sentinel):
    import torch
    from toolkit.batch import run_batch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = tmp_path / "r.yaml"
        recipe.write_text(RECIPE)
        mnt = tmpfs("disk", "256k")
        with pytest.raises(DatasetError) as e:
            run_batch(recipe, mnt / "ds", count=40, batch_size=4, device="cpu", command="c")
        msg = str(e.value)
        assert str(mnt / "ds") in msg and "No space left on device" in msg and "rerun the same command" in msg
        kept = read_manifest(mnt / "ds")["variant_index"].tolist()
        assert 0 < len(kept) < 40 and kept == sorted(set(kept))   # the batch's finished variants may skip one
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        s = run_batch(recipe, mnt / "ds", count=40, batch_size=4, device="cpu", command="c")
        assert s.complete and s.skipped == len(kept)
        run_batch(recipe, tmp_path / "ref", count=40, batch_size=4, device="cpu", command="c")
    finally:
        torch.set_num_threads(threads)
    files = lambda d: {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
                       if p.is_file() and not p.name.startswith(".")}
    assert files(mnt / "ds") == files(tmp_path / "ref")
    assert sentinel.unchanged()
