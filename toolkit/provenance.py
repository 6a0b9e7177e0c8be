"""Where a loaded generator came from: the one record every manifest row, card and cache key uses.

`load_generator` builds it once per load (it is the only writer), so datasets, part models and
projection caches all name a model the same way and never read loose attributes off a module.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provenance:
    model_id: str              # zoo name, or the weights' absolute path
    sha256: str                # of the weights file (zoo entries: the pinned hash; seeded models: of the state)
    source: str                # "zoo" or "file"
    license: str | None = None  # zoo entries know it; files given by path do not
    nonfinite: tuple[str, ...] = ()   # names of weight tensors holding NaN/inf (a broken file), if any

    def to_json(self) -> dict:
        return {"model_id": self.model_id, "sha256": self.sha256, "source": self.source,
                "license": self.license, "nonfinite": list(self.nonfinite)}
