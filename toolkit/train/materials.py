"""Data builder for the shipped `terrain64` materials model (0 A.D. terrain textures and sky-boxes).

`python -m toolkit.train.materials build --out DIR` downloads the Debian package `0ad-data`
(bookworm 0.0.26-1; CC-BY-SA-3.0, Wildfire Games) with `apt-get download`, reads
`usr/share/games/0ad/mods/public/public.zip` from it, labels the photo-derived terrain textures
(`art/textures/terrain/types/`) and sky-boxes (`art/textures/skies/`) by file and folder name,
and writes a *compact* copy of every labelled source (≤512 px JPEG) plus `manifest.csv`.
Training crops are cut on the fly from the compact copy (`toolkit.train.data`), so the copy
is small enough to travel to a GPU machine (the whole tree is ~30 MB).

Why the rules are what they are:
- names matching two classes (``grass_dirt_01``, ``snow rocks``) are skipped: a mixed texture
  would teach the generator a mixed class and blur the label maps the model is used for;
- normal/specular maps (``_norm``, ``_spec``, ``_normal``…) are not photographs;
- roads, paving, farmland, water, lava and flat colour swatches are not materials we label;
- sky-box side faces show the horizon and a flat fill below it, so only their upper band is kept;
  the mountain sky-box's sides show mountains and are skipped;
- duplicates (identical decoded pixels) are dropped, keeping the first path in sorted order;
- the DDS block compression shows at native scale, so crops are ≥128 native pixels
  (where the source allows) and downscaled to 64.
Nothing here is imported by the toolkit at run time.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from PIL import Image

log = logging.getLogger(__name__)

CLASSES = ["grass", "sand", "rock", "snow", "dirt", "foliage", "sky"]
PACKAGE, PACKAGE_VERSION = "0ad-data", "0.0.26-1"
ZIP_MEMBER = "usr/share/games/0ad/mods/public/public.zip"
TERRAIN_DIR, SKY_DIR = "art/textures/terrain/types/", "art/textures/skies/"
LICENSE, AUTHOR = "CC-BY-SA-3.0", "Wildfire Games (0 A.D.)"
COMPACT_MAX = 512          # longest side of the compact copy
MIN_WINDOW = 128           # smallest crop window, in native pixels
SKY_BAND = 0.40            # upper fraction of a sky-box side face that is sky
SKY_SIDES = ("front", "back", "left", "right")
SKY_SKIP_SIDES = ("mountainous",)   # side faces show mountains, not sky

# Whole name tokens (split on anything but letters) → class. Token matching keeps "dirty_sand"
# from counting as dirt and "forestfloor" from counting as rock.
KEYWORDS = {
    "grass": {"grass", "meadow", "clovers", "moss"},
    "sand": {"sand", "dunes", "dune", "beach"},
    "rock": {"cliff", "cliffs", "rock", "rocks", "rocky", "granite", "sedimentary", "metamorphic",
             "mountainside", "boulders"},
    "snow": {"snow", "ice", "icy", "glacial"},
    "dirt": {"dirt", "dirta", "dirtc", "dirtd", "dirte", "mud", "clay", "gravel", "soil", "peat", "cracks"},
    "foliage": {"forestfloor", "forrestfloor", "forest", "flora", "shrubs", "plants"},
}
EXCLUDE = {"road", "paving", "pavement", "tile", "citytile", "city", "bridge", "farmland", "furrows",
           "corral", "water", "ocean", "sea", "coral", "underwater", "lava", "lavahard", "lavatest",
           "grid", "blackness", "neon", "path", "wood", "test", "tests", "dirttests"}
MAP_SUFFIX = re.compile(r"_(norm|normal|normals|spec|specular|nm|n|s|height|bump|ao)(_[a-z_]*)?$")


@dataclass
class Source:
    path: str              # path inside public.zip
    cls: str
    region: str            # "full" or "upper 40%"
    skip_reason: str = ""


def base_name(path: str) -> str:
    """`art/…/grass_01.png.cached.dds` → `grass_01` (the game's cache adds `.cached.dds`)."""
    name = path.rsplit("/", 1)[-1].lower()
    while True:
        stem, dot, ext = name.rpartition(".")
        if not dot or ext not in ("dds", "png", "cached", "tga", "jpg", "jpeg"):
            return name
        name = stem


def tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z]+", text.lower()) if t}


