"""What every weights reader shares: the error type, hashes, strict key/shape checks, and the
bounds applied *before* anything big is allocated (file and zip-member sizes, config values,
parameter counts on the `meta` device), plus the non-finite weights check.

Why bounds first: a few kilobytes can declare gigabytes (a deflate bomb in an `.npz`, a config
with `z_dim: 2**20`, a safetensors header describing a huge model). Every limit here is a
`CheckpointError` that names the file, the value and the limit; `NCT_MAX_WEIGHTS_BYTES` raises
the one size limit for users who trust a bigger file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import zipfile
from pathlib import Path

import numpy.lib.format as npf
import torch
from safetensors import safe_open


DEFAULT_MAX_WEIGHTS_BYTES = 4 << 30     # 4 GiB: above every published GAN generator we read
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_RATIO = 50                      # float weights barely compress; zeros compress ~1000×
ZIP_RATIO_SLACK = 64 << 20              # small all-zero files may compress well: allow 64 MiB on top
MAX_CONFIG_INT = 1 << 16                # widths, latent sizes, class counts, resolutions


def max_weights_bytes() -> int:
    raw = os.environ.get("NCT_MAX_WEIGHTS_BYTES")
    try:
        return int(raw) if raw else DEFAULT_MAX_WEIGHTS_BYTES
    except ValueError:
        raise CheckpointError(f"NCT_MAX_WEIGHTS_BYTES={raw!r} is not a number of bytes") from None


class CheckpointError(ValueError):
    """A weights file that cannot be loaded; the message says what, where and how to fix it."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


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
    p = Path(path)
    check_file_size(p)
    if zipfile.is_zipfile(p):
        check_zip_bounds(p)
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"{path}: not a loadable PyTorch weights file ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:300]}). Only tensors are read (weights_only=True); "
                              "A pickle that carries code cannot be read: re-save the weights as a state dict "
                              "(torch.save(model.state_dict(), path)) or as safetensors.") from e


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


# -- bounds -----------------------------------------------------------------------------------------
def check_file_size(path: Path) -> int:
    size = path.stat().st_size
    limit = max_weights_bytes()
    if size > limit:
        raise CheckpointError(f"{path}: {size:,} bytes is more than the {limit:,}-byte limit for a weights file "
                              "(set NCT_MAX_WEIGHTS_BYTES to a larger value if you trust this file)")
    return size


def read_tagged_safetensors(path: Path, tag: str, what: str, *, fix: str = "",
                            error: type[Exception] = CheckpointError) -> tuple[dict, dict]:
    """`(metadata, tensors)` of a small safetensors file this toolkit wrote (a judge, a part model).

    Why one reader: such files are read because a recipe or the zoo names them, so each gets the
    weights-file size bound, any reading failure becomes `error` naming the file (safetensors raises
    its own types for corrupt headers), and a file with another `format` tag is refused before its
    metadata is trusted. `fix` ends the format message with how to make the right file.
    """
    try:
        check_file_size(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError as e:
        raise error(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: say which
        raise error(f"{path}: not a readable safetensors {what} file ({type(e).__name__}: {e})") from None
    if meta.get("format") != tag:
        raise error(f"{path}: not a {what} file of this toolkit (format {meta.get('format')!r}, expected {tag!r})"
                    + (f"; {fix}" if fix else ""))
    return meta, tensors


def check_zip_bounds(path: Path) -> None:
    """Before reading any member of a zip (an `.npz`, a zip-format `torch.save` file): count the
    members and add up their declared uncompressed sizes (`zipfile` never returns more than the
    declared size of a member, so these bound what reading can allocate)."""
    size = check_file_size(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read the zip directory ({e}); is the file complete?") from e
    if len(infos) > MAX_ZIP_MEMBERS:
        raise CheckpointError(f"{path}: {len(infos):,} zip members (more than {MAX_ZIP_MEMBERS:,}); "
                              "not a weights file this toolkit reads")
    total = sum(i.file_size for i in infos)
    bound = min(max_weights_bytes(), MAX_ZIP_RATIO * size + ZIP_RATIO_SLACK)
    if total > bound:
        big = max(infos, key=lambda i: i.file_size)
        raise CheckpointError(
            f"{path}: its members declare {total:,} bytes uncompressed from a {size:,}-byte file (largest: "
            f"{big.filename!r}, {big.file_size:,} bytes); refusing to read more than {bound:,} bytes. "
            "Weights do not compress like this: the file is damaged or crafted.")


def check_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> None:
    """The `.npy` header inside an `.npz` member declares a shape; numpy allocates it before
    reading, so it must fit in the member's declared size."""
    with zf.open(info) as f:
        try:
            version = npf.read_magic(f)
            shape, _, dtype = (npf.read_array_header_1_0(f) if version == (1, 0) else npf.read_array_header_2_0(f))
        except (ValueError, OSError, EOFError) as e:
            raise CheckpointError(f"{source}: member {info.filename!r} is not a NumPy array ({e})") from e
        need = math.prod(shape) * dtype.itemsize
        if need > info.file_size:
            raise CheckpointError(f"{source}: member {info.filename!r} declares shape {list(shape)} ({need:,} bytes) "
                                  f"but holds {info.file_size:,} bytes: damaged or crafted file")


def check_config_limits(cfg, source: str) -> None:
    """Every integer in a generator config (also inside lists) must be in [0, 65536] before a
    model is built from it."""
    def walk(value, where):
        if isinstance(value, bool):
            return
        if isinstance(value, int) and not 0 <= value <= MAX_CONFIG_INT:
            raise CheckpointError(f"{source}: config value {where} = {value} is outside [0, {MAX_CONFIG_INT}]; "
                                  "no generator this toolkit builds is that large: damaged or crafted config")
        if isinstance(value, float) and not math.isfinite(value):
            raise CheckpointError(f"{source}: config value {where} = {value} is not finite")
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_CONFIG_INT:   # long lists are class names; layer lists are short
                raise CheckpointError(f"{source}: config list {where} has {len(value)} entries (at most {MAX_CONFIG_INT})")
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
    for f in dataclasses.fields(cfg):
        walk(getattr(cfg, f.name), f.name)


def build_on_meta(cls, cfg, source: str):
    """Build `cls(cfg)` on the `meta` device (no memory) and check its size against the limit,
    so the shapes can be compared with a file before anything is allocated."""
    check_config_limits(cfg, source)
    try:
        with torch.device("meta"):
            gen = cls(cfg)
    except (ValueError, TypeError, IndexError, KeyError, AssertionError) as e:
        raise CheckpointError(f"{source}: the config does not describe a buildable model ({e})") from e
    n_bytes = sum(t.numel() * t.element_size() for t in gen.state_dict().values())
    if n_bytes > max_weights_bytes():
        raise CheckpointError(f"{source}: the config describes a model of {n_bytes:,} bytes, more than the "
                              f"{max_weights_bytes():,}-byte limit (NCT_MAX_WEIGHTS_BYTES)")
    return gen


# -- non-finite weights -------------------------------------------------------------------------------
def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in `state` that hold a NaN or an infinity (sorted).
    A generator with such weights renders black or garbage images that look "complete";
    `load_generator` warns with these names and records them in the model's Provenance."""
    return sorted(k for k, t in state.items()
                  if torch.is_tensor(t) and t.is_floating_point() and t.device.type != "meta"
                  and not bool(torch.isfinite(t).all()))

