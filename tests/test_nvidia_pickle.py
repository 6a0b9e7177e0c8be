"""NVIDIA stylegan2-ada-pytorch snapshots: parity with NVIDIA's own code (reference outputs made
with it, committed as .npz), the restricted unpickler (nothing from the file runs), label swap on
a conditional snapshot, and refusals with clear lists.

Fixtures (tests/fixtures/nvidia/): 32×32 random-weight generators built with NVIDIA's code
(z 16, w 16, 2 mapping layers, widths 16/16/16/8; `uncond`: conv_clamp 256, `cond3`: c_dim 3 and
conv_clamp 0.8 so clamping is active), pickled as their training loop does (G, D, G_ema,
augment_pipe, training_set_kwargs) with the embedded source replaced by a placeholder. The
reference .npz holds z, c, and NVIDIA's images for ψ = 1 and ψ = 0.7 with noise_mode='const'.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import toolkit
from toolkit import LabelSwap, render
from toolkit.checkpoints import CheckpointError, save_generator
from toolkit.formats.nvidia import stylegan2_from_g_ema
from toolkit.formats.nvidia_pickle import SOURCE_PLACEHOLDER, load_snapshot
from toolkit.generators.stylegan2 import StyleGAN2Generator

FIX = Path(__file__).parent / "fixtures" / "nvidia"
PARITY_ATOL = 1e-4


def fixture(tag: str):
    return FIX / f"stylegan2ada-32px-{tag}.pkl", np.load(FIX / f"stylegan2ada-32px-{tag}-reference.npz")


@pytest.fixture(scope="module", params=["uncond", "cond3"])
def case(request):
    path, ref = fixture(request.param)
    return toolkit.load_generator(str(path), device="cpu"), ref


@pytest.mark.parametrize("psi, key", [(None, "img_psi1"), (0.7, "img_psi07")])
def test_renders_match_nvidias_code(case, psi, key):
    gen, ref = case
    y = torch.from_numpy(ref["c"]) if "c" in ref.files else None
    out = render(gen, torch.from_numpy(ref["z"]), y, truncation=psi)
    diff = (out - torch.from_numpy(ref[key])).abs().max().item()
    assert diff <= PARITY_ATOL, f"max |ours - NVIDIA| = {diff}"
    assert ref[key].std() > 0.1          # the reference is a real image batch, not a constant


def test_mapping_and_truncation_match(case):
    gen, ref = case
    c = torch.from_numpy(ref["c"]) if "c" in ref.files else None
    w = torch.lerp(gen.latent_avg, gen.mapping(torch.from_numpy(ref["z"]), c), 0.7)
    assert torch.allclose(w, torch.from_numpy(ref["ws_psi07"][:, 0]), atol=1e-6)


def test_fixture_exercises_conv_clamp():
    """Without the clamp our output differs from NVIDIA's: the parity test would catch a lost clamp."""
    path, ref = fixture("cond3")
    gen = toolkit.load_generator(str(path), device="cpu")
    assert gen.config.conv_clamp == pytest.approx(0.8) and gen.n_classes == 3
    loose = StyleGAN2Generator(dataclasses.replace(gen.config, conv_clamp=None))
    loose.load_state_dict(gen.state_dict())
    out = render(loose.eval(), torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]), truncation=0.7)
    assert (out - torch.from_numpy(ref["img_psi07"])).abs().max() > 1e-2


def test_fixture_carries_no_source_and_snapshot_is_plain_data():
    path, _ = fixture("uncond")
    data = path.read_bytes()
    assert SOURCE_PLACEHOLDER.encode() in data and b"def modulated_conv2d" not in data
    snap = load_snapshot(path)
    assert set(snap) >= {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    g = snap["G_ema"]
    assert g.class_name == "Generator" and g.init_kwargs["z_dim"] == 16
    assert g.child("mapping").buffers["w_avg"].shape == (16,)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_save_as_safetensors_round_trip(tmp_path):
    path, ref = fixture("cond3")
    gen = toolkit.load_generator(str(path), device="cpu")
    save_generator(gen, tmp_path / "g.safetensors")
    again = toolkit.load_generator(str(tmp_path / "g.safetensors"), device="cpu")
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    assert torch.equal(render(again, z, c, truncation=0.7), render(gen, z, c, truncation=0.7))


# -- label swap on a conditional snapshot -------------------------------------------------------------
@pytest.fixture(scope="module")
def cond():
    return toolkit.load_generator(str(fixture("cond3")[0]), device="cpu")


def test_uniform_swap_equals_the_target_class(cond):
    z = torch.from_numpy(fixture("cond3")[1]["z"])
    y = torch.tensor([0, 0, 1, 2])
    swapped = render(cond, z, y, swap=LabelSwap([2], torch.ones(1, 32, 32)), truncation=0.7)
    plain = render(cond, z, torch.tensor([2, 2, 2, 2]), truncation=0.7)
    assert torch.allclose(swapped, plain, atol=1e-5)
    none = render(cond, z, y, swap=LabelSwap([2], torch.zeros(1, 32, 32)), truncation=0.7)
    assert torch.allclose(none, render(cond, z, y, truncation=0.7), atol=1e-6)


def test_regional_swap_changes_the_region_more_than_outside(cond):
    z = torch.from_numpy(fixture("cond3")[1]["z"])
    y = torch.zeros(4, dtype=torch.long)
    m = torch.zeros(1, 32, 32)
    m[:, :, 16:] = 1
    a = render(cond, z, y)
    b = render(cond, z, y, swap=LabelSwap([1], m))
    d = (a - b).abs().mean(dim=(0, 1))
    assert d[:, 20:].mean() > 3 * d[:, :12].mean()


def test_style_mix_is_refused_for_conditional_models(cond):
    from toolkit import StyleMix
    z = torch.zeros(1, 16)
    with pytest.raises(ValueError, match="style_mix is not supported for conditional"):
        render(cond, z, [0], style_mix=StyleMix(z, 2))


# -- refusals ------------------------------------------------------------------------------------------
class _RunsCode:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_pickle_with_code_running_reduce_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "network-snapshot-000123.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsCode(f"touch {marker}")}))
    with pytest.raises(CheckpointError) as e:
        toolkit.load_generator(str(path), device="cpu")
    assert "system" in str(e.value) and "not plain data" in str(e.value)
    assert not marker.exists()


def test_exec_and_eval_globals_are_listed(tmp_path):
    class Exec:
        def __reduce__(self):
            return (exec, ("import os",))

    class Eval:
        def __reduce__(self):
            return (eval, ("1",))
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"G_ema": [Exec(), Eval()]}))
    with pytest.raises(CheckpointError, match=r"2 global\(s\).*builtins\.eval, builtins\.exec"):
        toolkit.load_generator(str(path), device="cpu")


