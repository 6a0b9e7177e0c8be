"""A byte-bounded cache of rasterised regions, one per recipe.

Why: a region without random parts (a fixed shape or mask file, no jitter) is the same for every
variant, and rasterising it (supersampled polygons, feathering) can cost more than rendering a
small model. Only such regions are cached (the render pipeline asks `Recipe.region_is_fixed`),
so random regions, which never repeat, cannot fill it; and it evicts the least recently used
rasters past `max_bytes` whatever goes in.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

DEFAULT_MAX_BYTES = 64 << 20


class RasterCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()       # prepare_masks may run in a thread pool

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key):
        with self._lock:
            m = self._items.get(key)
            if m is not None:
                self._items.move_to_end(key)
            return m

    def put(self, key, m: np.ndarray) -> np.ndarray:
        """Store a read-only raster (shared between variants: nobody may edit it in place)."""
        m.setflags(write=False)
        if m.nbytes > self.max_bytes:
            return m
        with self._lock:
            if key in self._items:
                return self._items[key]
            self._items[key] = m
            self._bytes += m.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return m
