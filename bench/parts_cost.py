"""What part segmentation costs next to the render it shares: ms per image for a plain render,
a render that captures the part model's features, and `segment_features` on those features.

The issue asks that segmentation be cheap next to rendering (bench/hooks.py's target: ≤ 10%).
Timings are process CPU time (time spent waiting for a busy shared CPU does not count),
interleaved (render, capture, segment, render, ...), and the best of `--repeats` is kept. Ratios are
segment ÷ plain render from the same run. Writes `bench/results/<date>-cpu-float32-parts-cost.{json,md}`
unless `--no-write`; `--label` names the code measured (e.g. before/after a change).

    nice -n 19 .venv/bin/python -m bench.parts_cost [--batch 32] [--repeats 15] [--label after]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import toolkit
from toolkit import render, sample_classes, sample_latents
from toolkit.engine import render_with_features
from toolkit.io import atomic_write_text
from toolkit.parts import segment_features, shipped

RESULTS = Path(__file__).parent / "results"


def device_name() -> str:
    return (f"CPU ({platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
            f"{platform.processor() or 'unknown processor'})")


def measure(model: str, batch: int, repeats: int) -> dict:
    g = toolkit.load_generator(model, device="cpu")
    pm = shipped(g)
    seeds = range(batch)
    z = sample_latents(g, seeds)
    y = sample_classes(g, seeds) if g.n_classes else None
    _, states = render_with_features(g, z, y, capture=pm.points)
    jobs = {"render": lambda: render(g, z, y),
            "render_capture": lambda: render_with_features(g, z, y, capture=pm.points),
            "segment": lambda: segment_features(pm, states, g.resolution)}
    best = {k: float("inf") for k in jobs}
    for f in jobs.values():
        f()                                            # warm-up
    for _ in range(repeats):
        for k, f in jobs.items():
            t = time.process_time()
            f()
            best[k] = min(best[k], time.process_time() - t)
    ms = {f"{k}_ms_per_image": round(1000 * v / batch, 3) for k, v in best.items()}
    return {"model": model, "batch": batch, "points": list(pm.points), **ms,
            "segment_over_render": round(best["segment"] / best["render"], 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--models", default="faces64,terrain64")
    ap.add_argument("--label", default="", help="what code was measured (goes into the file name and table)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [measure(m, args.batch, args.repeats) for m in args.models.split(",")]
    head = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": device_name(),
            "dtype": "float32", "label": args.label, "repeats": args.repeats, "clock": "process CPU time, best of repeats"}
    cols = ["model", "batch", "points", "render_ms_per_image", "render_capture_ms_per_image",
            "segment_ms_per_image", "segment_over_render"]
    md = [f"# Part segmentation cost {args.label}".rstrip(), "", f"{head['date']}; {head['device']}; "
          f"float32; process CPU time, best of {args.repeats} interleaved repeats.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    print("\n".join(md))
    if not args.no_write:
        stem = RESULTS / f"{time.strftime('%Y-%m-%d', time.gmtime())}-cpu-float32-parts-cost" \
            f"{'-' + args.label if args.label else ''}"
        atomic_write_text(stem.with_suffix(".json"), json.dumps({**head, "rows": rows}, indent=1) + "\n")
        atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
