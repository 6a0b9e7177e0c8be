"""Where a dataset's files live, and which folders are datasets at all.

Layout of a dataset directory DIR (it loads directly in pandas, PIL and Hugging Face
`imagefolder`; see docs/BATCH.md):

    DIR/dataset.json             the marker file: machine-readable run info (RunInfo); a folder
                                 without it is not a dataset and is written only if truly empty
    DIR/images/000042.png        the edited image of variant 42 (RGB)
    DIR/label_maps/000042.png    per-pixel class ids as an indexed-palette PNG (conditional models)
    DIR/label_maps/palette.csv   class id, name and palette colour (one palette per model)
    DIR/rendered_maps/000042.png what the model's judge sees in the image, per pixel (same palette as
                                 label_maps; only when the model has a judge, see toolkit.judges)
    DIR/part_maps/000042.png     part ids of the edited image, per pixel, as an indexed-palette PNG
                                 (only when a part model is known for the model: toolkit.parts)
    DIR/part_palette.csv         part id, name and palette colour (r, g, b) of the part maps
    DIR/masks/000042.png         union of the variant's edit regions (8-bit grey, 0..255)
    DIR/sources/000042.png       the unedited source image (when the recipe asks for it)
    DIR/metadata.csv             the manifest: one row per variant, `file_name` relative to DIR
    DIR/README.md                the dataset card (toolkit.dataset.card)
    DIR/parts/                   per-shard manifest parts while a sharded run is in progress

Why the paths are a function of the variant index only: a variant always lands in the same file
whatever the batch size, shard or resume, and a manifest is untrusted input (a dataset folder may
come from anyone), so every path read from one is checked against `layout_files(index)` and must
resolve inside DIR (`resolve_row_file`) before anything is read or copied.

This module does no writing; it knows nothing about generators or recipes.
"""
from __future__ import annotations

import colorsys
import csv
import json
import os
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Mapping, Sequence

from PIL import ImageColor

from .. import io as tio
from ..provenance import Provenance

MANIFEST = "metadata.csv"
CARD = "README.md"
INFO = "dataset.json"
LOCK = ".lock"
MANIFEST_LOCK = ".manifest.lock"
PARTS = "parts"
IMAGES, LABEL_MAPS, MASKS, SOURCES = "images", "label_maps", "masks", "sources"
RENDERED_MAPS, PART_MAPS = "rendered_maps", "part_maps"
PALETTE = f"{LABEL_MAPS}/palette.csv"
PART_PALETTE = "part_palette.csv"
FILE_DIRS = (IMAGES, LABEL_MAPS, MASKS, SOURCES, RENDERED_MAPS, PART_MAPS)
# "rejected-auto": written by the runner for variants below a recipe's filter.min_label_agreement.
REVIEW_STATES = ("pending", "accepted", "rejected", "rejected-auto")
# The manifest columns that name files, and the folder each one's file lives in.
FILE_COLUMNS = {"file_name": IMAGES, "label_map_file": LABEL_MAPS, "mask_file": MASKS, "source_file": SOURCES,
                "rendered_map_file": RENDERED_MAPS, "part_map_file": PART_MAPS}


class DatasetError(ValueError):
    """A dataset directory or manifest problem; the message names the path and how to fix it."""


class DatasetLockedError(DatasetError):
    """Another runner holds the directory's lock."""


# -- the paths a row's index gives ------------------------------------------------------------------
def variant_stem(index: int) -> str:
    return f"{index:06d}"


def layout_files(index: int, class_names: Sequence[str] = (), save_source: bool = False,
                 judged: bool = False, parted: bool = False) -> dict[str, str]:
    """The manifest's file columns for variant `index` (empty when the file is not written).
    `judged`: the model has a judge, so a rendered map is written beside the label map.
    `parted`: a part model is known for the model, so every variant gets a part map."""
    stem = variant_stem(index)
    return {"file_name": f"{IMAGES}/{stem}.png", "mask_file": f"{MASKS}/{stem}.png",
            "label_map_file": f"{LABEL_MAPS}/{stem}.png" if class_names else "",
            "source_file": f"{SOURCES}/{stem}.png" if save_source else "",
            "rendered_map_file": f"{RENDERED_MAPS}/{stem}.png" if class_names and judged else "",
            "part_map_file": f"{PART_MAPS}/{stem}.png" if parted else ""}


