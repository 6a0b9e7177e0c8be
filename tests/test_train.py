"""Training pipeline: the materials data builder, the crop sampler, GAN steps, resume, export, terrain64."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit import LabelSwap, load_generator, render, sample_latents
from toolkit.train import materials
from toolkit.cli import main as cli_main
from toolkit.train.augment import cutout, parse_policy, translate
from toolkit.train.data import MaterialCrops
from toolkit.train.folders import DataError, ImageFolderData, open_training_data
from toolkit.train.discriminator import ProjectionDiscriminator
from toolkit.train.loop import SMOKE, TrainConfig, Trainer, export
from toolkit.train.loop import main as train_main

T, S = materials.TERRAIN_DIR, materials.SKY_DIR


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids spin-waiting on a shared 2-core machine (≈10× faster)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- labelling rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("path, cls", [
    (T + "temperate/grass_01.png.cached.dds", "grass"),
    (T + "dirty_sand.dds.cached.dds", "sand"),             # "dirty" is not the token "dirt"
    (T + "india/forestfloor_001.png.cached.dds", "foliage"),
    (T + "alpine_cliff_b.dds.cached.dds", "rock"),
    (T + "polar_ice_b.dds.cached.dds", "snow"),
    (T + "temp_dirt_mud_mk1.dds.cached.dds", "dirt"),
    (T + "sahara/sand_01_wet.png.cached.dds", "sand"),
    (S + "cirrus/top.dds.cached.dds", "sky"),
    (S + "cirrus/front.dds.cached.dds", "sky"),
])
def test_classify_labels_by_name(path, cls):
    assert materials.classify(path).cls == cls


@pytest.mark.parametrize("path, reason", [
    (T + "temperate/grass_02_norm.png.cached.dds", "normal/specular"),
    (T + "alpine_snow_a_spec.png.cached.dds", "normal/specular"),
    (T + "sahara/sand_01_norm_no_parallax.png.cached.dds", "normal/specular"),
    (T + "foo_normal.png", "normal/specular"),
    (T + "steppe/grass_dirt_01.png.cached.dds", "mixed"),
    (T + "snow rocks.dds.cached.dds", "mixed"),
    (T + "road_med.dds.cached.dds", "not a labelled material"),
    (T + "medit_sea_depths.dds.cached.dds", "not a labelled material"),
    (T + "blue.png.cached.dds", "no class keyword"),
    (S + "mountainous/front.dds.cached.dds", "mountains"),
    (T + "textures.xml", "not an image"),
])
def test_classify_skips(path, reason):
    src = materials.classify(path)
    assert src.cls == "" and reason in src.skip_reason


def test_sky_side_faces_keep_upper_band_only():
    assert materials.classify(S + "sunset/left.dds.cached.dds").region.startswith("upper")
    assert materials.classify(S + "sunset/top.dds.cached.dds").region == "full"


def _png(rng, w, h, gradient=False) -> bytes:
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if gradient:                   # bright at the top, dark at the bottom: a sky with an "up"
        a = np.repeat(np.linspace(255, 0, h).astype(np.uint8)[:, None, None], w, 1).repeat(3, 2)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny public.zip with every rule exercised, built into a data folder."""
    tmp = tmp_path_factory.mktemp("materials")
    rng = np.random.default_rng(0)
    grass = _png(rng, 256, 256)
    files = {
        T + "temperate/grass_01.png": grass,
        T + "temperate/grass_01_norm.png": _png(rng, 256, 256),
        T + "temperate/grass_01_copy.png": grass,                                # same pixels: deduplicated
        T + "sand_01.png": _png(rng, 1024, 1024),
        T + "snow_01.png": _png(rng, 200, 200),
        T + "grass_dirt_01.png": _png(rng, 256, 256),
        S + "clear/top.png": _png(rng, 256, 256, gradient=True),
        S + "clear/front.png": _png(rng, 512, 512, gradient=True),
        "art/textures/ui/grass_button.png": _png(rng, 64, 64),
    }
    zpath = tmp / "public.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    out = tmp / "data"
    rows = materials.build_from_zip(zpath, out)
    return out, rows


