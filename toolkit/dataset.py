"""The on-disk dataset a batch run produces: layout, manifest, locking, resume, merge, export.

Layout of an output directory DIR (it loads directly in pandas, PIL and Hugging Face
`imagefolder`; see docs/BATCH.md):

    DIR/images/000042.png        the edited image of variant 42 (RGB)
    DIR/label_maps/000042.png    per-pixel class ids as an indexed-palette PNG (conditional models)
    DIR/label_maps/palette.csv   class id, name and palette colour (one palette per model)
    DIR/masks/000042.png         union of the variant's edit regions (8-bit grey, 0..255)
    DIR/sources/000042.png       the unedited source image (when the recipe asks for it)
    DIR/metadata.csv             the manifest: one row per variant, `file_name` relative to DIR
    DIR/README.md                the dataset card (model, license, recipe in full, counts, command)
    DIR/dataset.json             machine-readable run info the card is built from
    DIR/parts/                   per-shard manifest parts while a sharded run is in progress

Why the rules below: a run may be killed at any moment and resumed, sharded over processes
that share DIR, and reviewed (accept/reject written back) while it is still appending.
- Every file is written to a temp file, fsynced and `os.replace`d into place (atomic_write_*).
- A manifest row is appended only after all files of its variant are durable, so a row never
  points at a missing or partial file. A torn last line (crash mid-append) is cut off on resume.
- Resume = skip variant indices already in the manifest; orphan temp files are deleted.
- `DIR/.lock` is held for a whole run (exclusive; shards share it and each holds
  `DIR/.lock.shard-K-of-N` exclusively), so a second runner refuses with a clear message.
- `DIR/.manifest.lock` is held briefly around every read-modify-write of the manifest
  (`manifest_lock`), so a review update never loses rows a runner appends meanwhile. The runner
  reopens the manifest for each append because a review update replaces the file.
- Final manifests are sorted by variant index, so the files of a resumed or sharded-and-merged
  run are byte-identical to an uninterrupted single-process run.

This module knows nothing about generators or recipes beyond the RenderedVariant fields
(see CONTRACT: index, seed, params, image, source_image, label_map, mask, label, label_id,
soft_label, source_class, edit_classes, locality). It does no printing (logging only).
"""
from __future__ import annotations

import colorsys
import contextlib
import csv
import errno
import fcntl
import json
from io import StringIO as _StringIO
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from . import io as tio

log = logging.getLogger(__name__)

MANIFEST = "metadata.csv"
CARD = "README.md"
INFO = "dataset.json"
LOCK = ".lock"
MANIFEST_LOCK = ".manifest.lock"
PARTS = "parts"
IMAGES, LABEL_MAPS, MASKS, SOURCES = "images", "label_maps", "masks", "sources"
PALETTE = f"{LABEL_MAPS}/palette.csv"
FILE_DIRS = (IMAGES, LABEL_MAPS, MASKS, SOURCES)
REVIEW_STATES = ("pending", "accepted", "rejected")

COLUMNS = [
    "file_name", "label", "label_id", "soft_label", "source_class", "edit_classes",
    "label_map_file", "mask_file", "source_file", "recipe", "recipe_sha256",
    "variant_index", "variant_seed", "model_id", "model_sha256", "params", "locality",
    "review", "toolkit_version",
]
# Columns that may differ between two copies of the same variant without it being a conflict.
_MUTABLE = {"review"}

PNG_OPTIONS = tio.PNG_OPTIONS


class DatasetError(ValueError):
    """A dataset directory or manifest problem; the message names the path and how to fix it."""


class DatasetLockedError(DatasetError):
    """Another runner holds the directory's lock."""


# -- atomic files (toolkit.io) ---------------------------------------------------------------
_tmp_path = tio.tmp_path
_TMP_RE = tio.TMP_RE
atomic_write_bytes = tio.atomic_write_bytes
atomic_write_text = tio.atomic_write_text
fsync_dir = tio.fsync_dir


# -- locks ------------------------------------------------------------------------------------------
def _lock_fd(path: Path, mode: int, what: str) -> int:
    try:
        return tio.lock_fd(path, mode)
    except tio.LockHeldError as e:
        raise DatasetLockedError(
            f"{path.parent}: {what} ({e.holder or 'lock ' + str(path) + ' is held'}). Wait for it to finish, "
            "stop it, or write to another --out directory.") from None


_unlock_fd = tio.unlock_fd


