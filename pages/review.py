"""Review: look at a dataset row by row (gallery with label/part maps and masks, keyboard
shortcuts) or as a table, filter and sort by any manifest column, accept/reject (also in bulk on
the filtered rows), and export the accepted rows as a new dataset under `datasets/`.

Every status change goes through `toolkit.dataset.update_review` (atomic, under the manifest
lock, so a run that is still appending loses nothing); filtering is `toolkit.dataset.select_rows`,
the same as the CLI's `review --where` / `export --where`.
"""
import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from toolkit import dataset
from toolkit.ui import widgets as W
from toolkit.ui.review_view import LAYERS, overlay, row_picture, zip_dataset
from toolkit.ui.workspace import WorkspaceError, inside_workspace, list_datasets, workspace_root

MAX_ROWS = 500      # table thumbnails are inlined as data URLs: keep the table light
GALLERY = 256       # on-screen size of the image under review (and ≥ 192 for the maps beside it)
SIDE = 192

W.sidebar()
st.title("Review")
root = workspace_root()


def pick_dataset() -> Path | None:
    known = [str(p) for p in list_datasets(root)]
    if st.session_state.get("review_dir") and st.session_state["review_dir"] not in known:
        known.insert(0, st.session_state["review_dir"])
    other = "another directory…"
    pick = st.selectbox("Dataset directory", known + [other], key="review_pick",
                        index=known.index(st.session_state["review_dir"]) if st.session_state.get("review_dir") in known else 0,
                        format_func=lambda p: p if p == other else str(Path(p).relative_to(root))
                        if root in Path(p).parents else p)
    text = st.text_input("Directory (inside the workspace)", key="review_path") if pick == other else pick
    if not text:
        st.info(f"Run a recipe on the Batch page, or type a dataset directory inside {root}.")
        return None
    try:
        return inside_workspace(text, root)
    except WorkspaceError as e:
        st.error(str(e))
        return None


ddir = pick_dataset()
if ddir is None:
    st.stop()
try:
    df = dataset.read_manifest(ddir)
except dataset.DatasetError as e:
    st.error(str(e))
    st.stop()
except Exception as e:  # a manifest pandas cannot parse
    st.error(f"{ddir / dataset.MANIFEST}: the manifest could not be read ({type(e).__name__}). "
             "Is it a metadata.csv written by the batch runner?")
    st.stop()
if df.empty:
    st.info(f"{ddir}: the manifest has no rows yet (a run may still be starting).")
    st.stop()


# -- filters and sorting (any manifest column) ---------------------------------------------------------
def numeric_range(col: str, label: str, key: str):
    vals = df[col].replace([np.inf, -np.inf], np.nan).dropna() if col in df else pd.Series(dtype=float)
    if not len(vals) or not pd.api.types.is_numeric_dtype(vals):
        return None
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        return None
    picked = st.slider(label, lo, hi, (lo, hi), key=f"{key}_{ddir}")
    return None if tuple(picked) == (lo, hi) else dataset.Where(col, lo=picked[0], hi=picked[1])


where: list = []
f1, f2, f3 = st.columns(3)
for box, col, name in ((f1, "label", "Label"), (f2, "recipe", "Recipe"), (f3, "review", "Review status")):
    options = list(dataset.REVIEW_STATES) + sorted(set(df[col].astype(str)) - set(dataset.REVIEW_STATES)) \
        if col == "review" else sorted(df[col].astype(str).unique())
    vals = box.multiselect(name, options, key=f"review_{'status' if col == 'review' else col + 's'}")
    if vals:
        where.append(dataset.Where(col, tuple(vals)))
r1, r2 = st.columns(2)
with r1:
    w = numeric_range("locality", "Locality (0 = perfectly local)", "review_loc")
    where += [w] if w else []
with r2:
    if "label_agreement" in df:
        w = numeric_range("label_agreement", "Label agreement (share of pixels that show the asked class)",
                          "review_agree")
        where += [w] if w else []
with st.expander("More filters and sorting"):
    m1, m2, m3, m4 = st.columns([2, 3, 2, 1])
    extra_col = m1.selectbox("Column", ["(none)"] + list(df.columns), key="review_extra_col")
    if extra_col != "(none)":
        s = df[extra_col]
        if pd.api.types.is_numeric_dtype(s) and s.nunique() > 12:
            with m2:
                w = numeric_range(extra_col, f"{extra_col} range", "review_extra_range")
                where += [w] if w else []
        else:
            vals = m2.multiselect(f"{extra_col} is one of", sorted(s.astype(str).unique())[:1000],
                                  key=f"review_extra_vals_{extra_col}")
            if vals:
                where.append(dataset.Where(extra_col, tuple(vals)))
    sort_col = m3.selectbox("Sort by", ["variant_index"] + [c for c in df.columns if c != "variant_index"],
                            key="review_sort")
    descending = m4.toggle("Descending", key="review_desc")
try:
    view = dataset.select_rows(df, where)
