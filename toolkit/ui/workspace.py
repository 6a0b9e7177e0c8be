"""Where the app may read and write: the workspace root (`$NCT_WORKSPACE`, default `./workspace`)
for datasets and the recipes folder (`$NCT_RECIPES_DIR`, default `./recipes`).

Why: the app may be opened by anyone who can reach the port, so every output path typed into a
page is resolved inside the workspace root and refused if it escapes it (`..`, absolute paths
elsewhere, symlinks pointing out).
"""
from __future__ import annotations

import os
from pathlib import Path


class WorkspaceError(ValueError):
    pass


def workspace_root() -> Path:
    return Path(os.environ.get("NCT_WORKSPACE") or "workspace").expanduser().resolve()


def recipes_dir() -> Path:
    return Path(os.environ.get("NCT_RECIPES_DIR") or "recipes").expanduser().resolve()


def user_recipes_dir() -> Path:
    """Where the app saves recipes: `$NCT_WORKSPACE/recipes`, never the repository's recipes folder
    (shipped recipes stay as shipped)."""
    return workspace_root() / "recipes"


def inside_workspace(path: str | os.PathLike, root: Path | None = None) -> Path:
    """Resolve `path` (relative paths are relative to the root) and refuse anything outside the root."""
    root = (root or workspace_root()).resolve()
    text = str(path).strip()
    if not text:
        raise WorkspaceError("no directory given: type a folder name inside the workspace, e.g. datasets/run1")
    p = Path(text).expanduser()
    p = (p if p.is_absolute() else root / p).resolve()
    if p != root and root not in p.parents:
        raise WorkspaceError(f"{text!r} resolves to {p}, which is outside the workspace root {root}. "
                             "Use a folder inside it (set NCT_WORKSPACE to change the root).")
    return p


def list_datasets(root: Path | None = None, manifest: str = "metadata.csv") -> list[Path]:
    """Dataset folders (those holding a manifest) under the workspace, newest first."""
    root = root or workspace_root()
    if not root.is_dir():
        return []
    found = [p.parent for p in root.rglob(manifest) if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
