"""Neural Collage Toolkit app: `streamlit run app.py` (or `make run`).

The entry script: the page list. Each page is a short script in `pages/` that first draws the
shared sidebar (`toolkit.ui.widgets.sidebar`: model, device, seeds; its values persist across
pages); everything the pages do is a call into `toolkit`.
"""
import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="Neural Collage Toolkit", layout="wide")

pages = [
    st.Page("pages/feature_blend.py", title="Feature blend", icon=":material/join_inner:", default=True),
    st.Page("pages/label_swap.py", title="Label swap", icon=":material/label:"),
    st.Page("pages/batch.py", title="Batch", icon=":material/play_circle:"),
    st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
]
st.navigation(pages).run()
