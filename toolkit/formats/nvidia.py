"""NVIDIA stylegan2-ada-pytorch snapshots (`network-snapshot-*.pkl`) → our StyleGAN2 generator.

The pickle is read as data by `nvidia_pickle.load_snapshot` (no NVIDIA code is imported or run);
this module checks that `G_ema` is a StyleGAN2 generator we implement exactly and copies its
tensors onto ours:

    mapping.fc{i}                      → style.{i+1}          (lr multiplier from the layer's bias_gain)
    mapping.embed (c_dim > 0)          → class_embed
    mapping.w_avg                      → latent_avg           (truncation target)
    synthesis.b4.const                 → input.input
    synthesis.b4.conv1 / torgb         → conv1 / to_rgb1      (noise_const → noises.noise_0)
    synthesis.b{r}.conv0, conv1, torgb → convs.{2s}, convs.{2s+1}, to_rgbs.{s} for r = 8·2^s
                                         (noise_const → noises.noise_{2s+1}, noise_{2s+2})
    SynthesisLayer: weight, affine → modulation, noise_strength → noise.weight, bias → activate.bias
    conv_clamp                         → StyleGAN2Config.conv_clamp

Anything else is refused with a list: another synthesis architecture ('orig', 'resnet'), other
resampling filters, activations, kernel sizes, channel counts, and StyleGAN3 (alias-free)
synthesis networks, which are not implemented yet.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from ..generators.stylegan2 import BLUR_TAPS, StyleGAN2Config, StyleGAN2Generator
from .core import CheckpointError, build_on_meta, check_state, load_state_strict
from .nvidia_pickle import PersistentObject, load_snapshot

_STYLEGAN3_CLASSES = {"SynthesisInput"}


def is_nvidia_pickle(p: Path) -> bool:
    """A `.pkl` file that starts like a binary pickle (checked by content, not by name alone)."""
    if not (p.is_file() and p.suffix == ".pkl"):
        return False
    with open(p, "rb") as f:
        return f.read(1) == b"\x80"


def _filter_ok(t: torch.Tensor | None) -> bool:
    k = torch.tensor(BLUR_TAPS, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return t is not None and tuple(t.shape) == (4, 4) and torch.allclose(t.float(), k / k.sum(), atol=1e-6)


def _layer_problems(name: str, layer: PersistentObject, up: int, kernel: int) -> list[str]:
    out = []
    a = layer.attrs
    if layer.class_name not in ("SynthesisLayer", "ToRGBLayer"):
        out.append(f"{name} is a {layer.class_name}")
        return out
    if layer.class_name == "SynthesisLayer":
        if a.get("activation") != "lrelu":
            out.append(f"{name}.activation is {a.get('activation')!r} (only 'lrelu')")
        if int(a.get("up", 1)) != up:
            out.append(f"{name}.up is {a.get('up')} (expected {up})")
        if not _filter_ok(layer.buffers.get("resample_filter")):
            out.append(f"{name}.resample_filter is not the [1,3,3,1] filter")
    w = layer.parameters.get("weight")
    if w is None or w.dim() != 4 or tuple(w.shape[-2:]) != (kernel, kernel):
        out.append(f"{name}.weight is {None if w is None else list(w.shape)} (expected a {kernel}×{kernel} kernel)")
    return out


def stylegan2_from_g_ema(G: PersistentObject, source: str) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    """Config and our state dict from NVIDIA's `G_ema`; raises `CheckpointError` listing every
    part that is not understood."""
    if not isinstance(G, PersistentObject) or G.class_name != "Generator":
        raise CheckpointError(f"{source}: G_ema is not an NVIDIA Generator network "
                              f"(found {getattr(G, 'class_name', type(G).__name__)})")
    try:
        syn, mp = G.child("synthesis"), G.child("mapping")
    except KeyError as e:
        raise CheckpointError(f"{source}: G_ema has no {e.args[0]!r} network") from None
    names = {m.class_name for m in syn.modules.values() if isinstance(m, PersistentObject)}
    if names & _STYLEGAN3_CLASSES or any(re.match(r"L\d+_", k) for k in syn.modules):
        raise CheckpointError(f"{source}: this is a StyleGAN3 (alias-free) generator; its synthesis network "
                              "(SynthesisInput + L0…L14 layers) is not supported yet; StyleGAN2 snapshots from "
                              "stylegan2-ada-pytorch load.")
    z_dim, c_dim, w_dim = (int(G.attrs.get(k, -1)) for k in ("z_dim", "c_dim", "w_dim"))
    res, img_ch = int(G.attrs.get("img_resolution", -1)), int(G.attrs.get("img_channels", -1))
    problems = []
    if z_dim <= 0:
        problems.append(f"z_dim is {z_dim} (a latent is required)")
    if img_ch != 3:
        problems.append(f"img_channels is {img_ch} (only RGB)")
    if res < 8 or res & (res - 1):
        problems.append(f"img_resolution is {res} (a power of two ≥ 8)")
    if problems:
        raise CheckpointError(f"{source}: G_ema is not supported: " + "; ".join(problems))

    # -- mapping ------------------------------------------------------------------------------
    n_mlp = int(mp.attrs.get("num_layers", 0))
    fcs = [mp.modules.get(f"fc{i}") for i in range(n_mlp)]
    if n_mlp < 1 or not all(isinstance(f, PersistentObject) for f in fcs):
        raise CheckpointError(f"{source}: the mapping network has no fc0…fc{n_mlp - 1} layers")
    lr = float(fcs[0].attrs.get("bias_gain", 1.0))
    for i, f in enumerate(fcs):
        if f.attrs.get("activation") != "lrelu" or not math.isclose(float(f.attrs.get("bias_gain", 1)), lr):
            problems.append(f"mapping.fc{i} has activation {f.attrs.get('activation')!r} and lr multiplier "
                            f"{f.attrs.get('bias_gain')} (expected 'lrelu', {lr})")
    embed_dim = int(fcs[0].parameters["weight"].shape[1]) - z_dim
    mapping_dim = int(fcs[0].parameters["weight"].shape[0])

    # -- synthesis -----------------------------------------------------------------------------
    resolutions = [2 ** j for j in range(2, int(math.log2(res)) + 1)]
    blocks = {r: syn.modules.get(f"b{r}") for r in resolutions}
    missing = [f"b{r}" for r, b in blocks.items() if not isinstance(b, PersistentObject)]
    if missing:
        raise CheckpointError(f"{source}: the synthesis network lacks block(s) {', '.join(missing)}")
    clamps = set()
    for r, blk in blocks.items():
        if blk.attrs.get("architecture") != "skip":
            problems.append(f"synthesis.b{r}.architecture is {blk.attrs.get('architecture')!r} (only 'skip')")
        if not _filter_ok(blk.buffers.get("resample_filter")):
            problems.append(f"synthesis.b{r}.resample_filter is not the [1,3,3,1] filter")
        for lname, up, k in (("conv0", 2, 3), ("conv1", 1, 3), ("torgb", 1, 1)):
            if r == 4 and lname == "conv0":
                continue
            layer = blk.modules.get(lname)
            if not isinstance(layer, PersistentObject):
                problems.append(f"synthesis.b{r}.{lname} is missing")
                continue
            problems += _layer_problems(f"synthesis.b{r}.{lname}", layer, up, k)
            clamps.add(layer.attrs.get("conv_clamp"))
    if len(clamps) > 1:
        problems.append(f"layers use different conv_clamp values {sorted(map(str, clamps))}")
    if problems:
        raise CheckpointError(f"{source}: G_ema has parts this toolkit does not implement:\n  - "
                              + "\n  - ".join(problems))
    channels = [int(blocks[r].modules["conv1"].parameters["weight"].shape[0]) for r in resolutions]
    clamp = next(iter(clamps))
    cfg = StyleGAN2Config(size=res, style_dim=w_dim, n_mlp=n_mlp, lr_mlp=lr, channels=channels,
                          z_dim=z_dim if z_dim != w_dim else None, c_dim=c_dim,
                          embed_dim=(embed_dim or None) if c_dim else None,
                          mapping_dim=mapping_dim if mapping_dim != w_dim else None,
                          conv_clamp=None if clamp is None else float(clamp))
    return cfg, _state_from_g_ema(mp, blocks, resolutions, w_dim)


def _state_from_g_ema(mp: PersistentObject, blocks: dict, resolutions: list[int], w_dim: int) -> dict:
    state: dict[str, torch.Tensor] = {}
    for i in range(int(mp.attrs["num_layers"])):
        fc = mp.modules[f"fc{i}"].parameters
        state[f"style.{i + 1}.weight"], state[f"style.{i + 1}.bias"] = fc["weight"], fc["bias"]
    if "embed" in mp.modules:
        e = mp.modules["embed"].parameters
        state["class_embed.weight"], state["class_embed.bias"] = e["weight"], e["bias"]
    avg = mp.buffers.get("w_avg")
    state["latent_avg"] = avg.reshape(-1) if avg is not None else torch.full((w_dim,), float("nan"))

    def styled(ours: str, layer: PersistentObject, noise_key: str | None):
        p, buf = layer.parameters, layer.buffers
        state[f"{ours}.conv.weight"] = p["weight"][None]
        state[f"{ours}.conv.modulation.weight"] = layer.modules["affine"].parameters["weight"]
        state[f"{ours}.conv.modulation.bias"] = layer.modules["affine"].parameters["bias"]
        state[f"{ours}.activate.bias"] = p["bias"]
        strength, const = p.get("noise_strength"), buf.get("noise_const")
        r = int(layer.attrs["resolution"])
        # use_noise=False: zero strength and zero noise reproduce the layer exactly.
        state[f"{ours}.noise.weight"] = torch.zeros(1) if strength is None else strength.reshape(1)
        state[noise_key] = torch.zeros(1, 1, r, r) if const is None else const[None, None]

    def to_rgb(ours: str, layer: PersistentObject):
        p = layer.parameters
        state[f"{ours}.conv.weight"] = p["weight"][None]
        state[f"{ours}.conv.modulation.weight"] = layer.modules["affine"].parameters["weight"]
        state[f"{ours}.conv.modulation.bias"] = layer.modules["affine"].parameters["bias"]
        state[f"{ours}.bias"] = p["bias"].reshape(1, -1, 1, 1)

    b4 = blocks[4]
    state["input.input"] = b4.parameters["const"][None]
    styled("conv1", b4.modules["conv1"], "noises.noise_0")
    to_rgb("to_rgb1", b4.modules["torgb"])
    for s, r in enumerate(resolutions[1:]):
        blk = blocks[r]
        # No kernel flip: NVIDIA's up-sampling conv (flip_weight=False, a transposed conv) and ours
        # agree as stored (checked against NVIDIA's code in tests/test_nvidia_pickle.py).
        styled(f"convs.{2 * s}", blk.modules["conv0"], f"noises.noise_{2 * s + 1}")
        styled(f"convs.{2 * s + 1}", blk.modules["conv1"], f"noises.noise_{2 * s + 2}")
        to_rgb(f"to_rgbs.{s}", blk.modules["torgb"])
    return state


def load_nvidia_pickle(path: Path) -> StyleGAN2Generator:
    snap = load_snapshot(path)
    if "G_ema" not in snap:
        raise CheckpointError(f"{path}: no 'G_ema' in this pickle (keys: {', '.join(map(str, list(snap)[:10]))}); "
                              "expected an NVIDIA stylegan2-ada-pytorch network snapshot")
    source = f"{path} [G_ema]"
    try:
        cfg, state = stylegan2_from_g_ema(snap["G_ema"], source)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{source}: malformed network record ({type(e).__name__}: {e}); "
                              "not a snapshot written by stylegan2-ada-pytorch") from e
    probe = build_on_meta(StyleGAN2Generator, cfg, source)
    check_state(probe.state_dict(), state, source)
    gen = StyleGAN2Generator(cfg)
    load_state_strict(gen, state, source)
    if torch.isnan(gen.latent_avg).any():
        gen.estimate_latent_avg()
    return gen
