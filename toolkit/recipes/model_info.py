"""What recipe checks need to know about a model, read without building or loading it.

`ModelInfo` holds class names, stage count (blend points = stages + 1), resolution and whether
the model has a truncation setting. It comes from the zoo entry's static config, from the header
of a weights file (our safetensors metadata, a Chainer `.npz`'s array headers, a BigGAN
directory's `config.json`), or from a generator already in memory. Weights are never read:
validating a recipe must work before its weights are downloaded, and must not cost a model's
memory. Formats whose architecture can only be learnt by unpickling (PyTorch `.pt` files) give
None; the batch runner then checks the recipe against the loaded generator.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import zoo
from ..checkpoints import (BIGGAN_CONFIG, CheckpointError, FORMAT_TAG, _strip_prefix, biggan_config_from_json,
                           sngan_config_from_chainer)
from ..data import dogs_and_cats_names
from ..generators import ARCHITECTURES
from ..generators.base import Generator

MAX_HEADER_BYTES = 100 << 20       # safetensors' own limit for its JSON header


@dataclass(frozen=True)
class ModelInfo:
    ref: str                    # zoo name or absolute path
    name: str                   # as the recipe wrote it (for messages)
    architecture: str
    n_classes: int
    class_names: tuple
    n_stages: int
    resolution: int
    supports_truncation: bool

    @property
    def n_blend_points(self) -> int:
        return self.n_stages + 1

    @property
    def name_for_errors(self) -> str:
        return self.name

    def class_id(self, c) -> int:
        """Class name/id → id, by the generator's own rules and messages (synonyms, suggestions)."""
        return Generator.class_index(self, c)


def info_from_config(architecture: str, cfg, ref: str, name: str | None = None) -> ModelInfo:
    """The facts of an architecture + config, read off the generator built on the `meta` device:
    no weights, no memory, and no second copy of each architecture's stage arithmetic."""
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"{ref}: unknown architecture {architecture!r}")
    with torch.device("meta"):
        gen = ARCHITECTURES[architecture][0](cfg)
    return info_from_generator(gen, ref, name)


def info_from_generator(gen, ref: str | None = None, name: str | None = None) -> ModelInfo:
    ref = ref or (gen.provenance.model_id if gen.provenance else gen.architecture)
    return ModelInfo(ref, name or ref, gen.architecture, gen.n_classes, tuple(gen.class_names), gen.n_stages,
                     gen.resolution, bool(gen.supports_truncation))


def read_safetensors_config(path: Path):
    """(architecture, config) from the JSON header of one of our safetensors files."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path}: declares a {n}-byte header (more than {MAX_HEADER_BYTES >> 20} MB); "
                                  "not a valid safetensors file")
        raw = f.read(n)
    try:
        meta = json.loads(raw).get("__metadata__") or {}
        if meta.get("format") != FORMAT_TAG:
            raise CheckpointError(f"{path}: a safetensors file without our metadata (format={meta.get('format')!r}); "
                                  "save models with toolkit.checkpoints.save_generator")
        arch = meta["architecture"]
        cls, cfg_cls = ARCHITECTURES[arch]
        return arch, cfg_cls(**json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: unreadable model description in the safetensors header ({e})") from None


class _Shape:
    def __init__(self, shape):
        self.shape = tuple(shape)


def read_npz_shapes(path: Path) -> dict:
    """Array name → shape from a `.npz` without decompressing any array data."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with zf.open(member) as f:
                version = np.lib.format.read_magic(f)
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, _ = reader(f)
            out[member.filename[:-4]] = _Shape(shape)
    return out


def info_from_file(path: Path, name: str) -> ModelInfo | None:
    """ModelInfo from a weights file's header, or None when the format cannot say it unloaded."""
    ref = str(path)
    try:
        if path.is_dir():
            cfg = biggan_config_from_json(path / BIGGAN_CONFIG)
            return info_from_config("biggan", cfg, ref, name)
        if path.suffix == ".safetensors":
            arch, cfg = read_safetensors_config(path)
            return info_from_config(arch, cfg, ref, name)
        if path.suffix == ".npz":
            cfg = sngan_config_from_chainer(_strip_prefix(read_npz_shapes(path)), ref)
            if cfg.n_classes == 143:
                cfg = dataclasses.replace(cfg, class_names=dogs_and_cats_names())
            return info_from_config("sngan", cfg, ref, name)
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: cannot read the model's description ({type(e).__name__}: {e})") from None
    return None


def info_from_zoo(entry: zoo.ZooEntry) -> ModelInfo | None:
    if entry.config is not None:
        arch, cfg = entry.config()
        return info_from_config(arch, cfg, entry.name)
    if entry.header_file is not None and entry.header_file.exists():
        return dataclasses.replace(info_from_file(entry.header_file, entry.name), ref=entry.name)
    return None
