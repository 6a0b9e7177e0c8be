"""`load_generator`: one entry point for zoo names and weight files."""
from __future__ import annotations

from pathlib import Path

import torch

from . import zoo
from .checkpoints import CheckpointError, load_file
from .devices import resolve_device


def load_generator(name_or_path: str, device: str | torch.device = "auto"):
    """A zoo name (see `python -m toolkit models`) or a path to weights → generator in eval mode.

    The returned module may be shared (e.g. cached by the app): callers must not mutate it.
    """
    dev = resolve_device(device)
    key = str(name_or_path)
    if key in zoo.ZOO:
        gen = zoo.get(key).build(zoo.get(key))
        gen.model_id = key
    elif Path(key).expanduser().exists():
        gen = load_file(key)
        gen.model_id = str(Path(key).expanduser().resolve())
    else:
        raise CheckpointError(f"unknown model {key!r}: not a zoo name ({', '.join(sorted(zoo.ZOO))}) "
                              "and no file or directory of that name exists")
    for p in gen.parameters():
        p.requires_grad_(False)
    return gen.to(dev).eval()
