"""Data shipped with the toolkit: class-name lists.

`imagenet_classes.txt`: the 1000 ILSVRC-2012 class names in class-id order, one per line (the
human-readable names as published in torchvision's model metadata, BSD-3-Clause; the class list
itself is a fact of the ImageNet benchmark, Russakovsky et al., IJCV 2015).
"""
from __future__ import annotations

import functools
from importlib import resources


@functools.lru_cache(maxsize=None)
def imagenet_names() -> list[str]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(names) == 1000, "imagenet_classes.txt must hold 1000 names"
    return names


def dogs_and_cats_names() -> list[str]:
    """The 143 classes of the Neural Collage dog-and-cat models: ImageNet ids 151..293
    (quolc/neural-collage, datasets/imagenet_dog_and_cat.py)."""
    return imagenet_names()[151:294]