except dataset.DatasetError as e:
    st.error(str(e))
    st.stop()
view = view.sort_values(sort_col, ascending=not descending, kind="stable", na_position="last")
names = view["file_name"].tolist()
st.caption(f"{len(view)} of {len(df)} rows match")


def set_status(files: list, state: str) -> None:
    try:
        n = dataset.update_review(ddir, {f: state for f in files})
        st.session_state["review_note"] = f"Set {n} row(s) to {state}."
    except dataset.DatasetError as e:
        st.session_state["review_note_error"] = str(e)


b1, b2, b3 = st.columns(3)
b1.button(f"Accept all {len(view)} matching", key="review_accept_all", on_click=set_status, args=(names, "accepted"))
b2.button(f"Reject all {len(view)} matching", key="review_reject_all", on_click=set_status, args=(names, "rejected"))
b3.button(f"Reset {len(view)} matching to pending", key="review_reset_all", on_click=set_status,
          args=(names, "pending"))
if st.session_state.get("review_note_error"):
    st.error(st.session_state.pop("review_note_error"))
elif st.session_state.get("review_note"):
    st.toast(st.session_state.pop("review_note"))

mode = st.segmented_control("View", ["Gallery", "Table"], default="Gallery", key="review_mode") or "Gallery"


# -- gallery: one row at a time, large, with its maps; keyboard shortcuts ---------------------------
def gallery() -> None:
    if not names:
        st.info("No rows match the filters.")
        return
    cursor_key = f"review_cursor_{ddir}"
    pos = min(max(0, int(st.session_state.get(cursor_key, 0))), len(names) - 1)

    def move(step: int) -> None:
        st.session_state[cursor_key] = min(max(0, pos + step), len(names) - 1)

    def decide(state: str) -> None:
        set_status([names[pos]], state)
        move(1)

    row = view.iloc[pos].to_dict()
    c = st.columns([1, 1, 1, 1, 1, 3])
    c[0].button("Previous", key="review_prev", on_click=move, args=(-1,), shortcut="Left", disabled=pos == 0)
    c[1].button("Accept", key="review_accept", on_click=decide, args=("accepted",), shortcut="A", type="primary")
    c[2].button("Reject", key="review_reject", on_click=decide, args=("rejected",), shortcut="X")
    c[3].button("Pending", key="review_pending", on_click=decide, args=("pending",), shortcut="P")
    c[4].button("Next", key="review_next", on_click=move, args=(1,), shortcut="Right", disabled=pos >= len(names) - 1)
    c[5].caption(f"Row {pos + 1} of {len(names)} · keys: A accept, X reject, P pending, ← → move")
    layers = {name: row_picture(ddir, row, col) for name, col in LAYERS.items()}
    present = [n for n, im in layers.items() if im is not None]
    show_over = st.radio("Overlay on the image", ["none"] + [n for n in present if n != "source"], horizontal=True,
                         key="review_overlay")
    image = row_picture(ddir, row, "file_name")
    cols = st.columns(1 + len(present))
    with cols[0]:
        if image is None:
            st.warning("The image file is missing or refused.")
        else:
            shown = overlay(image, layers[show_over], LAYERS[show_over]) if show_over != "none" else image
            st.image(shown.resize((GALLERY, GALLERY), Image.NEAREST),
                     caption=f"#{row['variant_index']} {row['label']} — {row['review']}")
    for col, name in zip(cols[1:], present):
        col.image(layers[name].resize((SIDE, SIDE), Image.NEAREST), caption=name)
    facts = {"label": row["label"], "review": row["review"], "locality": row["locality"],
             "edits": dataset.describe_params(str(row["params"])), "seed": row["variant_seed"]}
    if pd.notna(row.get("label_agreement")):
        facts["label agreement"] = row["label_agreement"]
    st.caption(" · ".join(f"{k}: {v}" for k, v in facts.items()))


# -- table: an editor whose base stays fixed while the user edits ----------------------------------------
@st.cache_data(max_entries=20000, show_spinner=False)
def thumbnail(path: str, mtime: float, size: int = 64) -> str:
    """A small PNG data URL (ImageColumn renders data URLs; local paths show blank)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.NEAREST)
    except OSError:
        return ""
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumb(row: dict, column: str) -> str:
    """Only the file the layout gives for the row's index, and only inside the dataset folder."""
    try:
        p = dataset.resolve_row_file(ddir, row, column)
    except dataset.DatasetError:
        return ""
    return thumbnail(str(p), p.stat().st_mtime) if p is not None and p.is_file() else ""


def save_table_edits(snap: dict) -> None:
    """Write the edits the user made in a table snapshot that are not saved yet (positions refer to
    that snapshot's rows, whatever the manifest holds now)."""
    base = snap["base"]
    edits = (st.session_state.get(snap["key"]) or {}).get("edited_rows") or {}
    changes = {}
    for pos, edit in edits.items():
        name = base["file_name"][int(pos)]
        if "review" in edit and snap["saved"].get(name) != edit["review"]:
            changes[name] = edit["review"]
    if changes:
        try:
            n = dataset.update_review(ddir, changes)
            snap["saved"].update(changes)
            st.toast(f"Saved {n} review change(s) to {dataset.MANIFEST}")
        except dataset.DatasetError as e:
            st.error(str(e))


