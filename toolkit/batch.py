"""The headless batch runner: a recipe → a resumable, shardable dataset directory.

Rendering is batched on the device (`toolkit.pipeline.render_variants`, the pipeline the app's
preview and the demo use too: one engine pass per batch);
PNG encoding and the atomic, fsynced writes run in a thread pool (Pillow's zlib encoder and
file I/O release the GIL) while the main thread renders the next batch, so the device does not
wait for the disk. Rows are committed batch by batch in variant order, after their files are
durable; the layout, locking and resume rules live in `toolkit.dataset` (writer).

Variant i depends only on (recipe, seed, i), so a run can be split: `shard=(K, N)` renders the
indices i with i % N == K. Under torchrun (RANK/WORLD_SIZE set) each process takes its shard
and, on CUDA, its own GPU (cuda:LOCAL_RANK). The last shard to finish merges the parts into
one manifest; no process group is needed. This module does no printing (progress goes to
the `progress` callback; the CLI draws the bar).

A recipe with `filter: {min_label_agreement: X}` keeps rendering indices 0, 1, 2, … (in the same
fixed batches) until `count` variants reach X; the ones below are written too, as
`review: rejected-auto` with their figure. Which indices count is decided in index order from
each variant's own figure (computed per image, rounded as the manifest records it), so resumed
runs and other batch sizes write the same rows. At most FILTER_CAP × count indices are rendered;
when fewer pass, the run ends with a DatasetError saying so (the rows stay). Such a run is not
sharded: where it stops depends on every earlier index.

When a part model is known for the recipe's model (its `parts:` file, else the one shipped for the
zoo model) it is loaded once per run, recorded in dataset.json (file sha256, names, points) and
every variant gets a part map (`part_maps/`, from the features of its own render). Photo recipes
(`source.images`) get none: their pixels outside the edit are the photo's, not the model's.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import __version__, photo_variants, pipeline
from .checkpoints import sha256_file
from .dataset import DatasetError, DatasetWriter, RunInfo
from .part_edits import part_model_file, part_model_for
from .parts import PALETTE as PART_COLOURS
from .devices import resolve_device
from .judges import judge_for
from .loading import load_generator
from .recipes import MAX_COUNT, count_cap_message, load_recipe

log = logging.getLogger(__name__)

# Batches rendered but not yet committed: 2 lets batch k+1 render while batch k is encoded.
_MAX_PENDING_BATCHES = 2
FILTER_CAP = 10          # a filtered run renders at most FILTER_CAP × count variant indices


@dataclass
class BatchSummary:
    written: int
    skipped: int
    failed: int
    seconds: float
    images_per_s: float
    out_dir: Path
    total: int = 0                       # variants this process was responsible for
    complete: bool = False               # DIR/metadata.csv holds the whole run (all shards merged)
    stopped: bool = False                # ended early by the `stop` event
    failures: list[tuple[int, str]] = field(default_factory=list)   # (variant index, error)
    render_seconds: float = 0.0          # inside render_variants (device busy)
    wait_seconds: float = 0.0            # runner blocked on PNG writes (device idle because of I/O)
    shard: tuple[int, int] | None = None
    device: str = "cpu"
    batch_size: int = 0
    passed: int | None = None            # filtered runs: variants in the manifest that reach the threshold
    rejected_auto: int = 0               # filtered runs: variants written below it (this process)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        where = f" shard {self.shard[0]}/{self.shard[1]}" if self.shard else ""
        state = "stopped early; rerun to resume" if self.stopped else (
            "complete" if self.complete else "this shard done; merge pending other shards")
        kept = f" ({self.passed} passed the filter; {self.rejected_auto} written as rejected-auto)" \
            if self.passed is not None else ""
        return (f"wrote {self.written}{kept}, skipped {self.skipped}, failed {self.failed} in {self.seconds:.1f} s "
                f"({self.images_per_s:.1f} images/s, batch {self.batch_size}, {self.device}{where}; rendering "
                f"{self.render_seconds:.1f} s, waiting for writes {self.wait_seconds:.1f} s) → {self.out_dir} [{state}]")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' → (K, N) with 0 ≤ K < N."""
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/4 (shard K of N, counting from 0)") from None
    return check_shard((k, n))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    k, n = int(shard[0]), int(shard[1])
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: need N ≥ 1 and 0 ≤ K < N (shard K of N, counting from 0)")
    return k, n


def shard_from_env(env=None) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun or any launcher that sets them; None for a single process."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        raise ValueError(f"RANK={env['RANK']!r} / WORLD_SIZE={env['WORLD_SIZE']!r} are not integers") from None
    return None if world <= 1 else check_shard((rank, world))


