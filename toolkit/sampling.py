"""Latents and classes from seeds.

Each row is a pure function of its own seed (its own RNG stream), so a variant renders the same
whatever batch, shard or device it lands in. Streams are drawn on the CPU and moved afterwards
because CUDA RNG streams differ from CPU ones.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import torch


def derive_seed(*keys) -> int:
    """A 63-bit seed from any tuple of keys (stable across runs, platforms and Python versions)."""
    digest = hashlib.sha256(repr(tuple(keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    return [int(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]


def sample_latents(generator, seeds: int | Iterable[int], truncation: float | None = None) -> torch.Tensor:
    """`[len(seeds), z_dim]` on the generator's device; row i depends only on seeds[i] (and truncation)."""
    rows = [generator.sample_latents(torch.Generator().manual_seed(s), 1, truncation) for s in _seeds(seeds)]
    return torch.cat(rows).to(generator.device)


def sample_classes(generator, seeds: int | Iterable[int], choices: Sequence[int | str] | None = None) -> torch.Tensor:
    """One class id per seed, uniform over `choices` (ids or names; default: all classes)."""
    if not generator.n_classes:
        raise ValueError(f"{generator.name_for_errors} is unconditional: it has no classes to sample")
    ids = [generator.class_index(c) for c in choices] if choices else list(range(generator.n_classes))
    out = []
    for s in _seeds(seeds):
        g = torch.Generator().manual_seed(derive_seed(s, "class"))
        out.append(ids[int(torch.randint(len(ids), (1,), generator=g))])
    return torch.tensor(out, device=generator.device)
