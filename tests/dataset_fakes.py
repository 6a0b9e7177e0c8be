"""Synthetic rendered variants and runs for the dataset tests (no generator needed).

The fields are those the writer reads from a rendered variant (index, seed, params, image,
source_image, label_map, mask, label, label_id, soft_label, source_class, edit_classes, locality).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.dataset import DatasetWriter, RunInfo


CLASSES = ["red", "green", "blue", "yellow", "cyan"]


@dataclass
class FakeVariant:
    index: int
    seed: int
    params: dict
    image: np.ndarray
    source_image: np.ndarray | None
    label_map: np.ndarray | None
    mask: np.ndarray
    label: str
    label_id: int
    soft_label: dict = field(default_factory=dict)
    source_class: str | None = None
    edit_classes: list = field(default_factory=list)
    locality: float = 0.0


def fake_variant(i: int, conditional: bool = True, size: int = 16) -> FakeVariant:
    rng = np.random.default_rng(i)
    lm = rng.integers(0, len(CLASSES), (size, size)).astype(np.uint8) if conditional else None
    lab = int(np.bincount(lm.ravel(), minlength=5).argmax()) if conditional else 0
    return FakeVariant(
        index=i, seed=1000 + i, params={"to": CLASSES[i % 5], "strength": 0.5 + i / 100, "np": np.float32(0.25)},
        image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        source_image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        label_map=lm, mask=(rng.random((size, size)) > 0.5).astype(np.uint8) * 255,
        label=CLASSES[lab] if conditional else "faces", label_id=lab,
        soft_label={"red": 0.25, "blue": 0.75}, source_class="red" if conditional else None,
        edit_classes=["blue"], locality=0.125 + i / 1000)


def run_info(conditional=True, save_source=True, recipe_sha="a" * 64, model_sha="b" * 64, count=10) -> RunInfo:
    return RunInfo(recipe_name="test-recipe", recipe_sha256=recipe_sha, recipe_text="name: test-recipe\nmodel: tiny\n",
                   recipe_path="recipes/test.yaml", model_id="tiny", model_sha256=model_sha,
                   model_license="MIT (test)", model_architecture="sngan",
                   class_names=CLASSES if conditional else [], count=count, save_source=save_source,
                   toolkit_version="0.0-test", commands=["python -m toolkit batch recipes/test.yaml --out X"])


def write_run(d: Path, indices, shard=None, info=None, finish=True) -> DatasetWriter:
    with DatasetWriter(d, shard) as w:
        w.begin(info or run_info())
        w.commit([w.write_variant(fake_variant(i)) for i in indices if i not in w.done])
        if finish:
            w.finish(complete=True)
    return w


def tree(d: Path, skip=()) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in skip}
