"""Hostile weight files (issue 13, item 7 and the NaN-weights part of item 8): small files that
declare huge data must be refused with a `CheckpointError` before anything big is allocated, and
non-finite weights must be reported by name.

Memory is checked loosely: the tracemalloc peak (numpy and Python allocations) and the growth of
the process's peak RSS (`ru_maxrss`, which also sees torch's allocations) during the load. The
files below would take 0.2–70 GB if read naively.
"""
from __future__ import annotations

import json
import logging
import resource
import tracemalloc
import zipfile
from contextlib import contextmanager

import numpy.lib.format as npf
import pytest
import torch

import toolkit
from toolkit.checkpoints import CheckpointError, nonfinite_tensors, save_generator
from toolkit.formats import nvidia_pickle
from toolkit.generators.sngan import SNGANGenerator, randomize, tiny_config

MB = 1 << 20


@contextmanager
def bounded_memory(limit_mb: float = 64):
    """Fails if the load allocated more than `limit_mb` (tracemalloc) or grew the peak RSS by more
    than 4× that."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss      # KiB on Linux
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        assert peak < limit_mb * MB, f"traced peak {peak / MB:.1f} MB"
        assert grew < 4 * limit_mb, f"peak RSS grew by {grew:.0f} MB"


def npy_header(shape, dtype="<f4") -> bytes:
    import io
    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return npf.magic(1, 0) + buf.getvalue()[len(npf.magic(1, 0)):]


def test_npz_deflate_bomb_is_refused_before_reading(tmp_path):
    """256 MB of zeros deflated into ~250 KB (the issue's 6 MB file took 6.5 GB)."""
    path = tmp_path / "ResNetGenerator_bomb.npz"
    n = 64 * MB                                          # float32 → 256 MB
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("l1/W.npy", "w", force_zip64=True) as f:
            f.write(npy_header((n,)))
            zeros = bytes(16 * MB)
            for _ in range(n * 4 // len(zeros)):
                f.write(zeros)
    assert path.stat().st_size < 2 * MB
    with bounded_memory(), pytest.raises(CheckpointError) as e:
        toolkit.load_generator(str(path), device="cpu")
    msg = str(e.value)
    assert str(path) in msg and "declare 268,435," in msg and "uncompressed" in msg and "'l1/W.npy'" in msg


def test_npz_member_whose_header_lies_about_its_shape(tmp_path):
    """A stored (uncompressed) member of 12 bytes whose .npy header declares 4 GB."""
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("l1/W.npy", npy_header((1 << 30,)) + b"\0" * 12)
    with bounded_memory(), pytest.raises(CheckpointError, match=r"'l1/W.npy' declares shape \[1073741824\]"):
        toolkit.load_generator(str(path), device="cpu")


def test_npz_with_too_many_members(tmp_path):
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"a{i}.npy", b"")
    with pytest.raises(CheckpointError, match="10,001 zip members"):
        toolkit.load_generator(str(path), device="cpu")


def test_torch_zip_file_bomb_is_refused(tmp_path):
    """`torch.save` files are zips too: a deflated record declaring 256 MB is refused unread."""
    path = tmp_path / "weights.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with zf.open("archive/data/0", "w", force_zip64=True) as f:
            zeros = bytes(16 * MB)
            for _ in range(16):
                f.write(zeros)
    with bounded_memory(), pytest.raises(CheckpointError, match="declare 268,4.*uncompressed"):
        toolkit.load_generator(str(path), device="cpu")


def _safetensors_with_config(tmp_path, config: dict):
    from safetensors.torch import save_file
    path = tmp_path / "huge.safetensors"
    save_file({"l1.weight": torch.zeros(2, 2)}, str(path),
              metadata={"format": "neural-collage-toolkit", "architecture": "sngan", "config": json.dumps(config)})
    return path


def test_safetensors_whose_config_declares_a_huge_model(tmp_path):
    """A 200-byte file whose config describes ~70 GB of SNGAN weights (all values within limits)."""
    cfg = dict(tiny_config().__dict__, z_dim=4096, channels=[60000, 60000, 60000])
    path = _safetensors_with_config(tmp_path, cfg)
    assert path.stat().st_size < 4096
    with bounded_memory(), pytest.raises(CheckpointError, match=r"describes a model of [\d,]+ bytes, more than"):
        toolkit.load_generator(str(path), device="cpu")


def test_safetensors_whose_header_disagrees_with_its_config(tmp_path):
    """Shapes are compared from the header before any tensor is read or the model is built."""
    path = _safetensors_with_config(tmp_path, dict(tiny_config().__dict__))
    with bounded_memory(), pytest.raises(CheckpointError, match=r"l1.weight has \(2, 2\), expected"):
        toolkit.load_generator(str(path), device="cpu")


def test_config_with_z_dim_two_to_the_twenty(tmp_path):
    path = _safetensors_with_config(tmp_path, dict(tiny_config().__dict__, z_dim=2 ** 20))
    with bounded_memory(), pytest.raises(CheckpointError, match=r"z_dim = 1048576 is outside \[0, 65536\]"):
        toolkit.load_generator(str(path), device="cpu")


def test_biggan_config_json_with_z_dim_two_to_the_twenty(tmp_path):
    d = tmp_path / "biggan"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(dict(
        output_dim=128, z_dim=2 ** 20, class_embed_dim=2 ** 20, channel_width=128, num_classes=1000,
        layers=[[True, 16, 16], [True, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]],
        attention_layer_position=8, eps=1e-4, n_stats=51)))
    torch.save({"x": torch.zeros(1)}, d / "pytorch_model.bin")
    with bounded_memory(), pytest.raises(CheckpointError, match=r"z_dim = 1048576 is outside"):
        toolkit.load_generator(str(d), device="cpu")


