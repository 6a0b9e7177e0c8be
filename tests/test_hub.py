"""`python -m toolkit fetch biggan-deep-*` against a local stand-in for the Hugging Face Hub.

The server (127.0.0.1, started here; HF_ENDPOINT points at it) answers what huggingface_hub asks:
`HEAD`/`GET /{repo}/resolve/{revision}/{file}` with `X-Repo-Commit`, `ETag` (the sha256 for the
weights, as the Hub does for LFS files), `Content-Length` and `Range` support, and
`/api/models/{repo}/revision/{revision}`. It serves a tiny random-weight BigGAN-deep 256×256 in the
pytorch-pretrained-biggan layout and can drop a transfer part-way or serve damaged bytes.
Nothing here reaches the network.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

pytest.importorskip("huggingface_hub")
pytest.importorskip("scipy")
pytest.importorskip("pytorch_pretrained_biggan")

import toolkit  # noqa: E402
from toolkit import render, sample_latents, zoo  # noqa: E402
from toolkit.checkpoints import CheckpointError, load_file  # noqa: E402
from toolkit.cli import main  # noqa: E402
from toolkit.hub import HubSource  # noqa: E402

from test_biggan import make_reference, write_dir  # noqa: E402

REPO = "nct-test/BigGAN-deep-256"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# A 256×256 BigGAN-deep small enough for CPU tests: six ×2 blocks, widths 4…32, attention mid-way.
TINY256 = dict(output_dim=256, z_dim=16, class_embed_dim=16, channel_width=4, num_classes=1000,
               layers=[(True, 16, 8), (True, 8, 4), (True, 4, 4), (True, 4, 2), (True, 2, 2), (True, 2, 1)],
               attention_layer_position=3, eps=1e-4, n_stats=51)


class FakeHub:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.drop_after: dict[str, int] = {}      # file → bytes sent before the first GET is cut
        self.damage: set[str] = set()             # files served with a flipped byte
        self.log: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):          # quiet
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                hub.log.append((self.command, self.path, self.headers.get("Range")))
                m = re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", self.path)
                if m and m.group(1) == REPO:
                    data = json.dumps({"id": REPO, "sha": COMMIT,
                                       "siblings": [{"rfilename": f} for f in hub.files]}).encode()
                    return self._send(200, data, {"Content-Type": "application/json"}, body)
                m = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", self.path)
                if not m or m.group(1) != REPO or m.group(2) not in (COMMIT, "main") or m.group(3) not in hub.files:
                    return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, body)
                name = m.group(3)
                data = hub.files[name]
                etag = hashlib.sha256(data).hexdigest() if name.endswith(".bin") else hashlib.sha1(data).hexdigest()
                if name in hub.damage:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
                start = 0
                rng = self.headers.get("Range")
                if rng and body:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                cut = hub.drop_after.pop(name, None) if body and not rng else None
                self._send(206 if start else 200, data[start:], headers, body, cut=cut)

            def _send(self, status, data, headers, body, cut=None):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data if cut is None else data[:cut])
                    if cut is not None:               # drop the connection mid-body
                        self.wfile.flush()
                        self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, name: str):
        return [(m, r) for m, p, r in self.log if m == "GET" and p.endswith("/" + name)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("src") / "biggan-deep-256"
    write_dir(d, make_reference(TINY256, seed=5))
    return {n: (d / n).read_bytes() for n in ("config.json", "pytorch_model.bin")}, d


@pytest.fixture
def hub(files, tmp_path, monkeypatch):
    server = FakeHub(dict(files[0]))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("NCT_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("NCT_BIGGAN_DIR", "NCT_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(zoo.BIGGAN_HUB, 256, HubSource(REPO, COMMIT, ("config.json", "pytorch_model.bin")))
    yield server
    server.close()


def same_model(files, gen) -> None:
    ref = load_file(files[1]).eval()
    z = sample_latents(gen, [1, 2], truncation=0.5)
    assert torch.equal(render(gen, z, [207, 1], truncation=0.5), render(ref, z, [207, 1], truncation=0.5))


def test_load_without_files_names_the_fetch_command(hub):
    with pytest.raises(CheckpointError, match=r"run `python -m toolkit fetch biggan-deep-256` once"):
        toolkit.load_generator("biggan-deep-256", device="cpu")
    with pytest.raises(CheckpointError, match=r"fetch biggan-deep-512 --repo OWNER/NAME --revision COMMIT"):
        toolkit.load_generator("biggan-deep-512", device="cpu")
    assert hub.log == []                          # loading never downloads


def test_fetch_downloads_verifies_records_and_loads(hub, files, tmp_path, capsys):
    assert main(["fetch", "biggan-deep-256"]) == 0
    d = tmp_path / "cache" / "biggan-deep-256"
    assert {p.name for p in d.iterdir()} >= {"config.json", "pytorch_model.bin", "fetch.json"}
    rec = json.loads((d / "fetch.json").read_text())
    assert rec["repo"] == REPO and rec["revision"] == COMMIT
    assert rec["sha256"]["pytorch_model.bin"] == hashlib.sha256(files[0]["pytorch_model.bin"]).hexdigest()
    heads = [p for m, p, _ in hub.log if m == "HEAD"]
    assert f"/{REPO}/resolve/{COMMIT}/pytorch_model.bin" in heads       # the pinned commit, not a branch
    same_model(files, toolkit.load_generator("biggan-deep-256", device="cpu"))
    # A second fetch finds the files current and transfers nothing.
    n = len(hub.gets("pytorch_model.bin"))
    assert main(["fetch", "biggan-deep-256"]) == 0
    assert len(hub.gets("pytorch_model.bin")) == n


def test_interrupted_transfer_is_resumed_with_a_range_request(hub, files, tmp_path, monkeypatch):
    """huggingface_hub writes whole chunks (10 MB by default); with 64 KiB chunks this 0.5 MB file
    is resumed from the last complete chunk before the cut, as a 211 MB file would be."""
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    size = len(files[0]["pytorch_model.bin"])
    cut = size // 3
    hub.drop_after["pytorch_model.bin"] = cut
    assert main(["fetch", "biggan-deep-256"]) == 0
    gets = hub.gets("pytorch_model.bin")
    assert len(gets) == 2 and gets[0] == ("GET", None)
    start = int(re.fullmatch(r"bytes=(\d+)-", gets[1][1]).group(1))
    assert 0 < start <= cut and start % (1 << 16) == 0
    got = (tmp_path / "cache" / "biggan-deep-256" / "pytorch_model.bin").read_bytes()
    assert got == files[0]["pytorch_model.bin"]


def test_damaged_download_is_refused_and_refetch_offered(hub, tmp_path, capsys):
    hub.damage.add("pytorch_model.bin")
    assert main(["fetch", "biggan-deep-256"]) == 1
    err = capsys.readouterr().err
    assert "not the Hub's sha256 (ETag)" in err and "python -m toolkit fetch biggan-deep-256 --force" in err
    assert not (tmp_path / "cache" / "biggan-deep-256" / "pytorch_model.bin").exists()


def test_pinned_sha256_mismatch_is_refused(hub, monkeypatch, capsys):
    monkeypatch.setitem(zoo.BIGGAN_HUB, 256, HubSource(REPO, COMMIT, ("config.json", "pytorch_model.bin"),
                                                        sha256={"pytorch_model.bin": "0" * 64}))
    assert main(["fetch", "biggan-deep-256"]) == 1
    assert "not the sha256 pinned in the zoo" in capsys.readouterr().err


def test_cache_damaged_after_fetch_is_refused_at_load_then_refetched(hub, files, tmp_path):
    assert main(["fetch", "biggan-deep-256"]) == 0
    w = tmp_path / "cache" / "biggan-deep-256" / "pytorch_model.bin"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"is damaged.*fetch biggan-deep-256 --force"):
        toolkit.load_generator("biggan-deep-256", device="cpu")
    assert main(["fetch", "biggan-deep-256", "--force"]) == 0
    same_model(files, toolkit.load_generator("biggan-deep-256", device="cpu"))


def test_weights_that_fail_the_key_check_are_refused(hub, files, capsys):
    state = torch.load(files[1] / "pytorch_model.bin", weights_only=True)
    state.pop("generator.gen_z.bias")
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    hub.files["pytorch_model.bin"] = buf.getvalue()
    assert main(["fetch", "biggan-deep-256"]) == 1
    err = capsys.readouterr().err
    assert "missing keys (1): generator.gen_z.bias" in err and "--force" in err


@pytest.mark.parametrize("var", ["NCT_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_refuses_to_download(hub, monkeypatch, capsys, var):
    monkeypatch.setenv(var, "1")
    assert main(["fetch", "biggan-deep-256"]) == 1
    assert f"offline mode ({var}=1)" in capsys.readouterr().err
    assert hub.log == []


def test_unpinned_model_needs_repo_and_commit(hub, capsys):
    assert main(["fetch", "biggan-deep-512"]) == 1
    assert "no Hugging Face Hub repository is pinned" in capsys.readouterr().err
    assert main(["fetch", "biggan-deep-512", "--repo", REPO, "--revision", "main"]) == 1
    assert "not a 40-character commit hash" in capsys.readouterr().err
    assert hub.log == []
