"""Batch: run a recipe into a dataset directory in the background (the same runner as the CLI)."""
from pathlib import Path

import streamlit as st

from toolkit import recipes
from toolkit.ui import jobs
from toolkit.ui import widgets as W
from toolkit.ui.workspace import WorkspaceError, inside_workspace, recipes_dir, workspace_root

W.sidebar()
st.title("Batch")
root = workspace_root()
st.caption(f"Outputs go inside the workspace root {root} (set NCT_WORKSPACE to change it). "
           f"Recipes are read from {recipes_dir()}.")

found = sorted(recipes_dir().glob("*.yaml")) if recipes_dir().is_dir() else []
OTHER = "another file…"
choice = st.selectbox("Recipe", [str(p) for p in found] + [OTHER],
                      format_func=lambda p: p if p == OTHER else Path(p).name, key="batch_recipe_choice",
                      index=[str(p) for p in found].index(st.session_state["batch_recipe_pick"])
                      if st.session_state.get("batch_recipe_pick") in [str(p) for p in found] else 0)
path = st.text_input("Recipe path", key="batch_recipe_path") if choice == OTHER else choice
if not path:
    st.info("Type the path of a recipe YAML file.")
    st.stop()
try:
    rec = recipes.load_recipe(path)
except (recipes.RecipeError, OSError) as e:
    st.error(f"This recipe cannot be run:\n\n{e}")
    st.stop()
except Exception as e:  # e.g. the recipe's model does not load
    st.error(f"This recipe cannot be run: {e}")
    st.stop()
with st.expander(f"{rec.name}: model {rec.model}, {len(rec.data['edits'])} edit(s), default count {rec.count}"):
    st.code(rec.text, language="yaml")

c1, c2, c3, c4 = st.columns(4)
count = c1.number_input("Count", 1, 10_000_000, int(rec.count), key=f"batch_count_{rec.name}")
out_text = c2.text_input("Output directory (in the workspace)", f"datasets/{rec.name}", key=f"batch_out_{rec.name}")
device = c3.selectbox("Device", ["auto", "cpu", "cuda"], index=["auto", "cpu", "cuda"].index(W.device()),
                      key="batch_device")
batch_size = c4.number_input("Batch size", 1, 4096, 16, key="batch_size")

try:
    out_dir = inside_workspace(out_text, root)
except WorkspaceError as e:
    st.error(str(e))
    st.stop()

if st.button("Start", type="primary", key="batch_start"):
    with st.spinner("Starting the runner (loading the model)…"):
        job = jobs.start(path, out_dir, count=int(count), device=device, batch_size=int(batch_size))
    if job.error:
        st.error(f"Not started: {job.error}")
    else:
        st.success(f"Started: {out_dir}")


def job_panel(job: jobs.Job) -> None:
    st.markdown(f"**{job.out_dir.relative_to(root) if root in job.out_dir.parents else job.out_dir}** "
                f"— {Path(job.recipe).name}, {job.count} variants, batch {job.batch_size}, {job.device}")
    if job.error and job.summary is None:
        st.error(job.error)
        return
    st.progress(job.fraction, text=f"{job.done} / {job.total or job.count}")
    if job.running:
        st.button("Stop after this batch", key=f"stop_{job.out_dir}", on_click=job.stop.set)
    elif job.summary is not None:
        st.success(job.summary.line())
        for idx, err in job.summary.failures[:5]:
            st.warning(f"variant {idx} failed: {err}")
        if st.button("Review this dataset", key=f"review_{job.out_dir}"):
            st.session_state["review_dir"] = str(job.out_dir)
            st.switch_page("pages/review.py")


@st.fragment(run_every=1.0)
def runs() -> None:
    listed = jobs.all_jobs()
    if not listed:
        st.caption("No runs started from this app yet.")
    for job in listed:
        with st.container(border=True):
            job_panel(job)


st.subheader("Runs")
runs()
