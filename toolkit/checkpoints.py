"""Every weight load lives here: format detection, safe deserialisation, strict key/shape checks.

Safety: safetensors and NumPy `.npz` (with `allow_pickle=False`) carry no code; PyTorch files
are read with `torch.load(weights_only=True, map_location="cpu")`, which refuses to unpickle
arbitrary objects. Nothing here downloads anything.

Formats:
- ours: a `.safetensors` file whose metadata holds `{"format": "neural-collage-toolkit",
  "architecture": ..., "config": <json>}`; the model rebuilds itself from the file.
- Chainer SNGAN-projection `ResNetGenerator_*.npz` (the paper's released weights).
- PyTorch DCGAN state dicts (`netG_state_dict` inside a `torch.save` file).
- rosinality/stylegan2-pytorch checkpoints (a `torch.save` dict with `g_ema`, optional
  `latent_avg`), recognised by content, not by suffix.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FORMAT_TAG = "neural-collage-toolkit"


class CheckpointError(ValueError):
    """A weights file that cannot be loaded; the message says what, where and how to fix it."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_file(path: str | os.PathLike) -> Path:
    """The file whose bytes are a model's weights (its sha256 names the model): the path itself,
    or for a BigGAN-deep directory its pytorch_model.bin."""
    p = Path(path).expanduser()
    return p / BIGGAN_WEIGHTS if p.is_dir() else p


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or inf (a broken or diverged checkpoint)."""
    return [k for k, t in state.items()
            if torch.is_tensor(t) and t.is_floating_point() and t.device.type != "meta" and not torch.isfinite(t).all()]


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, dtypes, shapes, bytes), for models built in code."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def torch_load(path: str | os.PathLike, allow: tuple[type, ...] = ()):
    """`torch.load` that never executes pickled code. `allow`: extra plain-data classes the file may
    hold besides tensors and containers (e.g. `argparse.Namespace` in training checkpoints); they
    are rebuilt by setting attributes, never by running code from the file."""
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"{path}: not a loadable PyTorch weights file ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:300]}). Only tensors are read (weights_only=True); "
                              "a pickle that carries code is never run: export plain tensors (a state dict) "
                              "with the code that made it, or save as .safetensors") from e


def check_state(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source: str) -> None:
    """Strict comparison of keys and shapes with a readable report."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    misshaped = [(k, tuple(got[k].shape), tuple(expected[k].shape))
                 for k in sorted(set(expected) & set(got)) if tuple(got[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"{source}: the weights do not match the model"]
    def listing(title, items):
        if items:
            lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:12]) + (" …" if len(items) > 12 else ""))
    listing("missing keys", missing)
    listing("unexpected keys", unexpected)
    listing("misshaped", [f"{k} has {g}, expected {e}" for k, g, e in misshaped])
    lines.append("  Is this the right file for this architecture, and is it complete?")
    raise CheckpointError("\n".join(lines))


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    expected = module.state_dict()
    check_state(expected, state, source)
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


# -- our format --------------------------------------------------------------------------------
def save_generator(gen, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict | None = None) -> None:
    """Atomically write `gen` (weights + architecture + config) as safetensors. `dtype=torch.float16`
    halves the file; it is widened back to float32 on load."""
    from safetensors.torch import save_file
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in gen.state_dict().items()}
    meta = {"format": FORMAT_TAG, "architecture": gen.architecture, "config": json.dumps(gen.config_dict())}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_ours(path: Path):
    from safetensors import safe_open
    from .generators import ARCHITECTURES
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: a safetensors file without our metadata (format={meta.get('format')!r}); "
                              "save models with toolkit.checkpoints.save_generator")
    arch = meta.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    cls, cfg_cls = ARCHITECTURES[arch]
    try:
        cfg = cfg_cls(**json.loads(meta["config"]))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: bad config in metadata ({e})") from e
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
    from .generators.sngan import SNGANConfig
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
    from .generators.sngan import SNGANGenerator
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read as a NumPy .npz archive ({type(e).__name__}: {e}); "
                              "is the file complete?") from e
    arrays = _strip_prefix(arrays)
    cfg = sngan_config_from_chainer(arrays, str(path))
    if cfg.n_classes == 143:
        from .data import dogs_and_cats_names
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
    from .generators.dcgan import DCGANConfig, DCGANGenerator
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
    from .generators.stylegan2 import StyleGAN2Config, default_channels
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
    from .generators.stylegan2 import blur_kernel
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
        import zipfile
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return bool(pkl) and b"g_ema" in zf.read(pkl[0])
        with open(p, "rb") as f:          # legacy (pre-1.6) format: the pickle precedes the tensors
            return b"g_ema" in f.read(1 << 20)
    except OSError:
        return False


