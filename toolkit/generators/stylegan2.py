"""StyleGAN2 generator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020, arXiv 1912.04958), numerically as in rosinality/stylegan2-pytorch, whose checkpoint
layout is the de-facto PyTorch format: submodule and parameter names here follow it
(`style.1.weight`, `input.input`, `conv1.conv.modulation.weight`, `convs.0.noise.weight`,
`to_rgbs.0.bias`, `noises.noise_0`, …) so its `g_ema` state dicts load key by key
(see `checkpoints.py`; its blur-kernel buffers are constants here and are checked, not stored).
NVIDIA's stylegan2-ada-pytorch generators map onto the same modules (`formats/nvidia.py`); the
config options they need: a class embedding (`c_dim`), z/embedding/mapping widths, `conv_clamp`.
The layers themselves live in `stylegan2_layers.py`.

Class-conditional models (`c_dim > 0`, NVIDIA's): the class vector c enters only the mapping,
w = MLP([pixelnorm(z), pixelnorm(class_embed(c))]). `embed` returns one w per condition component,
so a label swap has a w per class; at every style layer of the swapped stages the conv (and
ToRGB) *outputs* computed with each class's styles are mixed per pixel with the swap weights
resized to that layer. A uniform swap to class k therefore equals generation of class k; a soft
mix is not generation with a mixed class vector (the mapping and the modulation are not linear).

Pieces, in the generator contract:
- `embed`: the mapping network, z → w (pixel norm, then `n_mlp` equalized-lr linear layers with
  lr multiplier `lr_mlp` and leaky ReLU·√2). Condition vectors are `[B, 1, style_dim]`: one w per
  sample, broadcast to all `n_latent` style layers; per-layer differences (style mixing) come
  from the `style_mix` option, so the engine's stacking and narrowing of rows need no change.
- `stem`: the learned 4×4 constant, the first modulated 3×3 conv (style layer 0, noise 0) and
  the first ToRGB (style layer 1). The state is the tuple (features, rgb skip).
- `stage(i)`: one resolution (8, 16, …): an upsampling modulated conv (transposed conv, stride 2,
  then the [1,3,3,1] blur), a modulated 3×3 conv, and a ToRGB added to the upsampled skip.
- `head`: returns the RGB sum as it is (no tanh, no clamp: clamp when saving or displaying).

Style layers (`n_latent = 2·log2(size) − 2`): 0 = the 4×4 conv; odd l = 2s+1 = ToRGB of the
previous resolution and the upsampling conv of stage s; even l = 2s+2 = the second conv of
stage s. (The reference shares one style between a ToRGB and the next upsampling conv.)

Per-call options (`render(..., noise=..., style_mix=...)`):
- `noise`: `"stored"` (default: the checkpoint's `noises.noise_i` buffers, deterministic) or a
  list with one tensor `[1 or B, 1, H, W]` per noise layer in `noises.noise_i` order
  (`noise_from_seeds` draws one from per-variant seeds). A variant's reference streams use the
  variant's noise, so a blend at full strength reproduces the reference rendered with it.
- `style_mix`: one `StyleMix` or a list: another latent's styles on a range of style layers,
  everywhere (ordinary style mixing) or inside a mask (regional style mixing). Inside a mask the
  conv *outputs* for both styles are mixed per pixel (modulation and demodulation are not linear
  in w), so a full mask is exactly ordinary style mixing and an empty mask changes nothing.
  Reference streams of blends are plain generations (not mixed).
- `truncation=ψ` (the engine argument): w ← w_avg + ψ·(w − w_avg) for every style, toward the
  checkpoint's `latent_avg` (or a mean of the mapping network over 4096 seeded latents).

This module does no I/O and keeps no per-call state (the option values live in the Condition).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import Condition
from ..masks import resize_weights
from ..sampling import derive_seed
from .base import Generator
from .stylegan2_layers import (BLUR_TAPS, ConstantInput, EqualLinear, FusedLeakyReLU, ModulatedConv2d,  # noqa: F401
                               NoiseInjection, PixelNorm, StyledConv, ToRGB, blur_kernel, upfirdn2d)

_TOL = 1e-5


@dataclass
class StyleGAN2Config:
    size: int = 1024                  # output resolution (a power of two ≥ 8)
    style_dim: int = 512              # z and w size
    n_mlp: int = 8                    # mapping-network depth
    channel_multiplier: int = 2       # rosinality's width knob (2 = "config-f")
    lr_mlp: float = 0.01              # mapping lr multiplier (scales weights and biases at run time)
    channels: list[int] | None = None  # explicit widths at 4, 8, …, size; None = from the multiplier
    # NVIDIA stylegan2-ada-pytorch options (defaults = rosinality's layout):
    z_dim: int | None = None          # latent size when it differs from style_dim
    c_dim: int = 0                    # classes (> 0: conditional; the class enters the mapping via `class_embed`)
    embed_dim: int | None = None      # class-embedding width (None = style_dim)
    mapping_dim: int | None = None    # hidden mapping width (None = style_dim)
    conv_clamp: float | None = None   # clamp every conv and ToRGB output to ±conv_clamp (NVIDIA's conv_clamp)
    class_names: list[str] | None = None


def default_channels(size: int, channel_multiplier: int) -> list[int]:
    """Widths per resolution 4…size of the reference generator."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    out = []
    for j in range(2, int(math.log2(size)) + 1):
        r = 2 ** j
        if r not in table:
            raise ValueError(f"StyleGAN2 default widths go up to 1024 px; pass explicit channels for {size}")
        out.append(table[r] * (channel_multiplier if r >= 64 else 1))
    return out


