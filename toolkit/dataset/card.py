"""The dataset card (DIR/README.md): what a dataset holds, how it was made, how to load it.

Deterministic (no dates, rows counted from the manifest), so a resumed run writes the same bytes
as an uninterrupted one. It states what the manifest really holds: a resume with a smaller
`--count` does not claim "40 written of 10 requested".
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import io as tio
from .layout import (CARD, IMAGES, LABEL_MAPS, MANIFEST, MASKS, PALETTE, PART_MAPS, PART_PALETTE, RENDERED_MAPS,
                     SOURCES, RunInfo, class_palette)


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def variants_line(count: int, indices: list[int]) -> str:
    """The card's "variants" cell: rows written against the count the latest run requested."""
    n = len(indices)
    beyond = [i for i in indices if i >= count]
    if not beyond:
        return f"{n} written of {count} requested (indices 0..{count - 1})"
    return (f"{n} written: {n - len(beyond)} of the {count} the latest run requested (indices 0..{count - 1}) "
            f"and {len(beyond)} beyond them from an earlier run with a larger count (up to index {max(beyond)})")


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
        f"| variants | {variants_line(info.count, sorted(int(r['variant_index']) for r in rows))} |",
        *([f"| part model | {_md_cell(info.part_model)}, sha256 `{info.part_model_sha256}`, blend point(s) "
           f"{', '.join(map(str, info.part_points))} |"] if info.parted else []),
        f"| toolkit | {info.toolkit_version} |",
        "",
        *([f"**Warning:** the model's weights hold NaN or infinite values in {len(info.model_nonfinite)} "
           f"tensor(s) (e.g. `{_md_cell(info.model_nonfinite[0])}`); its images may be blank or broken. "
           "Check the weights file before training on this dataset.", ""] if info.model_nonfinite else []),
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
    if info.judge_sha256 and info.class_names:
        rejected = sum(r["review"] == "rejected-auto" for r in rows)
        lines.append(f"- `{RENDERED_MAPS}/NNNNNN.png`: the class the judge `{_md_cell(info.judge)}` (sha256 "
                     f"`{info.judge_sha256[:12]}…`) sees at each pixel, same palette as the label maps; "
                     "`label_agreement` in the manifest is the share of the label map's pixels it confirms"
                     + (f"; {rejected} rows fell below the recipe's `filter.min_label_agreement` (review "
                        "`rejected-auto`)" if rejected else "") + ".")
    if info.parted:
        mapped = sum(bool(r.get("part_map_file")) for r in rows)
        lines.append(f"- `{PART_MAPS}/NNNNNN.png`: the part of the edited image at each pixel (palette index = part "
                     f"id; `{PART_PALETTE}` lists id, name and colour r, g, b), segmented from the features of "
                     "the very render that made the image (toolkit.parts; unsupervised parts a person named, not "
                     "ground truth)"
                     + (f"; {mapped} of {len(rows)} rows have one (the others were written before part maps were)"
                        if mapped != len(rows) else "") + ".")
    lines += [
        f"- `{MANIFEST}`: one row per variant; `file_name` is relative to this folder (Hugging Face "
        "`imagefolder` convention); `label`/`label_id` the majority class by area; `soft_label`, `edit_classes` "
        "and `params` are JSON; `locality` = mean |edited − source| outside the edit region / inside "
        "(0 = perfectly local); `review` is pending | accepted | rejected | rejected-auto.",
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
    if info.parted:
        lines += ["## Part map palette", "", "| id | part | colour |", "|---:|---|---|"]
        lines += [f"| {i} | {_md_cell(n)} | `#{c[0]:02x}{c[1]:02x}{c[2]:02x}` |"
                  for i, (n, c) in enumerate(zip(info.part_names, info.part_colors))]
        lines.append("")
    lines += ["## Recipe", "", f"{fence}yaml", info.recipe_text.rstrip("\n"), fence, ""]
    return "\n".join(lines)


def write_card(d: Path, info: RunInfo, rows: list[dict]) -> None:
    tio.atomic_write_text(d / CARD, render_card(info, rows))
