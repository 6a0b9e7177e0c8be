"""The benchmark suite: throughput of plain generation, label swap and blending, as ratios to
plain generation measured in the same run, plus interactive latency, memory and FLOP-based
utilisation. Results print as a table and are saved (raw JSON + Markdown) under bench/results/.

Timing discipline: warm-up runs first, CUDA synchronised around every timed call, the best of
`--repeats` for throughput (least disturbed by other processes), median/p95 for latency.
Models whose code or weights are missing are reported as skipped with the reason.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import toolkit
from toolkit import Blend, LabelSwap, render, sample_classes, sample_latents
from toolkit.devices import resolve_device
from toolkit.generators.biggan import BigGANGenerator, biggan_deep_config
from toolkit.io import atomic_write_text

from . import hooks

# Dense peak throughput per device (TFLOP/s), for utilisation figures: NVIDIA datasheets
# (H100 SXM: 67 FP32 / 989 TF32-or-BF16-dense ... we use FP32 67 and BF16/FP16 989 dense;
# H200 has the same compute as H100 SXM).
PEAK_TFLOPS = {"H100": {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0},
               "H200": {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0}}


@dataclass
class Case:
    name: str
    build: Callable[[torch.device], object]
    note: str = ""
    reference: Callable[[torch.device], object] | None = None   # the reference implementation, if any


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def latencies(fn: Callable[[], object], dev: torch.device, n: int) -> tuple[float, float]:
    fn()
    _sync(dev)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        _sync(dev)
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(round(0.95 * (len(ts) - 1))))]


def flops_per_image(gen, dev) -> float | None:
    """FLOPs of one plain forward at batch 1 (matmuls and convolutions, as torch counts them)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover
        return None
    z = sample_latents(gen, [0])
    y = sample_classes(gen, [0]) if gen.n_classes else None
    with FlopCounterMode(display=False) as fc:
        render(gen, z, y)
    return float(fc.get_total_flops())


def _inputs(gen, batch: int, offset: int = 0):
    seeds = list(range(offset, offset + batch))
    z = sample_latents(gen, seeds)
    y = sample_classes(gen, seeds) if gen.n_classes else None
    return z, y