# -- style mixing ----------------------------------------------------------------------------------
@dataclass
class StyleMix:
    """Another latent's styles on some style layers: everywhere, or only inside a mask.

    z: `[B, z_dim]` (or `[z_dim]` for all variants): the latents whose styles are mixed in.
    layers: style-layer indices that use them: an int k (layers k…n_latent−1, the reference's
            "inject index"), a range or list, or None (all layers). See `StyleGAN2Generator.layer_names`.
    mask: None (the whole image: ordinary style mixing) or `[H, W]` / `[B, H, W]` in [0, 1], any
          resolution (area-resized per layer). Several `StyleMix` may be given; where their layers
          overlap, their masks must sum to ≤ 1 per pixel (the rest keeps the variant's own style).
    """
    z: torch.Tensor
    layers: Union[int, range, Sequence[int], None] = None
    mask: Union[torch.Tensor, None] = None


@dataclass(frozen=True)
class StyleGAN2Options:
    """StyleGAN2's per-call options (`render(g, z, noise=..., style_mix=...)`), checked once per call.

    noise: "stored" (the model's noise buffers) or one tensor per noise layer (`noises.noise_i`
           order), each `[1 or B, 1, H, W]`.
    style_mix: None, one `StyleMix`, or a list of them.
    """
    noise: Union[str, Sequence[torch.Tensor]] = "stored"
    style_mix: Union["StyleMix", Sequence["StyleMix"], None] = None


@dataclass
class _Mix:
    w: torch.Tensor                 # [b, style_dim], truncated
    mask: torch.Tensor | None       # [b, 1, H, W] or None (everywhere)
    layers: frozenset


@dataclass
class _Plan:
    """What every layer of one stem/stage call needs (built once per call, never stored)."""
    w: torch.Tensor                   # [N, style_dim] base styles, truncated
    mixes: list[_Mix]
    b: int                            # leading rows that are variants
    cond: Condition
    swap_w: torch.Tensor | None       # [N, M-1, style_dim]: label-swap classes' ws (conditional models)


