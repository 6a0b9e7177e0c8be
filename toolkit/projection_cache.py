"""Projections cached on disk, one file per photo, so a resumed run or a second recipe over the same
photos does not redo them (projection is the slow step: seconds per photo on a CPU).

Key: sha256 of (model sha256, photo sha256, projection settings, format version, and the photo's
class when it is known: a projection with the class fixed is another projection). A file is a
safetensors archive of the projection's tensors plus its crop and settings as metadata, written
atomically (`io.atomic_path`). Files are read with safetensors only (no pickles).

Determinism: `ensure` projects missing photos in fixed chunks of the *whole* photo list and every
caller renders from tensors *loaded back from the file*, so a first run and a resume that finds
some files present render from identical numbers (byte-identical datasets).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .io import atomic_path, fsync_dir
from .photos import Photo
from .projection import Crop, Projection, ProjectionSettings, default_point, project

FORMAT = 1
CHUNK = 16          # photos per optimisation batch (fixed: the chunk composition is part of the result)


def cache_key(model_sha256: str, photo_sha256: str, settings: ProjectionSettings, class_id: int | None = None) -> str:
    """`class_id`: the photo's known class (the projection fixes y to it); None: a soft class is optimised
    (the key is then what it was before classes could be given, so existing caches stay valid)."""
    d = {"format": FORMAT, "model": model_sha256, "photo": photo_sha256, "settings": settings.to_json()}
    if class_id is not None:
        d["class"] = int(class_id)
    blob = json.dumps(d, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _model_sha(generator) -> str:
    if generator.provenance is None:
        raise ValueError("projection caching needs the model's sha256: load it with toolkit.load_generator")
    return generator.provenance.sha256


def save_projection(p: Projection, path: Path) -> None:
    """One row of a projection → a safetensors file (atomic)."""
    if len(p) != 1:
        raise ValueError("save_projection stores one photo's projection")
    feats = p.features if isinstance(p.features, tuple) else (p.features,)
    tensors = {"z": p.z, "reconstruction": p.reconstruction, "target": p.target, "psnr": p.psnr}
    if p.class_vector is not None:
        tensors["class_vector"] = p.class_vector
    tensors.update({f"features.{i}": t for i, t in enumerate(feats)})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    # One metadata key: safetensors writes several in a per-process random (hash map) order, and
    # a resumed dataset must be byte-identical, its projection files included.
    meta = {"projection": json.dumps({"crop": p.crops[0].to_json(), "settings": p.settings.to_json(),
                                      "point": p.point, "tuple": isinstance(p.features, tuple), "format": FORMAT},
                                     sort_keys=True)}
    with atomic_path(path, make_parents=True) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_projection(path: Path, device) -> Projection:
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["projection"])
    t = {k: v.to(device) for k, v in load_file(str(path)).items()}
    feats = [t[f"features.{i}"] for i in range(sum(k.startswith("features.") for k in t))]
    return Projection(z=t["z"], class_vector=t.get("class_vector"), point=int(meta["point"]),
                      features=tuple(feats) if meta["tuple"] else feats[0],
                      reconstruction=t["reconstruction"], target=t["target"], psnr=t["psnr"].cpu(),
                      crops=[Crop(**meta["crop"])], settings=ProjectionSettings(**meta["settings"]))


class ProjectionCache:
    """`folder/<key>.safetensors` per (model, photo, settings)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @staticmethod
    def resolved(generator, settings: ProjectionSettings) -> ProjectionSettings:
        """The settings with the default point filled in (the key names the point actually used)."""
        return settings if settings.point is not None else replace(settings, point=default_point(generator))

    def path(self, generator, photo: Photo, settings: ProjectionSettings, class_id: int | None = None) -> Path:
        settings = self.resolved(generator, settings)
        return self.folder / f"{cache_key(_model_sha(generator), photo.sha256, settings, class_id)}.safetensors"

    def ensure(self, generator, photos: Sequence[Photo], settings: ProjectionSettings,
               progress: Callable[[int, int], None] | None = None,
               classes: Sequence[int | None] | None = None,
               step_progress: Callable[[int, int, int, int], None] | None = None) -> list[Path]:
        """Project the photos whose files are missing (chunks of CHUNK over the whole list); return all paths.

        `classes`: each photo's known class id (the projection fixes y to it), or None for all (soft class).
        `progress(chunks done, chunks to do)` after each chunk; `step_progress(chunk, chunks to do, step,
        steps)` after each optimisation step (the app's progress bar: one chunk can take minutes on a CPU)."""
        settings = self.resolved(generator, settings)
        classes = list(classes) if classes is not None else [None] * len(photos)
        if len(classes) != len(photos) or len({c is None for c in classes}) > 1:
            raise ValueError("give a class for every photo or for none")
        paths = [self.path(generator, ph, settings, c) for ph, c in zip(photos, classes)]
        todo = sorted({i // CHUNK for i, p in enumerate(paths) if not p.exists()})
        for n, c in enumerate(todo):
            idx = list(range(c * CHUNK, min(len(photos), (c + 1) * CHUNK)))
            y = None if classes[0] is None else [classes[i] for i in idx]
            on_step = None if step_progress is None else \
                (lambda i, total, n=n: step_progress(n, len(todo), i, total))
            proj = project(generator, [photos[i] for i in idx], y, steps=settings, point=settings.point,
                           seed=settings.seed, progress=on_step)
            for k, i in enumerate(idx):
                if not paths[i].exists():
                    save_projection(proj.rows([k]), paths[i])
            fsync_dir(self.folder)
            if progress:
                progress(n + 1, len(todo))
        return paths

    def load(self, generator, photos: Sequence[Photo], settings: ProjectionSettings,
             classes: Sequence[int | None] | None = None) -> list[Projection]:
        paths = self.ensure(generator, photos, settings, classes=classes)
        return [load_projection(p, generator.device) for p in paths]
