"""The manifest (DIR/metadata.csv): its columns, reading with validation, appending, torn-tail repair.

Rules (the writer's crash rules rest on them, see toolkit.dataset.writer):
- Rows are appended in one write followed by fsync, under the manifest lock, after the files they
  name are durable. A crash mid-append leaves at most a torn last line (no final newline), which
  `repair_torn_tail` cuts off; that variant is rendered again. Anything else malformed is an error
  naming the line, never silently dropped.
- Every row read is validated: the header (this version's columns, or an older version's: see
  `check_header`), the field count, a unique integer variant index, a
  known review state, and file columns that are exactly the layout's paths for that index (a
  manifest is untrusted input: `../../x.png` or an absolute path is refused with its line).
- A full or failing disk while appending is reported naming the folder, saying that nothing in
  the manifest was lost and how to resume.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from io import StringIO
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .. import io as tio
from .card import write_card
from .layout import INFO, MANIFEST, PARTS, REVIEW_STATES, DatasetError, RunInfo, check_row_paths
from .locks import read_lock

log = logging.getLogger(__name__)

COLUMNS = [
    "file_name", "label", "label_id", "soft_label", "source_class", "edit_classes",
    "label_map_file", "mask_file", "source_file", "recipe", "recipe_sha256",
    "variant_index", "variant_seed", "model_id", "model_sha256", "params", "locality",
    "review", "toolkit_version", "label_agreement", "rendered_map_file", "part_map_file",
]
# The columns of the first manifest format. A header holding these and only known columns (in any
# order) is an older toolkit's manifest: it reads with the newer columns empty, and a resumed run
# rewrites it with this version's header before appending (DatasetWriter.begin).
BASE_COLUMNS = COLUMNS[:19]
NUMERIC_COLUMNS = ("locality", "label_agreement")
# Columns that may differ between two copies of the same variant without it being a conflict:
# the review status, and what is computed from pixels (kernels may round differently when the
# batch composition changes, e.g. two runs of one recipe with different counts).
MUTABLE = {"review"}
PIXEL_COLUMNS = {"locality", "label_agreement"}


# -- cell formatting ----------------------------------------------------------------------------------
def json_cell(obj) -> str:
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


def float_cell(x) -> str:
    x = float(x)
    return "" if not math.isfinite(x) else f"{x:.6f}"


def rows_to_csv(rows: Iterable[dict], header: bool) -> str:
    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


# -- reading ------------------------------------------------------------------------------------------
def _manifest_text(path: Path, torn_tail: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e}); the manifest is corrupt. Restore it from a backup or "
                           "delete it and rerun the batch command (existing images are re-rendered).") from e
    if not text:
        raise DatasetError(f"{path}: empty file (no header); delete it and rerun the batch command.")
    if torn_tail == "ignore" and not text.endswith("\n") and "\n" in text:
        keep = text.rfind("\n") + 1
        log.warning("%s: ignoring a partial last line (%d bytes) left by an interrupted write; rerunning the batch "
                    "command there cuts it and renders that variant again", path, len(text) - keep)
        text = text[:keep]
    return text


def read_rows(path: Path, *, torn_tail: str = "error") -> list[dict]:
    """Rows of a manifest (or part) as dicts of strings; DatasetError naming the line if corrupt.

    torn_tail="ignore" skips a partial last line (no final newline) with a log note instead of
    failing: for readers that must not modify the file (merge sources, the Review page), where a
    resume would cut it.
    """
    return _parse_rows(path, _manifest_text(path, torn_tail))


def _parse_rows(path: Path, text: str) -> list[dict]:
    reader = csv.reader(StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise DatasetError(f"{path}: line 1: unreadable CSV header ({e}).") from e
    check_header(path, header)
    rows, seen = [], {}
    try:
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise DatasetError(f"{path}: line {line}: {len(values)} fields, expected {len(header)}; the "
                                   "manifest is corrupt (edit or delete that line and rerun to re-render it).")
            row = dict.fromkeys(COLUMNS, "") | dict(zip(header, values))
            try:
                i = int(row["variant_index"])
            except ValueError:
                raise DatasetError(f"{path}: line {line}: variant_index {row['variant_index'][:40]!r} is not an "
                                   "integer; the manifest is corrupt.") from None
            if i in seen:
                raise DatasetError(f"{path}: line {line}: variant {i} already appears on line {seen[i]}; "
                                   "delete the duplicate line.")
            if row["review"] not in REVIEW_STATES:
                raise DatasetError(f"{path}: line {line}: review {row['review'][:40]!r} is not one of "
                                   f"{REVIEW_STATES}.")
            check_row_paths(row, f"{path}: line {line}")
            seen[i] = line
            rows.append(row)
    except csv.Error as e:
        raise DatasetError(f"{path}: line {reader.line_num}: unreadable CSV ({e}); the manifest is corrupt.") from e
    return rows


def check_header(path: Path, header: list[str]) -> None:
    """This version's header, or an older version's (all of BASE_COLUMNS, nothing unknown, no repeats)."""
    if header == COLUMNS:
        return
    missing = [c for c in BASE_COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS][:5]
    if missing or extra or len(set(header)) != len(header):
        raise DatasetError(f"{path}: line 1: the header is not this toolkit's manifest header "
                           f"(missing {missing}, unexpected {extra}). Was the file edited? Restore the header: "
                           f"{','.join(COLUMNS)}")


def is_current_header(path: Path) -> bool:
    """Whether the manifest's first line is this version's header (False: an older toolkit wrote it)."""
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    return next(csv.reader([first]), []) == COLUMNS


def read_manifest(out_dir: str | os.PathLike) -> pd.DataFrame:
    """DIR/metadata.csv as a pandas DataFrame (JSON columns stay strings; `json.loads` them).

    DatasetError if the directory has no manifest or it is corrupt (the message names the line).
    A torn last line (a run killed mid-append, cut when it resumes) is left out with a log note.
    """
    d = Path(out_dir)
    path = d / MANIFEST
    if not path.is_file():
        hint = " (a sharded run is still in progress or was not merged: run `python -m toolkit merge " \
               f"{d}`)" if (d / PARTS).is_dir() else ""
        raise DatasetError(f"{path}: no manifest here{hint}. Is {d} the --out directory of a batch run?")
    with read_lock(d):
        text = _manifest_text(path, torn_tail="ignore")   # a killed run's torn line is not a row yet
    _parse_rows(path, text)  # validates, with line numbers
    str_cols = [c for c in COLUMNS if c not in ("label_id", "variant_index", "variant_seed", *NUMERIC_COLUMNS)]
    df = pd.read_csv(StringIO(text, newline=""), dtype={c: str for c in str_cols} | {
        "label_id": "int64", "variant_index": "int64", "variant_seed": "int64"},
        keep_default_na=False, na_values={c: [""] for c in NUMERIC_COLUMNS})
    for c in COLUMNS:        # an older manifest: the columns it predates are empty
        if c not in df:
            df[c] = np.nan if c in NUMERIC_COLUMNS else ""
    df = df[COLUMNS]
    for c in NUMERIC_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


# -- writing ------------------------------------------------------------------------------------------
def disk_error(d: Path, e: OSError, what: str, kept: int | None = None) -> DatasetError:
    """The message for a failing disk while changing DIR's manifest: which folder, what failed,
    that nothing already committed was lost, and how to resume."""
    safe = f"the {kept} variants already in the manifest are intact" if kept is not None else \
        "the manifest holds what it held before"
    return DatasetError(
        f"{d}: {what} failed ({e.strerror or e}). Nothing was lost: {safe} (a partly written last line is cut off "
        "when the run resumes, and that variant is rendered again). Free some space or fix the disk, then rerun "
        "the same command to resume.")


def repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash (or a full disk) mid-append; that variant is simply
    rendered again. Reads only the file's tail, so it is cheap enough to run before every append.

    Call under manifest_lock. Only a missing final newline counts as torn; anything else that is
    malformed is reported by `read_rows` instead of silently dropped.
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


def write_manifest(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: int(r["variant_index"]))
    tio.atomic_write_text(path, rows_to_csv(rows, header=True))


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append under manifest_lock; reopens the file (a review update may have replaced it)."""
    if not rows:
        return
    repair_torn_tail(path)     # an earlier append that failed half-way must not glue onto this one
    new = not path.exists()
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(rows_to_csv(rows, header=new))
        f.flush()
        os.fsync(f.fileno())
    if new:
        tio.fsync_dir(path.parent)