def _fake_persistence_pickle(meta_for: dict) -> bytes:
    """A pickle naming torch_utils.persistence._reconstruct_persistent_obj, written without NVIDIA code:
    a stand-in module provides a function of that name only while pickling."""
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class P:
        def __init__(self, class_name, state):
            self.meta = dict(type="class", version=6, module_src="x", class_name=class_name, state=state)

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = types.ModuleType("torch_utils"), mod
    try:
        return pickle.dumps(meta_for(P))
    finally:
        del sys.modules["torch_utils"], sys.modules["torch_utils.persistence"]


def _module(P, name, params=None, modules=None, **attrs):
    return P(name, dict(_parameters=params or {}, _buffers={}, _modules=modules or {}, **attrs))


def test_stylegan3_is_refused_clearly(tmp_path):
    def snap(P):
        syn = _module(P, "SynthesisNetwork", modules={"input": _module(P, "SynthesisInput"),
                                                      "L0_36_512": _module(P, "SynthesisLayer")})
        g = _module(P, "Generator", modules={"synthesis": syn, "mapping": _module(P, "MappingNetwork")},
                    z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3)
        return {"G_ema": g}
    path = tmp_path / "stylegan3-t.pkl"
    path.write_bytes(_fake_persistence_pickle(snap))
    with pytest.raises(CheckpointError, match="StyleGAN3 .alias-free.* not supported yet"):
        toolkit.load_generator(str(path), device="cpu")
    assert "torch_utils" not in sys.modules


def test_unsupported_parts_are_listed():
    snap = load_snapshot(fixture("uncond")[0])
    g = snap["G_ema"]
    syn = g.child("synthesis")
    syn.child("b16").attrs["architecture"] = "resnet"
    syn.child("b8").child("conv1").attrs["activation"] = "relu"
    with pytest.raises(CheckpointError) as e:
        stylegan2_from_g_ema(g, "snap.pkl")
    msg = str(e.value)
    assert "synthesis.b16.architecture is 'resnet'" in msg and "synthesis.b8.conv1.activation is 'relu'" in msg


def test_embedded_storage_that_declares_more_than_it_carries_is_refused(tmp_path):
    """A storage record whose element count exceeds its bytes never reaches torch.load."""
    buf = io.BytesIO()
    torch.save(torch.zeros(4).untyped_storage(), buf, _use_new_zipfile_serialization=False)
    raw = bytearray(buf.getvalue())
    tail = 8 + 16                            # count + 16 bytes of data
    raw[-tail:-tail + 8] = (10 ** 12).to_bytes(8, "little")

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (bytes(raw),))
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Storage()}))
    with pytest.raises(CheckpointError, match="declares 1000000000000 elements but carries 16 bytes"):
        toolkit.load_generator(str(path), device="cpu")


def test_malformed_network_record_gives_a_checkpoint_error(tmp_path):
    def snap(P):
        g = _module(P, "Generator", modules={"synthesis": _module(P, "SynthesisNetwork"),
                                             "mapping": _module(P, "MappingNetwork")},
                    z_dim="sixteen", c_dim=0, w_dim=16, img_resolution=32, img_channels=3)
        return {"G_ema": g}
    path = tmp_path / "odd.pkl"
    path.write_bytes(_fake_persistence_pickle(snap))
    with pytest.raises(CheckpointError, match="malformed network record"):
        toolkit.load_generator(str(path), device="cpu")


@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_numpy_arrays_and_scalars_are_rebuilt_as_data(tmp_path, module):
    """Both numpy module names (numpy ≥ 2 writes numpy._core) resolve to our own rebuilders
    (protocol 3, as Python 3.7 — stylegan2-ada-pytorch's — wrote snapshots: names as plain text)."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = pickle.dumps({"a": arr, "s": np.float64(2.5), "i": np.int64(-3)}, protocol=3)
    data = data.replace(b"numpy._core.multiarray", module.encode()).replace(b"numpy.core.multiarray", module.encode())
    assert module.encode() in data
    path = tmp_path / "np.pkl"
    path.write_bytes(data)
    snap = load_snapshot(path)
    assert np.array_equal(snap["a"].array, arr) and snap["s"] == 2.5 and snap["i"] == -3


def test_numpy_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=3))
    with pytest.raises(CheckpointError, match="numpy array of objects|not numeric"):
        load_snapshot(path)
