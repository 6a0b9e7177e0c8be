"""Recipes: a YAML description of an edit, validated without the model's weights, and expanded
into typed variants.

A recipe names a model, how sources are drawn (classes, truncation), an ordered list of edits
(`label_swap`, `blend`) whose parameters are fixed or random (choice lists, numeric ranges,
shapes/mask files/random blobs with jitter and feathering), a base seed and a default count.
The format is docs/RECIPES.md and one JSON Schema (`schema.py`, printed by `python -m toolkit
schema`). Modules: `schema` (the format), `spec` (validation and messages), `yamlio` (reading
and dumping YAML), `files` (mask files, paths), `model_info` (what a model is, without its
weights), `variants` (typed `Variant`, expansion), `recipe` (`Recipe`, loading, model rules),
`save` (writing recipes from the app). Rendering is `toolkit.render`'s.
"""
from .model_info import ModelInfo, info_from_generator
from .recipe import Recipe, load_recipe, parse_recipe
from .save import MAX_NAME_LENGTH, save_recipe, with_masks
from .schema import BLEND_PRESETS, MAX_COUNT
from .spec import RecipeError, count_cap_message, recipe_json_schema, validate_schema
from .variants import BlendEdit, LabelSwapEdit, Reference, Source, Variant, blend_preset
from .yamlio import dump_recipe

__all__ = ["ModelInfo", "info_from_generator", "Recipe", "load_recipe", "parse_recipe", "save_recipe", "with_masks",
           "MAX_NAME_LENGTH", "BLEND_PRESETS", "MAX_COUNT", "RecipeError", "count_cap_message", "recipe_json_schema",
           "validate_schema", "Variant", "Source", "LabelSwapEdit", "BlendEdit", "Reference", "blend_preset",
           "dump_recipe"]
