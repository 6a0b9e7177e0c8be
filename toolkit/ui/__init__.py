"""Helpers for the Streamlit app (`app.py`, `pages/`).

This package is the only place under `toolkit/` that imports streamlit, and only its
`widgets` module does so; the other modules here (`strokes`, `workspace`, `jobs`,
`recipe_builder`) are plain Python so they can be tested without a Streamlit runtime.
Nothing here edits images or reads manifests itself: edits go through `toolkit.render`,
recipes through `toolkit.recipes`, datasets through `toolkit.dataset`/`toolkit.batch`.
"""
