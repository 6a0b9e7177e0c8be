"""The two locks of a dataset directory (flock, through toolkit.io).

- DIR/.lock is held for a whole run: exclusively by a single-process run, a merge or an export;
  shared by the shards of one split, each of which also holds DIR/.lock.shard-K-of-N exclusively.
  A second runner refuses at once with a message saying who holds it.
- DIR/.manifest.lock is held briefly around every read-modify-write of the manifest (runner
  appends, review updates, the final sort, merges), so none of them loses another's rows.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .. import io as tio
from .layout import LOCK, MANIFEST_LOCK, DatasetLockedError


def lock_fd(path: Path, mode: int, what: str) -> int:
    try:
        return tio.lock_fd(path, mode)
    except tio.LockHeldError as e:
        raise DatasetLockedError(
            f"{path.parent}: {what} ({e.holder or 'lock ' + str(path) + ' is held'}). Wait for it to finish, "
            "stop it, or write to another --out directory.") from None


unlock_fd = tio.unlock_fd


@contextlib.contextmanager
def manifest_lock(out_dir: str | os.PathLike) -> Iterator[None]:
    """Hold DIR/.manifest.lock (blocking): wrap every read-modify-write of DIR's manifest in it.

    Runner appends and review updates both take it, so neither loses the other's changes.
    Works across threads and processes (one flock per open file description).
    """
    fd = lock_fd(Path(out_dir) / MANIFEST_LOCK, fcntl.LOCK_EX, "manifest lock")
    try:
        yield
    finally:
        unlock_fd(fd)


@contextlib.contextmanager
def unless_read_only(lock) -> Iterator[None]:
    """Hold `lock` (a lock context manager of a folder) where the folder can be written, and go on
    without it where it cannot: a read-only folder is being written by nobody, and a reader must
    not fail for lack of a lock file."""
    try:
        lock.__enter__()
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def read_lock(out_dir: str | os.PathLike):
    """manifest_lock for a reader, skipped where the folder is read-only."""
    return unless_read_only(manifest_lock(out_dir))


@contextlib.contextmanager
def runner_lock(out_dir: Path, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Held for a whole run: exclusive for a single-process run (or merge/export), shared by
    shards of one split, each of which also holds its own shard lock exclusively."""
    holder = f"pid {os.getpid()}" + (f", shard {shard[0]}/{shard[1]}" if shard else "")
    if shard is None:
        fd = lock_fd(out_dir / LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB,
                     "another batch runner (or a shard of one) or a merge is writing this directory")
        fds = [fd]
        tio.write_holder(fd, holder)
    else:
        fd = lock_fd(out_dir / LOCK, fcntl.LOCK_SH | fcntl.LOCK_NB,
                     "a single-process batch runner or merge is writing this directory")
        try:
            fd2 = lock_fd(out_dir / f"{LOCK}.shard-{shard[0]}-of-{shard[1]}", fcntl.LOCK_EX | fcntl.LOCK_NB,
                          f"another runner is already writing shard {shard[0]}/{shard[1]} here")
        except BaseException:
            unlock_fd(fd)
            raise
        tio.write_holder(fd2, holder)
        fds = [fd2, fd]
    try:
        yield
    finally:
        if shard is None:
            tio.write_holder(fds[0], None)
        for f in fds:
            unlock_fd(f)