def classify(path: str) -> Source:
    """Label one file of public.zip; `cls == ""` with a `skip_reason` when it is not used."""
    name = base_name(path)
    if path.startswith(SKY_DIR):
        parts = path[len(SKY_DIR):].split("/")
        if len(parts) != 2:
            return Source(path, "", "", "not a sky-box face")
        box, face = parts[0].lower(), name
        if face == "top":
            return Source(path, "sky", "full")
        if face in SKY_SIDES:
            if box in SKY_SKIP_SIDES:
                return Source(path, "", "", "side face shows mountains")
            return Source(path, "sky", f"upper {round(SKY_BAND * 100)}%")
        return Source(path, "", "", "not a sky-box face")
    if not path.startswith(TERRAIN_DIR):
        return Source(path, "", "", "outside the terrain and sky folders")
    if not re.search(r"\.(dds|png)$", path.lower()):
        return Source(path, "", "", "not an image")
    if MAP_SUFFIX.search(name) or name.endswith("_no_parallax"):
        return Source(path, "", "", "normal/specular map")
    folder = path[len(TERRAIN_DIR):].rsplit("/", 1)[0] if "/" in path[len(TERRAIN_DIR):] else ""
    toks = tokens(name)
    if toks & EXCLUDE:
        return Source(path, "", "", f"not a labelled material ({', '.join(sorted(toks & EXCLUDE))})")
    hits = sorted(c for c, words in KEYWORDS.items() if toks & words)
    if len(hits) > 1:
        return Source(path, "", "", f"mixed name ({'+'.join(hits)})")
    if not hits:
        return Source(path, "", "", "no class keyword in the name" + (f" (folder {folder})" if folder else ""))
    return Source(path, hits[0], "full")


def window_range(native_side: int, compact_side: int, region_side: int) -> tuple[int, int]:
    """Crop window sides (min, max) in *compact* pixels: ≥128 native pixels where the region allows,
    never below 64 compact pixels (the output size), up to twice the minimum."""
    scale = compact_side / native_side
    lo = max(64, math.ceil(MIN_WINDOW * scale))
    lo = min(lo, region_side)
    return lo, min(region_side, 2 * lo)


def decode(data: bytes):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def pixel_hash(im) -> str:
    return hashlib.sha256(f"{im.size}".encode() + im.tobytes()).hexdigest()


def held_out(path: str, fraction: float = 0.2) -> bool:
    """Deterministic per-file split: ~20% of sources per class are kept away from GAN training
    (the quality benchmark tests its classifier there)."""
    h = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little")
    return (h % 1000) < fraction * 1000


def compact(im, region: str):
    """The kept region of a source, downscaled so its longest side is ≤ COMPACT_MAX."""
    if region.startswith("upper"):
        im = im.crop((0, 0, im.width, max(1, round(im.height * SKY_BAND))))
    s = min(1.0, COMPACT_MAX / max(im.size))
    if s < 1:
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return im, s


MANIFEST_FIELDS = ["file", "class", "split", "zip_path", "sha256", "region", "native_width", "native_height",
                   "width", "height", "window_min", "window_max", "license", "author"]


