"""Exports: timelines, frames read back from MP4/GIF/PNG, determinism, Cancel, data files, sessions."""
import json
import os

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

import engines
from engines import checkpoint as ckpt
from engines.export import (ExportError, ExportSpec, FrameStyle, GridSpec, ProgressSpec, Session, SessionError, Sweep,
                            Timeline, prior_latents, run_export)
from engines.export import data as dx
from engines.export import session as sess
from engines.export.render import render
from engines.latent.progress import run
from engines.spec import ImageSpec


@pytest.fixture(scope="module")
def engine():
    return engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=3, latent_dim=4, width=8)


def _timeline(engine, n_keys=3, seconds=0.5, fps=8, loop=True, **kw):
    return Timeline(list(prior_latents(engine, n_keys, seed=5)), seconds=seconds, fps=fps, loop=loop, **kw)


def _expected(engine, z, scale=4):
    """What a frame must show: the engine's decode of z, nearest-neighbour upscaled."""
    x = engine.decode(torch.as_tensor(np.asarray(z, np.float32)).reshape(-1, engine.latent_dim))
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return u8.repeat(scale, 1).repeat(scale, 2)


def _no_temp(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


# ---- timelines ---------------------------------------------------------------------------------------
def test_timeline_passes_keys_exactly_and_loops_without_repeating(engine):
    tl = _timeline(engine, n_keys=3, seconds=0.5, fps=8)  # 4 frames per segment
    z = tl.latents()
    assert len(z) == tl.n_frames == 12
    for i, f in enumerate(tl.key_frames()):
        assert np.array_equal(z[f], tl.keys[i])
    assert not np.array_equal(z[-1], z[0])  # the loop wraps to frame 0: no duplicate
    open_ = _timeline(engine, n_keys=3, seconds=0.5, fps=8, loop=False)
    assert len(open_.latents()) == 9 and np.array_equal(open_.latents()[-1], open_.keys[-1])
    norms = np.linalg.norm(z, axis=1)
    lerp = Timeline(tl.keys, method="lerp", seconds=0.5, fps=8).latents()
    assert norms.min() > np.linalg.norm(lerp, axis=1).min()  # slerp does not dip towards the origin
    assert Timeline.from_dict(json.loads(json.dumps(tl.to_dict()))).to_dict() == tl.to_dict()
    assert tl.frame_labels()[1] == "key 1 -> key 2"


def test_timeline_and_sweep_reject_bad_settings(engine):
    k = list(prior_latents(engine, 2, 0))
    with pytest.raises(ValueError, match="interpolation"):
        Timeline(k, method="cubic")
    with pytest.raises(ValueError, match="fps"):
        Timeline(k, fps=0)
    with pytest.raises(ValueError, match="two keys"):
        Timeline(k[:1]).latents()
    with pytest.raises(ValueError, match="dimensions"):
        Sweep(np.zeros(4), np.zeros(3))


def test_sweep_goes_there_and_back(engine):
    base, vec = np.zeros(4, np.float32), np.ones(4, np.float32)
    sw = Sweep(base, vec, -2, 2, seconds=0.5, fps=8, easing="linear", loop=True, name="smile")
    s = sw.strengths()
    assert len(s) == sw.n_frames == 8 and s[0] == -2 and s[4] == 2 and s[-1] > -2
    assert np.allclose(sw.latents(), s[:, None] * vec)
    assert sw.frame_labels()[4] == "smile s = +2.00"


# ---- formats read back ----------------------------------------------------------------------------------
def test_mp4_reads_back_with_frames_size_fps_and_content(engine, tmp_path):
    tl = _timeline(engine, seconds=0.5, fps=8)
    spec = ExportSpec("interpolate", FrameStyle(scale=4), timeline=tl)
    out = str(tmp_path / "walk.mp4")
    r = run(run_export(engine, spec, out))
    frames = iio.imread(out)
    meta = iio.immeta(out)
    assert frames.shape == (12, 64, 64, 3) and r.frames == 12 and r.size == (64, 64)
    assert meta["fps"] == pytest.approx(8) and meta.get("codec") in (None, "h264")
    z = tl.latents()
    for i in (0, 11):  # H.264 is lossy: close, not equal
        diff = np.abs(frames[i].astype(int) - _expected(engine, z[i])[0].astype(int)).mean()
        assert diff < 6, (i, diff)
    other = np.abs(frames[0].astype(int) - _expected(engine, z[6])[0].astype(int)).mean()
    assert other > diff  # the comparison can tell frames apart
    assert _no_temp(tmp_path) == []


def test_gif_loops_with_palette_and_frame_timing(engine, tmp_path):
    tl = _timeline(engine, seconds=0.5, fps=10)
    out = str(tmp_path / "walk.gif")
    run(run_export(engine, ExportSpec("interpolate", FrameStyle(scale=2), timeline=tl), out))
    with Image.open(out) as im:
        assert im.n_frames == tl.n_frames == 15 and im.size == (32, 32)
        assert im.info["loop"] == 0 and im.info["duration"] == 100
        assert im.mode == "P"
    frames = iio.imread(out)
    exp = _expected(engine, tl.latents()[[0, -1]], scale=2)
    assert np.abs(frames[0][..., :3].astype(int) - exp[0]).mean() < 3
    assert np.abs(frames[-1][..., :3].astype(int) - exp[1]).mean() < 3


def test_png_sequence_is_exact_and_deterministic(engine, tmp_path):
    tl = _timeline(engine, seconds=0.25, fps=8)
    spec = ExportSpec("interpolate", FrameStyle(scale=4), timeline=tl)
    a = run(run_export(engine, spec, str(tmp_path / "a.png")))
    b = run(run_export(engine, ExportSpec.from_dict(json.loads(json.dumps(spec.to_dict()))), str(tmp_path / "b.png")))
    assert a.path == str(tmp_path / "a") and a.digest == b.digest
    names = sorted(os.listdir(a.path))
    assert names == [f"frame_{i:05d}.png" for i in range(6)]
    for n in names:
        assert open(os.path.join(a.path, n), "rb").read() == open(os.path.join(b.path, n), "rb").read()
    first = np.asarray(Image.open(os.path.join(a.path, names[0])))
    assert np.array_equal(first, _expected(engine, tl.keys[0])[0])  # lossless: bit for bit


def test_grid_still_and_smooth_scaling_and_captions(engine, tmp_path):
    spec = ExportSpec("grid", FrameStyle(scale=2, cols=3, gap=2), grid=GridSpec(n=6, seed=1))
    r = run(run_export(engine, spec, str(tmp_path / "g.png")))
    img = np.asarray(Image.open(r.path))
    assert img.shape == (2 * 32 + 3 * 2, 3 * 32 + 4 * 2, 3)
    exp = _expected(engine, prior_latents(engine, 6, 1), scale=2)
    assert np.array_equal(img[2:34, 36:68], exp[1])  # second cell, first row
    assert (img[0] == 255).all()  # the gap is background
    smooth = next(render(engine, prior_latents(engine, 1, 0), FrameStyle(scale=3, smooth=True, labels=True),
                         captions=["hello"]))
    plain = next(render(engine, prior_latents(engine, 1, 0), FrameStyle(scale=3, smooth=True)))
    assert smooth.shape == plain.shape == (1, 48, 48, 3)
    assert not np.array_equal(smooth[0, -12:], plain[0, -12:]) and np.array_equal(smooth[0, :20], plain[0, :20])


def test_grid_video_walks_every_cell(engine, tmp_path):
    spec = ExportSpec("grid", FrameStyle(scale=1, cols=2, gap=1), grid=GridSpec(n=4, seed=0, keys=2, seconds=0.25, fps=8))
    r = run(run_export(engine, spec, str(tmp_path / "g.gif")))
    assert r.frames == 4 and r.size == (2 * 16 + 3, 2 * 16 + 3)
    frames = iio.imread(str(tmp_path / "g.gif"))[..., :3].astype(int)
    cells = [frames[:, 1 + 17 * row:17 + 17 * row, 1 + 17 * col:17 + 17 * col] for row in (0, 1) for col in (0, 1)]
    moved = [float(np.abs(c[1:] - c[:1]).max()) for c in cells]  # each cell against its first frame
    assert min(moved) > 8, moved  # every cell walks, not just one of them


# ---- cancel and failure ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["c.mp4", "c.gif", "c.png"])
def test_cancel_leaves_no_file_under_the_final_name(engine, tmp_path, name):
    tl = _timeline(engine, n_keys=4, seconds=1.0, fps=24)  # 96 frames, several batches
    gen = run_export(engine, ExportSpec("interpolate", FrameStyle(scale=2), timeline=tl), str(tmp_path / name), batch=8)
    for _ in range(3):
        next(gen)
    assert _no_temp(tmp_path)  # it was writing …
    gen.close()  # … and Cancel lands here
    assert os.listdir(tmp_path) == []


def test_failed_export_keeps_the_previous_file(engine, tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"the previous export")
    tl = _timeline(engine, seconds=1.0, fps=24)
    calls = []

    def decode(z):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("device lost")
        return engine.decode(z)

    spec = ExportSpec("interpolate", FrameStyle(scale=2), timeline=tl)
    batches = render(engine, tl.latents(), spec.style, batch=8, decoder=decode)
    from engines.export.writers import open_writer

    with pytest.raises(RuntimeError, match="device lost"):
        with open_writer(str(out), 24, 96) as w:
            for f in batches:
                w.append(f)
            w.commit()
    assert out.read_bytes() == b"the previous export" and _no_temp(tmp_path) == []


def test_export_refuses_latents_of_another_model(engine, tmp_path):
    tl = Timeline([np.zeros(7), np.ones(7)], fps=4, seconds=0.5)
    with pytest.raises(ExportError, match="7 dimensions"):
        run(run_export(engine, ExportSpec("interpolate", timeline=tl), str(tmp_path / "x.mp4")))
    with pytest.raises(ExportError, match=r"\.mp4, \.gif or \.png"):
        run(run_export(engine, ExportSpec("interpolate", timeline=_timeline(engine)), str(tmp_path / "x.avi")))


def test_training_progress_uses_the_same_seeds_per_checkpoint(engine, tmp_path):
    paths = []
    for step in (10, 5):
        e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=step, latent_dim=4, width=8)
        e.step = step
        paths.append(ckpt.save(str(tmp_path / f"s{step}.safetensors"), e))
    spec = ExportSpec("progress", FrameStyle(scale=1, labels=False),
                      progress=ProgressSpec(paths, n=2, seed=0, seconds=0.25, fps=8))
    r = run(run_export(engine, spec, str(tmp_path / "p.png")))
    frames = [np.asarray(Image.open(os.path.join(r.path, n))) for n in sorted(os.listdir(r.path))]
    assert len(frames) == 4 and np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    early = ckpt.load(paths[1], device="cpu").engine  # step 5 comes first
    exp = _expected(early, prior_latents(engine, 2, 0), scale=1)
    assert np.array_equal(frames[0][2:18, 2:18], exp[0])


