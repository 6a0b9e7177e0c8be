"""Background batch runs started from the app, in a module-level registry keyed by output directory.

Why module level: Streamlit reruns page scripts and drops page widgets' state when the user
switches pages, but a run must keep going and its progress bar must come back. The registry
lives as long as the server process and is shared by sessions (one directory = one run).
Whether a directory may be written is decided by the library's lock (`toolkit.dataset`), not
here: `start` waits until the runner holds the lock (its first progress call) or has failed,
so a refused start is reported to the caller at once.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..batch import BatchSummary, run_batch


@dataclass
class Job:
    out_dir: Path
    recipe: str
    count: int
    device: str
    batch_size: int
    started: float = field(default_factory=time.time)
    done: int = 0
    total: int = 0
    summary: BatchSummary | None = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    began: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def get(out_dir: str | Path) -> Job | None:
    return _JOBS.get(str(Path(out_dir).resolve()))


def all_jobs() -> list[Job]:
    with _LOCK:
        return sorted(_JOBS.values(), key=lambda j: -j.started)


def start(recipe: str | Path, out_dir: str | Path, *, count: int, device: str = "auto", batch_size: int = 16,
          wait_s: float = 120.0) -> Job:
    """Start `run_batch` in a thread. Returns the job; `job.error` is set if the run was refused or
    failed before it began (e.g. DatasetLockedError: another runner holds the directory)."""
    out = Path(out_dir).resolve()
    job = Job(out, str(recipe), int(count), device, int(batch_size))

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total
        job.began.set()

    def target() -> None:
        try:
            job.summary = run_batch(recipe, out, count=count, device=device, batch_size=batch_size,
                                    progress=progress, stop=job.stop,
                                    command=f"app: batch page (recipe {recipe}, count {count})")
        except Exception as e:  # shown on the page; the thread must not die with a traceback
            job.error = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        finally:
            job.began.set()

    job.thread = threading.Thread(target=target, name=f"nct-batch-{out.name}", daemon=True)
    with _LOCK:
        previous = _JOBS.get(str(out))
        if previous is None or not previous.running:
            _JOBS[str(out)] = job
    # A run already started from this app keeps its registry entry; the new thread still asks the
    # library's lock, which refuses it, and its error is returned to the caller.
    job.thread.start()
    job.began.wait(wait_s)
    return job
