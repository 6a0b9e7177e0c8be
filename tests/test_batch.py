"""The batch runner end to end on the tiny model: round trip, determinism across batch sizes and
shards, stop/kill + resume (byte-identical), locks, torchrun, bad input, failing disk."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from toolkit import dataset as ds
from toolkit import io as tio
from toolkit.batch import device_for, parse_shard, run_batch, shard_from_env
from toolkit.cli import main
from toolkit.dataset import COLUMNS, DatasetError, DatasetLockedError, DatasetWriter, read_manifest
from toolkit.loading import load_generator
from toolkit.pipeline import render_variants
from toolkit.recipes import load_recipe

REPO = Path(__file__).resolve().parents[1]
PIXEL_COLUMNS = {"locality"}   # derived from pixels: may move when pixels move by one 8-bit level

RECIPE = """\
name: test-swap
model: tiny
seed: 7
count: 12
source:
  classes: all
edits:
  - label_swap:
      to: {choice: [blue, yellow]}
      region: {shape: rectangle, box: [0.2, 0.2, 0.7, 0.7], jitter: {translate: 0.1}}
      stages: [0, 2]
output:
  save_source: true
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def recipe_file(tmp_path) -> Path:
    p = tmp_path / "recipes" / "test-swap.yaml"
    p.parent.mkdir()
    p.write_text(RECIPE)
    return p


def tree(d: Path, skip=()) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in skip}


def assert_consistent(d: Path) -> pd.DataFrame:
    """Every manifest row's files exist and decode; no temp files; no files without a row."""
    df = read_manifest(d)
    referenced = set()
    for col in ("file_name", "label_map_file", "mask_file", "source_file"):
        for f in df[col]:
            if f:
                Image.open(d / f).load()
                referenced.add(f)
    on_disk = {str(p.relative_to(d)) for p in d.rglob("*.png")}
    assert on_disk <= referenced | {"label_maps/palette.csv"}, sorted(on_disk - referenced)[:5]
    assert not list(d.rglob("*.tmp"))
    return df


def compare_datasets(a: Path, b: Path, max_level_diff: int = 1) -> None:
    """Same rows (parameters, labels, seeds) and pixels equal or at most one 8-bit level apart."""
    ma, mb = read_manifest(a), read_manifest(b)
    cols = [c for c in COLUMNS if c not in PIXEL_COLUMNS]
    pd.testing.assert_frame_equal(ma[cols], mb[cols])
    for col in ("file_name", "label_map_file", "mask_file", "source_file"):
        for f in ma[col]:
            if f:
                xa, xb = (np.asarray(Image.open(d / f)).astype(int) for d in (a, b))
                assert np.abs(xa - xb).max() <= max_level_diff, f


def test_round_trip(recipe_file, tmp_path):
    seen = []
    s = run_batch(recipe_file, tmp_path / "out", count=9, batch_size=4, device="cpu",
                  progress=lambda d, t: seen.append((d, t)))
    assert (s.written, s.skipped, s.failed, s.complete) == (9, 0, 0, True)
    assert seen[0] == (0, 9) and seen[-1] == (9, 9) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    df = assert_consistent(tmp_path / "out")
    raw = pd.read_csv(tmp_path / "out" / "metadata.csv")      # plain pandas, as a user would
    assert list(raw.columns) == COLUMNS and len(raw) == 9
    recipe = load_recipe(recipe_file)
    gen = load_generator(recipe.model, device="cpu")
    direct = render_variants(gen, recipe, [recipe.variant(i) for i in range(9)])
    for rv, (_, row) in zip(direct, df.iterrows()):
        assert row.variant_index == rv.index and row.variant_seed == rv.seed == recipe.variant(rv.index).seed
        assert json.loads(row.params) == json.loads(json.dumps(rv.params))
        assert (row.label, row.label_id) == (rv.label, rv.label_id)
        assert row.recipe_sha256 == recipe.sha256 and row.model_id == "tiny"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / row.file_name)), rv.image)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / row.label_map_file)), rv.label_map)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / row.source_file)), rv.source_image)
    card = (tmp_path / "out" / "README.md").read_text()
    assert recipe.text.strip() in card and gen.provenance.sha256 in card and "MIT" in card
    # a complete rerun does nothing and changes nothing
    before = tree(tmp_path / "out")
    s2 = run_batch(recipe_file, tmp_path / "out", count=9, batch_size=4, device="cpu")
    assert (s2.written, s2.skipped) == (0, 9) and tree(tmp_path / "out") == before


