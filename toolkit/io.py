"""The one place that writes files: atomic, fsynced writes, directory fsync, advisory locks,
and the deterministic PNG encoder.

Why one module: a dataset run may be killed at any moment and resumed byte for byte, a review
may rewrite the manifest while a runner appends, and the app saves recipes that the runner
reads. All of that rests on three rules implemented once here:
- a file is written to a hidden temp file beside it, fsynced and `os.replace`d into place, so a
  reader sees the old file or the whole new one, never a part (`atomic_write_bytes`);
- a rename is durable only after its directory is fsynced (`fsync_dir`), which callers do
  before anything (a manifest row) refers to the new file;
- the same array always encodes to the same PNG bytes (`encode_png`: fixed settings, no time or
  text chunks), which is what makes resumed runs byte-identical.

This module knows nothing about datasets, recipes or models. It never prints.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import secrets
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

# Fixed PNG settings: the same array always encodes to the same bytes.
PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "optimize": False}

# Temp files are hidden and parseable back to their target name (orphan clean-up relies on it).
TMP_RE = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{8}\.tmp$")


class LockHeldError(OSError):
    """Another process (or another open file) holds the lock; the message says who, if known."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"lock {path} is held" + (f" ({holder})" if holder else ""))
        self.path, self.holder = path, holder


class TooLargeError(ValueError):
    """A file is larger than the limit its reader accepts (`read_bounded`)."""


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a file that a user or a file named, never more than `limit`.

    Why: files a recipe or form names (recipes, mask images) are read whole, so a huge or endless
    file (a FIFO, /dev/zero) must stop at the limit instead of filling memory. Raises TooLargeError
    when there is more; OSError as `open` does.
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"{path}: larger than {limit} bytes")
    return data


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def write_file(path: Path, data: bytes) -> None:
    """The one place that writes file bytes (tests monkeypatch it to simulate a failing disk)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = False) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part.

    The bytes are fsynced before the rename; the caller fsyncs the directory (`fsync_dir`) when
    the rename itself must be durable (before a manifest row refers to the file).
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parents: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), make_parents=make_parents)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = False) -> Iterator[Path]:
    """For writers that need a file name rather than bytes (`torch.save`, `safetensors.save_file`):
    yields a temp path beside `path`; on success it is fsynced and renamed onto `path`, on any
    error it is removed."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- locks ------------------------------------------------------------------------------------------
def lock_fd(path: Path, mode: int) -> int:
    """Open (creating) `path` and flock it with `mode` (fcntl.LOCK_EX/LOCK_SH, optionally | LOCK_NB).

    Raises LockHeldError (with the holder's note, see `write_holder`) when a non-blocking lock
    is refused."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise LockHeldError(path, holder) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def write_holder(fd: int, text: str | None) -> None:
    """Say who holds a lock (shown to a refused process); `None` clears it on release."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        if text:
            os.pwrite(fd, f"held by {text}".encode(), 0)


# -- PNG ----------------------------------------------------------------------------------------------
def encode_png(array, palette: Sequence[tuple[int, int, int]] | None = None) -> bytes:
    """uint8 `[H, W, 3]` (RGB), `[H, W]` (grey, or palette indices when `palette` is given),
    integer ids ≥ 256 (16-bit grey), or a PIL image → PNG bytes with the fixed PNG_OPTIONS."""
    if isinstance(array, Image.Image):
        im = array
    else:
        a = np.asarray(array)
        if palette is not None and a.ndim == 2 and len(palette) <= 256 and (a.size == 0 or int(a.max()) < 256):
            im = Image.fromarray(a.astype(np.uint8, copy=False))
            im.putpalette([c for rgb in palette for c in rgb])       # L → P: index = class id
        elif a.ndim == 2 and a.dtype != np.uint8:
            if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
                raise ValueError(f"label map ids out of 0..65535 (got {int(a.min())}..{int(a.max())})")
            im = Image.fromarray(a.astype(np.uint16))
        else:
            im = Image.fromarray(a)
    buf = io.BytesIO()
    im.save(buf, **PNG_OPTIONS)
    return buf.getvalue()


def save_png(image, path: str | os.PathLike, palette: Sequence[tuple[int, int, int]] | None = None) -> Path:
    """Encode (`encode_png`) and write atomically, creating the parent folder."""
    path = Path(path)
    atomic_write_bytes(path, encode_png(image, palette), make_parents=True)
    return path
