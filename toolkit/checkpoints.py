"""Every weight load goes through here: format detection and the loaders of the small formats.

Safety: safetensors and NumPy `.npz` (with `allow_pickle=False`) carry no code; PyTorch files
are read with `torch.load(weights_only=True, map_location="cpu")`, which refuses to unpickle
arbitrary objects; NVIDIA `.pkl` snapshots go through a restricted unpickler that never imports
or runs their embedded code (`formats/nvidia_pickle.py`). Sizes, zip members and config values
are bounded before anything is built (`formats/core.py`). Nothing here downloads anything.

Formats:
- ours: a `.safetensors` file whose metadata holds `{"format": "neural-collage-toolkit",
  "architecture": ..., "config": <json>}`; the model rebuilds itself from the file.
- Chainer SNGAN-projection `ResNetGenerator_*.npz` (the paper's released weights).
- PyTorch DCGAN state dicts (`netG_state_dict` inside a `torch.save` file).
- rosinality/stylegan2-pytorch checkpoints (a `torch.save` dict with `g_ema`, optional
  `latent_avg`), recognised by content, not by suffix.
- NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles (`formats/nvidia.py`).
- BigGAN-deep directories in the pytorch-pretrained-biggan layout (`formats/biggan.py`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .formats.biggan import (BIGGAN_CONFIG, BIGGAN_HOWTO, BIGGAN_WEIGHTS, biggan_config_from_json,  # noqa: F401
                             biggan_expected_reference_state, biggan_reference_keys, biggan_reference_to_ours,
                             fold_spectral_norm, is_biggan_dir, load_biggan_dir)
from .formats.core import (CheckpointError, build_on_meta, check_config_limits, check_file_size,  # noqa: F401
                           check_npy_member, check_state, check_zip_bounds, load_state_strict, max_weights_bytes,
                           nonfinite_tensors, sha256_file, state_sha256, torch_load)
from .formats.nvidia import is_nvidia_pickle, load_nvidia_pickle
from .data import dogs_and_cats_names
from .generators import ARCHITECTURES
from .generators.dcgan import DCGANConfig, DCGANGenerator
from .generators.sngan import SNGANConfig, SNGANGenerator
from .generators.stylegan2 import StyleGAN2Config, StyleGAN2Generator, blur_kernel, default_channels
from .io import atomic_path

FORMAT_TAG = "neural-collage-toolkit"


def weights_file(path: str | os.PathLike) -> Path:
    """The file whose bytes are a model's weights (its sha256 names the model): the path itself,
    or for a BigGAN-deep directory its pytorch_model.bin."""
    p = Path(path).expanduser()
    return p / BIGGAN_WEIGHTS if p.is_dir() else p


# -- our format --------------------------------------------------------------------------------
def save_generator(gen, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict | None = None) -> None:
    """Atomically write `gen` (weights + architecture + config) as safetensors. `dtype=torch.float16`
    halves the file; it is widened back to float32 on load."""
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in gen.state_dict().items()}
    meta = {"format": FORMAT_TAG, "architecture": gen.architecture, "config": json.dumps(gen.config_dict())}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    with atomic_path(path, make_parents=True) as tmp:
        save_file(state, str(tmp), metadata=meta)


def _load_ours(path: Path):
    """Header first (metadata, tensor names and shapes, no data), config bounded, the model built on
    the `meta` device and compared with the header; only then are tensors read and the model built."""
    check_file_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    if meta.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: a safetensors file without our metadata (format={meta.get('format')!r}); "
                              "save models with toolkit.checkpoints.save_generator")
    arch = meta.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    cls, cfg_cls = ARCHITECTURES[arch]
    try:
        raw = json.loads(meta["config"])
        cfg = cfg_cls(**raw)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad config in metadata ({e})") from e
    probe = build_on_meta(cls, cfg, f"{path} (config in its metadata)")
    check_state({k: v for k, v in probe.state_dict().items()},
                {k: torch.empty(s, device="meta") for k, s in shapes.items()}, str(path))
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    gen = cls(cfg)
    load_state_strict(gen, state, str(path))
    return gen


# -- Chainer SNGAN-projection (.npz) -------------------------------------------------------------
_CHAINER_LEAF = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
                 "avg_mean": "running_mean", "avg_var": "running_var"}


def chainer_to_torch(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Chainer key layout → our parameter names. Layouts match PyTorch's, so no transposes."""
    out = {}
    for key, arr in arrays.items():
        parts = key.split("/")
        if parts[-1] == "N":            # Chainer's BN update counters carry no weights
            continue
        if parts[-2:] in (["gammas", "W"], ["betas", "W"]):
            name = ".".join(parts[:-1])
        else:
            if parts[-1] not in _CHAINER_LEAF:
                raise CheckpointError(f"unexpected Chainer array {key!r} (shape {arr.shape})")
            name = ".".join(parts[:-1] + [_CHAINER_LEAF[parts[-1]]])
        out[name] = torch.from_numpy(np.ascontiguousarray(arr))
    return out