def test_in_memory_recipe_as_the_app_passes_it(recipe_file, tmp_path):
    import yaml
    from toolkit.recipes import parse_recipe
    recipe = parse_recipe(yaml.safe_load(RECIPE), source="app", base_dir=recipe_file.parent)
    stop = threading.Event()
    s = run_batch(recipe, tmp_path / "mem", count=3, batch_size=2, device="cpu", stop=stop)
    assert s.written == 3 and "in memory" in (tmp_path / "mem" / "README.md").read_text()
    run_batch(recipe_file, tmp_path / "file", count=3, batch_size=2, device="cpu")
    assert tree(tmp_path / "mem", skip={"README.md", "dataset.json"}) == \
        tree(tmp_path / "file", skip={"README.md", "dataset.json"})


def test_model_given_as_a_weights_file_next_to_the_recipe(recipe_file, tmp_path):
    from toolkit.checkpoints import save_generator
    save_generator(load_generator("tiny", device="cpu"), recipe_file.parent / "my-tiny.safetensors")
    local = recipe_file.parent / "local.yaml"
    local.write_text(RECIPE.replace("model: tiny", "model: my-tiny.safetensors"))
    s = run_batch(local, tmp_path / "out", count=2, device="cpu")
    assert s.written == 2
    df = read_manifest(tmp_path / "out")
    assert df.model_id[0] == str((recipe_file.parent / "my-tiny.safetensors").resolve())
    assert "unknown: check the weights" in (tmp_path / "out" / "README.md").read_text()


def test_loads_with_hf_datasets_if_installed(recipe_file, tmp_path):
    datasets = pytest.importorskip("datasets")
    run_batch(recipe_file, tmp_path / "out", count=4, batch_size=4, device="cpu")
    d = tmp_path / "out"
    hf = datasets.load_dataset("imagefolder", data_files={"train": [str(d / "metadata.csv"), str(d / "images/*.png")]},
                               split="train")
    assert len(hf) == 4 and "label" in hf.column_names


def test_same_dataset_across_batch_sizes_and_shards(recipe_file, tmp_path):
    run_batch(recipe_file, tmp_path / "b4", count=7, batch_size=4, device="cpu")
    run_batch(recipe_file, tmp_path / "b3", count=7, batch_size=3, device="cpu", workers=1)
    for k in (2, 0, 1):   # any order; the last one to finish merges
        s = run_batch(recipe_file, tmp_path / "sh", count=7, batch_size=2, device="cpu", shard=(k, 3))
        assert s.written == len(range(k, 7, 3))
    assert s.complete and not (tmp_path / "sh" / "parts").exists()
    for other in ("b3", "sh"):
        compare_datasets(tmp_path / "b4", tmp_path / other)


def test_stop_then_resume_is_byte_identical(recipe_file, tmp_path, monkeypatch):
    import toolkit.pipeline as pipeline
    monkeypatch.chdir(tmp_path)
    stop, real = threading.Event(), pipeline.render_variants

    def render_then_stop(gen, recipe, variants):      # the user presses "stop" during the 2nd batch
        if variants[0].index == 3:
            stop.set()
        return real(gen, recipe, variants)

    monkeypatch.setattr(pipeline, "render_variants", render_then_stop)
    s1 = run_batch(recipe_file, "ds", count=8, batch_size=3, device="cpu", stop=stop, command="cmd")
    monkeypatch.setattr(pipeline, "render_variants", real)
    assert s1.stopped and not s1.complete and s1.written == 6
    assert_consistent(tmp_path / "ds")
    s2 = run_batch(recipe_file, "ds", count=8, batch_size=3, device="cpu", command="cmd")
    assert s2.skipped == s1.written and s2.written == 8 - s1.written and s2.complete
    run_batch(recipe_file, tmp_path / "ref", count=8, batch_size=3, device="cpu", command="cmd")
    assert tree(tmp_path / "ds") == tree(tmp_path / "ref")