def test_build_manifest_dedup_and_skips(built):
    out, rows = built
    by_zip = {r["zip_path"]: r for r in rows}
    assert set(by_zip) == {T + "temperate/grass_01.png", T + "sand_01.png", T + "snow_01.png",
                           S + "clear/top.png", S + "clear/front.png"}
    with open(out / "skipped.csv") as f:
        skipped = {r["zip_path"]: r["reason"] for r in csv.DictReader(f)}
    assert skipped[T + "temperate/grass_01_copy.png"] == f"duplicate of {T}temperate/grass_01.png"
    assert "normal/specular" in skipped[T + "temperate/grass_01_norm.png"]
    assert "mixed" in skipped[T + "grass_dirt_01.png"]
    assert materials.read_manifest(out) == [{k: str(v) for k, v in r.items()} for r in rows]
    for r in rows:
        assert r["license"] == "CC-BY-SA-3.0" and len(r["sha256"]) == 64
        im = Image.open(out / r["file"])
        assert im.size == (r["width"], r["height"]) and max(im.size) <= materials.COMPACT_MAX


def test_build_crop_windows(built):
    _, rows = built
    r = {x["zip_path"]: x for x in rows}
    sand = r[T + "sand_01.png"]            # 1024 native → 512 compact: 128 native px = 64 compact px
    assert (sand["width"], sand["window_min"], sand["window_max"]) == (512, 64, 128)
    grass = r[T + "temperate/grass_01.png"]  # native scale: windows of 128..256 px
    assert (grass["window_min"], grass["window_max"]) == (128, 256)
    snow = r[T + "snow_01.png"]              # smaller than two windows: capped by the image
    assert (snow["window_min"], snow["window_max"]) == (128, 200)
    front = r[S + "clear/front.png"]         # upper 40% band of a 512 face
    assert (front["width"], front["height"]) == (512, round(512 * materials.SKY_BAND))
    assert front["window_max"] <= front["height"]


def test_cli_build_from_zip(built, tmp_path):
    out, rows = built
    zpath = out.parent / "public.zip"
    assert materials.main(["build", "--out", str(tmp_path / "d"), "--zip", str(zpath)]) == 0
    assert [r["zip_path"] for r in materials.read_manifest(tmp_path / "d")] == [r["zip_path"] for r in rows]


def _tar_xz_with_zip(payload: bytes) -> bytes:
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        for name, data in [("./usr/share/doc/x", b"doc"), ("./" + materials.ZIP_MEMBER, payload)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_public_zip_from_deb_without_dpkg(tmp_path):
    """The pure-Python path (ar archive → data.tar.xz → public.zip) for machines without dpkg-deb."""
    def member(name: str, data: bytes) -> bytes:
        head = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return head + data + (b"\n" if len(data) % 2 else b"")
    payload = b"PK-not-really-a-zip" * 100
    deb = tmp_path / "0ad-data_0.0.26-1_all.deb"
    deb.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("control.tar.xz", b"xyz")
                    + member("data.tar.xz", _tar_xz_with_zip(payload)))
    dst = io.BytesIO()
    with open(deb, "rb") as f:
        materials._extract_from_ar(f, dst)
    assert dst.getvalue() == payload
    with pytest.raises(RuntimeError, match="not a Debian package"):
        materials._extract_from_ar(io.BytesIO(b"garbage!" * 10), io.BytesIO())


