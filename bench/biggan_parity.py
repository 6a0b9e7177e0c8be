"""BigGAN-deep parity figures: our generator vs pytorch-pretrained-biggan on the released
configurations (random weights of the real shapes, random BN statistics; no download).

    python -m bench.biggan_parity [--res 128 256 512]

For each configuration it saves the reference's state dict + config.json, loads the directory
through `toolkit.load_generator`, and prints the max abs difference of full images (batch 1) for
one-hot classes at several truncations (stored levels and between them), a soft class vector, and
a uniform label swap against the reference fed the mixed class vector. Needs the test
dependencies (requirements-dev.txt); minutes of CPU time. docs/BIGGAN.md quotes its output.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import toolkit
from toolkit import LabelSwap, render

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_biggan import real_reference, write_dir  # noqa: E402  (one place for the random reference)


def measure(resolution: int) -> list[tuple[str, float]]:
    ref = real_reference(resolution)
    with tempfile.TemporaryDirectory() as tmp:
        write_dir(Path(tmp) / "m", ref)
        gen = toolkit.load_generator(str(Path(tmp) / "m"), device="cpu")
    g = torch.Generator().manual_seed(resolution)
    z = torch.randn(1, 128, generator=g)
    husky, pom = F.one_hot(torch.tensor([250]), 1000).float(), F.one_hot(torch.tensor([259]), 1000).float()
    soft = torch.softmax(3 * torch.randn(1, 1000, generator=g), 1)
    rows = []
    with torch.no_grad():
        for t in (1.0, 0.4, 0.37, 0.3):
            rows.append((f"one-hot, truncation {t}", (render(gen, z * t, husky, truncation=t) - ref(z * t, husky, t)).abs().max().item()))
        rows.append(("soft class vector, truncation 0.5",
                     (render(gen, z, soft, truncation=0.5) - ref(z, soft, 0.5)).abs().max().item()))
        swap = render(gen, z, husky, swap=LabelSwap([259], torch.full((1, 8, 8), 0.3)), truncation=0.5)
        rows.append(("uniform label swap 0.3 → ref(0.7·husky + 0.3·Pomeranian)",
                     (swap - ref(z, 0.7 * husky + 0.3 * pom, 0.5)).abs().max().item()))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[128, 256, 512], choices=[128, 256, 512])
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for res in args.res:
        t0 = time.perf_counter()
        rows = measure(res)
        print(f"biggan-deep-{res} ({time.perf_counter() - t0:.0f} s)")
        for name, diff in rows:
            print(f"  {name:<60} max |ours − reference| = {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