def check_row_paths(row: Mapping[str, str], where: str) -> None:
    """Refuse a row whose file columns are not the layout's paths for its variant index.

    `file_name` is required; the other columns may be empty (not written for this model/recipe).
    `where` is "FILE: line N" for the message. A pure string check: no file is touched.
    """
    i = int(row["variant_index"])
    if i < 0:
        raise DatasetError(f"{where}: variant_index {i} is negative; the manifest is corrupt.")
    expected = layout_files(i, class_names=("any",), save_source=True, judged=True, parted=True)
    for col in FILE_COLUMNS:
        value = row.get(col, "")
        if value == expected[col] or (value == "" and col != "file_name"):
            continue
        raise DatasetError(
            f"{where} (variant {i}): {col} {quote_value(value)} is not this dataset's path for variant {i} "
            f"({expected[col]}); a manifest may name only its own files inside the dataset folder. Nothing "
            "was read or copied. Restore metadata.csv from the run that wrote it (or delete that row).")


def resolve_inside(d: Path, rel: str, what: str) -> Path:
    """DIR/rel, refused unless it resolves inside DIR (no symlink leading out of the folder)."""
    root = Path(d).resolve()
    p = Path(d) / rel
    real = p.resolve()
    if real != root and root not in real.parents:
        raise DatasetError(f"{p}: {what} resolves to {real}, outside the dataset folder {root} (a symbolic link "
                           "leading out). Nothing was read or copied. Replace the link with the real file.")
    return p


def resolve_row_file(d: str | os.PathLike, row: Mapping, column: str) -> Path | None:
    """The file a manifest row names in `column` (e.g. "file_name", "source_file"), or None when the
    column is empty. DatasetError when the path is not the layout's path for the row's variant index
    or leads out of DIR. Pages and curation read files only through this (or `layout_files`)."""
    if column not in FILE_COLUMNS:
        raise DatasetError(f"{column!r} is not a file column; file columns are {', '.join(FILE_COLUMNS)}")
    r = {c: str(row.get(c, "") or "") for c in FILE_COLUMNS}
    r["variant_index"] = str(int(row["variant_index"]))
    check_row_paths(r, f"{Path(d) / MANIFEST}: variant {r['variant_index']}")
    return resolve_inside(Path(d), r[column], column) if r[column] else None