def test_nvidia_pickle_over_the_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.pkl"
    path.write_bytes(b"\x80\x04" + bytes(4096))
    monkeypatch.setenv("NCT_MAX_WEIGHTS_BYTES", "1024")
    with pytest.raises(CheckpointError, match=r"4,098 bytes is more than the 1,024-byte limit"):
        toolkit.load_generator(str(path), device="cpu")


def test_nvidia_pickle_with_too_many_opcodes(tmp_path, monkeypatch):
    path = tmp_path / "ops.pkl"
    import pickle
    path.write_bytes(pickle.dumps(list(range(5000)), protocol=4))
    monkeypatch.setattr(nvidia_pickle, "MAX_OPCODES", 1000)
    with pytest.raises(CheckpointError, match="more than 1,000 pickle opcodes"):
        toolkit.load_generator(str(path), device="cpu")


# -- non-finite weights ---------------------------------------------------------------------------------
def test_nan_weights_are_named_in_a_warning_and_recorded(tmp_path, caplog):
    gen = randomize(SNGANGenerator(tiny_config()), seed=0)
    with torch.no_grad():
        gen.l1.weight[0, 0] = float("nan")
        gen.block2.c1.bias[1] = float("inf")
    bad = nonfinite_tensors(gen.state_dict())
    assert bad == ["block2.c1.bias", "l1.weight"]
    path = tmp_path / "nan.safetensors"
    save_generator(gen, path)
    with caplog.at_level(logging.WARNING):
        loaded = toolkit.load_generator(str(path), device="cpu")
    assert list(loaded.provenance.nonfinite) == bad
    assert "2 weight tensor(s) hold NaN or inf (block2.c1.bias, l1.weight)" in caplog.text


def test_finite_weights_give_no_warning(tmp_path, caplog):
    path = tmp_path / "ok.safetensors"
    save_generator(randomize(SNGANGenerator(tiny_config()), seed=0), path)
    with caplog.at_level(logging.WARNING):
        loaded = toolkit.load_generator(str(path), device="cpu")
    assert loaded.provenance.nonfinite == () and "NaN" not in caplog.text


def test_nonfinite_tensors_ignores_integer_and_meta_tensors():
    state = {"a": torch.tensor([1.0, float("-inf")]), "b": torch.tensor([1, 2]), "c": torch.empty(3, device="meta"),
             "d": torch.zeros(2)}
    assert nonfinite_tensors(state) == ["a"]
