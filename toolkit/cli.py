"""`python -m toolkit ...`: a thin shell over the library (no logic of its own)."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys


def _cmd_demo(args) -> int:
    from .demo import render_demo
    path = render_demo(args.out, model=args.model, device=args.device)
    print(f"wrote {path}")
    return 0


def _cmd_batch(args) -> int:
    import threading
    from tqdm import tqdm
    from .batch import parse_shard, run_batch, shard_from_env
    shard = parse_shard(args.shard) if args.shard else None
    command = shlex.join(["python", "-m", "toolkit", *args.argv])
    where = shard or shard_from_env()
    bars = []

    def progress(done: int, total: int) -> None:
        if not bars:   # created on the first call, when the total (this shard's share) is known
            bars.append(tqdm(total=total, initial=done, unit="img", dynamic_ncols=True, disable=args.quiet,
                             desc=f"shard {where[0]}/{where[1]}" if where else "batch"))
        bars[0].update(done - bars[0].n)

    # SIGTERM (a cluster pre-empting the job; torchrun forwards it) stops after the batch in flight,
    # with its rows committed; the same command resumes.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        s = run_batch(args.recipe, args.out, count=args.count, device=args.device, batch_size=args.batch_size,
                      shard=shard, progress=progress, stop=stop, workers=args.workers, command=command)
    finally:
        for bar in bars:
            bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(s.line())
    if s.stopped:
        print("stopped by SIGTERM: finished variants are saved; rerun the same command to resume", file=sys.stderr)
        return 143
    for i, msg in s.failures[:5]:
        print(f"  variant {i} failed: {msg}", file=sys.stderr)
    if s.failed:
        print(f"error: {s.failed} variant(s) failed (no rows written for them; see above)", file=sys.stderr)
        return 1
    return 0


def _cmd_validate(args) -> int:
    from .recipes import RecipeError, load_recipe
    bad = 0
    for path in args.recipes:
        try:
            r = load_recipe(path)
        except (RecipeError, OSError) as e:
            bad += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        for w in r.warnings:       # e.g. weights not downloaded yet: the recipe itself is fine
            print(f"warning: {path}: {w}", file=sys.stderr)
        print(f"ok: {path} (recipe {r.name!r}, model {r.model}, count {r.count}, sha256 {r.sha256[:12]})")
    return 1 if bad else 0


def _cmd_schema(args) -> int:
    from .recipes import recipe_json_schema
    print(json.dumps(recipe_json_schema(), indent=2, ensure_ascii=False))
    return 0


def _cmd_models(args) -> int:
    from . import zoo
    rows = [(e.name, e.architecture, "yes" if e.is_cached(e) else "no", e.license, e.description)
            for e in zoo.ZOO.values()]
    head = ("name", "architecture", "cached", "license", "description")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(3)]
    print("  ".join(head[i].ljust(widths[i]) for i in range(3)) + "  license / description")
    for r in rows:
        print("  ".join(str(r[i]).ljust(widths[i]) for i in range(3)) + f"  {r[3]}\n    {r[4]}")
    print(f"cache: {zoo.cache_dir()} ($NCT_CACHE_DIR)")
    return 0


def _cmd_fetch(args) -> int:
    from . import zoo
    if args.name not in zoo.ZOO:
        raise ValueError(f"unknown model {args.name!r}; the zoo has: {', '.join(sorted(zoo.ZOO))} "
                         "(see python -m toolkit models)")
    e = zoo.get(args.name)
    if e.fetch is None:
        print(f"{e.name}: built in ({e.source}); nothing to fetch")
        return 0
    hub_opts = {k: v for k, v in (("repo", args.repo), ("revision", args.revision), ("force", args.force)) if v}
    if hub_opts and e.hub is None:
        raise ValueError(f"--repo/--revision/--force apply to models fetched from the Hugging Face Hub, "
                         f"not to {e.name} ({e.source})")
    print(f"{e.name}: {e.fetch(e, **hub_opts)}")
    return 0


def _cmd_merge(args) -> int:
    from .dataset import merge
    res = merge(args.dirs[0], *args.dirs[1:])
    print(f"merged {res.rows} variants into {res.out_dir / 'metadata.csv'}"
          + (f"; {len(res.missing)} missing (e.g. {res.missing[:10]}): rerun the batch command to complete them"
             if res.missing else ""))
    return 0


def _cmd_project(args) -> int:
    import csv
    import io
    from pathlib import Path
    from .io import atomic_write_text, save_png
    from .images import to_uint8
    from .loading import load_generator
    from .photos import load_photo
    from .projection import project
    photos = [load_photo(p) for p in args.photos]           # confined to the current directory
    gen = load_generator(args.model, device=args.device)
    out = Path(args.out)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["photo", "sha256", "crop_x", "crop_y", "crop_size", "psnr_db", "class"])
    for i in range(0, len(photos), args.batch_size):
        chunk = photos[i:i + args.batch_size]
        p = project(gen, chunk, steps=args.steps, point=args.point, seed=args.seed)
        for k, (ph, rec) in enumerate(zip(chunk, to_uint8(p.reconstruction))):
            stem = Path(ph.name).with_suffix("").as_posix().replace("/", "__")
            save_png(rec, out / f"{stem}_reconstruction.png")
            save_png(to_uint8(p.target[k:k + 1])[0], out / f"{stem}_crop.png")
            c = p.crops[k]
            cls = gen.class_names[p.classes[k]] if p.classes is not None else ""
            w.writerow([ph.name, ph.sha256, c.x, c.y, c.size, f"{float(p.psnr[k]):.2f}", cls])
            print(f"{ph.name}: PSNR {float(p.psnr[k]):.2f} dB" + (f", looks like {cls!r}" if cls else "")
                  + f" (crop {c.size}×{c.size} at x={c.x}, y={c.y})")
    atomic_write_text(out / "projections.csv", buf.getvalue(), make_parents=True)
    print(f"wrote {out}/*_reconstruction.png and {out / 'projections.csv'}")
    return 0


def _cmd_edit(args) -> int:
    import numpy as np
    from .composite import edit_photo
    from .engine import LabelSwap
    from .io import save_png
    from .loading import load_generator
    from .photos import load_photo, region_mask
    photo = load_photo(args.photo)
    w, h = photo.size
    region = region_mask(args.region, w, h)
    gen = load_generator(args.model, device=args.device)
    e = edit_photo(gen, photo, swap=LabelSwap([args.swap], region[None]), blend=args.blend,
                   steps=args.steps, point=args.point, seed=args.seed)
    path = save_png(e.image, args.out)
    mask_path = save_png((e.mask * 255).astype(np.uint8), path.with_name(path.stem + "_mask.png"))
    print(f"wrote {path} and {mask_path} (projection PSNR {e.psnr:.2f} dB; {int(e.mask.sum())} of {w * h} "
          f"pixels may differ from the photo, all others are unchanged)")
    return 0


def _cmd_parts(args) -> int:
    from .loading import load_generator
    from .parts import PartModel, coverage, discover, part_sheet, sample_inputs, segment
    g = load_generator(args.model, device=args.device)
    if args.names and not args.from_file:
        raise ValueError("--names renames an existing part model: give it with --from FILE")
    pm = PartModel.load(args.from_file) if args.from_file else \
        discover(g, args.parts or (g.n_classes if args.by_class else 8), n_samples=args.samples, seed=args.seed,
                 point=args.point, per_image=not args.global_centre, by_class=args.by_class)
    pm.check(g)
    if args.names:
        pm = pm.with_names([n.strip() for n in args.names.split(",")])
    z, y = sample_inputs(g, min(args.samples, 64), args.seed + 1)
    cov = coverage(segment(g, pm, z, y).cpu(), pm.n_parts)
    print(f"{pm.n_parts} parts of {pm.model_id} at blend point(s) {list(pm.points)} "
          f"(resolutions {[g.blend_resolutions[p] for p in pm.points]}); on {len(z)} new samples:")
    for i, name in enumerate(pm.names):
        print(f"  {i:2d} {name:<14} {100 * cov['pixels'][i]:5.1f}% of pixels, in {100 * cov['present'][i]:5.1f}% of images")
    if args.out:
        print(f"wrote {pm.save(args.out)}")
    if args.sheet:
        from .images import save_png
        print(f"wrote {save_png(part_sheet(g, pm, n=16, seed=args.seed + 2), args.sheet)} "
              "(samples over their part overlay: name the parts with --from FILE --names a,b,...)")
    return 0


def _cmd_train(args) -> int:          # reached only for `train` alone; main() hands `train ...` over
    from .train.loop import main as train_main
    return train_main(["--help"], prog="python -m toolkit train")


def _cmd_review(args) -> int:
    from .dataset import parse_where, review_statuses_from_csv, set_review_where, update_review
    if bool(args.from_csv) == bool(args.where or args.set):
        raise ValueError("review: give either --from-csv FILE, or --where COL=VALUE ... with --set STATE")
    if args.from_csv:
        statuses = review_statuses_from_csv(args.from_csv)
        n = update_review(args.dir, statuses)
        print(f"{args.dir}: {n} of {len(statuses)} listed rows changed")
        return 0
    if not args.set:
        raise ValueError("review --where: say which status to set with --set accepted|rejected|pending")
    matched, n = set_review_where(args.dir, [parse_where(w) for w in args.where], args.set)
    print(f"{args.dir}: {matched} rows match, {n} changed to {args.set}")
    return 0


def _cmd_export(args) -> int:
    from .dataset import Where, export_where, parse_where, read_manifest
    where = [parse_where(w) for w in args.where] + ([Where("review", (args.status,))] if args.status else [])
    out = export_where(args.dir, args.to, where)
    print(f"exported {len(read_manifest(out))} rows to {out} (its own metadata.csv, dataset.json and README.md)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toolkit", description="Neural Collage Toolkit")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="render a demo collage (blends and label swaps) to a PNG file")
    d.add_argument("--out", default="demo.png", help="output PNG path (default: demo.png)")
    d.add_argument("--model", default="faces64", help="zoo name or weights path (default: faces64)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    d.set_defaults(func=_cmd_demo)

    b = sub.add_parser("batch", help="render a recipe's variants into a dataset directory (resumable)")
    b.add_argument("recipe", help="recipe YAML file")
    b.add_argument("--out", required=True, help="dataset directory (created; rerun the same command to resume)")
    b.add_argument("--count", type=int, default=None,
                   help="number of variants (default: the recipe's count; at most 10,000,000 per dataset)")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)")
    b.add_argument("--batch-size", type=int, default=16, help="variants per render call (default 16)")
    b.add_argument("--shard", default=None, metavar="K/N",
                   help="render only variants i with i %% N == K (default: RANK/WORLD_SIZE under torchrun)")
    b.add_argument("--workers", type=int, default=2, help="PNG encoder/writer threads (default 2)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_batch)

    v = sub.add_parser("validate", help="check recipe files without their weights (exit 1 if any is invalid; "
                                        "absent weights are a warning)")
    v.add_argument("recipes", nargs="+", metavar="RECIPE")
    v.set_defaults(func=_cmd_validate)

    sc = sub.add_parser("schema", help="print the recipe JSON Schema the validator uses (for editors)")
    sc.set_defaults(func=_cmd_schema)

    m = sub.add_parser("models", help="list the model zoo (license, whether cached)")
    m.set_defaults(func=_cmd_models)

    f = sub.add_parser("fetch", help="download a zoo model's weights into the cache (the only command that downloads)")
    f.add_argument("name")
    f.add_argument("--repo", default=None, help="Hub models: another repo OWNER/NAME hosting the same files")
    f.add_argument("--revision", default=None, help="Hub models: the commit (40 hex digits) to fetch from --repo")
    f.add_argument("--force", action="store_true", help="Hub models: download again even if the files are cached")
    f.set_defaults(func=_cmd_fetch)

    pa = sub.add_parser("parts", help="discover a model's parts (k-means on its features); sheet to name them")
    pa.add_argument("model", help="zoo name or weights path")
    pa.add_argument("--parts", type=int, default=None, help="number of parts K (default 8; --by-class: the classes)")
    pa.add_argument("--out", default=None, help="part model file to write (.safetensors)")
    pa.add_argument("--samples", type=int, default=256, help="seeded samples to cluster (default 256)")
    pa.add_argument("--seed", type=int, default=0)
    pa.add_argument("--point", type=int, action="append", default=None,
                    help="blend point to cluster (repeat for several; default: mid-resolution points)")
    pa.add_argument("--global-centre", action="store_true",
                    help="centre features on the dataset mean only, not per image (models whose samples are one "
                         "class each, such as terrain64: a part is then what a whole image is made of)")
    pa.add_argument("--by-class", action="store_true",
                    help="class-conditional models: one part per class, anchored on the model's conditioning "
                         "(Fisher discriminant of the samples' classes) instead of k-means; see docs/PARTS.md")
    pa.add_argument("--sheet", default=None, metavar="PNG", help="write samples with their parts overlaid")
    pa.add_argument("--from", dest="from_file", default=None, metavar="FILE",
                    help="use an existing part model instead of discovering one (e.g. to rename it)")
    pa.add_argument("--names", default=None, help="comma-separated part names, in id order (with --from)")
    pa.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    pa.set_defaults(func=_cmd_parts)

    g = sub.add_parser("merge", help="merge shard parts (and other dataset dirs of the same run) into DIR")
    g.add_argument("dirs", nargs="+", metavar="DIR", help="target dataset dir, then optional dirs to merge into it")
    g.set_defaults(func=_cmd_merge)

    for name, helptext in (("project", "project photos into a model: reconstructions, PSNR and the chosen class"),
                           ("edit", "label-swap a region of a photo and composite it back (Poisson)")):
        c = sub.add_parser(name, help=helptext)
        if name == "project":
            c.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files inside the current directory")
            c.add_argument("--out", required=True, help="output folder (reconstructions + projections.csv)")
            c.add_argument("--batch-size", type=int, default=16, help="photos per optimisation batch (default 16)")
        else:
            c.add_argument("photo", metavar="PHOTO", help="a photo file inside the current directory")
            c.add_argument("--swap", required=True, metavar="CLASS", help="class to paint into the region (name or id)")
            c.add_argument("--region", required=True, help="rect:X0,Y0,X1,Y1 or ellipse:CX,CY,W,H (0..1 of the "
                           "photo), or a mask image (white = edit)")
            c.add_argument("--out", required=True, help="output PNG (the mask goes beside it as NAME_mask.png)")
            c.add_argument("--blend", default="poisson", choices=["poisson", "feather"])
        c.add_argument("--model", required=True, help="zoo name or weights path")
        c.add_argument("--steps", default="default", help="projection preset: default or fast")
        c.add_argument("--point", type=int, default=None, help="blend point of the inverted features "
                       "(default: the model's; edits act after it)")
        c.add_argument("--seed", type=int, default=0)
        c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        c.set_defaults(func=_cmd_project if name == "project" else _cmd_edit)

    states = ("pending", "accepted", "rejected", "rejected-auto")   # = toolkit.dataset.REVIEW_STATES (tested);
    # not imported here, since toolkit.dataset pulls in pandas for every command
    where_help = "filter rows: COL=VALUE (repeat: values of one column OR'ed, columns AND'ed), COL>=X, COL<=X"
    r = sub.add_parser("review", help="set review statuses from a CSV file (file_name,review) or by filter")
    r.add_argument("dir", metavar="DIR", help="dataset directory")
    r.add_argument("--from-csv", metavar="FILE", help="CSV with columns file_name,review (others ignored)")
    r.add_argument("--where", action="append", default=[], metavar="COL=VALUE", help=where_help)
    r.add_argument("--set", choices=states, help="the status to give every row --where selects")
    r.set_defaults(func=_cmd_review)

    e = sub.add_parser("export", help="copy matching rows and their files into a new dataset directory")
    e.add_argument("dir", metavar="DIR", help="source dataset directory")
    e.add_argument("--to", required=True, metavar="DEST", help="new or empty directory, outside DIR")
    e.add_argument("--status", choices=states, help="only rows with this review status (default: any)")
    e.add_argument("--where", action="append", default=[], metavar="COL=VALUE", help=where_help)
    e.set_defaults(func=_cmd_export)

    # the trainer has its own parser (every TrainConfig field is an option): main() passes it the rest
    t = sub.add_parser("train", add_help=False, help="train a GAN on your labelled image folder "
                       "(python -m toolkit train --help; docs/TRAINING.md)")
    t.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"] and argv[1:]:
        from .train.loop import main as train_main
        return train_main(argv[1:], prog="python -m toolkit train")
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError) as e:
        # no traceback: our errors say what, where and how to fix (KeyError's str() adds quotes)
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished variants are saved; rerun the same command to resume", file=sys.stderr)
        return 130
