"""Shared fixtures: tiny seeded models (no download) and the faces64 weights (fetched once, cached)."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny():
    import toolkit
    return toolkit.load_generator("tiny", device="cpu")


@pytest.fixture(scope="session")
def faces64():
    import toolkit
    from toolkit.checkpoints import CheckpointError
    try:
        return toolkit.load_generator("faces64", device="cpu")
    except CheckpointError as e:
        if "could not fetch" in str(e):
            pytest.skip(f"faces64 weights could not be fetched from PyPI: {e}")
        raise
