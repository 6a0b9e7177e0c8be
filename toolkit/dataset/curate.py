"""Curation of finished datasets: merge, review updates, filtering rows, export of a subset.

The Review page and the CLI (`python -m toolkit merge | review | export`) are thin shells over
these functions, so a filter or an export behaves the same in both.

A dataset folder is untrusted input here: every file a manifest row names is checked to be the
layout's path for that row's index and to resolve inside the folder, for all rows, before the
first byte is copied (`plan_copy`). Targets are written only if they hold the marker file or are
empty, and an export never lands inside its own source.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from .. import io as tio
from .card import write_card
from .layout import (FILE_COLUMNS, FILE_DIRS, INFO, MANIFEST, PALETTE, PART_PALETTE, PARTS, REVIEW_STATES, DatasetError,
                     RunInfo, check_is_dataset_or_empty, check_out_dir, check_same_run, is_dataset, quote_value,
                     resolve_inside, resolve_row_file)
from .locks import manifest_lock, read_lock, runner_lock, unless_read_only
from .manifest import (combine, merge_parts_locked, read_manifest, read_rows, repair_torn_tail,
                       rows_to_csv, write_manifest)
from .writer import clean_orphans

log = logging.getLogger(__name__)


# -- copying files between datasets ---------------------------------------------------------------
def plan_copy(src: Path, dest: Path, rows: Iterable[Mapping]) -> list[tuple[Path, Path]]:
    """(source file, target file) pairs for the rows' files and the palettes, every one checked:
    the layout's path for the row's index, an existing regular file inside `src`, a target inside
    `dest`. Raises DatasetError on the first bad row; nothing has been copied at that point."""
    pairs = []
    for r in rows:
        for c in FILE_COLUMNS:
            p = resolve_row_file(src, r, c)
            if p is None:
                continue
            if not p.is_file():
                raise DatasetError(f"{p}: variant {r['variant_index']}'s {c} is missing (or not a file); the source "
                                   "dataset is incomplete. Nothing was copied. Rerun its batch command to restore it.")
            pairs.append((p, resolve_inside(dest, r[c], c)))
    for pal in (PALETTE, PART_PALETTE):
        if (src / pal).exists():
            pairs.append((resolve_inside(src, pal, "the palette"), resolve_inside(dest, pal, "the palette")))
    return pairs


def _read_no_follow(p: Path) -> bytes:
    """Read a checked file, refusing a link swapped in since the check (O_NOFOLLOW on the last part)."""
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def copy_files(pairs: list[tuple[Path, Path]], dest: Path) -> None:
    """Copy planned files atomically, then make the new directory entries durable."""
    for s, t in pairs:
        t.parent.mkdir(parents=True, exist_ok=True)
        tio.atomic_write_bytes(t, _read_no_follow(s))
    for sub in FILE_DIRS:
        if (dest / sub).is_dir():
            tio.fsync_dir(dest / sub)


def copy_variant_files(src: Path, dest: Path, rows) -> None:
    """Copy the files of manifest `rows` (image, label map, mask, source, ...) and the palettes from one
    dataset directory to another, after checking all of them (`plan_copy`)."""
    copy_files(plan_copy(Path(src), Path(dest), list(rows)), Path(dest))


def _source_lock(s: Path):
    """A merge source's runner lock (so no runner writes it meanwhile); a read-only source cannot
    be written by anyone and is read without one."""
    return unless_read_only(runner_lock(s))


# -- merge --------------------------------------------------------------------------------------------
@dataclass
class MergeResult:
    out_dir: Path
    rows: int
    missing: list[int]


def merge(out_dir: str | os.PathLike, *others: str | os.PathLike) -> MergeResult:
    """Produce one manifest in `out_dir` from its shard parts and, optionally, from other dataset
    directories of the same run (e.g. shards written on machines without a shared disk), whose
    files are copied in. The result equals a single-process run of the same variants.

    Runs of one recipe with different counts merge (the count becomes the largest). Every source
    row and file is checked before anything is copied. A torn last line in a source (a killed
    run) is ignored with a note; the target's own is cut, as a resume would.
    """
    d = Path(out_dir)
    check_out_dir(d)
    srcs = [Path(o) for o in others]
    for s in srcs:
        if not is_dataset(s):
            raise DatasetError(f"{s}: not a dataset directory made by this toolkit (no {INFO})")
        if s.resolve() == d.resolve():
            raise DatasetError(f"{s}: given twice (it is the merge target)")
    if not srcs and not is_dataset(d):
        raise DatasetError(f"{d}: not a dataset directory made by this toolkit (no {INFO})")
    if d.exists():
        check_is_dataset_or_empty(d)      # before creating a lock file in someone's folder
    d.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(runner_lock(d))
        check_is_dataset_or_empty(d)
        for s in srcs:
            stack.enter_context(_source_lock(s))
        clean_orphans(d, None)
        stack.enter_context(manifest_lock(d))
        info = RunInfo.load(d / INFO) if (d / INFO).exists() else None
        existing: dict[int, dict] = {}
        if (d / MANIFEST).exists():
            repair_torn_tail(d / MANIFEST)
            combine(existing, read_rows(d / MANIFEST), str(d / MANIFEST))
        # First check everything (run identity, rows, files) ...
        plans = []
        for s in srcs:
            sinfo = RunInfo.load(s / INFO)
            if info is None:
                info = RunInfo(**{**sinfo.__dict__, "shards": {}})
            else:
                check_same_run(d, info, sinfo)     # refuses two part models (or judges), not one and none
                info.commands += [c for c in sinfo.commands if c not in info.commands]
                info.count = max(info.count, sinfo.count)
                if sinfo.parted and not info.parted:   # a dataset from before part maps + one with them
                    info = adopt_part_model(info, sinfo)
            srows: dict[int, dict] = {}
            for p in ([s / MANIFEST] if (s / MANIFEST).exists() else []) + sorted((s / PARTS).glob("shard-*.csv")):
                combine(srows, read_rows(p, torn_tail="ignore"), str(p))
            new = [r for i, r in sorted(srows.items()) if i not in existing]
            combine(existing, srows.values(), str(s))   # conflict check for overlapping indices
            plans.append(plan_copy(s, d, new))
        # ... then copy and write.
        for pairs in plans:
            copy_files(pairs, d)
        if srcs:
            info.shards = {}
            tio.atomic_write_text(d / INFO, info.to_json())
            write_manifest(d / MANIFEST, list(existing.values()))
        missing = merge_parts_locked(d)
        n = len(read_rows(d / MANIFEST))
    if missing:
        log.warning("%s: %d of %d variants are missing (e.g. %s); rerun the batch command to complete them",
                    d, len(missing), info.count, missing[:10])
    return MergeResult(d, n, missing)


def adopt_part_model(info: RunInfo, other: RunInfo) -> RunInfo:
    """`info` with `other`'s part model: its rows without part maps stay as they are (empty
    part_map_file), the merged rows keep theirs, and the card counts how many rows have one."""
    return RunInfo(**{**info.__dict__, **{k: getattr(other, k) for k in
                                          ("part_model", "part_model_sha256", "part_names", "part_points",
                                           "part_colors")}})


# -- review -------------------------------------------------------------------------------------------
def update_review(out_dir: str | os.PathLike, status: dict[str, str]) -> int:
    """Set the review status of rows by file_name (accepted | rejected | pending).

    Atomic rewrite under manifest_lock: rows a runner appends meanwhile are kept. Returns the
    number of rows changed. DatasetError for an unknown file name or status, or a dataset that
    cannot be written (read-only, full disk); nothing is written then.
    """
    d = Path(out_dir)
    bad = {k: v for k, v in status.items() if v not in REVIEW_STATES}
    if bad:
        k, v = next(iter(bad.items()))
        raise DatasetError(f"review status {quote_value(str(v))} for {quote_value(str(k))}: "
                           f"allowed are {', '.join(REVIEW_STATES)}")
    path = d / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest here; is {d} the --out directory of a batch run?")
    if not is_dataset(d):
        raise DatasetError(f"{d}: not a dataset made by this toolkit (no {INFO}); its metadata.csv is not "
                           "rewritten. Reviews are saved only in dataset folders written by the batch runner.")
    try:
        with manifest_lock(d):
            repair_torn_tail(path)
            rows = read_rows(path)
            by_name = {r["file_name"]: r for r in rows}
            unknown = [k for k in status if k not in by_name]
            if unknown:
                raise DatasetError(f"{path}: no row with file_name {quote_value(str(unknown[0]))}"
                                   + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                                   + "; file names are relative to the dataset directory, e.g. images/000000.png")
            changed = 0
            for k, v in status.items():
                if by_name[k]["review"] != v:
                    by_name[k]["review"] = v
                    changed += 1
            if changed:
                # keep the file's row order (appends may be in flight order until the run ends)
                tio.atomic_write_text(path, rows_to_csv(rows, header=True))
    except OSError as e:
        raise DatasetError(
            f"{d}: cannot save review changes ({e.strerror or e}{': ' + str(e.filename) if e.filename else ''}). "
            "Nothing was changed. The dataset is read-only here (a read-only mount or missing write permission) "
            "or the disk is full: make it writable, or export the rows you want to a writable folder "
            f"(python -m toolkit export {d} --to NEW_DIR) and review there.") from e
    return changed


def review_statuses_from_csv(csv_path: str | os.PathLike) -> dict[str, str]:
    """Read a review file: CSV with a header holding `file_name` and `review` (other columns are
    ignored, so an edited copy of metadata.csv works). DatasetError naming the line otherwise."""
    p = Path(csv_path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read the review file ({getattr(e, 'strerror', None) or e})") from e
    reader = csv.DictReader(StringIO(text, newline=""))
    if not reader.fieldnames or not {"file_name", "review"} <= set(reader.fieldnames):
        raise DatasetError(f"{p}: line 1: a review file needs the columns file_name,review (found "
                           f"{quote_value(','.join(reader.fieldnames or []))})")
    out: dict[str, str] = {}
    try:
        for r in reader:
            name, state = (r.get("file_name") or "").strip(), (r.get("review") or "").strip()
            if not name and not state:
                continue
            if state not in REVIEW_STATES:
                raise DatasetError(f"{p}: line {reader.line_num}: review {quote_value(state)} is not one of "
                                   f"{', '.join(REVIEW_STATES)}")
            if out.get(name, state) != state:
                raise DatasetError(f"{p}: line {reader.line_num}: {quote_value(name)} is set to both {out[name]} and "
                                   f"{state}; keep one line per file")
            out[name] = state
    except csv.Error as e:
        raise DatasetError(f"{p}: line {reader.line_num}: unreadable CSV ({e})") from e
    return out


# -- filtering ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """One filter on a manifest column: the value is one of `values` (numbers compare as numbers),
    and/or lies within [lo, hi] (numeric columns; a row without a value never matches a range)."""
    column: str
    values: tuple = ()
    lo: float | None = None
    hi: float | None = None


def parse_where(text: str) -> Where:
    """'COL=VALUE', 'COL>=X' or 'COL<=X' (the CLI's --where) → Where."""
    for op in (">=", "<=", "="):
        col, sep, value = str(text).partition(op)
        if sep and col.strip():
            col = col.strip()
            if op == "=":
                return Where(col, (value,))
            try:
                x = float(value)
            except ValueError:
                raise DatasetError(f"--where {quote_value(text)}: {value!r} is not a number") from None
            return Where(col, lo=x) if op == ">=" else Where(col, hi=x)
    raise DatasetError(f"--where {quote_value(text)}: expected COLUMN=VALUE, COLUMN>=NUMBER or COLUMN<=NUMBER, "
                       "e.g. label=red or locality<=0.1")


def select_rows(df: pd.DataFrame, where: Iterable[Where]) -> pd.DataFrame:
    """Rows of a manifest DataFrame (`read_manifest`) matching every filter. Several filters on one
    column: values are OR'ed (label=red, label=blue), ranges narrow."""
    mask = pd.Series(True, index=df.index)
    by_col: dict[str, list[Where]] = {}
    for w in where:
        if w.column not in df.columns:
            raise DatasetError(f"no column {quote_value(w.column)} in the manifest; "
                               f"columns are {', '.join(df.columns)}")
        by_col.setdefault(w.column, []).append(w)
    for col, ws in by_col.items():
        s = df[col]
        numeric = pd.api.types.is_numeric_dtype(s)
        values = [v for w in ws for v in w.values]
        if values:
            if numeric:
                try:
                    mask &= s.isin([float(v) for v in values])
                except ValueError:
                    raise DatasetError(f"column {col} holds numbers; {quote_value(str(values))} is not one") from None
            else:
                mask &= s.astype(str).isin([str(v) for v in values])
        for w in ws:
            if w.lo is None and w.hi is None:
                continue
            if not numeric:
                raise DatasetError(f"column {col} is not numeric; filter it with {col}=VALUE")
            lo = -math.inf if w.lo is None else w.lo
            hi = math.inf if w.hi is None else w.hi
            mask &= s.between(lo, hi) & s.notna()
    return df[mask]


def set_review_where(out_dir: str | os.PathLike, where: Sequence[Where], state: str) -> tuple[int, int]:
    """Set the review status of every row matching `where`: (rows matched, rows changed)."""
    names = select_rows(read_manifest(out_dir), where)["file_name"].tolist()
    return len(names), (update_review(out_dir, {n: state for n in names}) if names else 0)


def describe_params(text: str) -> str:
    """A short, human summary of a row's `params` JSON (the Review table's column)."""
    try:
        p = json.loads(text)
    except ValueError:
        return text[:80]
    parts = []
    for e in (p.get("edits", []) if isinstance(p, dict) else []):
        if not isinstance(e, dict) or len(e) != 1:
            continue
        (kind, v), = e.items()
        if not isinstance(v, dict):
            continue
        if kind == "label_swap":
            parts.append(f"swap→{v.get('to')} s{v.get('stages')} x{v.get('strength')}")
        else:
            parts.append(f"blend ref {(v.get('reference') or {}).get('seed')} {v.get('strength')}")
    return "; ".join(parts) or text[:80]


# -- export ---------------------------------------------------------------------------------------------
def export_subset(out_dir: str | os.PathLike, dest_dir: str | os.PathLike, file_names: Iterable[str]) -> Path:
    """Copy the given rows (by file_name) and their files into a new dataset directory with its own
    manifest, run info and card. `dest_dir` must not exist or be empty, and not lie inside the
    source. Every row's files are checked before anything is created or copied."""
    src, dest = Path(out_dir), Path(dest_dir)
    wanted = list(dict.fromkeys(file_names))
    if not wanted:
        raise DatasetError("export_subset: no file names given; select at least one row")
    check_out_dir(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DatasetError(f"export destination {dest} is not empty; choose a new directory")
    if src.resolve() == dest.resolve():
        raise DatasetError("export destination is the source dataset itself; choose a new directory")
    if src.resolve() in dest.resolve().parents:
        raise DatasetError(f"export destination {dest} lies inside the source dataset {src}; its files would "
                           "become part of the source. Choose a directory outside it.")
    if not (src / MANIFEST).is_file():
        raise DatasetError(f"{src / MANIFEST}: no manifest here; is {src} the --out directory of a batch run?")
    if not is_dataset(src):
        raise DatasetError(f"{src}: not a dataset directory made by this toolkit (no {INFO})")
    info = RunInfo.load(src / INFO)
    with read_lock(src):
        rows = read_rows(src / MANIFEST)
    by_name = {r["file_name"]: r for r in rows}
    unknown = [k for k in wanted if k not in by_name]
    if unknown:
        raise DatasetError(f"{src / MANIFEST}: no row with file_name {quote_value(str(unknown[0]))}"
                           + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    chosen = [by_name[k] for k in wanted]
    pairs = plan_copy(src, dest, chosen)
    dest.mkdir(parents=True, exist_ok=True)
    with runner_lock(dest):
        copy_files(pairs, dest)
        with manifest_lock(dest):
            write_manifest(dest / MANIFEST, chosen)
            sub_info = RunInfo(**{**info.__dict__, "shards": {},
                                  "commands": info.commands + [f"# subset of {src}: {len(chosen)} rows "
                                                               "(toolkit.dataset.export_subset)"]})
            tio.atomic_write_text(dest / INFO, sub_info.to_json())
            write_card(dest, sub_info, read_rows(dest / MANIFEST))
        tio.fsync_dir(dest)
    return dest


def export_where(out_dir: str | os.PathLike, dest_dir: str | os.PathLike, where: Sequence[Where]) -> Path:
    """Export the rows matching `where` (e.g. [Where("review", ("accepted",))]) to a new dataset."""
    names = select_rows(read_manifest(out_dir), where)["file_name"].tolist()
    if not names:
        raise DatasetError(f"{out_dir}: no rows match the filters; nothing was exported")
    return export_subset(out_dir, dest_dir, names)