def device_for(device: str, env=None) -> str:
    """Under torchrun on CUDA each process takes cuda:LOCAL_RANK (unless a cuda:k is given)."""
    env = os.environ if env is None else env
    d = (device or "auto").strip().lower()
    if "LOCAL_RANK" in env and d in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(env['LOCAL_RANK']) % torch.cuda.device_count()}"
    return d


def _load_recipe(recipe):
    if isinstance(recipe, (str, os.PathLike)):
        return load_recipe(recipe)
    return recipe


def _save_source(recipe) -> bool:
    return bool((recipe.data.get("output") or {}).get("save_source", False))


def run_batch(recipe, out_dir: str | os.PathLike, *, count: int | None = None, device: str = "auto",
              batch_size: int = 16, shard: tuple[int, int] | None = None,
              progress: Callable[[int, int], None] | None = None, stop: threading.Event | None = None,
              workers: int = 2, command: str | None = None) -> BatchSummary:
    """Render `count` variants of `recipe` (a Recipe or a YAML path) into `out_dir`; resume if it
    already holds part of the same run. See the module docstring and docs/BATCH.md.

    progress(done, total) is called from the runner thread after each committed batch (done
    includes skipped variants). `stop` ends the run cleanly after the batch in flight.
    `command` is recorded in the dataset card (the CLI passes the exact command line).
    Raises DatasetLockedError when another runner holds the directory, DatasetError for a bad
    output directory, a foreign or corrupt manifest, or a failing disk (rerun to resume).
    """
    t0 = time.perf_counter()
    recipe = _load_recipe(recipe)
    count = recipe.count if count is None else int(count)
    if count < 1:
        raise DatasetError(f"count must be at least 1 (got {count}): the number of variants to render")
    if count > MAX_COUNT:
        raise DatasetError(f"count: {count_cap_message(count)}")
    if batch_size < 1:
        raise DatasetError(f"batch size must be at least 1 (got {batch_size})")
    if workers < 1:
        raise DatasetError(f"workers must be at least 1 (got {workers})")
    shard = check_shard(shard) if shard is not None else shard_from_env()
    if shard == (0, 1):
        shard = None
    threshold = recipe.min_label_agreement
    if threshold is not None and shard is not None:
        raise DatasetError(f"recipe {recipe.name!r} has filter.min_label_agreement: such a run cannot be sharded "
                           "(where it stops depends on every earlier variant); run it in one process")
    device = device_for(device)
    resolve_device(device)      # a bad --device fails here, before the output directory is touched
    if command is None:
        command = (f"toolkit.batch.run_batch({str(recipe.path or recipe.name)!r}, {str(out_dir)!r}, count={count}"
                   + (f", shard={shard}" if shard else "") + ")")
    elif shard and shard_from_env() == shard:
        command += f"  # rank {shard[0]} of {shard[1]} (RANK/WORLD_SIZE)"

    with DatasetWriter(out_dir, shard) as ds:
        gen = load_generator(recipe.model, device=device)   # zoo name or resolved path (recipes)
        recipe = recipe.for_generator(gen)                   # the model rules, now that the model is known
        judge = judge_for(gen)
        photos = bool(photo_variants.photo_spec(recipe))
        part_model = None if photos else part_model_for(recipe, gen, required=recipe.uses_parts)
        if threshold is not None and judge is None:
            raise DatasetError(f"recipe {recipe.name!r}: filter.min_label_agreement needs a judge, and model "
                               f"{recipe.model!r} has none (see docs/LABELS.md); remove `filter`")
        info = RunInfo.from_provenance(
            gen.provenance, recipe_name=recipe.name, recipe_sha256=recipe.sha256, recipe_text=recipe.text,
            recipe_path=str(recipe.path) if recipe.path else "", model_architecture=gen.architecture,
            class_names=list(gen.class_names) if gen.n_classes else [], count=count,
            save_source=_save_source(recipe), toolkit_version=__version__, commands=[command],
            judge=judge.name if judge else "", judge_sha256=judge.sha256 if judge else "",
            **(_part_fields(recipe, gen, part_model) if part_model is not None else {}))
        ds.begin(info)
        render_fn = pipeline.render_variants     # loads no part model per batch when given the run's:
        if part_model is not None:
            render_fn = functools.partial(render_fn, part_model=part_model)
        if photos:    # source.images: project the photos first (cached in the dataset)
            render_fn = photo_variants.batch_renderer(gen, recipe, ds.dir / "projections")
        if threshold is not None:
            mine = range(FILTER_CAP * count)
        else:
            mine = range(count) if shard is None else range(shard[0], count, shard[1])   # never a list of count
        skipped = sum(1 for i in ds.done if i in mine)
        log.info("%s: %d variants for this run, %d already done, %d to render on %s (batch %d, %d writers)",
                 ds.dir, len(mine), skipped, len(mine) - skipped, gen.device, batch_size, workers)
        state = _RunState(total=len(mine), done=skipped, progress=progress, threshold=threshold)
        if threshold is not None:
            state.total = count        # passes are counted in index order as the loop walks the indices
        if progress:
            progress(state.shown, state.total)
        stopped = False
        pending: collections.deque[tuple[list[int], list[Future]]] = collections.deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nct-writer") as pool:
            try:
                for start in range(0, len(mine), batch_size):
                    # Fixed batches over this run's indices: a resumed run renders each batch with
                    # the same composition as an uninterrupted one (pixels can depend on it), and
                    # writes only the variants still missing.
                    chunk = mine[start:start + batch_size]
                    if threshold is not None and state.passed >= count:
                        break
                    if all(i in ds.done for i in chunk):
                        if threshold is not None:
                            state.passed += sum(_passes(ds.agreement.get(i), threshold) for i in chunk)
                        continue
                    if stop is not None and stop.is_set():
                        stopped = True
                        break
                    t = time.perf_counter()
                    rendered = [rv for rv in _render(render_fn, gen, recipe, chunk, state, ds.done)
                                if rv.index not in ds.done]
                    state.render_seconds += time.perf_counter() - t
                    reviews = _filter(chunk, rendered, ds, threshold, count, state) if threshold is not None else {}
                    rendered = [rv for rv in rendered if threshold is None or rv.index in reviews]
                    pending.append(([rv.index for rv in rendered], [
                        pool.submit(ds.write_variant, rv, reviews.get(rv.index, "pending")) for rv in rendered]))
                    while pending and (len(pending) > _MAX_PENDING_BATCHES or all(f.done() for f in pending[0][1])):
                        _commit(ds, pending.popleft(), state)
                while pending:
                    _commit(ds, pending.popleft(), state)
            except BaseException:
                # Keep what is finished: commit completed variants, drop the rest (rerun resumes).
                _drain_after_error(ds, pending)
                raise
        if threshold is not None:
            complete = ds.finish(complete=not stopped and state.passed >= count)
        else:
            complete = ds.finish(complete=not stopped and sum(1 for i in ds.done if i in mine) == len(mine))
    seconds = time.perf_counter() - t0
    summary = BatchSummary(written=state.written, skipped=skipped, failed=len(state.failures), seconds=seconds,
                           images_per_s=state.written / seconds if seconds > 0 else 0.0, out_dir=Path(out_dir),
                           total=len(mine), complete=complete, stopped=stopped, failures=state.failures,
                           shard=shard, device=str(gen.device), batch_size=batch_size,
                           render_seconds=state.render_seconds, wait_seconds=state.wait_seconds,
                           passed=state.passed if threshold is not None else None,
                           rejected_auto=state.rejected_auto)
    if threshold is not None and not stopped and state.passed < count:
        raise DatasetError(
            f"{out_dir}: only {state.passed} of {count} variants reach filter.min_label_agreement {threshold} after "
            f"rendering the cap of {len(mine)} variant indices ({FILTER_CAP} × count); their {len(ds.done)} rows are in "
            f"the manifest ({state.passed} pending, the others rejected-auto with their label_agreement). Lower "
            "min_label_agreement (see the figures in metadata.csv), or ask for a smaller count.")
    return summary


