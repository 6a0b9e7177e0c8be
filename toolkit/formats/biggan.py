"""BigGAN-deep in the pytorch-pretrained-biggan layout: a directory with `config.json` and
`pytorch_model.bin` (as hosted on the Hugging Face Hub; `python -m toolkit fetch` downloads them).

The reference's state dict is checked key by key and shape by shape against the model its config
describes (built on the `meta` device, so a crafted config allocates nothing), then its spectral
norms are folded into plain weights.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..generators.biggan import BigGANConfig, BigGANGenerator
from .core import CheckpointError, build_on_meta, check_config_limits, check_state, torch_load

BIGGAN_CONFIG, BIGGAN_WEIGHTS = "config.json", "pytorch_model.bin"
BIGGAN_HOWTO = ("A BigGAN-deep directory holds config.json and pytorch_model.bin as published for the "
                "pytorch-pretrained-biggan package (`python -m toolkit fetch biggan-deep-128` downloads "
                "them); see docs/BIGGAN.md")
_BIGGAN_REQUIRED = ("output_dim", "z_dim", "channel_width", "num_classes", "layers", "attention_layer_position")


def biggan_config_from_json(path: Path):
    """The reference's config.json → our BigGANConfig (field names differ; the meaning does not)."""
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
    except (TypeError, ValueError, IndexError) as e:
        raise CheckpointError(f"{path}: bad configuration: {e}") from e
    check_config_limits(cfg, str(path))     # before validate(), which may build tables from the values
    try:
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
    """Every key (with its shape, as an empty `meta` tensor) a reference state dict must hold for `gen`."""
    ours, out = gen.state_dict(), {}
    for key, (names, sn) in biggan_reference_keys(gen).items():
        shape = _reference_shape(gen, key, ours[key].shape, len(names))
        for n in names:
            if sn:
                out[n + "_orig"] = torch.empty(shape, device="meta")
                out[n + "_u"] = torch.empty(shape[0], device="meta")
                out[n + "_v"] = torch.empty(math.prod(shape[1:]), device="meta")
            else:
                out[n] = torch.empty(shape, device="meta")
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
    cfg_path, weights_path = path / BIGGAN_CONFIG, path / BIGGAN_WEIGHTS
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{path}: no {p.name} in this directory. {BIGGAN_HOWTO}")
    cfg = biggan_config_from_json(cfg_path)
    gen = build_on_meta(BigGANGenerator, cfg, str(cfg_path))   # no init of ~50 M parameters overwritten next
    state = torch_load(weights_path)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{weights_path}: expected a state dict (names → tensors). {BIGGAN_HOWTO}")
    ours = biggan_reference_to_ours(state, gen, f"{weights_path} (with {cfg_path.name})")
    check_state(gen.state_dict(), ours, str(weights_path))
    gen.load_state_dict(ours, strict=True, assign=True)
    return gen


def is_biggan_dir(p: Path) -> bool:
    """A directory with the reference's weights file, or with a config.json that has its fields."""
    if not p.is_dir():
        return False
    if (p / BIGGAN_WEIGHTS).exists():
        return True
    try:
        return '"channel_width"' in (p / BIGGAN_CONFIG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False

