"""Contact sheet of a recipe's first variants: source / edited / edit region (and label map).

Usage: .venv/bin/python docs/recipe_sheet.py recipes/faces64-parts.yaml docs/faces64-parts.png [N]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit import load_generator  # noqa: E402
from toolkit.images import grid  # noqa: E402
from toolkit.pipeline import render_variants  # noqa: E402
from toolkit.recipes import load_recipe  # noqa: E402


def main(recipe_path: str, out: str, n: int = 8) -> None:
    r = load_recipe(recipe_path)
    gen = load_generator(r.model, "cpu")
    rendered = render_variants(gen, r, r.variants(range(n)))
    rows = [[Image.fromarray(o.source_image) for o in rendered],
            [Image.fromarray(o.image) for o in rendered],
            [Image.fromarray(o.mask).convert("RGB") for o in rendered]]
    labels = ["source", "edited", "region"]
    if rendered[0].label_map is not None:
        rng = np.random.default_rng(0)
        palette = (rng.random((max(256, gen.n_classes), 3)) * 255).astype(np.uint8)
        rows.append([Image.fromarray(palette[o.label_map]) for o in rendered])
        labels.append("label map")
    cols = [f"#{o.index} {o.label}" for o in rendered]
    sheet = grid([list(r_) for r_ in zip(*rows)], row_labels=None, col_labels=labels,
                 scale=max(1, 128 // gen.resolution))
    sheet.save(out)
    print(f"wrote {out}: {', '.join(cols)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
