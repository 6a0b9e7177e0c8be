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
    first_done: int | None = None          # variants already done when the runner began (resume)
    began_at: float | None = None          # when the runner reported its first progress
    finished_at: float | None = None
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

    @property
    def stopping(self) -> bool:
        return self.running and self.stop.is_set()

    @property
    def rate(self) -> float | None:
        """Variants per second since the runner began (resumed ones not counted); None before any."""
        if self.began_at is None or self.first_done is None:
            return None
        n = self.done - self.first_done
        dt = (self.finished_at or time.time()) - self.began_at
        return n / dt if n > 0 and dt > 0 else None

    @property
    def eta_s(self) -> float | None:
        r = self.rate
        return (self.total - self.done) / r if r and self.running else None

    def progress_text(self) -> str:
        """'12 / 40 · 3.1 images/s · ETA 0:09' (as far as known)."""
        parts = [f"{self.done} / {self.total or self.count}"]
        if self.rate:
            parts.append(f"{self.rate:.1f} images/s")
        if self.eta_s is not None:
            m, s = divmod(int(round(self.eta_s)), 60)
            parts.append(f"ETA {m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"ETA {m}:{s:02d}")
        if self.stopping:
            parts.append("stopping after the batch in flight…")
        return " · ".join(parts)


_JOBS: dict[str, Job] = {}
_LOCK = threading.Lock()


def get(out_dir: str | Path) -> Job | None:
    return _JOBS.get(str(Path(out_dir).resolve()))


def dismiss(out_dir: str | Path) -> bool:
    """Forget a finished run (its dataset stays on disk); a running one is kept."""
    with _LOCK:
        job = _JOBS.get(str(Path(out_dir).resolve()))
        if job is None or job.running:
            return False
        del _JOBS[str(job.out_dir)]
        return True


def latest_images(out_dir: Path, n: int = 8) -> list[Path]:
    """The newest finished images of a run (highest variant indices), for a live contact sheet.
    Only files the layout names (`images/NNNNNN.png`) are listed; temp files are hidden ones."""
    d = Path(out_dir) / "images"
    if not d.is_dir():
        return []
    names = sorted(p.name for p in d.iterdir() if len(p.name) == 10 and p.name[:6].isdigit() and p.suffix == ".png")
    return [d / name for name in names[-n:]]


def all_jobs() -> list[Job]:
    with _LOCK:
        return sorted(_JOBS.values(), key=lambda j: -j.started)


def start(recipe: str | Path, out_dir: str | Path, *, count: int, device: str = "auto", batch_size: int = 16,
          wait_s: float = 120.0) -> Job:
    """Start `run_batch` in a thread. Returns the job; `job.error` is set if the run was refused or
    failed before it began (e.g. DatasetLockedError: another runner holds the directory)."""
    out = Path(out_dir).resolve()
    job = Job(out, str(recipe), int(count), device, int(batch_size))
    previous = get(out)
    if previous is not None and previous.stopping:
        # "Start" right after "Stop": let our own runner finish its batch and release the lock.
        previous.thread.join(wait_s)

    def progress(done: int, total: int) -> None:
        if job.first_done is None:
            job.first_done, job.began_at = done, time.time()
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
            job.finished_at = time.time()
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