def build_from_zip(zip_path: str | os.PathLike, out: str | os.PathLike, quality: int = 92) -> list[dict]:
    """Label, deduplicate and compact every usable source of `public.zip` into `out`.

    Writes `out/images/<class>/<name>.jpg` and `out/manifest.csv` (atomically, last), and
    `out/skipped.csv` (every file looked at and not used, with the reason).
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, skipped, seen = [], [], {}
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith((TERRAIN_DIR, SKY_DIR)) and not n.endswith("/"))
        for path in names:
            src = classify(path)
            if not src.cls:
                skipped.append({"zip_path": path, "reason": src.skip_reason})
                continue
            data = zf.read(path)
            try:
                im = decode(data)
            except Exception as e:  # noqa: BLE001 - recorded, the build goes on
                skipped.append({"zip_path": path, "reason": f"unreadable ({type(e).__name__}: {e})"})
                continue
            key = pixel_hash(im)
            if key in seen:
                skipped.append({"zip_path": path, "reason": f"duplicate of {seen[key]}"})
                continue
            seen[key] = path
            small, scale = compact(im, src.region)
            rel = path[len(SKY_DIR):] if path.startswith(SKY_DIR) else path[len(TERRAIN_DIR):]
            stem = re.sub(r"[^A-Za-z0-9_-]+", "_", rel.rsplit(".", 3)[0] if ".cached" in rel else rel)
            file = f"images/{src.cls}/{stem}.jpg"
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            small.save(out / file, quality=quality)
            lo, hi = window_range(max(im.size), max(small.size), min(small.size))
            rows.append({"file": file, "class": src.cls, "split": "heldout" if held_out(path) else "train",
                         "zip_path": path, "sha256": hashlib.sha256(data).hexdigest(), "region": src.region,
                         "native_width": im.width, "native_height": im.height,
                         "width": small.width, "height": small.height, "window_min": lo, "window_max": hi,
                         "license": LICENSE, "author": AUTHOR})
            log.info("%-8s %s", src.cls, path)
    write_csv(out / "skipped.csv", skipped, ["zip_path", "reason"])
    write_csv(out / "manifest.csv", rows, MANIFEST_FIELDS)
    return rows


def write_csv(path: Path, rows: Iterable[dict], fields: list[str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read_manifest(data_dir: str | os.PathLike) -> list[dict]:
    path = Path(data_dir) / "manifest.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; build the data with "
                                f"`python -m toolkit.train.materials build --out {data_dir}`")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- fetching the package ----------------------------------------------------------------------------
def fetch_deb(workdir: Path) -> Path:
    """`apt-get download 0ad-data=0.0.26-1` into workdir (reused when already there)."""
    found = sorted(workdir.glob(f"{PACKAGE}_{PACKAGE_VERSION}_*.deb"))
    if found:
        return found[0]
    cmd = ["apt-get", "download", f"{PACKAGE}={PACKAGE_VERSION}"]
    log.info("running %s in %s (about 1.4 GB)", " ".join(cmd), workdir)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    found = sorted(workdir.glob(f"{PACKAGE}_{PACKAGE_VERSION}_*.deb"))
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"apt-get download {PACKAGE}={PACKAGE_VERSION} failed: "
                           + (proc.stderr.strip().splitlines() or ["no output"])[-1]
                           + "\nFix: run `apt-get update` (Debian bookworm sources), or pass --deb PATH")
    return found[0]


def extract_zip(deb: Path, workdir: Path) -> Path:
    """Pull public.zip out of the .deb (`dpkg-deb --fsys-tarfile`, else Python's ar+tar readers)."""
    target = workdir / "public.zip"
    if target.exists():
        return target
    tmp = workdir / "public.zip.part"
    if shutil.which("dpkg-deb"):
        with open(tmp, "wb") as dst:
            p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            with tarfile.open(fileobj=p1.stdout, mode="r|") as tf:
                for m in tf:
                    if m.name.lstrip("./") == ZIP_MEMBER:
                        shutil.copyfileobj(tf.extractfile(m), dst, 1 << 20)
                        break
            p1.stdout.close()
            p1.wait()
    else:
        with open(deb, "rb") as f, open(tmp, "wb") as dst:
            _extract_from_ar(f, dst)
    if tmp.stat().st_size == 0:
        raise RuntimeError(f"{deb}: {ZIP_MEMBER} not found in the package")
    os.replace(tmp, target)
    return target


def _extract_from_ar(f, dst) -> None:
    if f.read(8) != b"!<arch>\n":
        raise RuntimeError("not a Debian package (no ar header)")
    while header := f.read(60):
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=f, mode="r|*") as tf:
                for m in tf:
                    if m.name.lstrip("./") == ZIP_MEMBER:
                        shutil.copyfileobj(tf.extractfile(m), dst, 1 << 20)
                        return
            break
        f.seek(size + (size & 1), 1)
    raise RuntimeError(f"{ZIP_MEMBER} not found in the package")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m toolkit.train.materials", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download 0ad-data, label and compact the textures into --out")
    b.add_argument("--out", required=True, help="output folder (images/, manifest.csv, skipped.csv)")
    b.add_argument("--work", default=None, help="where the .deb and public.zip go (default: OUT/_download)")
    b.add_argument("--deb", default=None, help="use this 0ad-data .deb instead of downloading it")
    b.add_argument("--zip", default=None, help="use this public.zip instead of the package")
    b.add_argument("--quality", type=int, default=92, help="JPEG quality of the compact copy (default 92, "
                   "55 MB; 80 makes a copy small enough to travel to a GPU machine with the repository)")
    args = p.parse_args(argv)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "_download"
    work.mkdir(parents=True, exist_ok=True)
    zip_path = Path(args.zip) if args.zip else extract_zip(Path(args.deb) if args.deb else fetch_deb(work), work)
    rows = build_from_zip(zip_path, out, quality=args.quality)
    counts = {c: sum(r["class"] == c for r in rows) for c in CLASSES}
    print(f"wrote {len(rows)} sources to {out}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