def _part_fields(recipe, gen, pm) -> dict:
    """RunInfo's record of the part model behind the part maps (where from, file sha256, names,
    points, palette colours: parts.PALETTE, as the app's overlays use them)."""
    path = part_model_file(recipe, gen)
    where = (f"{recipe.data['parts']} (the recipe's parts file)" if recipe.data.get("parts") else
             f"{path.name} (shipped with the toolkit for {gen.provenance.model_id})")
    return dict(part_model=where, part_model_sha256=sha256_file(path), part_names=list(pm.names),
                part_points=list(pm.points),
                part_colors=[list(PART_COLOURS[i % len(PART_COLOURS)]) for i in range(pm.n_parts)])


def _passes(figure: float | None, threshold: float) -> bool:
    return figure is not None and figure >= threshold


def _filter(chunk, rendered: list, ds: DatasetWriter, threshold: float, count: int,
            state: "_RunState") -> dict[int, str]:
    """Walk the chunk's indices in order, counting passes (committed variants by their recorded
    figure): the review status of each rendered variant to write is "pending" if it reaches the
    threshold, "rejected-auto" if not; variants after the count-th pass are left out (not written;
    the run ends there)."""
    out: dict[int, str] = {}
    by_index = {rv.index: rv for rv in rendered}
    for i in chunk:
        if state.passed >= count:
            break
        if i in ds.done:
            state.passed += _passes(ds.agreement.get(i), threshold)
            continue
        rv = by_index.get(i)
        if rv is None:          # failed (reported); it does not count
            continue
        if rv.label_agreement is None:
            raise DatasetError(f"variant {rv.index}: no label_agreement was measured (the model's judge did not run)")
        if _passes(rv.label_agreement, threshold):
            state.passed += 1
            out[rv.index] = "pending"
        else:
            state.rejected_auto += 1
            out[rv.index] = "rejected-auto"
    return out


