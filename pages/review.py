"""Review: browse a dataset's manifest with thumbnails, accept/reject rows, export the accepted subset."""
import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from toolkit import dataset
from toolkit.ui.workspace import WorkspaceError, inside_workspace, list_datasets, workspace_root
from toolkit.ui import widgets as W

MAX_ROWS = 500      # thumbnails are inlined as data URLs: keep the table light

W.sidebar()
st.title("Review")
root = workspace_root()
known = [str(p) for p in list_datasets(root)]
if st.session_state.get("review_dir") and st.session_state["review_dir"] not in known:
    known.insert(0, st.session_state["review_dir"])
OTHER = "another directory…"
pick = st.selectbox("Dataset directory", known + [OTHER], key="review_pick",
                    index=known.index(st.session_state["review_dir"]) if st.session_state.get("review_dir") in known else 0,
                    format_func=lambda p: p if p == OTHER else str(Path(p).relative_to(root))
                    if root in Path(p).parents else p)
text = st.text_input("Directory (inside the workspace)", key="review_path") if pick == OTHER else pick
if not text:
    st.info(f"Run a recipe on the Batch page, or type a dataset directory inside {root}.")
    st.stop()
try:
    ddir = inside_workspace(text, root)
    df = dataset.read_manifest(ddir)
except (WorkspaceError, dataset.DatasetError) as e:
    st.error(str(e))
    st.stop()
except Exception as e:  # a manifest pandas cannot parse
    st.error(f"{ddir / dataset.MANIFEST}: the manifest could not be read ({type(e).__name__}: {e}). "
             "Is it a metadata.csv written by the batch runner?")
    st.stop()
if df.empty:
    st.info(f"{ddir}: the manifest has no rows yet (a run may still be starting).")
    st.stop()


@st.cache_data(max_entries=20000, show_spinner=False)
def thumbnail(path: str, mtime: float, size: int = 64) -> str:
    """A small PNG data URL (ImageColumn renders data URLs; local paths show blank)."""
    try:
        im = Image.open(path).convert("RGB")
    except OSError:
        return ""
    im = im.resize((size, size), Image.NEAREST)
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


# -- filters ---------------------------------------------------------------------------------------
f1, f2, f3 = st.columns(3)
labels = f1.multiselect("Label", sorted(df["label"].unique()), key="review_labels")
recipes_ = f2.multiselect("Recipe", sorted(df["recipe"].unique()), key="review_recipes")
loc = df["locality"].replace([np.inf, -np.inf], np.nan)
finite = loc.dropna()
lo_all, hi_all = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
if hi_all <= lo_all:
    hi_all = lo_all + 1e-6
loc_range = f3.slider("Locality (0 = perfectly local)", lo_all, hi_all, (lo_all, hi_all), key=f"review_loc_{ddir}")
status = st.multiselect("Review status", list(dataset.REVIEW_STATES), key="review_status")
judged = bool(df["label_agreement"].notna().any())     # the model had a judge (docs/LABELS.md)
if judged:
    a1, a2 = st.columns([3, 1])
    agree = a1.slider("Label agreement (share of label-map pixels the judge confirms)", 0.0, 1.0, (0.0, 1.0),
                      step=0.01, key=f"review_agree_{ddir}")
    worst_first = a2.checkbox("Lowest agreement first", key="review_agree_sort")

where = [dataset.Where(col, tuple(vals)) for col, vals in (("label", labels), ("recipe", recipes_),
                                                             ("review", status)) if vals]
if (loc_range[0], loc_range[1]) != (lo_all, hi_all):
    where.append(dataset.Where("locality", lo=loc_range[0], hi=loc_range[1]))
if judged and tuple(agree) != (0.0, 1.0):
    where.append(dataset.Where("label_agreement", lo=agree[0], hi=agree[1]))
view = dataset.select_rows(df, where)
if judged and worst_first:
    view = view.sort_values("label_agreement", kind="stable", na_position="last")
st.caption(f"{len(view)} of {len(df)} rows match"
           + (f"; showing the first {MAX_ROWS}" if len(view) > MAX_ROWS else ""))
view = view.head(MAX_ROWS)

