"""BigGAN-deep generator (Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis", ICLR 2019), for the released ImageNet 128/256/512 models.

Architecture, as in the weights published by DeepMind on TF Hub and converted by Hugging Face
(`pytorch-pretrained-biggan`, directory format `config.json` + `pytorch_model.bin`; the loader is
in `toolkit/checkpoints.py`):

- condition vector `c = [z, y @ E]` (latent ⊕ linear class embedding, no bias);
- stem: linear `c → 4·4·16·ch`, laid out as TF's `[B, 4, 4, C]` and transposed to NCHW;
- stages: the "deep" residual blocks (`GenBlock`): four conditional BNs (gain `1 + c @ S`,
  bias `c @ O`) each followed by ReLU, convs 1×1 (↓C/4) → [nearest ×2] 3×3 → 3×3 → 1×1; the skip
  keeps the first `C_out` channels and is upsampled too. A self-attention layer (SAGAN) sits
  before the block at `attention_position`; here it is the tail of the stage it follows (of the
  stem when the position is 0), so blending happens after it;
- head: BN (unconditional) → ReLU → 3×3 conv → first 3 channels → tanh.

Batch-norm statistics are not single vectors: each BN stores means/variances for `n_stats` (51)
truncation levels t = k/50, and a truncation between levels is interpolated exactly as the
reference does (see `_stats_at`). The truncation reaches the layers through
`Condition.truncation` (default 1.0). The final BN's statistics depend on it too, so that BN is
the last operation of the last stage (the head receives no condition); BN in eval mode is a
per-channel affine map, so blending before or after it is the same.

Label swap is exact here: the class enters only through `y @ E`, and the stem and every BN
gain/bias are affine in `c`, so a per-pixel class mixture (sCBN) is a per-pixel mixture of
per-class parameters — also at the 4×4 stem, whose per-pixel outputs come from `cond.project`.

Spectral normalisation is folded into plain weights when a checkpoint is converted
(`fold_spectral_norm`); this module holds only the folded weights and does no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import imagenet_names
from ..layers import Condition, upsample2x
from .base import Generator


def _deep_layers(pairs: list[tuple[int, int]]) -> list[list]:
    """BigGAN-deep layouts come in pairs per resolution: a block at constant width, then an
    upsampling block that may narrow. Entries are `[upsample, in_mult, out_mult]`."""
    out: list[list] = []
    for a, b in pairs:
        out += [[False, a, a], [True, a, b]]
    return out


# Layouts of the released models (channel_width 128, attention before block 8, at 64×64).
DEEP_LAYERS = {
    128: _deep_layers([(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)]),
    256: _deep_layers([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)]),
    512: _deep_layers([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1), (1, 1)]),
}


@dataclass
class BigGANConfig:
    resolution: int = 128            # output side (the reference's output_dim)
    z_dim: int = 128                 # latent size; the class embedding has the same size
    n_classes: int = 1000            # ImageNet
    channel_width: int = 128         # `ch`; block widths are ch × the multipliers in `layers`
    layers: list = field(default_factory=lambda: [list(l) for l in DEEP_LAYERS[128]])
    # one [upsample, in_mult, out_mult] per block; the stem outputs ch × layers[0][1] channels
    attention_position: int = 8      # self-attention before this block (none if out of range)
    eps: float = 1e-4                # BN eps of the released models
    n_stats: int = 51                # stored truncation levels per BN: t = k / (n_stats - 1)
    class_names: list[str] | None = None   # default: ImageNet names when n_classes == 1000

    def validate(self, where: str = "config") -> None:
        """Raise ValueError naming the field when the layout cannot be built."""
        if not self.layers:
            raise ValueError(f"{where}: layers is empty; give one [upsample, in_mult, out_mult] per block")
        for i, l in enumerate(self.layers):
            if len(l) != 3:
                raise ValueError(f"{where}: layers[{i}] = {l!r}; expected [upsample, in_mult, out_mult]")
            if i and l[1] != self.layers[i - 1][2]:
                raise ValueError(f"{where}: layers[{i}] takes {l[1]}×ch channels but layers[{i - 1}] "
                                 f"gives {self.layers[i - 1][2]}×ch")
            c_in, c_out = self.channel_width * l[1], self.channel_width * l[2]
            if c_out > c_in or c_in % 4:
                raise ValueError(f"{where}: layers[{i}] = {l!r}: a block needs out ≤ in channels and in "
                                 "channels divisible by 4 (its bottleneck is in/4)")
        if self.channel_width * self.layers[-1][2] < 3:
            raise ValueError(f"{where}: the last block has fewer than 3 channels; the head needs RGB")
        if 0 <= self.attention_position < len(self.layers) and \
                (self.channel_width * self.layers[self.attention_position][1]) % 8:
            raise ValueError(f"{where}: attention_position {self.attention_position}: self-attention needs "
                             "a channel count divisible by 8")
        side = 4 * 2 ** sum(bool(l[0]) for l in self.layers)
        if side != self.resolution:
            raise ValueError(f"{where}: resolution is {self.resolution} but layers upsample 4×4 to {side}×{side}")
        if self.n_stats < 2:
            raise ValueError(f"{where}: n_stats must be ≥ 2 (truncation levels 0 and 1 at least)")


def biggan_deep_config(resolution: int) -> BigGANConfig:
    """The configuration of the released BigGAN-deep model at 128, 256 or 512."""
    if resolution not in DEEP_LAYERS:
        raise ValueError(f"BigGAN-deep was released at 128, 256 and 512, not {resolution}")
    return BigGANConfig(resolution=resolution, layers=[list(l) for l in DEEP_LAYERS[resolution]])


def _stats_at(means: torch.Tensor, variances: torch.Tensor, truncation: float):
    """Statistics for a truncation from the stored levels, bit for bit as the reference does it.

    The reference splits `t / step` into a fractional part f and a level k, and uses
    `f·stats[k] + (1 − f)·stats[k+1]` — note the weight f goes to the *lower* level (the
    released models were evaluated that way, so we keep it), and the Python float arithmetic
    (e.g. 0.3 / 0.02 = 14.999…) is reproduced too.
    """
    step = 1.0 / (means.shape[0] - 1)
    frac, k = math.modf(truncation / step)
    k = int(k)
    if frac == 0.0:
        return means[k], variances[k]
    return means[k] * frac + means[k + 1] * (1 - frac), variances[k] * frac + variances[k + 1] * (1 - frac)


def _truncation(cond: Condition) -> float:
    return 1.0 if cond.truncation is None else float(cond.truncation)


class TruncatedBatchNorm(nn.Module):
    """Eval-mode BN with per-truncation statistics; class-conditional when `cond_dim` is given.

    Conditional: gain `1 + c @ S` and bias `c @ O`, one projection for both (`gain_bias` holds
    S over O). Unconditional: a plain `weight`/`bias` pair (the head's BN).
    """

    def __init__(self, num_features: int, cond_dim: int | None, n_stats: int, eps: float):
        super().__init__()
        self.num_features, self.eps, self.conditional = num_features, eps, cond_dim is not None
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        if self.conditional:
            self.gain_bias = nn.Linear(cond_dim, 2 * num_features, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        mean, var = _stats_at(self.running_means, self.running_vars, _truncation(cond))
        if not self.conditional:
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        # The reference's op order (not F.batch_norm + addcmul, whose fused multiply-add rounds
        # differently): with it the per-sample path is bit-identical to the reference on CPU.
        x = (x - mean[:, None, None]) / torch.sqrt(var + self.eps)[:, None, None]
        c = self.num_features
        # Per-sample affine as the reference; a label swap adds its delta where it touches.
        return cond.modulate(x, self.gain_bias, lambda x_hat, p: x_hat * (p[:, :c] + 1) + p[:, c:])


class SelfAttention(nn.Module):
    """SAGAN self-attention: keys and values are 2×2 max-pooled; output `x + γ·o(attention)`."""

    def __init__(self, channels: int):
        super().__init__()
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.theta(x).flatten(2)                         # [B, C/8, hw]
        key = F.max_pool2d(self.phi(x), 2).flatten(2)            # [B, C/8, hw/4]
        value = F.max_pool2d(self.g(x), 2).flatten(2)            # [B, C/2, hw/4]
        attn = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)   # [B, hw, hw/4]
        out = torch.bmm(value, attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.gamma * self.o(out)


class DeepBlock(nn.Module):
    """BigGAN-deep residual block: 4 × (conditional BN → ReLU → conv) with a C/4 bottleneck."""

    def __init__(self, c_in: int, c_out: int, upsample: bool, cond_dim: int, n_stats: int, eps: float):
        super().__init__()
        mid = c_in // 4
        self.upsample, self.c_out = upsample, c_out
        for i, c in enumerate([c_in, mid, mid, mid]):
            self.add_module(f"bn{i}", TruncatedBatchNorm(c, cond_dim, n_stats, eps))
        self.conv0 = nn.Conv2d(c_in, mid, 1)
        self.conv1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.conv3 = nn.Conv2d(mid, c_out, 1)

    def forward(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        h = self.conv0(F.relu(self.bn0(x, cond)))
        h = F.relu(self.bn1(h, cond))
        if self.upsample:
            h = upsample2x(h)
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, cond)))
        h = self.conv3(F.relu(self.bn3(h, cond)))
        skip = x[:, :self.c_out]            # narrowing blocks drop channels instead of projecting
        if self.upsample:
            skip = upsample2x(skip)
        return h + skip


class BigGANGenerator(Generator):
    architecture = "biggan"
    supports_truncation = True

    def __init__(self, config: BigGANConfig):
        super().__init__()
        config.validate()
        self.config = config
        ch = config.channel_width
        self.z_dim, self.n_classes = config.z_dim, config.n_classes
        self.resolution, self.stem_resolution = config.resolution, 4
        if config.class_names is not None:
            self.class_names = list(config.class_names)
        elif config.n_classes == 1000:
            self.class_names = list(imagenet_names())
        else:
            self.class_names = [f"class {i}" for i in range(config.n_classes)]
        if len(self.class_names) != config.n_classes:
            raise ValueError(f"config has {config.n_classes} classes but {len(self.class_names)} class names")

        cond_dim = 2 * config.z_dim
        self.stem_channels = ch * config.layers[0][1]
        self.embedding = nn.Linear(config.n_classes, config.z_dim, bias=False)
        self.stem_linear = nn.Linear(cond_dim, 16 * self.stem_channels)
        self.blocks = nn.ModuleList(
            DeepBlock(ch * l[1], ch * l[2], bool(l[0]), cond_dim, config.n_stats, config.eps) for l in config.layers)
        pos = config.attention_position
        self.has_attention = 0 <= pos < len(config.layers)
        if self.has_attention:
            self.attention = SelfAttention(ch * config.layers[pos][1])
        self.out_bn = TruncatedBatchNorm(ch * config.layers[-1][2], None, config.n_stats, config.eps)
        self.to_rgb = nn.Conv2d(ch * config.layers[-1][2], 3, 3, padding=1)

        res, names, resolutions, count = 4, [], [], {}
        for i, l in enumerate(config.layers):
            res *= 2 if l[0] else 1
            count[res] = count.get(res, -1) + 1
            names.append(f"b{res}_{count[res]}" + ("+attn" if self.has_attention and i == pos - 1 else ""))
            resolutions.append(res)
        self.stage_names, self.stage_resolutions = names, resolutions

    # -- sampling ------------------------------------------------------------------------------
    def sample_latents(self, rng: torch.Generator, n: int, truncation: float | None = None) -> torch.Tensor:
        """`truncation × x`, x from the standard normal truncated to [-2, 2] (inverse-CDF sampling
        in float64 from `rng`). This is the distribution of the reference's
        `truncated_noise_sample` (scipy `truncnorm(-2, 2)` × truncation); the numbers differ
        because the reference draws from NumPy's RandomState, we from a torch generator."""
        self.check_truncation(truncation)
        t = 1.0 if truncation is None else float(truncation)
        lo = 0.5 * math.erfc(2 / math.sqrt(2))                 # Φ(-2)
        u = torch.rand(n, self.z_dim, generator=rng, dtype=torch.float64)
        p = lo + u * (1 - 2 * lo)                               # uniform on [Φ(-2), Φ(2)]
        x = math.sqrt(2) * torch.erfinv(2 * p - 1)
        return (t * x.clamp(-2, 2)).float()

    # -- the pieces the engine runs --------------------------------------------------------------
    def embed(self, z: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        """`[B, M, 2·z_dim]`: `[z, y @ E]` per mixture component (affine in the class vector)."""
        e = self.embedding(class_vectors)                                      # [B, M, z_dim]
        return torch.cat([z[:, None].expand(-1, e.shape[1], -1), e], dim=-1)

    def stem(self, z: torch.Tensor, cond: Condition):
        b, c = cond.vectors.shape[0], self.stem_channels
        p = cond.project(self.stem_linear, (4, 4))             # [B, 16·C, 1|4, 1|4]
        if p.shape[-1] == 1:
            # The linear's output is TF's [4, 4, C] layout.
            h = p.view(b, 4, 4, c).permute(0, 3, 1, 2).contiguous()          # [B, C, 4, 4]
        else:
            # Per pixel: every pixel got the whole mixed 4·4·C vector; pixel (i, j) keeps
            # its own slice (i·4 + j)·C … +C, i.e. the diagonal of [B, pos, C, pixel].
            h = torch.diagonal(p.reshape(b, 16, c, 16), dim1=1, dim2=3).reshape(b, c, 4, 4)
        if self.has_attention and self.config.attention_position == 0:
            h = self.attention(h)
        return h

    def stage(self, i: int, h, cond: Condition):
        h = self.blocks[i](h, cond)
        if self.has_attention and i == self.config.attention_position - 1:
            h = self.attention(h)
        if i == len(self.blocks) - 1:
            h = self.out_bn(h, cond)        # truncation-dependent statistics: see the module docstring
        return h

    def head(self, h):
        return torch.tanh(self.to_rgb(F.relu(h)))
