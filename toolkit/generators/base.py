"""The generator contract every architecture implements (see DESIGN.md).

A generator exposes its pieces — `embed`, `stem`, `stage(i, ...)`, `head` — so that the
collage engine can run the stage loop itself and edit between stages, without hooks.
`forward` is the plain loop over the same pieces; the engine runs them with edits in between,
and a parity test (forward == render without edits) keeps the two equal. Generators never
import the engine. Modules here do no I/O and keep no per-call state: loaded generators are
shared between app sessions and must never be mutated (`provenance` is set once, by
`load_generator`, before the model is shared).
"""
from __future__ import annotations

import difflib
from typing import Sequence

import torch
import torch.nn as nn

from ..layers import Condition
from ..provenance import Provenance


class Generator(nn.Module):
    """Base class. Subclasses set the attributes below in `__init__` and implement the pieces."""

    architecture: str = "?"
    z_dim: int
    n_classes: int = 0          # 0 = unconditional
    resolution: int
    class_names: list[str]
    stage_names: list[str]
    stage_resolutions: list[int]
    supports_truncation: bool = False
    provenance: Provenance | None = None    # set by load_generator; None for a model built by hand

    # -- configuration ---------------------------------------------------------------------
    def config_dict(self) -> dict:
        """JSON-serialisable configuration, saved beside the weights so the model rebuilds itself."""
        return dict(self.config.__dict__)

    @property
    def n_stages(self) -> int:
        return len(self.stage_names)

    @property
    def n_blend_points(self) -> int:
        """After the stem, then after each stage."""
        return self.n_stages + 1

    @property
    def blend_resolutions(self) -> list[int]:
        return [self.stem_resolution] + list(self.stage_resolutions)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Float32 unless the caller converted the model (half precision is opt-in, never a default)."""
        return next(self.parameters()).dtype

    # -- classes -----------------------------------------------------------------------------
    def class_index(self, c: int | str) -> int:
        """A class id or (case-insensitive) name → id, with close-match suggestions on failure."""
        if not self.n_classes:
            raise ValueError(f"{self.name_for_errors} is unconditional (it has no classes): "
                             "label swap and class choices need a class-conditional model; use blending instead.")
        if isinstance(c, (int,)) or (isinstance(c, str) and c.strip().lstrip("-").isdigit()):
            i = int(c)
            if not 0 <= i < self.n_classes:
                raise ValueError(f"class id {i} is out of range for {self.name_for_errors}: "
                                 f"valid ids are 0..{self.n_classes - 1}")
            return i
        name = str(c).strip().lower()
        lowered = [n.lower() for n in self.class_names]
        if name in lowered:
            return lowered.index(name)
        # Names like "Pomeranian" match "Pomeranian, Pom"-style synonyms lists too.
        for i, n in enumerate(lowered):
            if name in [s.strip() for s in n.split(",")]:
                return i
        close = difflib.get_close_matches(name, lowered, n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(repr(self.class_names[lowered.index(m)]) for m in close)}?" if close else ""
        raise ValueError(f"unknown class name {c!r} for {self.name_for_errors}.{hint}")

    def class_vectors(self, y: torch.Tensor | Sequence) -> torch.Tensor:
        """Class ids `[B]` (or names) or soft class vectors `[B, n_classes]` → `[B, n_classes]` float."""
        if not self.n_classes:
            return torch.zeros(len(y), 0, device=self.device, dtype=self.dtype)
        if not torch.is_tensor(y):
            y = torch.tensor([self.class_index(c) for c in y])
        y = y.to(self.device)
        if y.dim() == 2:
            if y.shape[1] != self.n_classes:
                raise ValueError(f"soft class vectors must be [B, {self.n_classes}], got {list(y.shape)}")
            return y.to(self.dtype)
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"class ids must be in 0..{self.n_classes - 1}, got {y.tolist()}")
        return torch.nn.functional.one_hot(y.long(), self.n_classes).to(self.dtype)

    @property
    def name_for_errors(self) -> str:
        return self.provenance.model_id if self.provenance else f"this {self.architecture} generator"

    # -- sampling ------------------------------------------------------------------------------
    def sample_latents(self, rng: torch.Generator, n: int, truncation: float | None = None) -> torch.Tensor:
        """Latents on CPU from `rng`. Models with a truncation trick override this."""
        self.check_truncation(truncation)
        return torch.randn(n, self.z_dim, generator=rng)

    def check_truncation(self, truncation: float | None) -> None:
        if truncation is None:
            return
        if not self.supports_truncation:
            raise ValueError(f"{self.name_for_errors} has no truncation setting; leave truncation unset.")
        if not 0 < float(truncation) <= 1:
            raise ValueError(f"truncation must be in (0, 1], got {truncation}")

    # -- the pieces the engine runs --------------------------------------------------------------
    def embed(self, z: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        """Condition vectors `[B, M, D]` from latents `[B, z_dim]` and class vectors `[B, M, n_classes]`.

        Must be affine in the class vector (label swap relies on it). Default: the class vector itself.
        """
        return class_vectors

    def stem(self, z: torch.Tensor, cond: Condition):
        raise NotImplementedError

    def stage(self, i: int, h, cond: Condition):
        raise NotImplementedError

    def head(self, h) -> torch.Tensor:
        raise NotImplementedError

    def call_options(self, **options):
        """Typed per-call options (`Condition.options`) from `render(..., **options)`; models that
        take some (StyleGAN2: noise, style mixing) override this. Unknown names are a TypeError."""
        if options:
            raise TypeError(f"{self.name_for_errors} does not take option(s) {sorted(options)}")
        return None

    def forward(self, z: torch.Tensor, y=None, truncation: float | None = None, **options) -> torch.Tensor:
        """The plain stage loop: embed → stem → stages → head with one per-sample condition."""
        self.check_truncation(truncation)
        if self.n_classes and y is None:
            raise ValueError(f"{self.name_for_errors} is class-conditional: pass a class per sample (y)")
        cv = self.class_vectors(y) if self.n_classes else z.new_zeros(z.shape[0], 0)
        cond = Condition(self.embed(z, cv[:, None]), None, truncation, self.call_options(**options))
        h = self.stem(z, cond)
        for i in range(self.n_stages):
            h = self.stage(i, h, cond)
        return self.head(h)