def table() -> None:
    # The editor's base is a snapshot of the rows taken when these filters were first shown; it is
    # rebuilt only when the filters or the sort change, or on "Reload rows" (a runner may still be
    # appending). Edits accumulate in the editor's state and only those not yet saved are written,
    # so the editor is never re-created under the user's cursor and no edit is lost.
    sig = (str(ddir), repr(where), sort_col, descending)
    snap = st.session_state.get("review_table_snapshot")
    if snap is not None:
        save_table_edits(snap)
    reload = st.button("Reload rows", key="review_reload", help="Show rows appended since the table was drawn")
    if snap is None or snap["sig"] != sig or reload:
        shown = view.head(MAX_ROWS)
        rows = shown.to_dict("records")
        base = pd.DataFrame({
            "image": [thumb(r, "file_name") for r in rows],
            "source": [thumb(r, "source_file") for r in rows],
            "review": shown["review"].astype(str),
            "label": shown["label"],
            "recipe": shown["recipe"],
            "locality": shown["locality"].round(4),
            **({"label_agreement": shown["label_agreement"]} if "label_agreement" in shown else {}),
            "params": [dataset.describe_params(str(p)) for p in shown["params"]],
            "file_name": shown["file_name"],
        }).reset_index(drop=True)
        gen = st.session_state.get("review_editor_gen", 0) + 1
        snap = {"sig": sig, "base": base, "saved": dict(zip(base["file_name"], base["review"])),
                "key": f"review_editor_{gen}"}
        st.session_state["review_editor_gen"] = gen
        st.session_state["review_table_snapshot"] = snap
    base, key = snap["base"], snap["key"]
    if len(view) > MAX_ROWS:
        st.caption(f"The table shows the first {MAX_ROWS}; narrow the filters to see others.")
    newer = len(view) - len(base) if len(view) <= MAX_ROWS else 0
    if newer > 0:
        st.caption(f"{newer} row(s) were added since this table was drawn: Reload rows to see them.")
    st.data_editor(
        base, key=key, hide_index=True, width="stretch", height=min(600, 80 + 70 * len(base)),
        disabled=[c for c in base.columns if c != "review"],
        column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "source": st.column_config.ImageColumn("source", width="small"),
            "review": st.column_config.SelectboxColumn("review", options=list(dataset.REVIEW_STATES), required=True),
            "locality": st.column_config.NumberColumn("locality", format="%.3f"),
        })


if mode == "Gallery":
    gallery()
else:
    table()

# -- charts ----------------------------------------------------------------------------------------------
current = dataset.read_manifest(ddir)
with st.expander("Charts: classes and locality"):
    ch1, ch2 = st.columns(2)
    with ch1:
        st.markdown("**Class counts**")
        st.bar_chart(current.groupby(["label", "review"]).size().unstack(fill_value=0))
    with ch2:
        st.markdown("**Locality histogram** (outside change ÷ inside change)")
        vals = current["locality"].replace([np.inf, -np.inf], np.nan).dropna()
        if len(vals):
            counts, edges = np.histogram(vals, bins=min(20, max(1, len(vals))))
            st.bar_chart(pd.DataFrame({"rows": counts}, index=[f"{a:.3f}" for a in edges[:-1]]))
        else:
            st.caption("No finite locality values.")

# -- export ------------------------------------------------------------------------------------------------
n_acc = int((current["review"] == "accepted").sum())
st.subheader("Export the accepted rows")
dest_text = st.text_input("New dataset directory (inside the workspace)", f"datasets/{ddir.name}-accepted",
                          key="review_export_dest")
if st.button(f"Export {n_acc} accepted row{'s' if n_acc != 1 else ''}", key="review_export", disabled=not n_acc):
    try:
        dest = inside_workspace(dest_text, root)
        out = dataset.export_where(ddir, dest, [dataset.Where("review", ("accepted",))])
        st.session_state["review_exported"] = str(out)
        st.success(f"Exported {n_acc} row{'s' if n_acc != 1 else ''} to {out} (its own metadata.csv and README.md).")
    except (WorkspaceError, dataset.DatasetError, OSError) as e:
        st.error(str(e))
exported = st.session_state.get("review_exported")
if exported and Path(exported).is_dir():
    try:
        data = zip_dataset(exported)
        st.download_button(f"Download {Path(exported).name}.zip", data, file_name=f"{Path(exported).name}.zip",
                           mime="application/zip", key="review_zip")
    except dataset.DatasetError as e:
        st.caption(str(e))
    if st.button("Review the exported dataset", key="review_open_export"):
        st.session_state["review_dir"] = exported
        st.rerun()
