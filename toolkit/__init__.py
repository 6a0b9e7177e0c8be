"""Neural Collage Toolkit: label swap (sCBN) and feature blending inside pretrained GANs.

Public API (stable names; the app, the CLI and the tests all use these):
`load_generator`, `render`, `LabelSwap`, `Blend`, `sample_latents`, `sample_classes`,
`StyleMix` (StyleGAN2's regional style mixing, passed as `render(..., style_mix=...)`),
`project` / `render_projection` / `edit_photo` (edit real photos: projection, then edits composited
back into the photo).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .engine import Blend, LabelSwap, render
from .sampling import sample_classes, sample_latents
from .loading import load_generator
from .generators.stylegan2 import StyleMix
from .projection import Projection, project, render_projection
from .composite import PhotoEdit, edit_photo

__all__ = ["__version__", "load_generator", "render", "LabelSwap", "Blend", "sample_latents", "sample_classes",
           "StyleMix", "project", "render_projection", "Projection", "edit_photo", "PhotoEdit"]
