"""Downloads from the Hugging Face Hub for zoo entries: a pinned repo and revision, into our cache.

Only `python -m toolkit fetch` calls this; loading a model never downloads. `huggingface_hub`
does the transfer (HEAD for the commit, size and ETag, then GET into a temporary file; a dropped
connection is resumed with a `Range` request, a progress bar is shown), then we verify:
the sha256 when the zoo records one, the Hub's own sha256 ETag for LFS files, and (by the
caller) the strict key/shape check of the weights. What was fetched is recorded in
`fetch.json` beside the files, so a later load can tell a damaged cache from a good one.

`NCT_OFFLINE=1` or `HF_HUB_OFFLINE=1` refuse any download; `HF_ENDPOINT` points the client at
another server (a mirror, or a local test server).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .checkpoints import CheckpointError, sha256_file
from .io import atomic_write_text

log = logging.getLogger(__name__)

FETCH_RECORD = "fetch.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubSource:
    """Where a zoo entry's files live on the Hub. `repo`/`revision` None: none is pinned (the user
    passes one to `fetch`). `sha256`: known hashes per file; others are recorded at fetch time."""
    repo: str | None
    revision: str | None
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)
    note: str = ""                       # where the pin comes from and what is unverified


def offline_reason() -> str | None:
    for var in ("NCT_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]}"
    return None


def read_record(folder: Path) -> dict | None:
    try:
        rec = json.loads((folder / FETCH_RECORD).read_text(encoding="utf-8"))
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


def download(name: str, src: HubSource, folder: Path, *, repo: str | None = None, revision: str | None = None,
             force: bool = False) -> Path:
    """Fetch `src.files` of `repo@revision` (default: the pinned ones) into `folder`; verify hashes."""
    repo, revision = repo or src.repo, revision or src.revision
    if not repo or not revision:
        raise CheckpointError(
            f"{name}: no Hugging Face Hub repository is pinned for this model (none could be verified). Pass one "
            f"that hosts the files {', '.join(src.files)}: `python -m toolkit fetch {name} --repo OWNER/NAME "
            f"--revision COMMIT`, or put the files in {folder} yourself.")
    if not _COMMIT.fullmatch(revision):
        raise CheckpointError(f"{name}: revision {revision!r} is not a 40-character commit hash; pin a commit "
                              "(a branch name can change under you)")
    why = offline_reason()
    if why:
        raise CheckpointError(f"{name}: offline mode ({why}): not downloading {repo}@{revision[:12]}. Unset it to "
                              f"fetch, or put {', '.join(src.files)} in {folder} yourself.")
    pinned = repo == src.repo and revision == src.revision
    endpoint = os.environ.get("HF_ENDPOINT") or None      # read now: huggingface_hub reads it at import
    folder.mkdir(parents=True, exist_ok=True)
    got: dict[str, str] = {}
    for fname in src.files:
        log.info("fetching %s/%s@%s → %s", repo, fname, revision[:12], folder)
        try:
            path = Path(huggingface_hub.hf_hub_download(repo_id=repo, filename=fname, revision=revision,
                                                        local_dir=folder, endpoint=endpoint, force_download=force))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{name}: could not download {fname} from {endpoint or 'the Hub'} "
                                  f"({repo}@{revision[:12]}): {_first_line(e)}. Rerun the same command to retry.") from e
        except Exception as e:  # noqa: BLE001 - the HTTP client's own errors (connection lost for good)
            raise CheckpointError(f"{name}: the download of {fname} failed ({type(e).__name__}: {_first_line(e)}). "
                                  "Rerun the same command to retry.") from e
        digest = sha256_file(path)
        want = src.sha256.get(fname) if pinned else None
        etag = _hub_sha256(repo, fname, revision, endpoint)
        for expected, what in ((want, "the sha256 pinned in the zoo"), (etag, "the Hub's sha256 (ETag)")):
            if expected and digest != expected:
                path.unlink(missing_ok=True)
                raise CheckpointError(f"{name}: {fname} has sha256 {digest}, not {what} {expected}; the file was "
                                      f"deleted. Run `python -m toolkit fetch {name} --force` to download it again.")
        got[fname] = digest
    atomic_write_text(folder / FETCH_RECORD, json.dumps(
        {"model": name, "repo": repo, "revision": revision, "endpoint": endpoint or "https://huggingface.co",
         "sha256": got}, indent=2) + "\n")
    return folder


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:300]


def _hub_sha256(repo: str, fname: str, revision: str, endpoint: str | None) -> str | None:
    """The Hub serves LFS files with their sha256 as ETag; small (git) files have a git hash."""
    try:
        meta = huggingface_hub.get_hf_file_metadata(
            huggingface_hub.hf_hub_url(repo, fname, revision=revision, endpoint=endpoint))
    except Exception:  # noqa: BLE001 - no ETag to compare with; the pinned sha256 and strict check remain
        return None
    etag = (meta.etag or "").strip('"').lower()
    return etag if _SHA256.fullmatch(etag) else None


def verify_cached(name: str, folder: Path, files: tuple[str, ...], pinned: dict[str, str]) -> None:
    """Before loading fetched files: each must match what `fetch` recorded (and the pinned sha256)."""
    rec = read_record(folder) or {}
    recorded = rec.get("sha256") if isinstance(rec.get("sha256"), dict) else {}
    for fname in files:
        want = recorded.get(fname) or pinned.get(fname)
        if not want:
            continue
        digest = sha256_file(folder / fname)
        if digest == want:
            continue
        if fname in recorded:
            raise CheckpointError(f"{name}: {folder / fname} is damaged (sha256 {digest[:16]}…, fetched as "
                                  f"{want[:16]}…). Run `python -m toolkit fetch {name} --force` to download it again.")
        raise CheckpointError(f"{name}: {folder / fname} has sha256 {digest[:16]}…, not the published file's "
                              f"{want[:16]}…. Run `python -m toolkit fetch {name} --force` to get the published file, "
                              f"or load other weights by path: load_generator('{folder}').")
