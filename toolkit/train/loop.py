"""GAN training on a labelled image folder: `python -m toolkit train --data DIR --out RUN`.

The generic path for users' own data (`folders.py`: ImageFolder or Hugging Face imagefolder) and
for the shipped `terrain64` (a materials build, `materials.py`, is one such folder).

SNGAN-projection generator (`toolkit.generators.sngan`) against a projection discriminator,
hinge loss, Adam(β=(0, 0.9)), an exponential moving average (EMA) of the generator's weights.
The EMA generator is what ships: before sampling or export its batch-norm running statistics
are re-estimated on its own outputs ("standing statistics"), because the statistics the
training generator accumulated belong to other weights.

RUN/ holds `checkpoint.pt` (generator, EMA, discriminator, both optimisers, step, RNG state;
read back with `torch.load(weights_only=True)`), `log.csv`, `samples/stepNNNNNN.png` (one row
per class, fixed latents) and `ema.safetensors` (fp16, our format, with class names). A run
resumes from its checkpoint when started again with the same --out.
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from ..checkpoints import CheckpointError, load_file, save_generator, sha256_file
from ..devices import resolve_device
from ..generators.sngan import SNGANConfig, SNGANGenerator
from ..images import grid, to_pil
from ..io import atomic_path, atomic_write_text, save_png
from ..layers import ConditionalBatchNorm2d
from .augment import augment, parse_policy
from .data import MaterialCrops
from .folders import ImageFolderData, open_training_data
from .discriminator import ProjectionDiscriminator

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    resolution: int = 64        # 4·2^k; the data are cropped to this size
    ch: int = 32                # generator width at full resolution (doubles per halving, capped at 8·ch)
    d_ch: int = 32              # discriminator width of its first block
    z_dim: int = 64
    batch: int = 32
    steps: int = 10000          # generator steps
    n_dis: int = 1              # discriminator steps per generator step
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ema: float = 0.999          # EMA decay (warmed up: min(ema, (1+t)/(10+t)))
    seed: int = 0
    sample_every: int = 250
    ckpt_every: int = 100
    split: str = "train"
    augment: str = ""           # DiffAugment policy for D's inputs, e.g. "translation,cutout" (augment.py)
    d_warmup: int = 0           # first steps train only D (G and EMA frozen): a fresh D beside a warm-started G
    init_from: str = ""         # warm start: G and EMA from this exported generator (.safetensors); D fresh

    def g_channels(self) -> list[int]:
        n = (self.resolution // 4).bit_length() - 1                  # upsampling blocks
        return [min(2 ** (n - i), 8) * self.ch for i in range(n + 1)]

    def d_channels(self) -> list[int]:
        n = (self.resolution // 4).bit_length() - 1                  # downsampling blocks
        return [min(2 ** i, 8) * self.d_ch for i in range(n)] + [min(2 ** n, 8) * self.d_ch]


PORTABLE_FORMAT = "neural-collage-toolkit/train-portable-1"
SMOKE = dict(resolution=32, ch=4, d_ch=4, z_dim=8, batch=4, steps=3, sample_every=2, ckpt_every=1)


def build_generator(cfg: TrainConfig, class_names: list[str]) -> SNGANGenerator:
    gen = SNGANGenerator(SNGANConfig(z_dim=cfg.z_dim, n_classes=len(class_names), bottom_width=4,
                                     channels=cfg.g_channels(), class_names=list(class_names)))
    for name, m in gen.named_modules():               # the original SNGAN initialisation
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gain = 2 ** 0.5 if name.endswith((".c1", ".c2")) else 1.0
            nn.init.xavier_uniform_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)
    return gen


class Trainer:
    """Owns the models, optimisers and RNG; `step()` is one generator update (after n_dis D updates)."""

    def __init__(self, cfg: TrainConfig, data: MaterialCrops | ImageFolderData, device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device
        torch.manual_seed(cfg.seed)
        self.g = build_generator(cfg, data.class_names).to(device).train()
        self.d = ProjectionDiscriminator(data.n_classes, cfg.d_channels(), cfg.resolution).to(device).train()
        self.ema = copy.deepcopy(self.g).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.init_sha256 = ""
        self.policy = parse_policy(cfg.augment)
        self.opt_g = torch.optim.Adam(self.g.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.d.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.rng = torch.Generator().manual_seed(cfg.seed)     # data, latents, classes: CPU stream
        self.step_count = 0

    def warm_start(self, path: Path) -> None:
        """G and EMA start from an exported generator (fp16 exports widen to float32); only its
        weights are used, so it must have this run's architecture and class names."""
        src = load_file(path)
        if list(getattr(src, "class_names", [])) != list(self.data.class_names):
            raise CheckpointError(f"{path}: classes {getattr(src, 'class_names', None)} differ from the data's "
                                  f"{self.data.class_names}; --init-from needs a model of the same classes")
        try:
            self.g.load_state_dict(src.state_dict())
        except RuntimeError as e:
            raise CheckpointError(f"{path}: cannot warm-start this architecture (--ch/--z-dim/--resolution "
                                  f"must match the file's): {e}") from e
        self.ema.load_state_dict(src.state_dict())
        self.init_sha256 = sha256_file(path)

    def _d(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.d(augment(x, self.policy, self.rng) if self.policy else x, y)

    def _latents(self, n: int):
        z = torch.randn(n, self.cfg.z_dim, generator=self.rng)
        y = torch.randint(0, self.data.n_classes, (n,), generator=self.rng)
        return z.to(self.device), y.to(self.device)

    def step(self) -> dict:
        cfg = self.cfg
        for _ in range(cfg.n_dis):
            x, y_real = self.data.sample(cfg.batch, self.rng)
            x, y_real = x.to(self.device), y_real.to(self.device)
            z, y_fake = self._latents(cfg.batch)
            with torch.no_grad():
                fake = self.g(z, y_fake)
            loss_d_real = F.relu(1 - self._d(x, y_real)).mean()
            loss_d_fake = F.relu(1 + self._d(fake, y_fake)).mean()
            self.opt_d.zero_grad(set_to_none=True)
            (loss_d_real + loss_d_fake).backward()
            self.opt_d.step()
        row = {"step": self.step_count + 1, "loss_d_real": loss_d_real.item(), "loss_d_fake": loss_d_fake.item(),
               "loss_g": float("nan")}
        if self.step_count < cfg.d_warmup:          # D catches up with a warm-started G first
            self.step_count += 1
            return row
        z, y_fake = self._latents(cfg.batch)
        for p in self.d.parameters():
            p.requires_grad_(False)
        loss_g = -self._d(self.g(z, y_fake), y_fake).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        for p in self.d.parameters():
            p.requires_grad_(True)
        self.step_count += 1
        self._update_ema()
        row["loss_g"] = loss_g.item()
        return row

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.step_count
        # a warm-started EMA is already a good model: no warm-up that would let it jump to G
        decay = self.cfg.ema if self.cfg.init_from else min(self.cfg.ema, (1 + t) / (10 + t))
        for pe, p in zip(self.ema.parameters(), self.g.parameters()):
            pe.lerp_(p.detach(), 1 - decay)

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"config": dataclasses.asdict(self.cfg), "class_names": list(self.data.class_names),
                "step": self.step_count, "g": self.g.state_dict(), "ema": self.ema.state_dict(),
                "d": self.d.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": self.rng.get_state(), "torch_rng": torch.get_rng_state(), "init_sha256": self.init_sha256}

    def save(self, path: Path) -> None:
        with atomic_path(path, make_parents=True) as tmp:
            torch.save(self.state(), tmp)

    def _check_config(self, config: dict, path: Path) -> None:
        saved = {k: v for k, v in config.items() if k not in ("steps", "sample_every", "ckpt_every")}
        now = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k in saved}
        if saved != now:
            diff = {k: (saved[k], now[k]) for k in saved if saved[k] != now[k]}
            raise ValueError(f"{path}: checkpoint was trained with other settings {diff} (saved, now); "
                             "pass the same settings or use a new --out folder")

    def save_portable(self, path: Path) -> None:
        """A small checkpoint to commit or to carry to another machine (safetensors, no pickle): G, EMA
        and D in fp16, the step and the data RNG, no optimiser state. Adam here has β1 = 0 (its first
        moment is the last gradient) and β2 = 0.9 (the second moment forgets within ~10 steps), so
        restarting it costs little. Continuing from this file is close to, not bit-identical with,
        continuing from `checkpoint.pt` (fp16 rounding, fresh Adam)."""
        tensors = {f"{name}/{k}": (v.half() if v.is_floating_point() else v).detach().cpu().clone().contiguous()
                   for name in ("g", "ema", "d") for k, v in getattr(self, name).state_dict().items()}
        tensors["rng"] = self.rng.get_state()
        meta = {"format": PORTABLE_FORMAT, "config": json.dumps(dataclasses.asdict(self.cfg)),
                "class_names": json.dumps(list(self.data.class_names)), "step": str(self.step_count),
                "init_sha256": self.init_sha256}
        with atomic_path(path, make_parents=True) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def load_portable(self, path: Path) -> None:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != PORTABLE_FORMAT:
                raise CheckpointError(f"{path}: not a portable training checkpoint (format {meta.get('format')!r}); "
                                      "--resume-from takes RUN/portable.safetensors")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if json.loads(meta["class_names"]) != list(self.data.class_names):
            raise ValueError(f"{path}: checkpoint classes {meta['class_names']} differ from the data's "
                             f"{self.data.class_names}")
        self._check_config(json.loads(meta["config"]), path)
        for name in ("g", "ema", "d"):              # fp16 on disk; copy_ widens into the float32 modules
            part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")}
            getattr(self, name).load_state_dict(part)
        self.rng.set_state(tensors["rng"])
        self.step_count = int(meta["step"])
        self.init_sha256 = meta.get("init_sha256", "")

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=True)
        if st["class_names"] != list(self.data.class_names):
            raise ValueError(f"{path}: checkpoint classes {st['class_names']} differ from the data's "
                             f"{self.data.class_names}; use a new --out folder")
        self._check_config(st["config"], path)
        self.g.load_state_dict(st["g"])
        self.ema.load_state_dict(st["ema"])
        self.d.load_state_dict(st["d"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.rng.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.step_count = int(st["step"])
        self.init_sha256 = st.get("init_sha256", "")

    # -- the shipped generator ----------------------------------------------------------------------
    @torch.no_grad()
    def standing_ema(self, n_batches: int = 8, batch: int | None = None) -> SNGANGenerator:
        """A copy of the EMA generator whose BN running statistics are averages over its own
        outputs (fixed seed, so export is deterministic). The EMA weights never had stats of their own."""
        gen = copy.deepcopy(self.ema)
        bns = [m for m in gen.modules() if isinstance(m, (nn.BatchNorm2d, ConditionalBatchNorm2d))]
        for m in bns:
            m.running_mean.zero_()
            m.running_var.fill_(1)
            m.momentum_saved, m.momentum = m.momentum, None        # None: cumulative average
            if isinstance(m, nn.BatchNorm2d):
                m.num_batches_tracked.zero_()
        rng = torch.Generator().manual_seed(12345)
        gen.train()
        batch = batch or max(self.cfg.batch, 2 * self.data.n_classes)
        for i in range(n_batches):
            z = torch.randn(batch, self.cfg.z_dim, generator=rng).to(self.device)
            y = (torch.arange(batch) % self.data.n_classes).to(self.device)
            for m in bns:                      # ConditionalBatchNorm2d has no counter: weight by hand
                if isinstance(m, ConditionalBatchNorm2d):
                    m.momentum = 1.0 / (i + 1)
            gen(z, y)
        for m in bns:
            m.momentum = m.momentum_saved
            del m.momentum_saved
        return gen.eval()

    @torch.no_grad()
    def sample_grid(self, gen: SNGANGenerator, per_class: int = 8, max_rows: int = 16):
        """One row per class (the first `max_rows` classes), the same fixed latents in every row."""
        rng = torch.Generator().manual_seed(777)
        z = torch.randn(per_class, self.cfg.z_dim, generator=rng).to(self.device)
        shown = range(min(self.data.n_classes, max_rows))
        rows = [to_pil(gen(z, torch.full((per_class,), k, device=self.device))) for k in shown]
        return grid(rows, row_labels=[self.data.class_names[k] for k in shown],
                    scale=max(1, 64 // self.cfg.resolution))


def export(trainer: Trainer, path: Path, n_batches: int = 8) -> SNGANGenerator:
    gen = trainer.standing_ema(n_batches).cpu()
    extra = {"trained_steps": trainer.step_count, "train_config": dataclasses.asdict(trainer.cfg)}
    if trainer.init_sha256:
        extra["init_sha256"] = trainer.init_sha256
    save_generator(gen, path, dtype=torch.float16, extra=extra)
    return gen


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after the checkpoint's step (written before a kill, redone after the resume)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))


def train(cfg: TrainConfig, data_dir: str, out: str, device: str = "auto", time_limit: float | None = None,
          resume_from: str | None = None) -> Trainer:
    """Train (or resume) until cfg.steps or time_limit seconds; returns the trainer. The run folder's
    own checkpoint wins; else `resume_from` (a portable checkpoint); else `cfg.init_from` (warm start)."""
    dev = resolve_device(device)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = open_training_data(data_dir, size=cfg.resolution, split=cfg.split)
    log.info("data: %s", ", ".join(f"{c} {n}" for c, n in zip(data.class_names, data.counts)))
    trainer = Trainer(cfg, data, dev)
    ckpt = out_dir / "checkpoint.pt"
    if ckpt.exists():
        trainer.load(ckpt)
        log.info("resumed %s at step %d", ckpt, trainer.step_count)
    elif resume_from:
        trainer.load_portable(Path(resume_from))
        log.info("continued from the portable checkpoint %s at step %d", resume_from, trainer.step_count)
    elif cfg.init_from:                  # only a new run starts from it; a resumed one has its own weights
        trainer.warm_start(Path(cfg.init_from))
        log.info("warm start from %s (sha256 %s)", cfg.init_from, trainer.init_sha256[:12])
    log_path = out_dir / "log.csv"
    _trim_log(log_path, trainer.step_count)
    new_log = not log_path.exists()
    t0, last = time.monotonic(), time.monotonic()
    with open(log_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss_d_real", "loss_d_fake", "loss_g", "s_per_step"])
        if new_log:
            w.writeheader()
        while trainer.step_count < cfg.steps:
            row = trainer.step()
            now = time.monotonic()
            row["s_per_step"] = round(now - last, 3)
            last = now
            w.writerow(row)
            f.flush()
            s = trainer.step_count
            done = s >= cfg.steps or (time_limit is not None and now - t0 >= time_limit)
            if s % cfg.ckpt_every == 0 or done:
                trainer.save(ckpt)
                log.info("step %d  D %.3f/%.3f  G %.3f  %.2f s/step", s, row["loss_d_real"],
                         row["loss_d_fake"], row["loss_g"], row["s_per_step"])
            if s % cfg.sample_every == 0 or done:
                gen = export(trainer, out_dir / "ema.safetensors")
                trainer.save_portable(out_dir / "portable.safetensors")
                save_png(trainer.sample_grid(gen.to(dev)), out_dir / "samples" / f"step{s:06d}.png")
            if done:
                break
    return trainer


RESOLUTIONS = (32, 64, 128)


def build_parser(prog: str = "python -m toolkit.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="train a class-conditional SNGAN-projection generator on "
                                "a labelled image folder; the result (RUN/ema.safetensors) loads with "
                                "load_generator(path) and in the app (see docs/TRAINING.md)")
    p.add_argument("--data", required=True, help="image folder: FOLDER/<class>/*.jpg, or a Hugging Face imagefolder "
                   "with metadata.csv (file_name,label), or a materials build (manifest.csv)")
    p.add_argument("--out", required=True, help="run folder; an existing checkpoint there is resumed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--time-limit", type=float, default=None, help="stop (and checkpoint) after this many seconds")
    p.add_argument("--smoke", action="store_true", help="tiny 32px config, 3 steps: checks the pipeline on CPU")
    p.add_argument("--export", default=None, help="after training, also write the fp16 EMA generator here")
    p.add_argument("--resume-from", default=None, help="continue from a portable checkpoint (RUN/portable.safetensors "
                   "of another run folder or machine) when --out has no checkpoint.pt of its own")
    for f in dataclasses.fields(TrainConfig):
        extra = {"choices": RESOLUTIONS} if f.name == "resolution" else {}
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                       help=f"(default {f.default})", **extra)
    return p


def main(argv: list[str] | None = None, prog: str = "python -m toolkit.train") -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    values = dict(SMOKE) if args.smoke else {}
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                   if getattr(args, f.name) is not None})
    cfg = TrainConfig(**values)
    try:
        trainer = train(cfg, args.data, args.out, args.device, args.time_limit, args.resume_from)
    except (ValueError, OSError) as e:     # DataError, CheckpointError, settings mismatch: messages say how to fix
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.export:
        export(trainer, Path(args.export))
        print(f"wrote {args.export}")
    print(f"trained to step {trainer.step_count}; model {Path(args.out) / 'ema.safetensors'} "
          "(load_generator(path), or the app's weights path); rerun the same command to continue")
    return 0
