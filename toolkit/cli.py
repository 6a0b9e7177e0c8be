"""`python -m toolkit ...`: a thin shell over the library (no logic of its own)."""
from __future__ import annotations

import argparse
import logging
import sys


def _cmd_demo(args) -> int:
    from .demo import render_demo
    path = render_demo(args.out, model=args.model, device=args.device)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toolkit", description="Neural Collage Toolkit")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="render a demo collage (blends and label swaps) to a PNG file")
    d.add_argument("--out", default="demo.png", help="output PNG path (default: demo.png)")
    d.add_argument("--model", default="faces64", help="zoo name or weights path (default: faces64)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