def quote_value(value: str, limit: int = 80) -> str:
    """A manifest value quoted for a message, truncated (a crafted file may hold anything)."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# -- palette ------------------------------------------------------------------------------------------
def class_palette(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """Deterministic colours for class ids 0..n-1: a class named like a colour ("red", "navy")
    gets that colour, the others golden-ratio hue steps.

    One palette per model (it depends only on the class names), so label maps of every dataset
    made with the same model use the same colours.
    """
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


def palette_csv(class_names: Sequence[str]) -> str:
    buf = StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "name", "color"])
    for i, (name, (r, g, b)) in enumerate(zip(class_names, class_palette(class_names))):
        w.writerow([i, name, f"#{r:02x}{g:02x}{b:02x}"])
    return buf.getvalue()


def part_palette_csv(names: Sequence[str], colors: Sequence[Sequence[int]]) -> str:
    """DIR/part_palette.csv: part id (= palette index in the part maps), name, r, g, b."""
    buf = StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "name", "r", "g", "b"])
    for i, (name, (r, g, b)) in enumerate(zip(names, colors)):
        w.writerow([i, name, int(r), int(g), int(b)])
    return buf.getvalue()


# -- run info (dataset.json, the marker file) -------------------------------------------------------
@dataclass
class RunInfo:
    """What the dataset card is built from; identical runs produce identical info.

    `count` is what the latest run requested; the card reports what the manifest really holds."""
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
    model_source: str = ""                           # Provenance.source: "zoo" or "file" ("" in older datasets)
    model_nonfinite: list[str] = field(default_factory=list)   # weight tensors holding NaN/inf: the card warns
    judge: str = ""                  # the judge's name and file sha256 when the model has one (label_agreement)
    judge_sha256: str = ""
    # The part model behind part_maps/ (empty when none is known for the model): where it came from,
    # its file's sha256, part names (index = part id), the blend points it reads, and the colours.
    part_model: str = ""
    part_model_sha256: str = ""
    part_names: list[str] = field(default_factory=list)
    part_points: list[int] = field(default_factory=list)
    part_colors: list[list[int]] = field(default_factory=list)

    @property
    def parted(self) -> bool:
        """Variants written by this run get a part map."""
        return bool(self.part_model_sha256)

    @classmethod
    def from_provenance(cls, provenance: Provenance, **fields) -> "RunInfo":
        """The run info of a generator loaded by `load_generator` (its one Provenance record)."""
        return cls(model_id=provenance.model_id, model_sha256=provenance.sha256,
                   model_license=provenance.license or "", model_source=provenance.source,
                   model_nonfinite=list(provenance.nonfinite), **fields)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> "RunInfo":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as e:
            raise DatasetError(f"{path}: unreadable run info ({str(e)[:200]}). It is written by the batch runner; "
                               "restore it or start a new output directory.") from e

    def identity(self) -> tuple:
        return (self.recipe_sha256, self.model_sha256)


def check_same_run(d: Path, old: RunInfo, new: RunInfo) -> None:
    if old.recipe_sha256 != new.recipe_sha256:
        raise DatasetError(
            f"{d} holds a dataset of recipe {old.recipe_name!r} (sha256 {old.recipe_sha256[:12]}…), but this run "
            f"uses recipe {new.recipe_name!r} (sha256 {new.recipe_sha256[:12]}…). Resuming would mix two recipes: "
            "use a new --out directory, or delete this one to start over.")
    if old.model_sha256 != new.model_sha256:
        raise DatasetError(
            f"{d} was made with model {old.model_id!r} (sha256 {old.model_sha256[:12]}…), but this run loads "
            f"{new.model_id!r} (sha256 {new.model_sha256[:12]}…). Use a new --out directory.")
    if old.judge_sha256 and new.judge_sha256 and old.judge_sha256 != new.judge_sha256:
        raise DatasetError(
            f"{d} was judged by {old.judge!r} (sha256 {old.judge_sha256[:12]}…), but this run's judge is "
            f"{new.judge!r} (sha256 {new.judge_sha256[:12]}…): label_agreement figures (and which variants a "
            "filter keeps) would mix two judges. Use a new --out directory.")
    if old.part_model_sha256 and new.part_model_sha256 and old.part_model_sha256 != new.part_model_sha256:
        raise DatasetError(
            f"{d} has part maps from part model {old.part_model!r} (sha256 {old.part_model_sha256[:12]}…, parts "
            f"{', '.join(old.part_names)}), but this run's part model is {new.part_model!r} (sha256 "
            f"{new.part_model_sha256[:12]}…, parts {', '.join(new.part_names)}): one dataset's part ids must mean "
            "the same parts in every row. Use a new --out directory (or the same part model).")


# -- which folders may be written -------------------------------------------------------------------
def check_out_dir(d: Path) -> None:
    if d.exists() and not d.is_dir():
        raise DatasetError(f"output directory {d} is a file; give the path of a new or existing directory")
    for parent in d.parents:
        if parent.exists() and not parent.is_dir():
            raise DatasetError(f"output directory {d}: {parent} is a file, not a directory")
        if parent.exists():
            break


def is_dataset(d: Path) -> bool:
    """DIR holds the marker file a dataset run writes first (a regular file, not a link)."""
    p = Path(d) / INFO
    return p.is_file() and not p.is_symlink()


def _our_leftover(name: str) -> bool:
    """Lock files and an interrupted first write of the marker: what a run leaves in a folder it
    had just created before anything else (so a sibling shard starting at the same time passes)."""
    if name.startswith(LOCK) or name == MANIFEST_LOCK:
        return True
    m = tio.TMP_RE.match(name)
    return bool(m) and m.group("target") == INFO


def check_is_dataset_or_empty(d: Path) -> None:
    """Refuse to write into a folder that is not a dataset of this toolkit and is not empty.

    Only the marker file counts: a folder that merely looks like a dataset (images/000000.png,
    a README.md, even a metadata.csv) but has no dataset.json holds someone's files, which a run,
    a merge or an export would replace."""
    d = Path(d)
    if is_dataset(d):
        return
    found = sorted(p.name for p in d.iterdir() if not _our_leftover(p.name))
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise DatasetError(f"output directory {d} is not empty and is not a dataset made by this toolkit "
                           f"(found {shown}; no {INFO}). Nothing was written. Choose a new or empty directory.")