# ---- data files ---------------------------------------------------------------------------------------
def test_latents_h5_and_projection_csv_round_trip(engine, tmp_path, tiny_dataset):
    from engines.latent.cache import open_latents
    from engines.latent.projection import pca_projection

    ds = tiny_dataset(n=40, size=16, channels=3)
    ls = open_latents(engine, ds, cache=False)
    pca = pca_projection(ls.latents).coords
    p = dx.write_latents(str(tmp_path / "l.h5"), ls, {"pca": pca})
    back = dx.read_latents(p)
    assert np.array_equal(back["latents"], ls.latents) and np.array_equal(back["labels"], ls.labels)
    assert np.array_equal(back["coords"]["pca"], pca)
    assert np.array_equal(back["attributes"]["height"], ls.attributes["height"])
    assert back["model_id"] == ls.model_id and back["split"].sum() == len(ls.test_idx)
    c = dx.write_projection_csv(str(tmp_path / "p.csv"), ls, {"pca": pca})
    rows = open(c).read().splitlines()
    assert rows[0] == "index,split,label,height,pca_x,pca_y" and len(rows) == 41
    assert rows[1].split(",")[2] in ("left", "mid", "right")
    with pytest.raises(ExportError, match="shape"):
        dx.write_latents(str(tmp_path / "bad.h5"), ls, {"pca": pca[:3]})


