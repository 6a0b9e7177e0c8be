"""Which of requirements.txt's packages this machine has, and which version; install missing ones
only from carried wheel files (never from an index: the lent GPU machine reaches no registry).

    python bench/requirements_check.py [--wheels .whl] [--target DIR]

Prints one line per requirement (wanted, found, whether the version satisfies the pin) and exits
1 when a package is still missing after the wheels were tried. A different torch version than the
pin (the GPU image brings its own CUDA build) is reported, not replaced.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[<>=!~ \[;]", line, maxsplit=1)[0]
            out.append((name, line[len(name):].strip()))
    return out


def found(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def satisfies(version: str, spec: str) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return None
    return SpecifierSet(spec).contains(version.split("+")[0], prereleases=True) if spec else True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requirements", default=str(ROOT / "requirements.txt"))
    ap.add_argument("--wheels", default=".whl", help="folder of carried .whl files (used only if it exists)")
    ap.add_argument("--target", default=None, help="install carried wheels here (add it to PYTHONPATH)")
    ap.add_argument("--optional", default="", help="comma-separated packages whose absence is reported, not an "
                    "error (e.g. the app's streamlit on a benchmark machine)")
    args = ap.parse_args(argv)
    reqs = requirements(Path(args.requirements))
    optional = {n.strip().lower() for n in args.optional.split(",") if n.strip()}
    missing = [n for n, _ in reqs if found(n) is None]
    wheels = sorted(Path(args.wheels).glob("*.whl")) if Path(args.wheels).is_dir() else []
    if missing and wheels and args.target:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--target", args.target, *map(str, wheels)]
        print("installing carried wheels:", " ".join(w.name for w in wheels), flush=True)
        subprocess.run(cmd, check=False)
        sys.path.insert(0, args.target)
        metadata_paths = [args.target]
        missing = [n for n in missing if found(n) is None and not any(metadata.distributions(name=n, path=metadata_paths))]
    for name, spec in reqs:
        v = found(name)
        ok = "MISSING" if v is None else {True: "ok", False: "differs from the pin", None: "?"}[satisfies(v, spec)]
        print(f"{name:28s} wanted {spec or 'any':14s} found {v or '-':14s} {ok}")
    if missing:
        print(f"still missing: {', '.join(missing)} (carry wheels in .whl/, see docs/PERFORMANCE.md)")
    return 1 if any(n.lower() not in optional for n in missing) else 0


if __name__ == "__main__":
    raise SystemExit(main())