def _cli(args, cwd, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "toolkit", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _rows(path: Path) -> int:
    try:
        return max(0, path.read_text().count("\n") - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_byte_identical(recipe_file, tmp_path):
    args = [str(recipe_file), "--out", "ds", "--count", "120", "--batch-size", "2", "--device", "cpu", "--quiet"]
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    killed.mkdir()
    ref.mkdir()
    p = _cli(["batch", *args], cwd=killed)
    deadline = time.time() + 60
    while _rows(killed / "ds" / "metadata.csv") < 10 and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n = _rows(killed / "ds" / "metadata.csv")
    assert p.returncode == -signal.SIGKILL and 10 <= n < 120, (p.returncode, n)
    p = _cli(["batch", *args], cwd=killed)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert f"skipped {n}," in out, out
    # the reference: the same command, uninterrupted, in the same kind of process (CPU kernels
    # may round differently with another thread count, so an in-process run is no reference)
    p = _cli(["batch", *args], cwd=ref)
    assert p.wait(timeout=120) == 0
    assert_consistent(killed / "ds")
    a, b = tree(killed / "ds"), tree(ref / "ds")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


@pytest.mark.slow
def test_torchrun_two_cpu_processes_equal_one_process(recipe_file, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    p = subprocess.run([*torchrun, "-m", "toolkit", "batch", str(recipe_file), "--out", str(tmp_path / "tr"),
                        "--count", "10", "--batch-size", "4", "--device", "cpu", "--quiet"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "shard 0/2" in p.stdout and "shard 1/2" in p.stdout
    assert not (tmp_path / "tr" / "parts").exists()
    run_batch(recipe_file, tmp_path / "one", count=10, batch_size=4, device="cpu")
    compare_datasets(tmp_path / "one", tmp_path / "tr")
    assert_consistent(tmp_path / "tr")
    card = (tmp_path / "tr" / "README.md").read_text()
    assert "rank 0 of 2" in card and "rank 1 of 2" in card


def test_sigterm_stops_after_the_batch_in_flight(recipe_file, tmp_path, monkeypatch, capsys):
    import toolkit.pipeline as pipeline
    real, calls = pipeline.render_variants, []

    def render_then_term(gen, recipe, variants):
        calls.append(len(variants))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)     # what a scheduler (or torchrun) sends
        return real(gen, recipe, variants)

    monkeypatch.setattr(pipeline, "render_variants", render_then_term)
    args = ["batch", str(recipe_file), "--out", str(tmp_path / "out"), "--count", "8", "--batch-size", "2", "--quiet"]
    assert main(args) == 143
    assert "stopped early" in capsys.readouterr().out
    assert len(assert_consistent(tmp_path / "out")) == 4      # both batches rendered before the stop are kept
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert main(args) == 0 and "skipped 4" in capsys.readouterr().out


def test_second_runner_is_refused(recipe_file, tmp_path, capsys):
    with DatasetWriter(tmp_path / "out"):
        with pytest.raises(DatasetLockedError, match="another batch runner"):
            run_batch(recipe_file, tmp_path / "out", count=2, device="cpu")
        assert main(["batch", str(recipe_file), "--out", str(tmp_path / "out"), "--count", "2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "another batch runner" in err[0]
    assert "Traceback" not in "".join(err)


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "count must be at least 1"),
    (["--count", "-3"], "count must be at least 1"),
    (["--batch-size", "0"], "batch size must be at least 1"),
    (["--shard", "2/2"], "0 ≤ K < N"),
    (["--shard", "x"], "expected K/N"),
    (["--device", "tpu"], "unknown device"),
])
def test_bad_arguments_are_one_line_errors(recipe_file, tmp_path, capsys, args, message):
    rc = main(["batch", str(recipe_file), "--out", str(tmp_path / "out"), "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_out_dir_that_is_a_file_and_missing_recipe(recipe_file, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["batch", str(recipe_file), "--out", str(tmp_path / "f"), "--quiet"]) == 1
    assert "is a file" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "x" and not (tmp_path / "o").exists()


def test_disk_failure_mid_run_then_rerun_completes(recipe_file, tmp_path, monkeypatch):
    real = tio.write_file
    calls = {"n": 0}

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] >= 13:   # the disk fills up at the 4th variant (4 files each) and stays full
            real(path, data[:10])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(tio, "write_file", failing)
    with pytest.raises(DatasetError, match="No space left on device.*rerun the same command"):
        run_batch(recipe_file, tmp_path / "out", count=7, batch_size=3, device="cpu", workers=2, command="c")
    df = assert_consistent(tmp_path / "out")
    assert 0 < len(df) < 7
    monkeypatch.setattr(tio, "write_file", real)
    s = run_batch(recipe_file, tmp_path / "out", count=7, batch_size=3, device="cpu", command="c")
    assert s.complete and s.skipped == len(df)
    run_batch(recipe_file, tmp_path / "ref", count=7, batch_size=3, device="cpu", command="c")
    assert tree(tmp_path / "out") == tree(tmp_path / "ref")


def test_a_variant_the_engine_rejects_fails_alone(recipe_file, tmp_path, monkeypatch):
    import toolkit.pipeline as pipeline
    real = pipeline.render_variants

    def picky(gen, recipe, variants):
        if any(v.index == 3 for v in variants):
            raise ValueError("blend strengths × masks sum to 1.200 > 1 at blend point 1")
        return real(gen, recipe, variants)

    monkeypatch.setattr(pipeline, "render_variants", picky)
    s = run_batch(recipe_file, tmp_path / "out", count=6, batch_size=4, device="cpu")
    assert (s.written, s.failed) == (5, 1) and s.failures[0][0] == 3 and "sum to 1.200" in s.failures[0][1]
    assert 3 not in set(read_manifest(tmp_path / "out")["variant_index"])
    monkeypatch.setattr(pipeline, "render_variants", real)
    assert run_batch(recipe_file, tmp_path / "out", count=6, device="cpu").written == 1


def test_every_variant_failing_still_leaves_a_readable_dataset(recipe_file, tmp_path, monkeypatch, capsys):
    import toolkit.pipeline as pipeline

    def broken(gen, recipe, variants):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(pipeline, "render_variants", broken)
    rc = main(["batch", str(recipe_file), "--out", str(tmp_path / "out"), "--count", "3", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1 and "failed 3" in captured.out and "CUDA out of memory" in captured.err
    assert len(read_manifest(tmp_path / "out")) == 0 and (tmp_path / "out" / "README.md").exists()


def test_torchrun_process_picks_its_gpu(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert device_for("auto", env) == "cuda:1" and device_for("cuda", env) == "cuda:1"
    assert device_for("cuda:3", env) == "cuda:3" and device_for("cpu", env) == "cpu"
    assert device_for("auto", {}) == "auto"          # not under torchrun: resolve_device decides


def test_shard_and_device_helpers():
    assert parse_shard("1/4") == (1, 4)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2)
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None and shard_from_env({}) is None
    assert device_for("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    with pytest.raises(ValueError):
        parse_shard("4/4")


def test_validate_schema_models_cli(recipe_file, tmp_path, capsys):
    assert main(["validate", str(recipe_file)]) == 0
    assert "ok: " in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["validate", str(recipe_file), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].startswith("https://json-schema.org/")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "faces64" in out and "MIT" in out
    assert main(["fetch", "nope"]) == 1 and "unknown model 'nope'" in capsys.readouterr().err


def test_merge_cli(recipe_file, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    run_batch(recipe_file, a, count=5, batch_size=2, device="cpu", shard=(0, 2))
    run_batch(recipe_file, b, count=5, batch_size=2, device="cpu", shard=(1, 2))
    assert not (a / "metadata.csv").exists()
    assert main(["merge", str(a), str(b)]) == 0
    assert "merged 5 variants" in capsys.readouterr().out
    run_batch(recipe_file, tmp_path / "one", count=5, batch_size=2, device="cpu")
    compare_datasets(tmp_path / "one", a, max_level_diff=1)
    assert main(["merge", str(tmp_path / "nothing")]) == 1
    assert "not a dataset directory" in capsys.readouterr().err


def test_merge_two_runs_of_one_recipe_with_different_counts(recipe_file, tmp_path, capsys):
    run_batch(recipe_file, tmp_path / "a", count=5, batch_size=4, device="cpu", command="c")
    run_batch(recipe_file, tmp_path / "b", count=9, batch_size=4, device="cpu", command="c")
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "merged 9 variants" in capsys.readouterr().out
    run_batch(recipe_file, tmp_path / "one", count=9, batch_size=4, device="cpu", command="c")
    compare_datasets(tmp_path / "one", tmp_path / "a")
    assert "9 written of 9 requested" in (tmp_path / "a" / "README.md").read_text()
    # and a resume with a smaller count says what the folder holds
    run_batch(recipe_file, tmp_path / "one", count=4, batch_size=4, device="cpu", command="c")
    assert "9 written: 4 of the 4 the latest run requested" in (tmp_path / "one" / "README.md").read_text()