def _swap(gen, batch: int, kind: str = "region") -> LabelSwap:
    """region: a central square of 25% of the image (one box for the batch, the common edit);
    boxes: a square of 25% at a different place in every variant (the tile path);
    full: a soft map that is non-zero at every pixel (a vertical ramp 0.2 → 1), the worst case."""
    r = gen.resolution
    w = torch.zeros(batch, 1, r, r, device=gen.device)
    if kind == "region":
        w[:, :, r // 4: 3 * r // 4, r // 4: 3 * r // 4] = 1
    elif kind == "boxes":
        for i in range(batch):
            a, b = (i * 7) % (r // 2 + 1), (i * 13) % (r // 2 + 1)
            w[i, :, a: a + r // 2, b: b + r // 2] = 1
    else:
        w[:] = torch.linspace(0.2, 1.0, r, device=gen.device)[:, None]
    return LabelSwap(torch.full((batch, 1), (1 % gen.n_classes)), w)


def _blends(gen, batch: int, k: int, last_point: int | None = None, fixed: bool = False) -> list[Blend]:
    """K references in disjoint bands; each variant its own reference latent, or with `fixed` one
    reference latent (and class) for the whole batch (what the engine runs once)."""
    r, p = gen.resolution, gen.n_blend_points
    last = p - 1 if last_point is None else last_point
    out = []
    for j in range(k):
        m = torch.zeros(r, r, device=gen.device)
        m[j * r // (k + 1): (j + 1) * r // (k + 1)] = 1            # disjoint bands
        strength = [1.0 if i <= last else 0.0 for i in range(p)]
        seeds = [10_000 * (j + 1)] * batch if fixed else range(10_000 * (j + 1), 10_000 * (j + 1) + batch)
        y = sample_classes(gen, [10_000 * (j + 1)] * batch) if gen.n_classes and fixed else None
        out.append(Blend(sample_latents(gen, seeds), m, strength, y=y))
    return out


CLOCK = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter


def interleaved_best(ops: dict[str, Callable[[], object]], dev: torch.device, repeats: int) -> dict[str, float]:
    """Best time per op, timing the ops round-robin so that every ratio compares runs made under
    the same background load (this matters on shared machines). The clock is wall time, or the
    process's CPU time (`--clock process`: on a CPU shared with other jobs, time spent waiting for
    a core does not count; use it with one thread)."""
    for fn in ops.values():
        fn()
    best = {k: float("inf") for k in ops}
    for _ in range(repeats):
        for k, fn in ops.items():
            _sync(dev)
            t = _clock()
            fn()
            _sync(dev)
            best[k] = min(best[k], _clock() - t)
    return best


def bench_model(case: Case, dev: torch.device, batch: int, repeats: int, latency_n: int,
                dtype: torch.dtype) -> dict:
    gen = case.build(dev)
    if dtype != torch.float32:
        gen = gen.to(dtype)
    row: dict = {"model": case.name, "resolution": gen.resolution,
                 "params_M": sum(p.numel() for p in gen.parameters()) / 1e6}
    z, y = _inputs(gen, batch)
    z = z.to(dtype)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ops = {"plain": lambda: gen(z, y)}                               # our forward
    if gen.n_classes:
        for kind in ("region", "boxes", "full"):
            ops[f"swap_{kind}"] = (lambda sw=_swap(gen, batch, kind): render(gen, z, y, swap=sw))
    for name, bl in {"blend1": _blends(gen, batch, 1), "blend3": _blends(gen, batch, 3),
                     "blend1_fixed": _blends(gen, batch, 1, fixed=True),
                     "blend3_fixed": _blends(gen, batch, 3, fixed=True),
                     "blend3_to_mid": _blends(gen, batch, 3, last_point=gen.n_blend_points // 2)}.items():
        ops[name] = (lambda bl=bl: render(gen, z, y, blends=bl))
    t = interleaved_best(ops, dev, repeats)
    row["plain_img_s"] = batch / t["plain"]
    for k, v in t.items():
        if k.startswith("swap"):
            row[f"{k}_ratio"] = t["plain"] / v                        # throughput ratio to plain
        elif k.startswith("blend"):
            row[f"{k}_cost"] = v / t["plain"]                          # cost in units of plain
    # Interactive: one image.
    z1, y1 = _inputs(gen, 1, offset=7)
    z1 = z1.to(dtype)
    if gen.n_classes:
        sw1 = _swap(gen, 1)
        row["swap_latency_ms"] = latencies(lambda: render(gen, z1, y1, swap=sw1), dev, latency_n)
    bl1 = _blends(gen, 1, 1)
    row["blend_latency_ms"] = latencies(lambda: render(gen, z1, y1, blends=bl1), dev, latency_n)
    flops = flops_per_image(gen, dev)
    row["gflop_per_img"] = flops / 1e9 if flops else None
    if dev.type == "cuda":
        row["peak_mem_MiB"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
        peak = _peak_tflops(dev, str(dtype).split(".")[-1])
        if flops and peak:
            row["utilisation_plain"] = flops * row["plain_img_s"] / (peak * 1e12)
    row.update(reference_row(case, gen, z, y, dev, repeats, t["plain"]))
    return row


def _peak_tflops(dev: torch.device, dtype: str) -> float | None:
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), {}).get(dtype)


def _cuda_graph(gen, z, y) -> Callable[[], torch.Tensor]:
    """Plain generation captured once as a CUDA graph (static input buffers); replays it."""
    static_z = z.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            gen(static_z, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = gen(static_z, y)

    def replay() -> torch.Tensor:
        graph.replay()
        return out
    return replay


def options_row(case: Case, dev: torch.device, batch: int, repeats: int, options: list[str]) -> dict:
    """Plain generation with each speed option, as a ratio to float32 eager in the same run, the
    output difference each option causes (max |Δ| on the [-1, 1] scale) and, on a GPU with a known
    peak, the FLOP utilisation of each (FLOPs counted by torch's FLOP counter at batch 1)."""
    gen = case.build(dev)
    z, y = _inputs(gen, batch)
    ref = gen(z, y)
    ops, outs, dtypes = {"eager_fp32": lambda: gen(z, y)}, {}, {"eager_fp32": "float32"}
    for opt in options:
        if opt in ("float16", "bfloat16"):
            if opt == "float16" and dev.type != "cuda":
                continue
            dt_ = getattr(torch, opt)
            g2 = case.build(dev).to(dt_)
            z2 = z.to(dt_)
            ops[opt] = (lambda g2=g2, z2=z2: g2(z2, y))
            dtypes[opt] = opt
        elif opt == "channels_last":
            g2 = case.build(dev).to(memory_format=torch.channels_last)
            ops[opt] = (lambda g2=g2: g2(z, y))
        elif opt == "compile":
            g2 = torch.compile(case.build(dev))
            t0 = time.perf_counter()
            g2(z, y)
            outs["compile_seconds"] = time.perf_counter() - t0
            ops[opt] = (lambda g2=g2: g2(z, y))
        elif opt == "cuda_graphs" and dev.type == "cuda":
            ops[opt] = _cuda_graph(gen, z, y)
    t = interleaved_best(ops, dev, repeats)
    row = {"model": case.name}
    flops = flops_per_image(gen, dev) if dev.type == "cuda" else None
    for k, v in t.items():
        row[f"{k}_img_s"] = batch / v
        peak = _peak_tflops(dev, dtypes.get(k, "float32"))
        if flops and peak:
            row[f"{k}_utilisation"] = flops * batch / v / (peak * 1e12)
        if k != "eager_fp32":
            row[f"{k}_speedup"] = t["eager_fp32"] / v
            row[f"{k}_max_abs_diff"] = (ops[k]().float() - ref).abs().max().item()
    row.update(outs)
    return row


def reference_row(case: Case, gen, z, y, dev, repeats, t_plain) -> dict:
    """The reference implementation on the same weights, where one exists (BigGAN-deep), timed
    interleaved with our forward so both see the same background load."""
    if case.reference is None:
        return {}
    ref = case.reference(dev)
    cv = torch.nn.functional.one_hot(y, gen.n_classes).to(z.dtype)
    t = interleaved_best({"ours": lambda: gen(z, y, truncation=1.0), "ref": lambda: ref(z, cv, 1.0)}, dev, repeats)
    return {"reference_img_s": z.shape[0] / t["ref"], "ours_vs_reference": t["ref"] / t["ours"]}


def _biggan_case(res: int) -> Case:
    """BigGAN-deep with random weights of the released shapes. With pytorch-pretrained-biggan (a
    dev dependency) the reference model is built, saved in its directory format and loaded by us,
    so both run the same weights; without it (e.g. a bare GPU machine that installed only
    requirements.txt) our own model of the same shapes, randomly initialised, is timed alone."""
    try:
        import pytorch_pretrained_biggan  # noqa: F401
        import scipy  # noqa: F401  (the reference imports scipy.stats)
    except ImportError:
        def build_own(dev):
            torch.manual_seed(res)
            return BigGANGenerator(biggan_deep_config(res)).eval().to(dev)
        return Case(f"biggan-deep-{res}", build_own, note="random weights of the real shapes (no reference)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_biggan import real_reference, write_dir   # one place for the randomised reference
    made: dict = {}

    def reference(dev):
        if "ref" not in made:
            made["ref"] = real_reference(res).eval()
        return made["ref"].to(dev)

    def build(dev):
        with tempfile.TemporaryDirectory() as tmp:
            write_dir(Path(tmp) / "m", reference(torch.device("cpu")))
            return toolkit.load_generator(str(Path(tmp) / "m"), dev)
    return Case(f"biggan-deep-{res}", build, note="random weights of the real shapes", reference=reference)


def batch_runner_row(dev: torch.device, batch: int, count: int) -> dict:
    """End to end (render + encode + write + manifest) vs pure rendering of the same recipe."""
    try:
        from toolkit.batch import run_batch
        from toolkit.pipeline import render_variants
        from toolkit.recipes import load_recipe
    except ImportError as e:
        return {"batch_runner": f"unavailable ({e})"}
    recipe_path = Path(__file__).resolve().parents[1] / "recipes" / "tiny-label-swap.yaml"
    recipe = load_recipe(recipe_path)
    gen = toolkit.load_generator(recipe.model, dev)
    variants = [recipe.variant(i) for i in range(count)]
    render_variants(gen, recipe, variants[:batch])                  # warm-up
    t = time.perf_counter()
    for i in range(0, count, batch):
        render_variants(gen, recipe, variants[i:i + batch])
    _sync(dev)
    t_render = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        s = run_batch(recipe, Path(tmp) / "out", count=count, device=str(dev), batch_size=batch)
    return {"recipe": recipe.name, "count": count, "render_only_img_s": count / t_render,
            "end_to_end_img_s": s.images_per_s, "end_to_end_ratio": s.images_per_s / (count / t_render)}


def default_cases() -> list[Case]:
    cases = [Case("tiny", lambda d: toolkit.load_generator("tiny", d)),
             Case("faces64", lambda d: toolkit.load_generator("faces64", d))]
    from toolkit import zoo
    if "terrain64" in zoo.ZOO:
        cases.insert(1, Case("terrain64", lambda d: toolkit.load_generator("terrain64", d)))
    return cases + [_biggan_case(128), _biggan_case(256)]


def environment(dev: torch.device, dtype: torch.dtype, batch: int) -> dict:
    env = {"clock": "wall" if _clock is time.perf_counter else "process CPU", "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__,
           "python": platform.python_version(), "dtype": str(dtype).split(".")[-1], "batch_size": batch,
           "device": str(dev), "threads": torch.get_num_threads()}
    if dev.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(dev)
    else:
        env["device_name"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return env


# The performance issue's targets: (column, models it applies to, bound, "min" or "max").
SMALL_AND_128 = ("tiny", "terrain64", "faces64", "biggan-deep-128")
TARGETS = [("swap_region_ratio", SMALL_AND_128, 0.95, "min"), ("swap_full_ratio", SMALL_AND_128, 0.85, "min"),
           ("blend1_cost", None, 2.0, "max"), ("blend3_cost", None, 4.0, "max"),
           ("blend1_fixed_cost", None, 2.0, "max"), ("blend3_fixed_cost", None, 4.0, "max")]


def targets_markdown(rows: list[dict]) -> str:
    """One line per target and model: the number and whether it is met (computed, not typed in)."""
    lines = ["| target | model | batch | value | met |", "|---|---|---|---|---|"]
    for col, models, bound, kind in TARGETS:
        for r in rows:
            if col not in r or (models and r["model"] not in models):
                continue
            ok = r[col] >= bound if kind == "min" else r[col] <= bound
            sign = "≥" if kind == "min" else "≤"
            lines.append(f"| {col} {sign} {bound:g} | {r['model']} | {r.get('batch_size', '')} | {r[col]:.3f} | "
                         f"{'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    if isinstance(v, tuple):
        return "/".join(_fmt(x) for x in v)
    return str(v)


def to_markdown(env: dict, rows: list[dict], extra: list[dict]) -> str:
    lines = [f"# Benchmark {env['date']}", "", "| " + " | ".join(env) + " |", "|" + "---|" * len(env),
             "| " + " | ".join(_fmt(v) for v in env.values()) + " |", ""]
    cols = sorted({k for r in rows for k in r}, key=lambda k: (k != "model", k))
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    for e in extra:
        lines += ["", "| " + " | ".join(e) + " |", "|" + "---|" * len(e), "| " + " | ".join(_fmt(v) for v in e.values()) + " |"]
    lines += ["", targets_markdown(rows)]
    lines += ["", "Ratios: swap_*_ratio = swap img/s ÷ plain img/s (region: 25% central square; boxes: 25% at a "
              "different place per variant; full: non-zero everywhere); blendK_cost = time ÷ plain time "
              "(_fixed: one reference latent for the batch); latency columns are median/p95 ms for one image."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    global _clock
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--large-batch-size", default="",
                    help="batch size(s) for models of 128 px and more, e.g. 1,16,64 (default: --batch-size); "
                         "CPU runs use a small one, BigGAN-deep at batch 64 takes hours there")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", default="wall", choices=sorted(CLOCK),
                    help="wall time, or the process's CPU time (robust on a loaded CPU with --threads 1)")
    ap.add_argument("--models", default="", help="comma-separated subset of model names (default: all available)")
    ap.add_argument("--batch-count", type=int, default=256, help="variants for the batch-runner measurement (0: skip)")
    ap.add_argument("--options", default="channels_last,compile,float16,bfloat16,cuda_graphs",
                    help="speed options measured for plain generation ('' to skip)")
    ap.add_argument("--hooks", default="parts,projection", help="parts / projection timings ('' to skip)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for the raw results")
    ap.add_argument("--tag", default="", help="added to the result file names")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _clock = CLOCK[args.clock]
    dev = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    env = environment(dev, dtype, args.batch_size)
    print(env)
    rows, extra = [], []
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    cases = [c for c in default_cases() if not wanted or c.name.split(" ")[0] in wanted]
    large = [int(b) for b in args.large_batch_size.split(",") if b.strip()] or [args.batch_size]

    def batches(case: Case) -> list[int]:
        return large if case.name.startswith("biggan") else [args.batch_size]

    def guarded(what: str, fn: Callable[[], dict]) -> dict:
        try:
            with torch.no_grad():           # plain generation without autograd, as render() runs
                return fn()
        except Exception as e:  # noqa: BLE001 - a missing model must not hide the others' numbers
            return {"model": what, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}

    for case in cases:
        for batch in batches(case):
            row = guarded(case.name, lambda: {**bench_model(case, dev, batch, args.repeats, args.latency_n, dtype),
                                              "batch_size": batch})
            print(row, flush=True)
            rows.append(row)
    options = [o.strip() for o in args.options.split(",") if o.strip()]
    for case in cases if options else []:
        for batch in batches(case):
            extra.append(guarded(case.name, lambda: {**options_row(case, dev, batch, args.repeats, options),
                                                     "batch_size": batch}))
            print(extra[-1], flush=True)
    if args.batch_count:
        extra.append(guarded("batch runner", lambda: batch_runner_row(dev, args.batch_size, args.batch_count)))
        print(extra[-1])
    for hook in [h.strip() for h in args.hooks.split(",") if h.strip()]:
        extra.append(hooks.run(hook, dev, args.repeats))
        print(extra[-1])
    env["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    md = to_markdown(env, rows, extra)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = "-".join(sorted({r["model"].split(" ")[0] for r in rows})) or "none"
    stem = f"{env['date'][:10]}-{env['device_name'].split(' ')[0].lower()}-{env['dtype']}-{models}"
    stem += f"-{args.tag}" if args.tag else ""
    atomic_write_text(out / f"{stem}.json", json.dumps({"env": env, "models": rows, "extra": extra}, indent=2))
    atomic_write_text(out / f"{stem}.md", md)
    print(f"saved {out / stem}.json and .md")
    return 0