def load_stylegan2_rosinality(path: Path):
    import argparse
    from .generators.stylegan2 import StyleGAN2Generator
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
    (lambda p: p.is_file() and p.suffix in (".tar", ".pt", ".pth", ".bin"), load_dcgan_state),
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
                          "SNGAN .npz, PyTorch DCGAN .pt/.tar, rosinality StyleGAN2 .pt, BigGAN-deep directories, and the formats listed in the README")


# -- BigGAN-deep, pytorch-pretrained-biggan directory (config.json + pytorch_model.bin) -------------
BIGGAN_CONFIG, BIGGAN_WEIGHTS = "config.json", "pytorch_model.bin"
BIGGAN_HOWTO = ("A BigGAN-deep directory holds config.json and pytorch_model.bin as published for the "
                "pytorch-pretrained-biggan package (Hugging Face model repos huggingface/biggan-deep-128, "
                "-256, -512); see docs/BIGGAN.md")
_BIGGAN_REQUIRED = ("output_dim", "z_dim", "channel_width", "num_classes", "layers", "attention_layer_position")


def biggan_config_from_json(path: Path):
    """The reference's config.json → our BigGANConfig (field names differ; the meaning does not)."""
    from .generators.biggan import BigGANConfig
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e}). {BIGGAN_HOWTO}") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(raw).__name__}. {BIGGAN_HOWTO}")
    missing = [k for k in _BIGGAN_REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: missing field(s) {', '.join(missing)}. {BIGGAN_HOWTO}")
    # The reference sizes the class embedding by z_dim and ignores class_embed_dim; so do we.
    if raw.get("class_embed_dim", raw["z_dim"]) != raw["z_dim"]:
        raise CheckpointError(f"{path}: class_embed_dim {raw['class_embed_dim']} differs from z_dim {raw['z_dim']}; "
                              "BigGAN-deep embeds classes with z_dim features, so such a file cannot be built")
    try:
        cfg = BigGANConfig(resolution=int(raw["output_dim"]), z_dim=int(raw["z_dim"]),
                           n_classes=int(raw["num_classes"]), channel_width=int(raw["channel_width"]),
                           layers=[[bool(l[0]), int(l[1]), int(l[2])] for l in raw["layers"]],
                           attention_position=int(raw["attention_layer_position"]),
                           eps=float(raw.get("eps", 1e-4)), n_stats=int(raw.get("n_stats", 51)))
        cfg.validate(str(path))
    except (TypeError, ValueError, IndexError) as e:
        raise CheckpointError(f"{path}: bad configuration: {e}") from e
    return cfg


def fold_spectral_norm(orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The weight a `torch.nn.utils.spectral_norm` module uses in eval mode: `W / (uᵀ W v)` with the
    stored `u`, `v` (no power iteration), computed with the same ops so it matches bit for bit."""
    sigma = torch.dot(u, torch.mv(orig.reshape(orig.shape[0], -1), v))
    return orig / sigma


def biggan_reference_keys(gen) -> dict[str, tuple[list[str], bool]]:
    """Our state-dict key → (the reference weights it is made of, spectrally normalised?).

    The reference keeps self-attention in the same list as the blocks (`generator.layers`), so
    blocks at and after the attention position sit one index later there. Our `gain_bias` is the
    reference's `scale` stacked over `offset`; `to_rgb` keeps the first 3 of its output channels.
    A spectrally normalised weight `w` is stored as `w_orig`, `w_u`, `w_v`.
    """
    keys: dict[str, tuple[list[str], bool]] = {
        "embedding.weight": (["embeddings.weight"], False),
        "stem_linear.weight": (["generator.gen_z.weight"], True),
        "stem_linear.bias": (["generator.gen_z.bias"], False)}
    pos = gen.config.attention_position
    for i in range(len(gen.blocks)):
        ref = f"generator.layers.{i + 1 if gen.has_attention and i >= pos else i}"
        for j in range(4):
            for stat in ("running_means", "running_vars"):
                keys[f"blocks.{i}.bn{j}.{stat}"] = ([f"{ref}.bn_{j}.{stat}"], False)
            keys[f"blocks.{i}.bn{j}.gain_bias.weight"] = ([f"{ref}.bn_{j}.scale.weight",
                                                           f"{ref}.bn_{j}.offset.weight"], True)
            keys[f"blocks.{i}.conv{j}.weight"] = ([f"{ref}.conv_{j}.weight"], True)
            keys[f"blocks.{i}.conv{j}.bias"] = ([f"{ref}.conv_{j}.bias"], False)
    if gen.has_attention:
        for ours, theirs in (("theta", "theta"), ("phi", "phi"), ("g", "g"), ("o", "o_conv")):
            keys[f"attention.{ours}.weight"] = ([f"generator.layers.{pos}.snconv1x1_{theirs}.weight"], True)
        keys["attention.gamma"] = ([f"generator.layers.{pos}.gamma"], False)
    for k in ("running_means", "running_vars", "weight", "bias"):
        keys[f"out_bn.{k}"] = ([f"generator.bn.{k}"], False)
    keys["to_rgb.weight"] = (["generator.conv_to_rgb.weight"], True)
    keys["to_rgb.bias"] = (["generator.conv_to_rgb.bias"], False)
    return keys


def _reference_shape(gen, key: str, shape: list[int], parts: int) -> list[int]:
    shape = list(shape)
    if key.startswith("to_rgb."):
        shape[0] = gen.config.channel_width * gen.config.layers[-1][2]   # the reference computes them all
    shape[0] //= parts
    return shape


def biggan_expected_reference_state(gen) -> dict[str, torch.Tensor]:
    """Every key (with its shape, as an empty tensor) a reference state dict must hold for `gen`."""
    ours, out = gen.state_dict(), {}
    for key, (names, sn) in biggan_reference_keys(gen).items():
        shape = _reference_shape(gen, key, ours[key].shape, len(names))
        for n in names:
            if sn:
                out[n + "_orig"] = torch.empty(shape)
                out[n + "_u"], out[n + "_v"] = torch.empty(shape[0]), torch.empty(math.prod(shape[1:]))
            else:
                out[n] = torch.empty(shape)
    return out


def biggan_reference_to_ours(state: dict[str, torch.Tensor], gen, source: str) -> dict[str, torch.Tensor]:
    """Strictly check a reference state dict against `gen`'s config, then fold spectral norms."""
    check_state(biggan_expected_reference_state(gen), state, source)

    def get(name: str, sn: bool) -> torch.Tensor:
        if not sn:
            return state[name].float()
        return fold_spectral_norm(state[name + "_orig"].float(), state[name + "_u"].float(),
                                  state[name + "_v"].float())
    out = {}
    for key, (names, sn) in biggan_reference_keys(gen).items():
        t = torch.cat([get(n, sn) for n in names])
        out[key] = t[:3].clone() if key.startswith("to_rgb.") else t
    return out


def load_biggan_dir(path: Path):
    """A pytorch-pretrained-biggan directory → our BigGANGenerator (CPU, float32)."""
    from .generators.biggan import BigGANGenerator
    cfg_path, weights_path = path / BIGGAN_CONFIG, path / BIGGAN_WEIGHTS
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{path}: no {p.name} in this directory. {BIGGAN_HOWTO}")
    cfg = biggan_config_from_json(cfg_path)
    with torch.device("meta"):          # no random init of ~50 M parameters that are overwritten next
        gen = BigGANGenerator(cfg)
    state = torch_load(weights_path)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{weights_path}: expected a state dict (names → tensors). {BIGGAN_HOWTO}")
    ours = biggan_reference_to_ours(state, gen, f"{weights_path} (with {cfg_path.name})")
    check_state(gen.state_dict(), ours, str(weights_path))
    gen.load_state_dict(ours, strict=True, assign=True)
    return gen


def _is_biggan_dir(p: Path) -> bool:
    """A directory with the reference's weights file, or with a config.json that has its fields."""
    if not p.is_dir():
        return False
    if (p / BIGGAN_WEIGHTS).exists():
        return True
    try:
        return '"channel_width"' in (p / BIGGAN_CONFIG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


LOADERS.append((_is_biggan_dir, load_biggan_dir))