@contextlib.contextmanager
def manifest_lock(out_dir: str | os.PathLike) -> Iterator[None]:
    """Hold DIR/.manifest.lock (blocking): wrap every read-modify-write of DIR's manifest in it.

    Runner appends and review updates both take it, so neither loses the other's changes.
    Works across threads and processes (one flock per open file description).
    """
    d = Path(out_dir)
    fd = _lock_fd(d / MANIFEST_LOCK, fcntl.LOCK_EX, "manifest lock")
    try:
        yield
    finally:
        _unlock_fd(fd)


@contextlib.contextmanager
def runner_lock(out_dir: Path, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """Held for a whole run: exclusive for a single-process run (or merge/export), shared by
    shards of one split, each of which also holds its own shard lock exclusively."""
    holder = f"pid {os.getpid()}" + (f", shard {shard[0]}/{shard[1]}" if shard else "")
    if shard is None:
        fd = _lock_fd(out_dir / LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB,
                      "another batch runner (or a shard of one) or a merge is writing this directory")
        fds = [fd]
        _write_holder(fd, holder)
    else:
        fd = _lock_fd(out_dir / LOCK, fcntl.LOCK_SH | fcntl.LOCK_NB,
                      "a single-process batch runner or merge is writing this directory")
        try:
            fd2 = _lock_fd(out_dir / f"{LOCK}.shard-{shard[0]}-of-{shard[1]}", fcntl.LOCK_EX | fcntl.LOCK_NB,
                           f"another runner is already writing shard {shard[0]}/{shard[1]} here")
        except BaseException:
            _unlock_fd(fd)
            raise
        _write_holder(fd2, holder)
        fds = [fd2, fd]
    try:
        yield
    finally:
        if shard is None:
            _write_holder(fds[0], None)
        for f in fds:
            _unlock_fd(f)


_write_holder = tio.write_holder


# -- file names and encoding ------------------------------------------------------------------------
def variant_stem(index: int) -> str:
    return f"{index:06d}"


def class_palette(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """Deterministic colours for class ids 0..n-1: a class named like a colour ("red", "navy")
    gets that colour, the others golden-ratio hue steps.

    One palette per model (it depends only on the class names), so label maps of every dataset
    made with the same model use the same colours.
    """
    from PIL import ImageColor
    out = []
    for i, name in enumerate(class_names):
        try:
            rgb = ImageColor.getrgb(str(name).strip().lower().replace(" ", ""))[:3]
        except ValueError:
            h = (i * 0.6180339887498949) % 1.0
            s = 0.55 + 0.45 * ((i // 3) % 2)
            v = 0.95 - 0.3 * ((i // 6) % 2)
            rgb = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))
        out.append(tuple(int(c) for c in rgb))
    return out


encode_png = tio.encode_png


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _fmt_float(x) -> str:
    x = float(x)
    return "" if not math.isfinite(x) else f"{x:.6f}"


# -- run info (dataset.json) ------------------------------------------------------------------------
@dataclass
class RunInfo:
    """What the dataset card is built from; identical runs produce identical info."""
    recipe_name: str
    recipe_sha256: str
    recipe_text: str
    recipe_path: str
    model_id: str
    model_sha256: str
    model_license: str
    model_architecture: str
    class_names: list[str]
    count: int
    save_source: bool
    toolkit_version: str
    commands: list[str] = field(default_factory=list)
    shards: dict = field(default_factory=dict)      # {"n": N} while a sharded run has unmerged parts

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> "RunInfo":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as e:
            raise DatasetError(f"{path}: unreadable run info ({e}). It is written by the batch runner; "
                               "restore it or start a new output directory.") from e

    def identity(self) -> tuple:
        return (self.recipe_sha256, self.model_sha256)


def _check_same_run(d: Path, old: RunInfo, new: RunInfo) -> None:
    if old.recipe_sha256 != new.recipe_sha256:
        raise DatasetError(
            f"{d} holds a dataset of recipe {old.recipe_name!r} (sha256 {old.recipe_sha256[:12]}…), but this run "
            f"uses recipe {new.recipe_name!r} (sha256 {new.recipe_sha256[:12]}…). Resuming would mix two recipes: "
            "use a new --out directory, or delete this one to start over.")
    if old.model_sha256 != new.model_sha256:
        raise DatasetError(
            f"{d} was made with model {old.model_id!r} (sha256 {old.model_sha256[:12]}…), but this run loads "
            f"{new.model_id!r} (sha256 {new.model_sha256[:12]}…). Use a new --out directory.")


# -- manifest reading/writing -----------------------------------------------------------------------
def _rows_to_csv(rows: Iterable[dict], header: bool) -> str:
    buf = _StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _read_rows(path: Path) -> list[dict]:
    """Rows of a manifest (or part) as dicts of strings; DatasetError naming the line if corrupt."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e}); the manifest is corrupt. Restore it from a backup or "
                           "delete it and rerun the batch command (existing images are re-rendered).") from e
    if not text:
        raise DatasetError(f"{path}: empty file (no header); delete it and rerun the batch command.")
    reader = csv.reader(_StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise DatasetError(f"{path}: line 1: unreadable CSV header ({e}).") from e
    if header != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        raise DatasetError(f"{path}: line 1: the header is not this toolkit's manifest header "
                           f"(missing {missing}, unexpected {extra}). Was the file edited? Restore the header: "
                           f"{','.join(COLUMNS)}")
    rows, seen = [], {}
    try:
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(COLUMNS):
                raise DatasetError(f"{path}: line {line}: {len(values)} fields, expected {len(COLUMNS)}; the "
                                   "manifest is corrupt (edit or delete that line and rerun to re-render it).")
            row = dict(zip(COLUMNS, values))
            try:
                i = int(row["variant_index"])
            except ValueError:
                raise DatasetError(f"{path}: line {line}: variant_index {row['variant_index']!r} is not an "
                                   "integer; the manifest is corrupt.") from None
            if i in seen:
                raise DatasetError(f"{path}: line {line}: variant {i} already appears on line {seen[i]}; "
                                   "delete the duplicate line.")
            if row["review"] not in REVIEW_STATES:
                raise DatasetError(f"{path}: line {line}: review {row['review']!r} is not one of {REVIEW_STATES}.")
            seen[i] = line
            rows.append(row)
    except csv.Error as e:
        raise DatasetError(f"{path}: line {reader.line_num}: unreadable CSV ({e}); the manifest is corrupt.") from e
    return rows


def _repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash (or a full disk) mid-append; that variant is simply
    rendered again. Reads only the file's tail, so it is cheap enough to run before every append.

    Call under manifest_lock. Only a missing final newline counts as torn; anything else that is
    malformed is reported by `_read_rows` instead of silently dropped.
    """
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        pos, keep = size, 0
        while pos > 0 and not keep:
            start = max(0, pos - 65536)
            f.seek(start)
            block = f.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
            pos = start
        if keep == 0:
            raise DatasetError(f"{path}: the header line is incomplete; delete the file and rerun.")
        log.warning("%s: cutting a partial last line left by an interrupted write (%d bytes)", path, size - keep)
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def _write_manifest(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: int(r["variant_index"]))
    atomic_write_text(path, _rows_to_csv(rows, header=True))


def _append_rows(path: Path, rows: list[dict]) -> None:
    """Append under manifest_lock; reopens the file (a review update may have replaced it)."""
    if not rows:
        return
    _repair_torn_tail(path)     # an earlier append that failed half-way must not glue onto this one
    new = not path.exists()
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(_rows_to_csv(rows, header=new))
        f.flush()
        os.fsync(f.fileno())
    if new:
        fsync_dir(path.parent)


def read_manifest(out_dir: str | os.PathLike):
    """DIR/metadata.csv as a pandas DataFrame (JSON columns stay strings; `json.loads` them).

    DatasetError if the directory has no manifest or it is corrupt (the message names the line).
    """
    import pandas as pd
    d = Path(out_dir)
    path = d / MANIFEST
    if not path.is_file():
        hint = " (a sharded run is still in progress or was not merged: run `python -m toolkit merge " \
               f"{d}`)" if (d / PARTS).is_dir() else ""
        raise DatasetError(f"{path}: no manifest here{hint}. Is {d} the --out directory of a batch run?")
    try:
        lock = manifest_lock(d)
        lock.__enter__()
    except PermissionError:
        lock = None     # a read-only copy (nobody can be writing it): read without the lock
    except OSError as e:
        if e.errno != errno.EROFS:
            raise
        lock = None
    try:
        _read_rows(path)  # validates, with line numbers
        str_cols = [c for c in COLUMNS if c not in ("label_id", "variant_index", "variant_seed", "locality")]
        df = pd.read_csv(path, dtype={c: str for c in str_cols} | {"label_id": "int64", "variant_index": "int64",
                                                                   "variant_seed": "int64"},
                         keep_default_na=False, na_values={"locality": [""]})
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
    df["locality"] = pd.to_numeric(df["locality"], errors="coerce")
    return df


# -- the writer used by the batch runner ------------------------------------------------------------
def _check_out_dir(d: Path) -> None:
    if d.exists() and not d.is_dir():
        raise DatasetError(f"output directory {d} is a file; give the path of a new or existing directory")
    for parent in d.parents:
        if parent.exists() and not parent.is_dir():
            raise DatasetError(f"output directory {d}: {parent} is a file, not a directory")
        if parent.exists():
            break


_OURS = {MANIFEST, CARD, INFO, LOCK, MANIFEST_LOCK, PARTS, *FILE_DIRS}


def _check_is_dataset_or_empty(d: Path) -> None:
    if (d / INFO).exists():
        return
    foreign = sorted(p.name for p in d.iterdir()
                     if p.name not in _OURS and not p.name.startswith(LOCK) and not _TMP_RE.match(p.name))
    if foreign or (d / MANIFEST).exists():
        shown = ", ".join(foreign[:5]) or MANIFEST
        raise DatasetError(f"output directory {d} is not empty and is not a dataset made by this toolkit "
                           f"(found {shown}; no {INFO}). Choose a new or empty directory.")


def _part_path(d: Path, shard: tuple[int, int]) -> Path:
    return d / PARTS / f"shard-{shard[0]}-of-{shard[1]}.csv"


def _index_of(name: str) -> int | None:
    m = re.match(r"^(\d+)\.png$", name)
    return int(m.group(1)) if m else None


def clean_orphans(d: Path, shard: tuple[int, int] | None) -> int:
    """Delete temp files left by a killed run: all of them for a single-process run, only those of
    the shard's own variant indices (and its own part) for a shard. Returns how many."""
    n = 0
    own_part = _part_path(d, shard).name if shard else None
    for sub in [d, d / PARTS, *(d / s for s in FILE_DIRS)]:
        if not sub.is_dir():
            continue
        for p in sub.iterdir():
            m = _TMP_RE.match(p.name)
            if not m:
                continue
            target = m.group("target")
            if shard is not None:
                idx = _index_of(target)
                if sub == d or (sub.name == PARTS and target != own_part) or \
                        (sub.name != PARTS and (idx is None or idx % shard[1] != shard[0])):
                    continue
            if sub == d:
                # top-level temp files are only created under the manifest lock
                with manifest_lock(d):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            n += 1
    if n:
        log.info("%s: removed %d orphan temp file(s) from an interrupted run", d, n)
    return n


class DatasetWriter:
    """Writes one run (or one shard of a run) into DIR. Use as a context manager (holds the lock).

    `done` holds the variant indices already committed, so the runner skips them.
    `write_variant` is thread-safe (it touches only the variant's own files);
    `commit` and `finish` run on the runner thread.
    """

    def __init__(self, out_dir: str | os.PathLike, shard: tuple[int, int] | None = None):
        self.dir = Path(out_dir)
        self.shard = shard
        self._stack = contextlib.ExitStack()
        self.done: set[int] = set()
        self.info: RunInfo | None = None

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST if self.shard is None else _part_path(self.dir, self.shard)

    def __enter__(self) -> "DatasetWriter":
        _check_out_dir(self.dir)
        self._created = not self.dir.exists()
        if not self._created:
            _check_is_dataset_or_empty(self.dir)    # before creating a lock file in someone's folder
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(f"cannot create output directory {self.dir}: {e.strerror or e}") from e
        self._stack.enter_context(runner_lock(self.dir, self.shard))
        try:
            _check_is_dataset_or_empty(self.dir)
            clean_orphans(self.dir, self.shard)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        if self._created and self.info is None:
            # Failed before anything was written (e.g. the model did not load): leave no trace,
            # unless another runner (a sibling shard) is using the directory meanwhile.
            try:
                fd = _lock_fd(self.dir / LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB, "in use")
            except (DatasetLockedError, OSError):
                return
            try:
                if all(p.name.startswith(LOCK) for p in self.dir.iterdir()):
                    for p in self.dir.iterdir():
                        p.unlink()
                    self.dir.rmdir()
            except OSError:
                pass
            finally:
                _unlock_fd(fd)

    def begin(self, info: RunInfo) -> None:
        """Check the directory belongs to this run (same recipe and model), record the command,
        create the folders and the manifest header, and load the committed indices."""
        d = self.dir
        with manifest_lock(d):
            if (d / INFO).exists():
                old = RunInfo.load(d / INFO)
                _check_same_run(d, old, info)
                if self.shard and old.shards and old.shards.get("n") != self.shard[1]:
                    raise DatasetError(f"{d} has parts of a {old.shards['n']}-way sharded run; this run is shard "
                                       f"{self.shard[0]}/{self.shard[1]}. Use the same N, or merge first "
                                       f"(python -m toolkit merge {d}).")
                info.commands = old.commands + [c for c in info.commands if c not in old.commands]
                info.shards = old.shards if self.shard else {}
            if self.shard:
                info.shards = {"n": self.shard[1]}
            atomic_write_text(d / INFO, info.to_json())
            for sub in (IMAGES, MASKS) + ((LABEL_MAPS,) if info.class_names else ()) + \
                    ((SOURCES,) if info.save_source else ()):
                (d / sub).mkdir(exist_ok=True)
            if info.class_names:
                atomic_write_text(d / PALETTE, _palette_csv(info.class_names))
            if self.shard is None and (d / PARTS).is_dir():
                # Leftover parts of an earlier sharded run: fold them in so nothing is rendered twice.
                _merge_parts_locked(d)
            if self.shard is not None:
                (d / PARTS).mkdir(exist_ok=True)
            path = self.manifest_path
            _repair_torn_tail(path)
            if not path.exists():     # header only: an empty dataset still reads as one
                atomic_write_text(path, _rows_to_csv([], header=True))
            rows = _read_rows(path)
            if self.shard is not None and (d / MANIFEST).exists():
                rows += [r for r in _read_rows(d / MANIFEST) if int(r["variant_index"]) % self.shard[1] == self.shard[0]]
            fsync_dir(d)
        self.info = info
        self.done = {int(r["variant_index"]) for r in rows}

    # -- per variant (worker threads) --
    def files_for(self, index: int) -> dict[str, str]:
        stem = variant_stem(index)
        out = {"file_name": f"{IMAGES}/{stem}.png", "mask_file": f"{MASKS}/{stem}.png",
               "label_map_file": f"{LABEL_MAPS}/{stem}.png" if self.info.class_names else "",
               "source_file": f"{SOURCES}/{stem}.png" if self.info.save_source else ""}
        return out

    def write_variant(self, rv) -> dict:
        """Encode and atomically write all files of one rendered variant; return its manifest row.

        On failure, files of this variant already written are removed (best effort) so that the
        directory holds no files without a row, and the error propagates.
        """
        info = self.info
        files = self.files_for(rv.index)
        written: list[Path] = []
        try:
            payload = [(files["file_name"], encode_png(rv.image)),
                       (files["mask_file"], encode_png(rv.mask))]
            if files["label_map_file"]:
                if rv.label_map is None:
                    raise ValueError(f"variant {rv.index}: the model is conditional but no label map was rendered")
                payload.append((files["label_map_file"],
                                encode_png(rv.label_map, class_palette(info.class_names))))
            if files["source_file"]:
                if rv.source_image is None:
                    raise ValueError(f"variant {rv.index}: save_source is set but no source image was rendered")
                payload.append((files["source_file"], encode_png(rv.source_image)))
            for rel, data in payload:
                atomic_write_bytes(self.dir / rel, data)
                written.append(self.dir / rel)
        except BaseException:
            for p in written:
                with contextlib.suppress(OSError):
                    p.unlink()
            raise
        return {
            **files,
            "label": str(rv.label), "label_id": str(int(rv.label_id)),
            "soft_label": _json({k: round(float(v), 6) for k, v in (rv.soft_label or {}).items()}),
            "source_class": "" if rv.source_class is None else str(rv.source_class),
            "edit_classes": _json(list(rv.edit_classes or [])),
            "recipe": info.recipe_name, "recipe_sha256": info.recipe_sha256,
            "variant_index": str(int(rv.index)), "variant_seed": str(int(rv.seed)),
            "model_id": info.model_id, "model_sha256": info.model_sha256,
            "params": _json(rv.params), "locality": _fmt_float(rv.locality),
            "review": "pending", "toolkit_version": info.toolkit_version,
        }

    # -- runner thread --
    def commit(self, rows: list[dict]) -> None:
        """Make the rows' files durable (directory fsync), then append the rows."""
        if not rows:
            return
        for sub in FILE_DIRS:
            if (self.dir / sub).is_dir():
                fsync_dir(self.dir / sub)
        with manifest_lock(self.dir):
            _append_rows(self.manifest_path, rows)
        self.done.update(int(r["variant_index"]) for r in rows)

    def finish(self, complete: bool) -> bool:
        """Sort the manifest by variant index and write the card. For a shard: when the manifest and
        the parts together hold every variant of the run (the other shards are done too), merge the
        parts into DIR/metadata.csv — so whichever shard finishes last merges, with no process group.
        Returns whether DIR/metadata.csv now holds the whole run."""
        d = self.dir
        with manifest_lock(d):
            path = self.manifest_path
            if path.exists():     # a shard's part is gone if another shard already merged it
                _write_manifest(path, _read_rows(path))
            if self.shard is None:
                _write_card(d, self.info, _read_rows(path) if path.exists() else [])
                return complete
            count = RunInfo.load(d / INFO).count
            have: set[int] = set()
            for p in [d / MANIFEST, *sorted((d / PARTS).glob("shard-*.csv"))]:
                if p.exists():
                    have.update(int(r["variant_index"]) for r in _read_rows(p))
            if not have.issuperset(range(count)):
                return False
            if (d / PARTS).is_dir():
                _merge_parts_locked(d)
            return True


def _palette_csv(class_names: Sequence[str]) -> str:
    buf = _StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "name", "color"])
    for i, (name, (r, g, b)) in enumerate(zip(class_names, class_palette(class_names))):
        w.writerow([i, name, f"#{r:02x}{g:02x}{b:02x}"])
    return buf.getvalue()


# -- merge ------------------------------------------------------------------------------------------
def _combine(into: dict[int, dict], rows: Iterable[dict], where: str) -> None:
    """Add rows by variant index; an index seen before must describe the same files."""
    for r in rows:
        i = int(r["variant_index"])
        old = into.get(i)
        if old is None:
            into[i] = r
        elif any(old[c] != r[c] for c in COLUMNS if c not in _MUTABLE):
            diff = [c for c in COLUMNS if c not in _MUTABLE and old[c] != r[c]]
            raise DatasetError(f"{where}: variant {i} appears twice with different {diff}; the shards were not "
                               "made by the same recipe/model/toolkit. Merge only parts of one run.")


def _merge_parts_locked(d: Path) -> list[int]:
    """Fold DIR/parts/*.csv into DIR/metadata.csv (under manifest_lock); rows already in the
    manifest keep their review status. Removes the parts. Returns indices missing below count."""
    rows: dict[int, dict] = {}
    if (d / MANIFEST).exists():
        _repair_torn_tail(d / MANIFEST)
        _combine(rows, _read_rows(d / MANIFEST), str(d / MANIFEST))
    parts = sorted((d / PARTS).glob("shard-*.csv")) if (d / PARTS).is_dir() else []
    for p in parts:
        _repair_torn_tail(p)
        _combine(rows, _read_rows(p), str(p))
    _write_manifest(d / MANIFEST, list(rows.values()))
    info = RunInfo.load(d / INFO) if (d / INFO).exists() else None
    if info is not None:
        info.shards = {}
        atomic_write_text(d / INFO, info.to_json())
        _write_card(d, info, _read_rows(d / MANIFEST))
    fsync_dir(d)
    for p in parts:
        p.unlink()
    if (d / PARTS).is_dir() and not any((d / PARTS).iterdir()):
        (d / PARTS).rmdir()
    count = info.count if info else 0
    return sorted(set(range(count)) - set(rows))


@dataclass
class MergeResult:
    out_dir: Path
    rows: int
    missing: list[int]



def copy_variant_files(src: Path, dest: Path, rows) -> None:
    """Copy the files of manifest `rows` (image, label map, mask, source) and the palette from one
    dataset directory to another, atomically, then make the new directory entries durable."""
    for r in rows:
        for c in ("file_name", "label_map_file", "mask_file", "source_file"):
            if r[c]:
                (dest / r[c]).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(dest / r[c], (src / r[c]).read_bytes())
    if (src / PALETTE).exists():
        (dest / LABEL_MAPS).mkdir(exist_ok=True)
        atomic_write_bytes(dest / PALETTE, (src / PALETTE).read_bytes())
    for sub in FILE_DIRS:
        if (dest / sub).is_dir():
            fsync_dir(dest / sub)

def merge(out_dir: str | os.PathLike, *others: str | os.PathLike) -> MergeResult:
    """Produce one manifest in `out_dir` from its shard parts and, optionally, from other dataset
    directories of the same run (e.g. shards written on machines without a shared disk), whose
    files are copied in. The result equals a single-process run of the same variants."""
    d = Path(out_dir)
    _check_out_dir(d)
    srcs = [Path(o) for o in others]
    for s in srcs:
        if not (s / INFO).is_file():
            raise DatasetError(f"{s}: not a dataset directory made by this toolkit (no {INFO})")
        if s.resolve() == d.resolve():
            raise DatasetError(f"{s}: given twice (it is the merge target)")
    if not srcs and not (d / INFO).is_file():
        raise DatasetError(f"{d}: not a dataset directory made by this toolkit (no {INFO})")
    d.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(runner_lock(d))
        _check_is_dataset_or_empty(d)
        for s in srcs:
            stack.enter_context(runner_lock(s))
        clean_orphans(d, None)
        stack.enter_context(manifest_lock(d))
        info = RunInfo.load(d / INFO) if (d / INFO).exists() else None
        for s in srcs:
            sinfo = RunInfo.load(s / INFO)
            if info is None:
                info = RunInfo(**{**sinfo.__dict__, "shards": {}})
            else:
                _check_same_run(d, info, sinfo)
                info.commands += [c for c in sinfo.commands if c not in info.commands]
                info.count = max(info.count, sinfo.count)
            srows: dict[int, dict] = {}
            for p in ([s / MANIFEST] if (s / MANIFEST).exists() else []) + sorted((s / PARTS).glob("shard-*.csv")):
                _combine(srows, _read_rows(p), str(p))
            existing: dict[int, dict] = {}
            if (d / MANIFEST).exists():
                _combine(existing, _read_rows(d / MANIFEST), str(d / MANIFEST))
            new = [r for i, r in sorted(srows.items()) if i not in existing]
            _combine(existing, srows.values(), str(s))   # conflict check for overlapping indices
            copy_variant_files(s, d, new)
            rows = list(existing.values())
            info.shards = {}
            atomic_write_text(d / INFO, info.to_json())
            _write_manifest(d / MANIFEST, rows)
        missing = _merge_parts_locked(d)
        n = len(_read_rows(d / MANIFEST))
    if missing:
        log.warning("%s: %d of %d variants are missing (e.g. %s); rerun the batch command to complete them",
                    d, len(missing), info.count, missing[:10])
    return MergeResult(d, n, missing)


# -- review and export ------------------------------------------------------------------------------
def update_review(out_dir: str | os.PathLike, status: dict[str, str]) -> int:
    """Set the review status of rows by file_name (accepted | rejected | pending).

    Atomic rewrite under manifest_lock: rows a runner appends meanwhile are kept. Returns the
    number of rows changed. DatasetError for an unknown file name or status (nothing written).
    """
    d = Path(out_dir)
    bad = {k: v for k, v in status.items() if v not in REVIEW_STATES}
    if bad:
        k, v = next(iter(bad.items()))
        raise DatasetError(f"review status {v!r} for {k}: allowed are {', '.join(REVIEW_STATES)}")
    path = d / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest here; is {d} the --out directory of a batch run?")
    with manifest_lock(d):
        _repair_torn_tail(path)
        rows = _read_rows(path)
        by_name = {r["file_name"]: r for r in rows}
        unknown = [k for k in status if k not in by_name]
        if unknown:
            raise DatasetError(f"{path}: no row with file_name {unknown[0]!r}"
                               + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                               + "; file names are relative to the dataset directory, e.g. images/000000.png")
        changed = 0
        for k, v in status.items():
            if by_name[k]["review"] != v:
                by_name[k]["review"] = v
                changed += 1
        if changed:
            # keep the file's row order (appends may be in flight order until the run ends)
            atomic_write_text(path, _rows_to_csv(rows, header=True))
    return changed


def export_subset(out_dir: str | os.PathLike, dest_dir: str | os.PathLike, file_names: Iterable[str]) -> Path:
    """Copy the given rows (by file_name) and their files into a new dataset directory with its own
    manifest, run info and card. `dest_dir` must not exist or be empty."""
    src, dest = Path(out_dir), Path(dest_dir)
    wanted = list(dict.fromkeys(file_names))
    if not wanted:
        raise DatasetError("export_subset: no file names given; select at least one row")
    _check_out_dir(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DatasetError(f"export destination {dest} is not empty; choose a new directory")
    if src.resolve() == dest.resolve():
        raise DatasetError("export destination is the source dataset itself; choose a new directory")
    info = RunInfo.load(src / INFO) if (src / INFO).exists() else None
    with manifest_lock(src):
        rows = _read_rows(src / MANIFEST) if (src / MANIFEST).is_file() else None
    if rows is None:
        raise DatasetError(f"{src / MANIFEST}: no manifest here; is {src} the --out directory of a batch run?")
    by_name = {r["file_name"]: r for r in rows}
    unknown = [k for k in wanted if k not in by_name]
    if unknown:
        raise DatasetError(f"{src / MANIFEST}: no row with file_name {unknown[0]!r}"
                           + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    dest.mkdir(parents=True, exist_ok=True)
    with runner_lock(dest):
        chosen = [by_name[k] for k in wanted]
        copy_variant_files(src, dest, chosen)
        with manifest_lock(dest):
            _write_manifest(dest / MANIFEST, chosen)
            if info is not None:
                sub_info = RunInfo(**{**info.__dict__, "shards": {},
                                      "commands": info.commands + [f"# subset of {src}: {len(chosen)} rows "
                                                                   "(toolkit.dataset.export_subset)"]})
                atomic_write_text(dest / INFO, sub_info.to_json())
                _write_card(dest, sub_info, _read_rows(dest / MANIFEST))
        fsync_dir(dest)
    return dest


# -- the dataset card -------------------------------------------------------------------------------
def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_card(info: RunInfo, rows: list[dict]) -> str:
    """The README.md of a dataset: deterministic (no dates), so a resumed run writes the same bytes."""
    counts: dict[tuple[int, str], int] = {}
    for r in rows:
        key = (int(r["label_id"]), r["label"])
        counts[key] = counts.get(key, 0) + 1
    fence = "````" if "```" in info.recipe_text else "```"
    lines = [
        "---",
        f"pretty_name: {json.dumps(info.recipe_name + ' variants (Neural Collage Toolkit)')}",
        "tags: [synthetic, gan, neural-collage, image-classification, semantic-segmentation]",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: [{MANIFEST}, {IMAGES}/*.png]",
        "---",
        "",
        f"# {info.recipe_name}: labeled variants from `{info.model_id}`",
        "",
        "Locally edited GAN images (label swap / feature blending, Neural Collage) made by the Neural "
        "Collage Toolkit's batch runner. Every row of `metadata.csv` can be re-rendered from its model "
        "sha256, recipe sha256 and variant seed.",
        "",
        "| | |",
        "|---|---|",
        f"| model | `{_md_cell(info.model_id)}` ({_md_cell(info.model_architecture)}) |",
        f"| model sha256 | `{info.model_sha256}` |",
        f"| model license | {_md_cell(info.model_license or 'unknown: check the weights’ source before use')} |",
        f"| recipe | `{_md_cell(info.recipe_name)}` ({_md_cell(info.recipe_path or 'in memory')}) |",
        f"| recipe sha256 | `{info.recipe_sha256}` |",
        f"| variants | {len(rows)} written of {info.count} requested (indices 0..{info.count - 1}) |",
        f"| toolkit | {info.toolkit_version} |",
        "",
        "## Made with",
        "",
        "```bash",
        *info.commands,
        "```",
        "",
        "## Counts per label",
        "",
        "| label_id | label | images |",
        "|---:|---|---:|",
        *[f"| {i} | {_md_cell(name)} | {n} |" for (i, name), n in sorted(counts.items())],
        "",
        "## Layout",
        "",
        f"- `{IMAGES}/NNNNNN.png`: edited images (RGB), NNNNNN = variant index.",
        f"- `{MASKS}/NNNNNN.png`: union of the edit regions (8-bit grey, 255 = edited).",
    ]
    if info.class_names and len(info.class_names) <= 256:
        lines.append(f"- `{LABEL_MAPS}/NNNNNN.png`: per-pixel class ids as an indexed-palette PNG (palette index = "
                     f"class id; `{PALETTE}` lists id, name and colour; the palette depends only on the model).")
    elif info.class_names:
        lines.append(f"- `{LABEL_MAPS}/NNNNNN.png`: per-pixel class ids as 16-bit grey PNGs (value = class id; "
                     f"more than 256 classes do not fit a palette); `{PALETTE}` lists id, name and a display colour.")
    if info.save_source:
        lines.append(f"- `{SOURCES}/NNNNNN.png`: the unedited source image (before/after pairs).")
    lines += [
        f"- `{MANIFEST}`: one row per variant; `file_name` is relative to this folder (Hugging Face "
        "`imagefolder` convention); `label`/`label_id` the majority class by area; `soft_label`, `edit_classes` "
        "and `params` are JSON; `locality` = mean |edited − source| outside the edit region / inside "
        "(0 = perfectly local); `review` is pending | accepted | rejected.",
        "",
        "Load it with pandas + PIL (`pd.read_csv('metadata.csv')`, `Image.open(row.file_name)`), with "
        "`toolkit.dataset.read_manifest(DIR)`, or with Hugging Face datasets: "
        f"`load_dataset('imagefolder', data_files={{'train': ['DIR/{MANIFEST}', 'DIR/{IMAGES}/*.png']}})`.",
        "",
    ]
    if info.class_names:
        pal = class_palette(info.class_names)
        shown = sorted({i for i, _ in counts} | set(range(min(len(info.class_names), 16))))
        lines += ["## Label map palette", "", "| id | class | colour |", "|---:|---|---|"]
        lines += [f"| {i} | {_md_cell(info.class_names[i])} | `#{pal[i][0]:02x}{pal[i][1]:02x}{pal[i][2]:02x}` |"
                  for i in shown if i < len(info.class_names)]
        if len(shown) < len(info.class_names):
            lines.append(f"\n(all {len(info.class_names)} classes in `{PALETTE}`)")
        lines.append("")
    lines += ["## Recipe", "", f"{fence}yaml", info.recipe_text.rstrip("\n"), fence, ""]
    return "\n".join(lines)


def _write_card(d: Path, info: RunInfo, rows: list[dict]) -> None:
    atomic_write_text(d / CARD, render_card(info, rows))
