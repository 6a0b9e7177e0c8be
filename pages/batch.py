"""Batch: run a recipe into a dataset directory in the background (the same runner as the CLI).

The Runs section is drawn on every visit, whatever the recipe form says: a run started here
keeps going across page switches and its progress must always be visible.
"""
from pathlib import Path

import streamlit as st
import torch

from toolkit import recipes
from toolkit.ui import jobs
from toolkit.ui import widgets as W
from toolkit.ui.recipe_list import list_recipes, resolve_recipe_path, short
from toolkit.ui.workspace import WorkspaceError, inside_workspace, recipes_dir, user_recipes_dir, workspace_root

W.sidebar()
st.title("Batch")
root = workspace_root()
st.caption(f"Outputs go inside the workspace {root} (set NCT_WORKSPACE to change it). Recipes come from "
           f"{recipes_dir()} and {user_recipes_dir()} (where the editors save them).")
OTHER = "another file…"


def pick_recipe() -> Path | None:
    """The recipe chooser: runnable recipes first, the last one used by default; recipes that cannot
    run are listed with the reason."""
    entries = list_recipes()
    by_path = {str(e.path): e for e in entries}
    options = list(by_path) + [OTHER]
    last = st.session_state.get("batch_recipe_last")
    default = options.index(last) if last in options else 0
    choice = st.selectbox("Recipe", options, index=default, key="batch_recipe_choice",
                          format_func=lambda p: p if p == OTHER else by_path[p].label)
    if choice == OTHER:
        text = st.text_input("Recipe path (inside the recipes folder or the workspace)", key="batch_recipe_path")
        if not text:
            st.info("Type the path of a recipe YAML file.")
            return None
        try:
            path = resolve_recipe_path(text)
        except WorkspaceError as e:
            st.error(str(e))
            return None
    else:
        entry = by_path[choice]
        if not entry.ok:
            st.warning(f"{entry.path.name} cannot run on this machine: {entry.reason}")
            return None
        if entry.reason:
            st.caption(entry.reason)
        path = entry.path
    st.session_state["batch_recipe_last"] = str(path)
    return path


def new_run() -> None:
    path = pick_recipe()
    if path is None:
        return
    try:
        rec = recipes.load_recipe(path)
    except Exception as e:  # a recipe or model problem is user input: one message, the page goes on
        st.error(f"This recipe cannot be run:\n\n{short(e, 1200)}")
        return
    with st.expander(f"{rec.name}: model {rec.model}, {len(rec.data['edits'])} edit(s), default count {rec.count}"):
        st.code(rec.text, language="yaml")
    W.recipe_preview_panel(path, rec, f"batch_{rec.name}")
    c1, c2, c3, c4 = st.columns(4)
    count = c1.number_input("Count", 1, 10_000_000, int(rec.count), key=f"batch_count_{rec.name}")
    out_text = c2.text_input("Output directory (in the workspace)", f"datasets/{rec.name}", key=f"batch_out_{rec.name}")
    device = c3.selectbox("Device", ["auto", "cpu", "cuda"], index=["auto", "cpu", "cuda"].index(W.device()),
                          key="batch_device")
    batch_size = c4.number_input("Batch size", 1, 4096, 16, key="batch_size")
    if device == "cuda" and not torch.cuda.is_available():
        st.error("This machine has no CUDA device: choose cpu or auto.")
        return
    try:
        out_dir = inside_workspace(out_text, root)
    except WorkspaceError as e:
        st.error(str(e))
        return
    previous = jobs.get(out_dir)
    if previous is not None and previous.stopping:
        st.info("The previous run into this folder is stopping after its batch in flight; Start waits for it.")
    if st.button("Start", type="primary", key="batch_start"):
        with st.spinner("Starting the runner (loading the model)…"):
            job = jobs.start(path, out_dir, count=int(count), device=device, batch_size=int(batch_size))
        if job.error:
            st.error(f"Not started: {short(job.error, 1200)}")
        else:
            st.success(f"Started: {out_dir}")


def job_panel(job: jobs.Job) -> None:
    where = job.out_dir.relative_to(root) if root in job.out_dir.parents else job.out_dir
    st.markdown(f"**{where}** — {Path(job.recipe).name}, {job.count} variants, batch {job.batch_size}, {job.device}")
    if job.error and job.summary is None:
        st.error(short(job.error, 1200))
    else:
        st.progress(min(1.0, job.fraction), text=job.progress_text())
        sheet = jobs.latest_images(job.out_dir, 8)
        if sheet:
            st.image([str(p) for p in sheet], width=96, caption=[p.stem for p in sheet])
    key = str(job.out_dir)
    if job.running:
        st.button("Stop after this batch", key=f"stop_{key}", on_click=job.stop.set, disabled=job.stopping)
        return
    if job.summary is not None:
        st.success(job.summary.line())
        for idx, err in job.summary.failures[:5]:
            st.warning(f"variant {idx} failed: {short(err)}")
    c1, c2 = st.columns(2)
    if job.summary is not None and c1.button("Review this dataset", key=f"review_{key}"):
        st.session_state["review_dir"] = key
        st.switch_page("pages/review.py")
    c2.button("Dismiss", key=f"dismiss_{key}", on_click=jobs.dismiss, args=(job.out_dir,),
              help="Remove this card (the dataset stays on disk)")


@st.fragment(run_every=1.0)
def runs() -> None:
    listed = jobs.all_jobs()
    if not listed:
        st.caption("No runs started from this app yet.")
    for job in listed:
        with st.container(border=True):
            job_panel(job)


st.subheader("New run")
new_run()
st.subheader("Runs")
runs()