rows = view.to_dict("records")
table = pd.DataFrame({
    "image": [thumb(r, "file_name") for r in rows],
    "source": [thumb(r, "source_file") for r in rows],
    "label map": [thumb(r, "label_map_file") for r in rows],
    "rendered map": [thumb(r, "rendered_map_file") for r in rows],
    "review": view["review"].astype(str),
    "label": view["label"],
    "recipe": view["recipe"],
    "locality": view["locality"].round(4),
    "label_agreement": view["label_agreement"].round(4),
    "params": [dataset.describe_params(p) for p in view["params"]],
    "file_name": view["file_name"],
}).reset_index(drop=True)

# Edits arrive as positions in the table the user saw. They are mapped to file names with the
# row list stored when that table was drawn (a runner may have appended rows since), saved with
# update_review (atomic, under the manifest lock), and the editor is then re-created from the
# manifest under a new key so no positional edit is ever applied to a different row set.
st.session_state.setdefault("review_editor_gen", 0)
editor_key = f"review_editor_{st.session_state['review_editor_gen']}"
pending = st.session_state.get(editor_key) or {}
shown = st.session_state.get(editor_key + "_rows") or []
changes = {}
for pos, row in (pending.get("edited_rows") or {}).items():
    if "review" in row and int(pos) < len(shown):
        changes[shown[int(pos)]] = row["review"]
if changes:
    try:
        n = dataset.update_review(ddir, changes)
        st.toast(f"Saved {n} review change(s) to {dataset.MANIFEST}")
    except dataset.DatasetError as e:
        st.error(str(e))
    st.session_state["review_editor_gen"] += 1
    editor_key = f"review_editor_{st.session_state['review_editor_gen']}"
    df = dataset.read_manifest(ddir)
    view = df[df["file_name"].isin(table["file_name"])].set_index("file_name").loc[table["file_name"]].reset_index()
    table["review"] = view["review"].astype(str).values

st.session_state[editor_key + "_rows"] = list(table["file_name"])
st.data_editor(
    table, key=editor_key, hide_index=True, width="stretch", height=min(600, 80 + 70 * len(table)),
    disabled=[c for c in table.columns if c != "review"],
    column_config={
        "image": st.column_config.ImageColumn("image", width="small"),
        "source": st.column_config.ImageColumn("source", width="small"),
        "label map": st.column_config.ImageColumn("label map", width="small", help="the classes asked for"),
        "rendered map": st.column_config.ImageColumn("rendered map", width="small",
                                                     help="what the model's judge sees in the image"),
        "review": st.column_config.SelectboxColumn("review", options=list(dataset.REVIEW_STATES), required=True),
        "locality": st.column_config.NumberColumn("locality", format="%.3f"),
    })


def set_all(state: str) -> None:
    try:
        dataset.update_review(ddir, {f: state for f in view["file_name"]})
    except dataset.DatasetError as e:
        st.session_state["review_bulk_error"] = str(e)


b1, b2, b3 = st.columns(3)
b1.button(f"Accept all {len(view)} shown", key="review_accept_all", on_click=set_all, args=("accepted",))
b2.button(f"Reject all {len(view)} shown", key="review_reject_all", on_click=set_all, args=("rejected",))
b3.button(f"Reset {len(view)} shown to pending", key="review_reset_all", on_click=set_all, args=("pending",))
if st.session_state.get("review_bulk_error"):
    st.error(st.session_state.pop("review_bulk_error"))

# -- charts ----------------------------------------------------------------------------------------
current = dataset.read_manifest(ddir)
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

# -- export ----------------------------------------------------------------------------------------
accepted = current.loc[current["review"] == "accepted", "file_name"].tolist()
st.subheader("Export the accepted subset")
dest_text = st.text_input("New dataset directory (inside the workspace)", f"{Path(text).name}-accepted",
                          key="review_export_dest")
if st.button(f"Export {len(accepted)} accepted rows", key="review_export", disabled=not accepted):
    try:
        dest = inside_workspace(dest_text, root)
        out = dataset.export_where(ddir, dest, [dataset.Where("review", ("accepted",))])
        st.session_state["review_dir"] = str(out)
        st.success(f"Exported {len(accepted)} rows to {out} (its own metadata.csv and README.md).")
    except (WorkspaceError, dataset.DatasetError, OSError) as e:
        st.error(str(e))
