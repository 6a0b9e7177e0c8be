"""The on-disk dataset a batch run produces, and its curation.

- `layout`: where a variant's files live (a function of its index), the marker file
  (dataset.json, RunInfo), the palette, which folders may be written, safe row paths.
- `card`: the dataset card (README.md).
- `locks`: the run lock and the manifest lock.
- `manifest`: the columns, reading with validation, appending, torn-tail repair.
- `writer`: DatasetWriter, with the crash rules the batch runner relies on.
- `curate`: merge, review updates, filtering rows, export of a subset (the Review page and the
  CLI's merge/review/export call these).

Imports flow one way: layout → card, locks → manifest → writer → curate. Nothing here knows
about generators or recipes; all file writing goes through toolkit.io.
"""
from .card import render_card
from .curate import (MergeResult, Where, copy_variant_files, describe_params, export_subset, export_where, merge,
                     parse_where, review_statuses_from_csv, select_rows, set_review_where, update_review)
from .layout import (CARD, FILE_COLUMNS, FILE_DIRS, IMAGES, INFO, LABEL_MAPS, LOCK, MANIFEST, MANIFEST_LOCK, MASKS,
                     RENDERED_MAPS, PART_MAPS, PART_PALETTE,
                     PALETTE, PARTS, REVIEW_STATES, SOURCES, DatasetError, DatasetLockedError, RunInfo,
                     class_palette, is_dataset, layout_files, resolve_row_file, variant_stem)
from .locks import manifest_lock, runner_lock
from .manifest import COLUMNS, read_manifest
from .writer import DatasetWriter, clean_orphans

__all__ = [
    "CARD", "COLUMNS", "RENDERED_MAPS", "PART_MAPS", "PART_PALETTE", "FILE_COLUMNS", "FILE_DIRS", "IMAGES", "INFO",
    "LABEL_MAPS", "LOCK", "MANIFEST",
    "MANIFEST_LOCK", "MASKS", "PALETTE", "PARTS", "REVIEW_STATES", "SOURCES",
    "DatasetError", "DatasetLockedError", "DatasetWriter", "MergeResult", "RunInfo", "Where",
    "class_palette", "clean_orphans", "copy_variant_files", "describe_params", "export_subset", "export_where",
    "is_dataset", "layout_files", "manifest_lock", "merge", "parse_where", "read_manifest", "render_card",
    "resolve_row_file", "review_statuses_from_csv", "runner_lock", "select_rows", "set_review_where",
    "update_review", "variant_stem",
]