# -- combining (merge and shard parts) ----------------------------------------------------------------
def combine(into: dict[int, dict], rows: Iterable[dict], where: str) -> None:
    """Add rows by variant index; an index seen before must describe the same variant (same
    recipe, seed, parameters and files). The first copy is kept, with its review status."""
    for r in rows:
        i = int(r["variant_index"])
        old = into.get(i)
        if old is None:
            into[i] = r
            continue
        diff = [c for c in COLUMNS if c not in MUTABLE | PIXEL_COLUMNS and old[c] != r[c]]
        if diff:
            raise DatasetError(f"{where}: variant {i} appears twice with different {diff}; the shards were not "
                               "made by the same recipe/model/toolkit. Merge only parts of one run.")
        if any(old[c] != r[c] for c in PIXEL_COLUMNS):
            log.info("%s: variant %d differs only in %s (rendered in another batch composition); keeping the "
                     "first copy", where, i, ", ".join(sorted(PIXEL_COLUMNS)))


def merge_parts_locked(d: Path) -> list[int]:
    """Fold DIR/parts/*.csv into DIR/metadata.csv (under manifest_lock); rows already in the
    manifest keep their review status. Removes the parts. Returns indices missing below count."""
    rows: dict[int, dict] = {}
    if (d / MANIFEST).exists():
        repair_torn_tail(d / MANIFEST)
        combine(rows, read_rows(d / MANIFEST), str(d / MANIFEST))
    parts = sorted((d / PARTS).glob("shard-*.csv")) if (d / PARTS).is_dir() else []
    for p in parts:
        repair_torn_tail(p)
        combine(rows, read_rows(p), str(p))
    write_manifest(d / MANIFEST, list(rows.values()))
    info = RunInfo.load(d / INFO) if (d / INFO).exists() else None
    if info is not None:
        info.shards = {}
        tio.atomic_write_text(d / INFO, info.to_json())
        write_card(d, info, read_rows(d / MANIFEST))
    tio.fsync_dir(d)
    for p in parts:
        p.unlink()
    if (d / PARTS).is_dir() and not any((d / PARTS).iterdir()):
        (d / PARTS).rmdir()
    count = info.count if info else 0
    return sorted(set(range(count)) - set(rows))