def test_vectors_and_bookmarks_export(tmp_path):
    from engines.latent.attributes import AttributeVector, load_vectors
    from engines.latent.history import Bookmarks

    v = AttributeVector("smile", np.arange(4, dtype=np.float32), "binary", "vae-1234", (4,))
    dx.write_vectors(str(tmp_path / "v.json"), [v])
    assert load_vectors(str(tmp_path / "v.json"), "vae-1234")[0].name == "smile"
    dx.write_vectors(str(tmp_path / "v.h5"), [v])
    with h5py.File(tmp_path / "v.h5") as h:
        assert np.array_equal(h["vectors/000"][()], v.vector) and h["vectors/000"].attrs["name"] == "smile"
        assert h.attrs["model_id"] == "vae-1234"
    bm = Bookmarks()
    bm.add("a", np.ones(4))
    bm.add("b", np.zeros(4))
    dx.write_bookmarks(str(tmp_path / "b.h5"), bm, "vae-1234")
    with h5py.File(tmp_path / "b.h5") as h:
        assert h["latents"].shape == (2, 4) and [s.decode() for s in h["names"][()]] == ["a", "b"]
    doc = json.load(open(dx.write_bookmarks(str(tmp_path / "b.json"), bm, "vae-1234")))
    assert [b["name"] for b in doc["bookmarks"]] == ["a", "b"]


