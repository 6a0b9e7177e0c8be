"""Before/after in one process: another checkout's `toolkit` is loaded as a second package and
every operation of both is timed round-robin, so both sides see the same background load.

    git worktree add /tmp/perf-before <commit>
    python -m bench.before_after --before /tmp/perf-before --models tiny,terrain64 --threads 1 --clock process

The ratios (swap ÷ plain, blend cost in units of plain) of each side are computed against that
side's own plain generation; `plain_after_vs_before` compares the two plain paths (it should be
about 1: both run the same per-sample code, so it also shows how noisy the run was).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

import toolkit
from toolkit.devices import resolve_device
from toolkit.io import atomic_write_text

from . import suite


def load_toolkit(root: Path, name: str = "toolkit_before"):
    """The `toolkit` package of another checkout, imported under `name` (its imports are relative)."""
    spec = importlib.util.spec_from_file_location(name, root / "toolkit" / "__init__.py",
                                                  submodule_search_locations=[str(root / "toolkit")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _sources(name: str, tmp: Path) -> str:
    """What `load_generator` gets: a zoo name, or for BigGAN-deep a directory of random weights of
    the released shapes written once (pytorch-pretrained-biggan's layout), read by both sides."""
    if not name.startswith("biggan-deep-"):
        return name
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_biggan import real_reference, write_dir
    d = tmp / name
    write_dir(d, real_reference(int(name.rsplit("-", 1)[1])))
    return str(d)


def compare(name: str, source: str, pkgs: dict, dev, batch: int, repeats: int) -> dict:
    ops = {}
    for side, pkg in pkgs.items():
        gen = pkg.load_generator(source, dev)
        z, y = suite._inputs(gen, batch)
        ops[f"{side}:plain"] = (lambda g=gen, z=z, y=y: g(z, y))
        render = pkg.render
        if gen.n_classes:
            for kind in ("region", "boxes", "full"):
                ops[f"{side}:swap_{kind}"] = (lambda g=gen, z=z, y=y, sw=suite._swap(gen, batch, kind), r=render:
                                              r(g, z, y, swap=sw))
        for bname, k, fixed in (("blend1", 1, False), ("blend3", 3, False), ("blend1_fixed", 1, True),
                                ("blend3_fixed", 3, True)):
            ops[f"{side}:{bname}"] = (lambda g=gen, z=z, y=y, bl=suite._blends(gen, batch, k, fixed=fixed), r=render:
                                      r(g, z, y, blends=bl))
    t = suite.interleaved_best(ops, dev, repeats)
    row = {"model": name, "batch_size": batch}
    for side in pkgs:
        plain = t[f"{side}:plain"]
        row[f"{side}_plain_img_s"] = batch / plain
        for k, v in t.items():
            s, op = k.split(":")
            if s != side or op == "plain":
                continue
            row[f"{side}_{op}_{'ratio' if op.startswith('swap') else 'cost'}"] = \
                plain / v if op.startswith("swap") else v / plain
    row["plain_after_vs_before"] = t["before:plain"] / t["after:plain"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="root of the other checkout (git worktree)")
    ap.add_argument("--models", default="tiny,terrain64,faces64,biggan-deep-128")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--large-batch-size", type=int, default=2, help="batch for models of 128 px and more")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--large-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=sorted(suite.CLOCK))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    suite._clock = suite.CLOCK[args.clock]
    dev = resolve_device(args.device)
    pkgs = {"before": load_toolkit(Path(args.before)), "after": toolkit}
    env = suite.environment(dev, torch.float32, args.batch_size)
    env["before"] = str(Path(args.before).resolve())
    print(env, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            large = name.startswith("biggan")
            try:
                row = compare(name, _sources(name, Path(tmp)), pkgs, dev,
                              args.large_batch_size if large else args.batch_size,
                              args.large_repeats if large else args.repeats)
            except Exception as e:  # noqa: BLE001 - one model's failure must not hide the others
                row = {"model": name, "skipped": f"{type(e).__name__}: {e}"}
            print(row, flush=True)
            rows.append(row)
    md = suite.to_markdown(env, rows, [])
    out = Path(args.out)
    stem = f"{env['date'][:10]}-{env['device_name'].split(' ')[0].lower()}-float32-" \
           f"{'-'.join(r['model'] for r in rows)}-before-after"
    atomic_write_text(out / f"{stem}.json", json.dumps({"env": env, "models": rows}, indent=2), make_parents=True)
    atomic_write_text(out / f"{stem}.md", md, make_parents=True)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