def test_crops_shapes_balance_and_upright_sky(built):
    out, _ = built
    data = MaterialCrops(out, split=None, size=64)
    assert data.class_names == ["grass", "sand", "snow", "sky"]
    rng = torch.Generator().manual_seed(0)
    x, y = data.sample(64, rng)
    assert x.shape == (64, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert set(y.tolist()) == {0, 1, 2, 3}
    k = data.class_names.index("sky")
    sky, _ = data.sample(16, rng, classes=torch.full((16,), k))
    assert (sky[:, :, :8].mean((1, 2, 3)) > sky[:, :, -8:].mean((1, 2, 3))).all(), "sky was turned upside down"
    # terrain gets flipped/turned: some crops of a top-bright picture come out bottom-bright
    data.images[0] = [data.images[k][0][:, :128, :128].clone()]
    data.windows[0] = [(64, 128)]
    grass, _ = data.sample(32, rng, classes=torch.zeros(32, dtype=torch.long))
    assert (grass[:, :, :8].mean((1, 2, 3)) < grass[:, :, -8:].mean((1, 2, 3))).any()


def test_materials_crops_need_a_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="no manifest"):
        MaterialCrops(tmp_path, size=32)


# -- your own image folder (issue 15 part 4) ----------------------------------------------------------
def _folder(root, classes=("cat", "dog", "owl"), sizes=((40, 56), (20, 24), (33, 33))):
    """One sub-folder per class, images of several sizes (one nested deeper, one smaller than 32 px)."""
    rng = np.random.default_rng(3)
    for c in classes:
        for j, (w, h) in enumerate(sizes):
            d = root / c / ("deeper" if j == 2 else "")
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{j}.png").write_bytes(_png(rng, w, h))
    return root


def test_image_folder_any_sizes(tmp_path):
    data = open_training_data(_folder(tmp_path / "d", classes=("owl", "cat", "dog")), size=32)
    assert isinstance(data, ImageFolderData)
    assert data.class_names == ["cat", "dog", "owl"] and data.counts == [3, 3, 3]     # nested image found
    # every image resized so that its shorter side is 32 (the 20×24 one upscaled), aspect kept
    assert sorted(tuple(im.shape[1:]) for im in data.images[0]) == [(32, 32), (38, 32), (45, 32)]
    x, y = data.sample(12, torch.Generator().manual_seed(0))
    assert x.shape == (12, 3, 32, 32) and y.shape == (12,) and x.min() >= -1 and x.max() <= 1


def test_image_folder_crops_cover_the_long_side_and_mirror(tmp_path):
    a = np.zeros((32, 64, 3), np.uint8)
    a[:, 32:] = 255                                  # left half black, right half white
    (tmp_path / "only").mkdir()
    Image.fromarray(a).save(tmp_path / "only" / "x.png")
    data = ImageFolderData(tmp_path, size=32)
    x, _ = data.sample(64, torch.Generator().manual_seed(1))
    means = x.mean((1, 2, 3))
    assert means.min() < -0.9 and means.max() > 0.9, "crops must move along the long side"
    left, right = x[:, :, :, :4].mean((1, 2, 3)), x[:, :, :, -4:].mean((1, 2, 3))
    assert ((left > 0.9) & (right < -0.9)).any(), "some crops must be mirrored"
    assert (x[:, :, :4].mean((1, 2, 3)) - x[:, :, -4:].mean((1, 2, 3))).abs().max() < 1e-6, "no vertical flips"


