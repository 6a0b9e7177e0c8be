"""The benchmark suite's pieces and the GPU session script's CPU smoke run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from bench import hooks, requirements_check
from bench.suite import targets_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_targets_are_computed_from_the_numbers():
    rows = [{"model": "tiny", "batch_size": 64, "swap_region_ratio": 0.97, "swap_full_ratio": 0.80,
             "blend3_cost": 4.2},
            {"model": "biggan-deep-256", "swap_region_ratio": 0.5, "blend1_cost": 1.9}]
    md = targets_markdown(rows)
    assert "| swap_region_ratio ≥ 0.95 | tiny | 64 | 0.970 | yes |" in md
    assert "| swap_full_ratio ≥ 0.85 | tiny | 64 | 0.800 | **no** |" in md
    assert "| blend3_cost ≤ 4 | tiny | 64 | 4.200 | **no** |" in md
    assert "| blend1_cost ≤ 2 | biggan-deep-256 |  | 1.900 | yes |" in md
    assert "swap_region_ratio ≥ 0.95 | biggan-deep-256" not in md      # the swap targets name their models


def test_hooks_say_not_measured_without_their_module(monkeypatch):
    monkeypatch.setattr(hooks.importlib.util, "find_spec", lambda name: None)
    for name in ("parts", "projection"):
        row = hooks.run(name, torch.device("cpu"), 1)
        assert row["result"].startswith("not measured") and name in row["result"]
    assert "unknown hook" in hooks.run("nope", torch.device("cpu"), 1)["result"]


def test_requirements_check_reports_pins_and_missing(tmp_path, capsys):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\ntorch==0.0.1\nnumpy>=1.0  # why\nno-such-package-xyz==1.0\n-r other.txt\n")
    assert requirements_check.requirements(req) == [("torch", "==0.0.1"), ("numpy", ">=1.0"),
                                                    ("no-such-package-xyz", "==1.0")]
    assert requirements_check.main(["--requirements", str(req), "--wheels", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    assert re.search(r"torch .*differs from the pin", out)
    assert re.search(r"numpy .* ok", out)
    assert "no-such-package-xyz" in out and "MISSING" in out
    assert requirements_check.main(["--requirements", str(req), "--wheels", str(tmp_path / "none"),
                                    "--optional", "No-Such-Package-XYZ"]) == 0


@pytest.mark.slow
def test_gpu_session_smoke_runs_every_step_and_leaves_few_files(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "WORK": str(work), "PYTHON": sys.executable, "GPU_SESSION_SECONDS": "400"}
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), "--smoke"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = (out / "session.log").read_text()
    for step in ("environment", "install", "bench_small", "bench_biggan", "latency_256", "train"):
        assert re.search(rf"step {step}: ok \(rc 0", log), f"step {step} did not succeed:\n{log}"
    assert "step materials: SKIPPED" in log                       # the smoke data has no materials build
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)   # the device tool's limits
    assert {"session.log", "summary.md", "results.tar.gz", "ema.safetensors", "samples.png"} <= set(files)
    summary = (out / "summary.md").read_text()
    assert "| target | model |" in summary and "swap_region_ratio" in summary and "batch runner" not in summary
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        small = next(n for n in names if n.endswith("-small.json"))
        data = json.load(tar.extractfile(small))
    assert data["models"][0]["model"] == "tiny" and data["models"][0]["plain_img_s"] > 0
    assert any(e.get("hook") == "parts" for e in data["extra"])
    assert any("end_to_end_ratio" in e for e in data["extra"])     # the batch runner ran end to end
