"""DatasetWriter: how the batch runner writes one run (or one shard of a run) into DIR.

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

Added since: a folder without the marker file (dataset.json) is written only if truly empty
(toolkit.dataset.layout), and a full disk while appending says which folder, that nothing was
lost and how to resume. This module knows nothing about generators or recipes beyond the
rendered variant's fields (index, seed, params, image, source_image, label_map, mask, label,
label_id, soft_label, source_class, edit_classes, locality, rendered_map, label_agreement, part_map). It does
no printing (logging only). A manifest written by an older version (fewer columns) is rewritten with
this version's header, its rows unchanged and the newer cells empty, before a resumed run appends.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from pathlib import Path

from .. import io as tio
from .card import write_card
from .layout import (FILE_DIRS, IMAGES, INFO, LABEL_MAPS, LOCK, MANIFEST, MASKS, PALETTE, PART_MAPS, PART_PALETTE,
                     PARTS, RENDERED_MAPS, SOURCES, DatasetError, DatasetLockedError, RunInfo,
                     check_is_dataset_or_empty, check_out_dir, check_same_run, class_palette, layout_files, palette_csv,
                     part_palette_csv)
from .locks import lock_fd, manifest_lock, runner_lock, unlock_fd
from .manifest import (append_rows, disk_error, float_cell, is_current_header, json_cell, merge_parts_locked, read_rows,
                       repair_torn_tail, rows_to_csv, write_manifest)

log = logging.getLogger(__name__)


def part_path(d: Path, shard: tuple[int, int]) -> Path:
    return d / PARTS / f"shard-{shard[0]}-of-{shard[1]}.csv"


def _index_of(name: str) -> int | None:
    m = re.match(r"^(\d+)\.png$", name)
    return int(m.group(1)) if m else None


def clean_orphans(d: Path, shard: tuple[int, int] | None) -> int:
    """Delete temp files left by a killed run: all of them for a single-process run, only those of
    the shard's own variant indices (and its own part) for a shard. Returns how many."""
    n = 0
    own_part = part_path(d, shard).name if shard else None
    for sub in [d, d / PARTS, *(d / s for s in FILE_DIRS)]:
        if not sub.is_dir():
            continue
        for p in sub.iterdir():
            m = tio.TMP_RE.match(p.name)
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
        self.agreement: dict[int, float | None] = {}    # label_agreement of the committed variants
        self.info: RunInfo | None = None

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST if self.shard is None else part_path(self.dir, self.shard)

    def __enter__(self) -> "DatasetWriter":
        check_out_dir(self.dir)
        self._created = not self.dir.exists()
        if not self._created:
            check_is_dataset_or_empty(self.dir)    # before creating a lock file in someone's folder
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(f"cannot create output directory {self.dir}: {e.strerror or e}") from e
        self._stack.enter_context(runner_lock(self.dir, self.shard))
        try:
            check_is_dataset_or_empty(self.dir)
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
                fd = lock_fd(self.dir / LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB, "in use")
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
                unlock_fd(fd)

    def begin(self, info: RunInfo) -> None:
        """Check the directory belongs to this run (same recipe and model), record the command,
        create the folders and the manifest header, and load the committed indices."""
        d = self.dir
        with manifest_lock(d):
            if (d / INFO).exists():
                old = RunInfo.load(d / INFO)
                check_same_run(d, old, info)
                if self.shard and old.shards and old.shards.get("n") != self.shard[1]:
                    raise DatasetError(f"{d} has parts of a {old.shards['n']}-way sharded run; this run is shard "
                                       f"{self.shard[0]}/{self.shard[1]}. Use the same N, or merge first "
                                       f"(python -m toolkit merge {d}).")
                info.commands = old.commands + [c for c in info.commands if c not in old.commands]
                info.shards = old.shards if self.shard else {}
            if self.shard:
                info.shards = {"n": self.shard[1]}
            tio.atomic_write_text(d / INFO, info.to_json())
            for sub in (IMAGES, MASKS) + ((LABEL_MAPS,) if info.class_names else ()) + \
                    ((SOURCES,) if info.save_source else ()) + ((RENDERED_MAPS,) if info.judge_sha256 else ()) + \
                    ((PART_MAPS,) if info.parted else ()):
                (d / sub).mkdir(exist_ok=True)
            if info.class_names:
                tio.atomic_write_text(d / PALETTE, palette_csv(info.class_names))
            if info.parted:      # same bytes on every resume: check_same_run refused another part model
                tio.atomic_write_text(d / PART_PALETTE, part_palette_csv(info.part_names, info.part_colors))
            if self.shard is None and (d / PARTS).is_dir():
                # Leftover parts of an earlier sharded run: fold them in so nothing is rendered twice.
                merge_parts_locked(d)
            if self.shard is not None:
                (d / PARTS).mkdir(exist_ok=True)
            path = self.manifest_path
            repair_torn_tail(path)
            if path.exists() and not is_current_header(path):     # an older version's manifest
                write_manifest(path, read_rows(path))
            if not path.exists():     # header only: an empty dataset still reads as one
                tio.atomic_write_text(path, rows_to_csv([], header=True))
            rows = read_rows(path)
            if self.shard is not None and (d / MANIFEST).exists():
                rows += [r for r in read_rows(d / MANIFEST) if int(r["variant_index"]) % self.shard[1] == self.shard[0]]
            tio.fsync_dir(d)
        self.info = info
        self.done = {int(r["variant_index"]) for r in rows}
        self.agreement = {int(r["variant_index"]): float(r["label_agreement"]) if r["label_agreement"] else None
                          for r in rows}

    # -- per variant (worker threads) --
    def files_for(self, index: int) -> dict[str, str]:
        return layout_files(index, self.info.class_names, self.info.save_source, bool(self.info.judge_sha256),
                            self.info.parted)

    def write_variant(self, rv, review: str = "pending") -> dict:
        """Encode and atomically write all files of one rendered variant; return its manifest row
        (with `review` as its status: the runner passes "rejected-auto" for variants a filter drops).

        On failure, files of this variant already written are removed (best effort) so that the
        directory holds no files without a row, and the error propagates.
        """
        info = self.info
        files = self.files_for(rv.index)
        agreement = getattr(rv, "label_agreement", None)     # optional fields: only models with a judge
        written: list[Path] = []
        try:
            payload = [(files["file_name"], tio.encode_png(rv.image)),
                       (files["mask_file"], tio.encode_png(rv.mask))]
            if files["label_map_file"]:
                if rv.label_map is None:
                    raise ValueError(f"variant {rv.index}: the model is conditional but no label map was rendered")
                payload.append((files["label_map_file"],
                                tio.encode_png(rv.label_map, class_palette(info.class_names))))
            if files["source_file"]:
                if rv.source_image is None:
                    raise ValueError(f"variant {rv.index}: save_source is set but no source image was rendered")
                payload.append((files["source_file"], tio.encode_png(rv.source_image)))
            if files["rendered_map_file"]:
                if getattr(rv, "rendered_map", None) is None:
                    raise ValueError(f"variant {rv.index}: the model has a judge but no rendered map was made")
                payload.append((files["rendered_map_file"],
                                tio.encode_png(rv.rendered_map, class_palette(info.class_names))))
            if files["part_map_file"]:
                part_map = getattr(rv, "part_map", None)
                if part_map is None:
                    raise ValueError(f"variant {rv.index}: the run has a part model ({info.part_model}) but no part "
                                     "map was made")
                if part_map.size and int(part_map.max()) >= len(info.part_names):
                    raise ValueError(f"variant {rv.index}: part id {int(part_map.max())} in the part map, but the "
                                     f"part model has {len(info.part_names)} parts")
                payload.append((files["part_map_file"],
                                tio.encode_png(part_map.astype("uint8"), [tuple(c) for c in info.part_colors])))
            for rel, data in payload:
                tio.atomic_write_bytes(self.dir / rel, data)
                written.append(self.dir / rel)
        except BaseException:
            for p in written:
                with contextlib.suppress(OSError):
                    p.unlink()
            raise
        return {
            **files,
            "label": str(rv.label), "label_id": str(int(rv.label_id)),
            "soft_label": json_cell({k: round(float(v), 6) for k, v in (rv.soft_label or {}).items()}),
            "source_class": "" if rv.source_class is None else str(rv.source_class),
            "edit_classes": json_cell(list(rv.edit_classes or [])),
            "recipe": info.recipe_name, "recipe_sha256": info.recipe_sha256,
            "variant_index": str(int(rv.index)), "variant_seed": str(int(rv.seed)),
            "model_id": info.model_id, "model_sha256": info.model_sha256,
            "params": json_cell(rv.params), "locality": float_cell(rv.locality),
            "review": review, "toolkit_version": info.toolkit_version,
            "label_agreement": "" if agreement is None else float_cell(agreement),
        }

    # -- runner thread --
    def commit(self, rows: list[dict]) -> None:
        """Make the rows' files durable (directory fsync), then append the rows.

        A failing disk (ENOSPC, EIO) raises DatasetError naming the folder: the rows committed
        before are intact, these rows' files stay on disk without a row and are rewritten
        identically when the same command is rerun."""
        if not rows:
            return
        try:
            for sub in FILE_DIRS:
                if (self.dir / sub).is_dir():
                    tio.fsync_dir(self.dir / sub)
            with manifest_lock(self.dir):
                append_rows(self.manifest_path, rows)
        except OSError as e:
            raise disk_error(self.dir, e, f"appending {len(rows)} row(s) to {self.manifest_path.name}",
                             kept=len(self.done)) from e
        self.done.update(int(r["variant_index"]) for r in rows)

    def finish(self, complete: bool) -> bool:
        """Sort the manifest by variant index and write the card. For a shard: when the manifest and
        the parts together hold every variant of the run (the other shards are done too), merge the
        parts into DIR/metadata.csv — so whichever shard finishes last merges, with no process group.
        Returns whether DIR/metadata.csv now holds the whole run."""
        try:
            return self._finish(complete)
        except OSError as e:
            raise disk_error(self.dir, e, "rewriting the sorted manifest and the card", kept=len(self.done)) from e

    def _finish(self, complete: bool) -> bool:
        d = self.dir
        with manifest_lock(d):
            path = self.manifest_path
            if path.exists():     # a shard's part is gone if another shard already merged it
                write_manifest(path, read_rows(path))
            if self.shard is None:
                write_card(d, self.info, read_rows(path) if path.exists() else [])
                return complete
            count = RunInfo.load(d / INFO).count
            have: set[int] = set()
            for p in [d / MANIFEST, *sorted((d / PARTS).glob("shard-*.csv"))]:
                if p.exists():
                    have.update(int(r["variant_index"]) for r in read_rows(p))
            if not have.issuperset(range(count)):
                return False
            if (d / PARTS).is_dir():
                merge_parts_locked(d)
            return True
