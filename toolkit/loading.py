"""`load_generator`: one entry point for zoo names and weight files, and the one place that
records where a model came from (`Provenance`)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from . import zoo
from .checkpoints import CheckpointError, load_file, nonfinite_tensors, sha256_file, weights_file
from .devices import resolve_device
from .provenance import Provenance

log = logging.getLogger(__name__)


def load_generator(name_or_path: str, device: str | torch.device = "auto"):
    """A zoo name (see `python -m toolkit models`) or a path to weights → generator in eval mode,
    with `generator.provenance` set (model id, sha256, source, license, non-finite tensors).

    The returned module may be shared (e.g. cached by the app): callers must not mutate it.
    """
    dev = resolve_device(device)
    key = str(name_or_path)
    if key in zoo.ZOO:
        entry = zoo.get(key)
        gen = entry.build(entry)
        prov = dict(model_id=key, sha256=entry.sha256(gen), source="zoo", license=entry.license)
    elif Path(key).expanduser().exists():
        path = Path(key).expanduser().resolve()
        gen = load_file(path)
        prov = dict(model_id=str(path), sha256=sha256_file(weights_file(path)), source="file")
    else:
        raise CheckpointError(f"unknown model {key!r}: not a zoo name ({', '.join(sorted(zoo.ZOO))}) "
                              "and no file or directory of that name exists")
    bad = tuple(nonfinite_tensors(gen.state_dict()))
    if bad:
        log.warning("%s: %d weight tensor(s) hold NaN or inf (%s); its images will not be finite",
                    key, len(bad), ", ".join(bad[:5]) + (" …" if len(bad) > 5 else ""))
    gen.provenance = Provenance(**prov, nonfinite=bad)
    for p in gen.parameters():
        p.requires_grad_(False)
    return gen.to(dev).eval()