def _strip_prefix(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Snapshots of a whole trainer prefix the generator (e.g. `updater/model:gen/`)."""
    heads = [k[: -len("l1/W")] for k in arrays if k.endswith("l1/W")]
    if len(heads) == 1 and heads[0]:
        return {k[len(heads[0]):]: v for k, v in arrays.items() if k.startswith(heads[0])}
    return arrays


def sngan_config_from_chainer(arrays: dict[str, np.ndarray], source: str):
    if "l1/W" not in arrays:
        raise CheckpointError(f"{source}: no 'l1/W' array: not an SNGAN-projection ResNetGenerator file")
    blocks = sorted({int(m.group(1)) for k in arrays if (m := re.match(r"block(\d+)/", k))})
    if not blocks or blocks != list(range(2, blocks[-1] + 1)):
        raise CheckpointError(f"{source}: expected consecutive blocks block2…blockN, found {blocks}")
    def need(k):
        if k not in arrays:
            raise CheckpointError(f"{source}: missing array {k!r}; the file looks truncated or is another model")
        return arrays[k]
    chans = [need(f"block{blocks[0]}/c1/W").shape[1]]
    for i in blocks:
        chans.append(need(f"block{i}/c1/W").shape[0])
    l1 = need("l1/W")
    bw = int(round((l1.shape[0] / chans[0]) ** 0.5))
    g = arrays.get(f"block{blocks[0]}/b1/gammas/W")
    return SNGANConfig(z_dim=int(l1.shape[1]), n_classes=int(g.shape[0]) if g is not None else 0,
                       bottom_width=bw, channels=[int(c) for c in chans])


def _load_chainer(path: Path):
    check_zip_bounds(path)
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                check_npy_member(zf, info, str(path))
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read as a NumPy .npz archive ({type(e).__name__}: {e}); "
                              "is the file complete?") from e
    arrays = _strip_prefix(arrays)
    cfg = sngan_config_from_chainer(arrays, str(path))
    check_config_limits(cfg, str(path))
    if cfg.n_classes == 143:
        cfg.class_names = dogs_and_cats_names()
    gen = SNGANGenerator(cfg)
    state = chainer_to_torch(arrays)
    # PyTorch's BN keeps a batch counter that Chainer files do not carry (their `N` is ignored);
    # it plays no part in eval mode.
    for k, v in gen.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, torch.zeros_like(v))
    load_state_strict(gen, state, str(path))
    return gen


# -- PyTorch DCGAN ---------------------------------------------------------------------------------
def load_dcgan_state(path: Path):
    obj = torch_load(path)
    state = obj.get("netG_state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or "main.0.weight" not in state:
        raise CheckpointError(f"{path}: expected a DCGAN generator state dict (key 'main.0.weight' "
                              "or a dict with 'netG_state_dict')")
    w0 = state["main.0.weight"]   # [nz, 8*ngf, 4, 4]
    gen = DCGANGenerator(DCGANConfig(z_dim=int(w0.shape[0]), ngf=int(w0.shape[1]) // 8,
                                     n_channels=int(state["main.12.weight"].shape[1]) if "main.12.weight" in state else 3))
    load_state_strict(gen, state, str(path))
    return gen


# -- rosinality/stylegan2-pytorch (.pt with `g_ema`) -------------------------------------------------
# Its blur filters are buffers saved in every state dict; ours are constants, so they are checked.
_ROSINALITY_KERNEL = re.compile(r"(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")


def stylegan2_config_from_rosinality(state: dict[str, torch.Tensor], source: str):
    """Size, widths, channel multiplier and mapping depth from the tensors of a `g_ema` state."""
    def need(k):
        if k not in state:
            raise CheckpointError(f"{source}: g_ema has no {k!r}; not a rosinality StyleGAN2 generator "
                                  "(or the file is truncated)")
        return state[k]
    mlp = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not mlp or mlp != list(range(1, len(mlp) + 1)):
        raise CheckpointError(f"{source}: expected mapping layers style.1 … style.N, found {mlp or 'none'}")
    n_rgb = len({m.group(1) for k in state if (m := re.fullmatch(r"to_rgbs\.(\d+)\.bias", k))})
    size = 2 ** (n_rgb + 2)
    chans = [int(need("input.input").shape[1])] + [int(need(f"convs.{2 * i}.conv.weight").shape[1])
                                                   for i in range(n_rgb)]
    mult = next((m for m in (1, 2, 4, 8) if size <= 1024 and default_channels(size, m) == chans), None)
    return StyleGAN2Config(size=size, style_dim=int(need("style.1.weight").shape[1]), n_mlp=len(mlp),
                           channel_multiplier=mult or 2, channels=None if mult else chans)


def stylegan2_state_from_rosinality(g_ema: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """`g_ema` → our state dict (without `latent_avg`): drops the blur-filter buffers after
    checking they hold the [1,3,3,1] filter this implementation hard-codes."""
    state = {}
    for k, v in g_ema.items():
        if _ROSINALITY_KERNEL.search(k):
            if tuple(v.shape) != (4, 4) or not torch.allclose(v.float(), blur_kernel(4.0), atol=1e-6):
                raise CheckpointError(f"{source}: {k} is not the [1,3,3,1] blur filter; "
                                      "models with other filters are not supported")
            continue
        state[k] = v
    return state


def _looks_like_rosinality(p: Path) -> bool:
    """Content check without loading tensors: the pickled dict names a `g_ema` entry."""
    if not (p.is_file() and p.suffix in (".pt", ".pth", ".ckpt", ".tar", ".bin")):
        return False
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return bool(pkl) and b"g_ema" in zf.read(pkl[0])
        with open(p, "rb") as f:          # legacy (pre-1.6) format: the pickle precedes the tensors
            return b"g_ema" in f.read(1 << 20)
    except OSError:
        return False


def load_stylegan2_rosinality(path: Path):
    # Training checkpoints carry their argparse options beside the weights.
    obj = torch_load(path, allow=(argparse.Namespace,))
    if not isinstance(obj, dict) or not isinstance(obj.get("g_ema"), dict):
        raise CheckpointError(f"{path}: expected a rosinality StyleGAN2 checkpoint (a dict with 'g_ema')")
    src = f"{path} [g_ema]"
    state = stylegan2_state_from_rosinality(obj["g_ema"], src)
    gen = StyleGAN2Generator(stylegan2_config_from_rosinality(state, src))
    avg = obj.get("latent_avg")
    state["latent_avg"] = gen.latent_avg if avg is None else torch.as_tensor(avg).reshape(-1)
    load_state_strict(gen, state, src)
    if avg is None:
        gen.estimate_latent_avg()
    return gen


# -- detection ------------------------------------------------------------------------------------
# Later architectures register (predicate, loader) pairs here; first match wins.
LOADERS: list[tuple[Callable[[Path], bool], Callable[[Path], object]]] = [
    (lambda p: p.is_file() and p.suffix == ".safetensors", _load_ours),
    (lambda p: p.is_file() and p.suffix == ".npz", _load_chainer),
    (_looks_like_rosinality, load_stylegan2_rosinality),
    (is_nvidia_pickle, load_nvidia_pickle),
    (lambda p: p.is_file() and p.suffix in (".tar", ".pt", ".pth", ".bin"), load_dcgan_state),
    (is_biggan_dir, load_biggan_dir),
]


def load_file(path: str | os.PathLike):
    """Load a generator from a file or directory in any supported format (on CPU, float32)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or directory")
    for matches, loader in LOADERS:
        if matches(p):
            return loader(p)
    raise CheckpointError(f"{p}: unrecognised weights format; supported: our .safetensors, Chainer "
                          "SNGAN .npz, PyTorch DCGAN .pt/.tar, rosinality StyleGAN2 .pt, NVIDIA StyleGAN2-ADA .pkl, "
                          "BigGAN-deep directories (see the README's Models section)")