@dataclass
class _RunState:
    total: int
    done: int
    progress: Callable[[int, int], None] | None
    written: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    render_seconds: float = 0.0
    wait_seconds: float = 0.0
    threshold: float | None = None       # filtered runs report progress as variants that passed
    passed: int = 0
    rejected_auto: int = 0

    @property
    def shown(self) -> int:
        return self.done if self.threshold is None else min(self.passed, self.total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress and n:
            self.progress(self.shown, self.total)


def _render(render_variants, gen, recipe, chunk, state: _RunState, done: set[int]) -> list:
    """One batched render; if the engine rejects the batch, render its variants one by one so a
    single bad variant (e.g. sampled strengths × masks > 1) fails alone and is reported. Variants
    whose image is not finite (NaN weights) fail too: they are never written as complete."""
    variants = [recipe.variant(i) for i in chunk]
    try:
        return _finite(render_variants(gen, recipe, variants), state)
    except (ValueError, RuntimeError) as e:
        if len(variants) == 1:
            _fail(state, variants[0].index, e)
            return []
        log.warning("batch of variants %d..%d failed (%s); rendering them one by one", chunk[0], chunk[-1], e)
    out = []
    for v in (v for v in variants if v.index not in done):
        try:
            out.extend(_finite(render_variants(gen, recipe, [v]), state))
        except (ValueError, RuntimeError) as e:
            _fail(state, v.index, e)
    return out


def _finite(rendered: list, state: _RunState) -> list:
    for rv in rendered:
        if rv.problem:
            _fail(state, rv.index, ValueError(rv.problem))
    return [rv for rv in rendered if not rv.problem]


def _fail(state: _RunState, index: int, e: BaseException) -> None:
    msg = f"{type(e).__name__}: {e}"
    log.error("variant %d failed: %s", index, msg)
    state.failures.append((index, msg))
    state.advance(1)


def _commit(ds: DatasetWriter, item: tuple[list[int], list[Future]], state: _RunState) -> None:
    """Wait for one batch's writes, then append its rows (in variant order). A write error (disk
    full, permission) commits the batch's successful variants and stops the run with a
    DatasetError that says how to resume."""
    indices, futures = item
    t = time.perf_counter()
    concurrent.futures.wait(futures)
    state.wait_seconds += time.perf_counter() - t
    rows, error = [], None
    for i, f in zip(indices, futures):
        try:
            rows.append(f.result())
        except OSError as e:
            error = error or (i, e)
        except Exception as e:  # noqa: BLE001 - a bad rendered variant (e.g. missing label map)
            _fail(state, i, e)
    ds.commit(rows)
    state.written += len(rows)
    state.advance(len(rows))
    if error:
        i, e = error
        raise DatasetError(f"{ds.dir}: writing variant {i} failed ({e.strerror or e}"
                           f"{': ' + str(e.filename) if e.filename else ''}). {len(ds.done)} variants are safely "
                           "in the manifest; fix the disk problem and rerun the same command to resume.") from e


def _drain_after_error(ds: DatasetWriter, pending) -> None:
    for indices, futures in pending:
        rows = []
        for i, f in zip(indices, futures):
            try:
                rows.append(f.result())
            except BaseException:  # noqa: BLE001 - its files were removed by write_variant
                pass
        try:
            ds.commit(rows)
        except (OSError, DatasetError):     # commit reports a failing disk as DatasetError
            log.exception("could not commit finished variants after an error; a rerun re-renders them")
            return