class StyleGAN2Generator(Generator):
    architecture = "stylegan2"
    supports_truncation = True

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        self.config = config
        size = config.size
        log = int(round(math.log2(size))) if size > 0 else 0
        if size < 8 or 2 ** log != size:
            raise ValueError(f"StyleGAN2 size must be a power of two ≥ 8, got {size}")
        ch = list(config.channels) if config.channels else default_channels(size, config.channel_multiplier)
        if len(ch) != log - 1:
            raise ValueError(f"channels must list one width per resolution 4…{size} ({log - 1} values), got {ch}")
        sd, zd, cd = config.style_dim, config.z_dim or config.style_dim, config.c_dim
        ed = (config.embed_dim or sd) if cd else 0
        feats = [zd + ed] + [config.mapping_dim or sd] * (config.n_mlp - 1) + [sd]
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(feats[i], feats[i + 1], lr_mul=config.lr_mlp,
                                                              activation=True) for i in range(config.n_mlp)])
        if cd:   # NVIDIA's label embedding: linear, pixel-normalised, concatenated to the normalised z
            self.class_embed = EqualLinear(cd, ed)
        self.input = ConstantInput(ch[0])
        self.conv1 = StyledConv(ch[0], ch[0], sd)
        self.to_rgb1 = ToRGB(ch[0], sd, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            self.convs.append(StyledConv(c_in, c_out, sd, upsample=True))
            self.convs.append(StyledConv(c_out, c_out, sd))
            self.to_rgbs.append(ToRGB(c_out, sd))
        self.num_noise = 2 * (log - 2) + 1
        self.noises = nn.Module()
        for i in range(self.num_noise):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))
        # NaN until a loader or `estimate_latent_avg` fills it: truncation then refuses to guess.
        self.register_buffer("latent_avg", torch.full((sd,), float("nan")))

        self.channels = ch
        self.n_latent = 2 * log - 2
        self.z_dim, self.n_classes = zd, cd
        self.class_names = list(config.class_names or [f"class {i}" for i in range(cd)])
        if len(self.class_names) != cd:
            raise ValueError(f"class_names lists {len(self.class_names)} names for c_dim={cd}")
        self.resolution, self.stem_resolution = size, 4
        self.stage_resolutions = [2 ** j for j in range(3, log + 1)]
        self.stage_names = [f"b{r}" for r in self.stage_resolutions]

    # -- description -----------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """What each style layer (index into the per-layer styles) modulates."""
        names = ["conv 4"]
        for r in self.stage_resolutions:
            names += [f"rgb {r // 2} + up {r}", f"conv {r}"]
        return names + [f"rgb {self.resolution}"]

    def layer_resolution(self, layer: int) -> int:
        """The feature resolution a style layer acts at (for a shared ToRGB/up layer: the up conv's)."""
        return 4 if layer == 0 else (self.stage_resolutions + [self.resolution])[(layer - 1) // 2]

    # -- latents -----------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """z `[N, z_dim]` (and class vectors c `[N, c_dim]` for conditional models) → w `[N, style_dim]`."""
        x = self.style[0](z)
        if self.n_classes:
            if c is None or c.shape != (z.shape[0], self.n_classes):
                raise ValueError(f"{self.name_for_errors} is class-conditional: mapping needs class vectors "
                                 f"[{z.shape[0]}, {self.n_classes}]")
            x = torch.cat([x, self.style[0](self.class_embed(c))], 1)
        for layer in list(self.style)[1:]:
            x = layer(x)
        return x

    def embed(self, z: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        """`[N, M, style_dim]`: one w per condition component (per class for a label swap)."""
        n, m = class_vectors.shape[:2]
        if not self.n_classes:
            return self.mapping(z)[:, None].expand(-1, m, -1)
        w = self.mapping(z.repeat_interleave(m, 0), class_vectors.reshape(n * m, -1))
        return w.view(n, m, -1)

    @torch.no_grad()
    def estimate_latent_avg(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """The mean w over `n` seeded latents (the reference's `mean_latent`), stored as `latent_avg`.
        For checkpoints without one; call it before sharing the model (it sets a buffer)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g).to(self.device, self.dtype)
        c = None
        if self.n_classes:   # classes drawn uniformly, like the average NVIDIA tracks during training
            c = F.one_hot(torch.randint(self.n_classes, (n,), generator=g), self.n_classes).to(z)
        avg = torch.cat([self.mapping(zz, None if c is None else c[i:i + 1024])
                         for i, zz in zip(range(0, n, 1024), z.split(1024))]).mean(0)
        self.latent_avg.copy_(avg)
        return avg

    def _truncate(self, w: torch.Tensor, psi: float | None) -> torch.Tensor:
        if psi is None or float(psi) >= 1:
            return w
        if torch.isnan(self.latent_avg).any():
            raise ValueError(f"{self.name_for_errors} has no latent_avg for truncation; "
                             "call generator.estimate_latent_avg() after loading its weights")
        return torch.lerp(self.latent_avg.to(w), w, float(psi))

    def noise_from_seeds(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """One noise tensor `[B, 1, H, W]` per noise layer; row i depends only on seeds[i]."""
        rows = []
        for s in seeds:
            g = torch.Generator().manual_seed(derive_seed(int(s), "stylegan2-noise"))
            rows.append([torch.randn(1, 1, *getattr(self.noises, f"noise_{i}").shape[-2:], generator=g)
                         for i in range(self.num_noise)])
        return [torch.cat([r[i] for r in rows]).to(self.device, self.dtype) for i in range(self.num_noise)]

    # -- per-call options -----------------------------------------------------------------------
    def call_options(self, noise="stored", style_mix=None, **unknown) -> StyleGAN2Options:
        if unknown:
            raise TypeError(f"{self.name_for_errors} does not take option(s) {sorted(unknown)}; "
                            "its options are noise and style_mix")
        return StyleGAN2Options(noise=noise, style_mix=style_mix)

    def _noise(self, i: int, out: torch.Tensor, cond: Condition) -> torch.Tensor:
        noise = cond.options.noise if cond.options is not None else "stored"
        n = out.shape[0]
        if isinstance(noise, str):
            if noise != "stored":
                raise ValueError(f"noise must be 'stored' or a list of {self.num_noise} tensors, got {noise!r}")
            return getattr(self.noises, f"noise_{i}")
        if not isinstance(noise, (list, tuple)) or len(noise) != self.num_noise:
            raise ValueError(f"noise must be 'stored' or a list of {self.num_noise} tensors "
                             f"(one per noise layer, in noises.noise_i order), got {type(noise).__name__}"
                             + (f" of length {len(noise)}" if isinstance(noise, (list, tuple)) else ""))
        t = torch.as_tensor(noise[i]).to(out)
        b = cond.variants or n
        want = (out.shape[-2], out.shape[-1])
        if t.dim() != 4 or t.shape[1] != 1 or tuple(t.shape[-2:]) != want or t.shape[0] not in (1, b):
            raise ValueError(f"noise[{i}] has shape {list(t.shape)}; expected [1 or {b}, 1, {want[0]}, {want[1]}]")
        if t.shape[0] == b and n != b:        # reference streams below the variants reuse their noise
            t = t.repeat(n // b, 1, 1, 1)
        return t

    def _mixes(self, cond: Condition) -> list[_Mix]:
        spec = cond.options.style_mix if cond.options is not None else None
        if spec is None:
            return []
        if self.n_classes:
            raise ValueError(f"{self.name_for_errors} is class-conditional: style_mix is not supported for "
                             "conditional StyleGAN2 models yet (use label swap or blending)")
        specs = [spec] if isinstance(spec, StyleMix) else list(spec)
        b = cond.variants or cond.vectors.shape[0]
        dev, dt = cond.vectors.device, cond.vectors.dtype
        out = []
        for j, m in enumerate(specs):
            if not isinstance(m, StyleMix):
                raise TypeError(f"style_mix[{j}] must be a StyleMix, got {type(m).__name__}")
            z = torch.as_tensor(m.z).to(dev, dt)
            if z.dim() == 1:
                z = z[None]
            if z.dim() != 2 or z.shape[1] != self.z_dim or z.shape[0] not in (1, b):
                raise ValueError(f"style_mix[{j}].z must be [{b}, {self.z_dim}] or [{self.z_dim}], got {list(z.shape)}")
            w = self._truncate(self.mapping(z), cond.truncation).expand(b, -1)
            if m.layers is None:
                layers = range(self.n_latent)
            elif isinstance(m.layers, int):
                layers = range(m.layers, self.n_latent)
            else:
                layers = [int(l) for l in m.layers]
            bad = [l for l in layers if not 0 <= l < self.n_latent]
            if bad:
                raise ValueError(f"style_mix[{j}].layers {bad} out of range: this model has style layers "
                                 f"0..{self.n_latent - 1} ({', '.join(self.layer_names)})")
            mask = None
            if m.mask is not None:
                mask = torch.as_tensor(m.mask).to(dev, dt)
                if mask.dim() == 2:
                    mask = mask[None]
                if mask.dim() != 3 or mask.shape[0] not in (1, b):
                    raise ValueError(f"style_mix[{j}].mask must be [H, W] or [{b}, H, W], got {list(mask.shape)}")
                if mask.min() < -_TOL or mask.max() > 1 + _TOL:
                    raise ValueError(f"style_mix[{j}].mask values must lie in [0, 1]")
                mask = mask.expand(b, -1, -1)[:, None]
            out.append(_Mix(w, mask, frozenset(layers)))
        for l in range(self.n_latent):
            active = [m for m in out if l in m.layers]
            if len(active) > 1:
                total = sum((m.mask if m.mask is not None else torch.ones((), device=dev)) for m in active)
                if total.max() > 1 + _TOL:
                    raise ValueError(f"style_mix masks sum to {total.max().item():.3f} > 1 at style layer {l} "
                                     f"({self.layer_names[l]}); make masks of overlapping layer ranges disjoint")
        return out

    def _styled(self, conv: ModulatedConv2d, layer: int, x: torch.Tensor, plan: "_Plan") -> torch.Tensor:
        """`conv(x)` with style layer `layer`. A label swap mixes, per pixel, the outputs for each
        class's w (the swap weights resized to this layer); then style mixes replace (mask None) or
        blend the outputs of the first b rows (the variants) with those for other latents' styles."""
        w, mixes, b = plan.w, plan.mixes, plan.b
        active = [m for m in mixes if layer in m.layers]
        if len(active) == 1 and active[0].mask is None:       # ordinary style mixing: swap the style
            w = torch.cat([active[0].w, w[b:]])
            active = []
        out = conv(x, conv.modulation(w))
        if plan.swap_w is not None:
            a = plan.cond.weights_at(tuple(out.shape[-2:]))                       # [N, M, h, w]
            mixed = out * a[:, :1]
            for k in range(plan.swap_w.shape[1]):
                mixed = mixed + a[:, k + 1:k + 2] * conv(x, conv.modulation(plan.swap_w[:, k]))
            out = mixed
        if not active:
            return out
        size = tuple(out.shape[-2:])
        src = out[:b]
        keep, acc = 1.0, 0.0
        for m in active:
            a = 1.0 if m.mask is None else resize_weights(m.mask, size)
            acc = acc + a * conv(x[:b], conv.modulation(m.w))
            keep = keep - a
        return torch.cat([keep * src + acc, out[b:]])

    # -- the pieces the engine runs -----------------------------------------------------------------
    def _plan(self, cond: Condition) -> "_Plan":
        w = self._truncate(cond.base, cond.truncation)
        swap_w = None
        if cond.spatial and self.n_classes:   # the other classes' ws, truncated like the base one
            swap_w = self._truncate(cond.vectors[:, 1:], cond.truncation)
        return _Plan(w, self._mixes(cond), cond.variants or w.shape[0], cond, swap_w)

    def _clamp(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config.conv_clamp
        return t if c is None else t.clamp(-float(c), float(c))

    def _conv_block(self, block: StyledConv, layer: int, noise_i: int, x, plan: "_Plan"):
        out = self._styled(block.conv, layer, x, plan)
        out = out + block.noise.weight * self._noise(noise_i, out, plan.cond)
        return self._clamp(block.activate(out))

    def stem(self, z: torch.Tensor, cond: Condition):
        plan = self._plan(cond)
        x = self.input.input.expand(z.shape[0], -1, -1, -1)
        x = self._conv_block(self.conv1, 0, 0, x, plan)       # [N, C4, 4, 4]
        skip = self._clamp(self._styled(self.to_rgb1.conv, 1, x, plan) + self.to_rgb1.bias)
        return x, skip

    def stage(self, i: int, h, cond: Condition):
        x, skip = h
        plan = self._plan(cond)
        x = self._conv_block(self.convs[2 * i], 2 * i + 1, 2 * i + 1, x, plan)
        x = self._conv_block(self.convs[2 * i + 1], 2 * i + 2, 2 * i + 2, x, plan)
        rgb = self.to_rgbs[i]
        skip = self._clamp(self._styled(rgb.conv, 2 * i + 3, x, plan) + rgb.bias) + rgb.upsample_skip(skip)
        return x, skip

    def head(self, h) -> torch.Tensor:
        return h[1]


def tiny_config() -> StyleGAN2Config:
    """A 32×32 toy configuration (small widths and mapping) for fast CPU tests and pictures."""
    return StyleGAN2Config(size=32, style_dim=32, n_mlp=2, channels=[32, 32, 16, 16])


@torch.no_grad()
def randomize(gen: StyleGAN2Generator, seed: int) -> StyleGAN2Generator:
    """Seeded random weights with every term active (non-zero noise strengths and biases, random
    noise buffers) and `latent_avg` estimated, so tests exercise the whole computation."""
    g = torch.Generator().manual_seed(seed)
    for name, p in gen.named_parameters():
        if name.endswith("modulation.bias"):
            p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
        elif name.endswith("noise.weight"):
            p.copy_(0.1 + 0.1 * torch.rand(p.shape, generator=g))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif name.startswith("style."):   # stored at 1/lr_mlp scale
            p.copy_(torch.randn(p.shape, generator=g) / gen.config.lr_mlp)
        else:
            p.copy_(torch.randn(p.shape, generator=g))
    for name, t in gen.noises.named_buffers():
        t.copy_(torch.randn(t.shape, generator=g))
    gen.estimate_latent_avg(n=512, seed=seed)
    return gen