# ---- sessions -----------------------------------------------------------------------------------------
def test_session_round_trip_and_model_checks(engine, tmp_path):
    path = ckpt.save(str(tmp_path / "m.safetensors"), engine)
    spec = ExportSpec("interpolate", FrameStyle(scale=3, labels=True), timeline=_timeline(engine))
    s = Session(model=sess.model_entry(engine, path), seed=5, sampler={"temperature": 0.8}, export=spec,
                panels={"manifold": {"projection": "pca"}})
    sess.save(str(tmp_path / "s.json"), s)
    back = sess.load(str(tmp_path / "s.json"))
    assert back.to_dict() == s.to_dict()
    sess.check_model(back, engine)  # same weights: fine
    assert sess.resolve_model(back) == path
    loaded = ckpt.load(path, device="cpu").engine
    sess.check_model(back, loaded)  # same weights from the file: fine
    other = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=4, latent_dim=4, width=8)
    with pytest.raises(SessionError, match="made with model m .*different weights"):
        sess.check_model(back, other)
    os.unlink(path)
    with pytest.raises(SessionError, match="missing"):
        sess.resolve_model(back)
    (tmp_path / "new.json").write_text(json.dumps({**s.to_dict(), "schema_version": 99}))
    with pytest.raises(SessionError, match="newer"):
        sess.load(str(tmp_path / "new.json"))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(SessionError, match="cannot read"):
        sess.load(str(tmp_path / "junk.json"))


def test_diffusion_trajectory_ends_on_the_sampled_images(tmp_path):
    from engines.export.job import DiffusionSpec

    d = engines.create("diffusion", ImageSpec(1, 16, 16), device="cpu", width=8, levels=2, attn_size=4)
    opts = {"sampler": "ddim", "steps": 4}
    spec = ExportSpec("diffusion", FrameStyle(scale=1, gap=1), options=opts,
                      diffusion=DiffusionSpec(n=2, seed=3, show="both", fps=8, hold_s=0.25))
    r = run(run_export(d, spec, str(tmp_path / "t.png")))
    frames = [np.asarray(Image.open(os.path.join(r.path, n))) for n in sorted(os.listdir(r.path))]
    assert len(frames) == r.frames == 4 + 2 and frames[0].shape == (2 * 16 + 3, 2 * 16 + 3)
    final = (d.sample(2, seed=3, **opts).clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    last = frames[-1]
    assert np.abs(last[1:17, 1:17].astype(int) - final[0]).max() <= 1  # x_t row, first seed
    assert np.abs(last[18:34, 18:34].astype(int) - final[1]).max() <= 1  # x̂₀ row, second seed
    assert not np.array_equal(frames[0], frames[-1])
    with pytest.raises(ExportError, match="trajectory"):
        run(run_export(engines.create("ae", ImageSpec(1, 16, 16), device="cpu", latent_dim=2, width=8), spec,
                       str(tmp_path / "x.png")))


def test_diffusion_export_reports_each_step_and_cancels_between_steps(tmp_path):
    """The trajectory is sampled step by step while it is written: one progress report per step,
    and closing the export (Cancel) after two steps stops the sampler there and writes nothing."""
    from engines.export.job import DiffusionSpec

    d = engines.create("diffusion", ImageSpec(1, 8, 8), device="cpu", width=8, levels=2)
    calls = []
    original = d.denoiser
    d.denoiser = lambda *a, **k: (lambda den: lambda x, t: (calls.append(t), den(x, t))[1])(original(*a, **k))
    spec = ExportSpec("diffusion", FrameStyle(scale=1), options={"sampler": "ddpm", "steps": 6},
                      diffusion=DiffusionSpec(n=1, seed=0, fps=4, hold_s=0.5))
    seen = []
    r = run(run_export(d, spec, str(tmp_path / "all.gif")), seen.append)
    steps = [p for p in seen if p.message.startswith("frame")]
    assert r.frames == 6 + 2 and len(calls) == 6 and [p.message for p in steps[:6]] == [f"frame {k}/8" for k in range(1, 7)]
    calls.clear()
    gen = run_export(d, spec, str(tmp_path / "cut.gif"))
    for _ in range(3):  # the start, then two steps
        next(gen)
    gen.close()
    assert len(calls) == 2 and not os.path.exists(tmp_path / "cut.gif")


def test_vq_prior_latents_decode_to_the_models_samples():
    vq = engines.create("vqvae", ImageSpec(3, 16, 16), device="cpu", seed=0, codebook_size=8, code_dim=4, width=8,
                        prior_dim=16, prior_layers=1, prior_heads=2)
    z = prior_latents(vq, 3, seed=5)
    assert z.shape == (3, vq.latent_dim)
    assert torch.equal(vq.decode(z), vq.sample(3, seed=5))
