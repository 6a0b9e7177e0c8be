"""The recipes the app may run: where they are looked for, whether each can run, and the one
check that keeps a typed recipe path inside those folders.

Why a cheap check: the Batch page lists every recipe and must say, without loading any model,
which ones cannot run yet (weights not fetched or not placed) instead of stopping the page on
the first one. Why confinement: anyone who can reach the app's port can type a path, so a recipe
is read only from the shipped recipes folder or the workspace, and a message never echoes more
than a short piece of a file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import zoo
from .workspace import WorkspaceError, recipes_dir, user_recipes_dir, workspace_root

MAX_RECIPE_BYTES = 256 << 10          # recipes are a few hundred bytes; anything huge is not one
SUFFIXES = (".yaml", ".yml")


def short(text: object, limit: int = 300) -> str:
    """A message cut to `limit` characters (errors may quote a file; never echo much of it)."""
    s = str(text)
    return s if len(s) <= limit else s[:limit] + f"… [{len(s) - limit} more characters]"


def recipe_dirs() -> list[Path]:
    return [recipes_dir(), user_recipes_dir()]


@dataclass(frozen=True)
class RecipeEntry:
    path: Path
    ok: bool
    reason: str           # why it cannot run (empty when ok), or a note such as "downloads on first run"

    @property
    def label(self) -> str:
        where = "workspace" if user_recipes_dir() in self.path.parents else "shipped"
        mark = "" if self.ok else "  ⚠ cannot run: " + self.reason
        return f"{self.path.name} ({where}){mark}"


def resolve_recipe_path(text: str) -> Path:
    """A typed recipe path, resolved (relative paths: against the recipes folder) and refused unless
    it is a .yaml/.yml file inside the recipes folder or the workspace."""
    raw = str(text).strip()
    if not raw:
        raise WorkspaceError("no recipe path given: type the path of a .yaml file in the recipes folder "
                             "or the workspace")
    p = Path(raw).expanduser()
    roots = [recipes_dir(), workspace_root()]
    candidates = [p.resolve()] if p.is_absolute() else [(r / p).resolve() for r in roots]
    for c in candidates:
        if any(c == r or r in c.parents for r in roots) and c.is_file():
            if c.suffix not in SUFFIXES:
                raise WorkspaceError(f"{short(raw, 120)!r} is not a recipe: recipes are .yaml files")
            return c
    inside = [c for c in candidates if any(r in c.parents for r in roots)]
    if not inside:
        raise WorkspaceError(f"{short(raw, 120)!r} is outside the recipes folder ({roots[0]}) and the workspace "
                             f"({roots[1]}); the app reads recipes only from those. Copy the recipe there.")
    raise WorkspaceError(f"{short(raw, 120)!r}: no such recipe file in {roots[0]} or {roots[1]}")


def check_runnable(path: Path) -> RecipeEntry:
    """Can this recipe run on this machine now? Reads only the YAML (bounded) and checks that its
    model's weights are present or fetchable; full validation happens when the run starts."""
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            return RecipeEntry(path, False, f"the file is {size} bytes (a recipe is under {MAX_RECIPE_BYTES})")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return RecipeEntry(path, False, short(f"cannot be read ({type(e).__name__})", 120))
    except (yaml.YAMLError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None)
        return RecipeEntry(path, False, "not valid YAML" + (f" (line {mark.line + 1})" if mark else ""))
    if not isinstance(data, dict) or not isinstance(data.get("model"), str):
        return RecipeEntry(path, False, "no `model:` line")
    model = data["model"]
    if model in zoo.ZOO:
        entry = zoo.get(model)
        if entry.is_cached(entry):
            return RecipeEntry(path, True, "")
        if entry.fetch is not None:
            return RecipeEntry(path, True, f"{model} is downloaded on first run")
        return RecipeEntry(path, False, f"{model}'s weights are not on this machine (see `python -m toolkit models`)")
    weights = (path.parent / Path(model).expanduser()).resolve()
    if not weights.exists():
        return RecipeEntry(path, False, short(f"weights {model!r} not found", 160))
    return RecipeEntry(path, True, "")


def list_recipes() -> list[RecipeEntry]:
    """Every recipe in the recipes folder and the workspace's recipes folder, runnable ones first
    (each group by name)."""
    found: list[RecipeEntry] = []
    for d in recipe_dirs():
        if d.is_dir():
            found += [check_runnable(p.resolve()) for p in sorted(d.iterdir())
                      if p.suffix in SUFFIXES and p.is_file()]
    return sorted(found, key=lambda e: (not e.ok, e.path.name))