def test_hugging_face_metadata_csv(tmp_path):
    rng = np.random.default_rng(4)
    (tmp_path / "imgs").mkdir()
    rows = ["file_name,label"]
    for i, label in enumerate(["10", "2", "2", "10", "3"]):
        (tmp_path / "imgs" / f"{i}.jpg").write_bytes(_png(rng, 40, 40))
        rows.append(f"imgs/{i}.jpg,{label}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    data = open_training_data(tmp_path, size=32)
    assert data.class_names == ["2", "3", "10"] and data.counts == [2, 1, 2]      # numeric labels sort as numbers
    (tmp_path / "metadata.csv").write_text("file_name,label\n../secret.png,a\n")
    with pytest.raises(DataError, match="outside"):
        open_training_data(tmp_path, size=32)
    (tmp_path / "metadata.csv").write_text("file_name,label\nimgs/missing.jpg,a\n")
    with pytest.raises(DataError, match="line 2: no file 'imgs/missing.jpg'"):
        open_training_data(tmp_path, size=32)
    (tmp_path / "metadata.csv").write_text("file,label\nimgs/0.jpg,a\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['file_name'\]"):
        open_training_data(tmp_path, size=32)


def test_bad_folders_say_what_and_where(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        open_training_data(tmp_path / "nope", size=32)
    (tmp_path / "loose.png").write_bytes(_png(np.random.default_rng(0), 40, 40))
    with pytest.raises(DataError, match="no class sub-folders.*move them into FOLDER/<class>"):
        open_training_data(tmp_path, size=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class folder 'empty' holds no images"):
        open_training_data(tmp_path, size=32)
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg: cannot read this image"):
        open_training_data(tmp_path, size=32)


def test_cli_train_on_a_folder_resumes_exactly(tmp_path):
    """`python -m toolkit train` on a 3-class folder: 3 steps in one go == 2 steps, stop, resume 1."""
    data = _folder(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["train", "--data", str(data), "--smoke", "--resolution", "32", "--device", "cpu"]
    assert cli_main(common + ["--out", str(one), "--steps", "3"]) == 0
    assert cli_main(common + ["--out", str(two), "--steps", "2"]) == 0
    assert cli_main(common + ["--out", str(two), "--steps", "3"]) == 0
    a = torch.load(one / "checkpoint.pt", weights_only=True)
    b = torch.load(two / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for name in ("g", "ema", "d"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k} differs after resume"
    gen = load_generator(str(two / "ema.safetensors"), device="cpu")
    assert gen.class_names == ["cat", "dog", "owl"] and gen.resolution == 32
    assert (two / "samples" / "step000002.png").exists() and (two / "samples" / "step000003.png").exists()
    z = sample_latents(gen, [0, 1])
    assert torch.isfinite(render(gen, z, ["owl", "cat"])).all()


def test_portable_checkpoint_continues_a_run_elsewhere(tmp_path):
    """RUN/portable.safetensors (fp16 G/EMA/D, step, RNG; no pickle) continues a run in a new folder."""
    data = _folder(tmp_path / "data")
    run = tmp_path / "run"
    assert cli_main(["train", "--data", str(data), "--out", str(run), "--smoke", "--steps", "2"]) == 0
    full = torch.load(run / "checkpoint.pt", weights_only=True)
    t = Trainer(TrainConfig(**SMOKE), ImageFolderData(data, 32), torch.device("cpu"))
    t.load_portable(run / "portable.safetensors")
    assert t.step_count == 2 and torch.equal(t.rng.get_state(), full["rng"])
    for name in ("g", "ema", "d"):
        for k, v in getattr(t, name).state_dict().items():
            ref = full[name][k]
            assert torch.equal(v, ref.half().float() if ref.is_floating_point() else ref), f"{name}.{k}"
    other = tmp_path / "elsewhere"
    assert cli_main(["train", "--data", str(data), "--out", str(other), "--smoke", "--steps", "3",
                     "--resume-from", str(run / "portable.safetensors")]) == 0
    with open(other / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [3]
    with pytest.raises(ValueError, match="other settings"):
        Trainer(TrainConfig(**{**SMOKE, "ch": 8}), ImageFolderData(data, 32),
                torch.device("cpu")).load_portable(run / "portable.safetensors")


def test_resume_drops_log_rows_after_the_checkpoint(tmp_path):
    """A run killed between checkpoints logged steps it will redo: the resumed log has each step once."""
    data = _folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(run), "--smoke", "--ckpt-every", "2"]
    assert cli_main(args + ["--steps", "2"]) == 0
    with open(run / "log.csv", "a") as f:
        f.write("3,0.5,0.5,0.5,1.0\n")             # a step logged, then the process died before checkpointing
    assert cli_main(args + ["--steps", "4"]) == 0
    with open(run / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


def test_one_class_folder_gives_a_one_class_model(tmp_path):
    data = _folder(tmp_path / "data", classes=("texture",))
    assert cli_main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--smoke", "--steps", "1"]) == 0
    gen = load_generator(str(tmp_path / "r" / "ema.safetensors"), device="cpu")
    assert gen.n_classes == 1 and gen.class_names == ["texture"]


def test_cli_train_reports_a_bad_folder(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert cli_main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--smoke"]) == 1
    assert "class folder 'a' holds no images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--resolution", "48"])


# -- training ---------------------------------------------------------------------------------------
def _trainer(data_dir, **kw):
    cfg = TrainConfig(**{**SMOKE, **kw})
    return Trainer(cfg, MaterialCrops(data_dir, split=None, size=cfg.resolution), torch.device("cpu"))


def test_discriminator_projection_and_spectral_norm():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(3, [8, 16, 16], 16)
    x = torch.randn(2, 3, 16, 16)
    a, b = d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1]))
    assert a.shape == (2,) and not torch.allclose(a, b), "the class must change the score (projection)"
    d.train()
    for _ in range(30):                       # power iterations converge: σ(W / σ̂) ≈ 1
        d(x, torch.tensor([0, 1]))
    with torch.no_grad():
        w = d.blocks[1].c1.weight.flatten(1)
        v = torch.randn(w.shape[1], generator=torch.Generator().manual_seed(0))
        for _ in range(100):                  # our own power iteration for the largest singular value
            v = w.T @ (w @ v)
            v = v / v.norm()
        assert (w @ v).norm().item() == pytest.approx(1.0, abs=0.05)


def test_training_steps_are_finite_and_resume_exactly(built, tmp_path):
    out, _ = built
    a = _trainer(out)
    before = {k: v.clone() for k, v in a.g.state_dict().items()}
    for _ in range(2):
        row = a.step()
        assert all(np.isfinite(v) for v in row.values())
    assert any(not torch.equal(before[k], v) for k, v in a.g.state_dict().items()), "G did not train"
    a.save(tmp_path / "ck.pt")
    a.step()
    b = _trainer(out)
    b.load(tmp_path / "ck.pt")
    assert b.step_count == 2
    b.step()
    for name in ("g", "ema", "d"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs after resume"


def test_resume_refuses_other_settings(built, tmp_path):
    out, _ = built
    a = _trainer(out)
    a.save(tmp_path / "ck.pt")
    with pytest.raises(ValueError, match="other settings"):
        _trainer(out, ch=8).load(tmp_path / "ck.pt")


def test_export_round_trip(built, tmp_path):
    out, _ = built
    t = _trainer(out)
    t.step()
    gen = export(t, tmp_path / "g.safetensors", n_batches=2)
    loaded = load_generator(str(tmp_path / "g.safetensors"), device="cpu")
    assert loaded.class_names == t.data.class_names and loaded.resolution == 32
    ref = gen.half().float()                # fp16 on disk: compare with the rounded weights
    z = sample_latents(loaded, [1, 2, 3])
    y = torch.tensor([0, 1, 3])
    assert torch.allclose(render(loaded, z, y), render(ref.eval(), z, y), atol=1e-5)
    # standing statistics were re-estimated: not the initial zeros/ones
    assert loaded.block2.b1.running_var.sub(1).abs().max() > 1e-3


def test_cli_smoke_run_resumes(built, tmp_path):
    out, _ = built
    run = tmp_path / "run"
    assert train_main(["--data", str(out), "--out", str(run), "--smoke", "--steps", "2"]) == 0
    assert train_main(["--data", str(out), "--out", str(run), "--smoke",
                       "--export", str(tmp_path / "e.safetensors")]) == 0
    with open(run / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert (run / "samples" / "step000002.png").exists() and (tmp_path / "e.safetensors").exists()


def test_warm_start_then_d_only_warmup(built, tmp_path):
    out, _ = built
    src = _trainer(out)
    src.step()
    export(src, tmp_path / "v1.safetensors", n_batches=2)
    t = _trainer(out, init_from=str(tmp_path / "v1.safetensors"), d_warmup=1)
    t.warm_start(tmp_path / "v1.safetensors")
    v1 = load_generator(str(tmp_path / "v1.safetensors"), device="cpu").state_dict()
    for k, v in t.g.state_dict().items():
        assert torch.equal(v, v1[k]) and torch.equal(t.ema.state_dict()[k], v1[k]), k
    params = lambda m: dict(m.named_parameters())          # BN running stats move in any G forward
    d0 = {k: v.clone() for k, v in t.d.state_dict().items()}
    row = t.step()                              # warm-up: D trains, G and EMA stay
    assert np.isnan(row["loss_g"]) and t.step_count == 1
    assert all(torch.equal(v, v1[k]) for k, v in params(t.g).items())
    assert all(torch.equal(v, v1[k]) for k, v in params(t.ema).items())
    assert any(not torch.equal(d0[k], v) for k, v in t.d.state_dict().items())
    t.step()
    assert any(not torch.equal(v, v1[k]) for k, v in params(t.g).items())
    other = _trainer(out, ch=8)
    with pytest.raises(ValueError, match="cannot warm-start"):
        other.warm_start(tmp_path / "v1.safetensors")


def test_diffaugment_translation_and_cutout():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16) + 1
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    t = translate(x, g)
    g.set_state(state)
    assert torch.equal(t, translate(x, g)), "same RNG state, same augmentation (resumable)"
    for b in range(2):                          # a pure shift: a block of the image, zeros around it
        nz = t[b, 0] != 0
        rows, cols = nz.any(1).nonzero()[:, 0], nz.any(0).nonzero()[:, 0]
        h, w = len(rows), len(cols)
        assert nz.sum() == h * w and h >= 14 and w >= 14              # shifts ≤ 1/8 of 16 px
        block = t[b][:, rows][:, :, cols]
        assert any(torch.equal(block, x[b, :, i:i + h, j:j + w]) for i in range(17 - h) for j in range(17 - w))
    c = cutout(torch.ones(64, 1, 16, 16), torch.Generator().manual_seed(1))
    zeros = (c == 0).sum((1, 2, 3))
    assert zeros.max() == 64 and (zeros <= 64).all() and (zeros > 0).all()    # an 8×8 square, maybe clipped
    xg = x.clone().requires_grad_(True)
    translate(xg, g).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy("translation,color")


# -- the shipped model ------------------------------------------------------------------------------
def test_terrain64_renders_distinct_classes():
    gen = load_generator("terrain64", device="cpu")
    assert gen.class_names == materials.CLASSES and gen.resolution == 64
    z = sample_latents(gen, [5, 6])
    imgs = torch.stack([render(gen, z, [c, c]) for c in gen.class_names])      # [K, 2, 3, 64, 64]
    assert torch.isfinite(imgs).all()
    assert (imgs.std(dim=(3, 4)).mean(2) > 0.02).all(), "a flat (degenerate) image"
    means = imgs.mean(dim=(1, 3, 4))                                             # [K, 3] mean colour
    dist = torch.cdist(means, means) + torch.eye(len(means)) * 9
    assert dist.min() > 0.02, "two classes render the same colours"
    # label swap changes the image only where it is asked to (up to the receptive field)
    w = torch.zeros(1, 1, 64, 64)
    w[..., :, 40:] = 1
    swapped = render(gen, z[:1], ["grass"], swap=LabelSwap(torch.tensor([[6]]), w, range(gen.n_stages)))
    diff = (swapped - imgs[0, :1]).abs().mean((0, 1, 2))
    assert diff[44:].mean() > 4 * diff[:24].mean()
