"""`python main.py export`: default video, kinds, sessions, data files and one-line errors."""
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

import engines
from engines import checkpoint as ckpt
from engines.cli.main import main
from engines.spec import ImageSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def model(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=48, size=16, channels=1)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images[..., 0], labels=ds.labels, height=ds.attributes["height"])
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=2, latent_dim=3, width=8)
    return ckpt.save(str(tmp_path / "m.safetensors"), e, data={"name": "blobs", "source": npz}), npz


def _frames(folder):
    return [np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))]


def test_default_interpolate_is_a_looping_video_of_prior_latents(model, tmp_path):
    path, _ = model
    out = str(tmp_path / "walk.mp4")
    assert main(["export", "--checkpoint", path, "--out", out, "--seconds", "0.25", "--fps", "8"]) == 0
    frames = iio.imread(out)
    assert frames.shape == (4 * 2, 64, 64, 3)  # 4 keys, 2 frames each, 4× the 16-px images
    assert iio.immeta(out)["fps"] == pytest.approx(8)


def test_session_regenerates_the_same_frames(model, tmp_path):
    path, _ = model
    a, b, s = str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "s.json")
    assert main(["export", "--checkpoint", path, "--out", a, "--seconds", "0.25", "--fps", "8", "--keys", "3",
                 "--size", "48", "--labels", "--save-session", s]) == 0
    doc = json.load(open(s))
    assert doc["schema_version"] == 1 and doc["model"]["id"].startswith("vae-") and len(doc["keys"]) == 3
    assert main(["export", "--session", s, "--out", b]) == 0  # the checkpoint comes from the session
    fa, fb = _frames(str(tmp_path / "a")), _frames(str(tmp_path / "b"))
    assert len(fa) == 6 and fa[0].shape == (48, 48) and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_grid_sweep_and_data_exports(model, tmp_path):
    path, npz = model
    g = str(tmp_path / "g.png")
    assert main(["export", "--checkpoint", path, "--kind", "grid", "--n", "6", "--cols", "3", "--size", "100",
                 "--out", g]) == 0
    assert Image.open(g).size == (3 * 30 + 4 * 2, 2 * 30 + 3 * 2)
    sw = str(tmp_path / "s.gif")
    assert main(["export", "--checkpoint", path, "--kind", "sweep", "--attribute", "height", "--seconds", "0.5",
                 "--fps", "8", "--no-loop", "--out", sw]) == 0
    assert Image.open(sw).n_frames == 5
    h5 = str(tmp_path / "l.h5")
    assert main(["export", "--checkpoint", path, "--data", npz, "--out", h5]) == 0
    from engines.export.data import read_latents

    d = read_latents(h5)
    assert d["latents"].shape == (48, 3) and d["coords"]["pca"].shape == (48, 2)
    assert main(["export", "--checkpoint", path, "--out", str(tmp_path / "p.csv")]) == 0  # data from the checkpoint
    sc = str(tmp_path / "sc.png")
    assert main(["export", "--checkpoint", path, "--kind", "grid", "--n", "4", "--scale", "3", "--out", sc]) == 0
    assert Image.open(sc).size == (2 * 48 + 3 * 2, 2 * 48 + 3 * 2)


def _cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "export", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_errors_are_one_line(model, tmp_path, capsys):
    path, _ = model
    other = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=9, latent_dim=3, width=8)
    other_path = ckpt.save(str(tmp_path / "other.safetensors"), other)
    s = str(tmp_path / "s.json")
    assert main(["export", "--checkpoint", path, "--out", str(tmp_path / "x.png"), "--fps", "4", "--seconds", "0.25",
                 "--save-session", s]) == 0
    cases = [
        (["--checkpoint", path, "--out", str(tmp_path / "x.avi")], "must end in"),
        (["--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.mp4")], "no such file"),
        (["--checkpoint", other_path, "--session", s, "--out", str(tmp_path / "y.mp4")], "made with model m"),
        (["--checkpoint", path, "--kind", "sweep", "--out", str(tmp_path / "y.mp4")], "needs --vector"),
        (["--checkpoint", path, "--fps", "0", "--out", str(tmp_path / "y.mp4")], "fps"),
        (["--checkpoint", path, "--kind", "diffusion", "--out", str(tmp_path / "y.mp4")], "diffusion"),
        (["--out", str(tmp_path / "y.mp4")], "needs --checkpoint"),
        (["--checkpoint", path, "--size", "64", "--scale", "2", "--out", str(tmp_path / "y.mp4")], "not both"),
    ]
    capsys.readouterr()
    for args, words in cases:
        rc = main(["export", *args])
        err = capsys.readouterr().err
        assert rc == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, err)
    assert not os.path.exists(tmp_path / "y.mp4") and not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    os.unlink(path)
    r = _cli("--session", s, "--out", str(tmp_path / "z.mp4"))  # the real process: exit status 2, no traceback
    assert r.returncode == 2 and "missing" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_export_never_imports_qt(model, tmp_path):
    path, _ = model
    code = ("import sys; from engines.cli.main import main; "
            f"rc = main(['export', '--checkpoint', {path!r}, '--out', {str(tmp_path / 'q.gif')!r}, '--fps', '4', "
            "'--seconds', '0.25']); assert rc == 0; "
            "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))], 'Qt imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr


def test_codebook_usage_export(tmp_path, model):
    import h5py

    _, npz = model
    from engines.data import load_dataset

    data = load_dataset(npz)
    vq = engines.create("vqvae", data.spec, device="cpu", seed=0, codebook_size=8, code_dim=4, width=8)
    path = ckpt.save(str(tmp_path / "vq.safetensors"), vq, data={"name": "blobs", "source": npz})
    h5, csv_path = str(tmp_path / "u.h5"), str(tmp_path / "u.csv")
    assert main(["export", "--checkpoint", path, "--kind", "codebook", "--out", h5]) == 0
    assert main(["export", "--checkpoint", path, "--kind", "codebook", "--out", csv_path]) == 0
    want = np.asarray(vq.code_usage(data.images))
    with h5py.File(h5) as h:
        assert np.array_equal(h["counts"][()], want) and h.attrs["codebook_size"] == 8
        assert h["code_vectors"].shape[0] == 8 and h.attrs["dead"] == int((want == 0).sum())
        p = want / want.sum()
        nz = p[p > 0]
        assert h.attrs["perplexity"] == pytest.approx(np.exp(-(nz * np.log(nz)).sum()))
    rows = open(csv_path).read().splitlines()
    assert rows[0] == "code,count,frequency" and len(rows) == 9
    assert main(["export", "--checkpoint", model[0], "--kind", "codebook", "--out", h5]) == 2  # a VAE has none


def test_diffusion_trajectory_from_the_command_line(tmp_path):
    d = engines.create("diffusion", ImageSpec(1, 16, 16), device="cpu", width=8, levels=2, attn_size=4)
    path = ckpt.save(str(tmp_path / "d.safetensors"), d)
    out = str(tmp_path / "t.png")
    assert main(["export", "--checkpoint", path, "--kind", "diffusion", "--n", "3", "--set", "sampler=ddim",
                 "--set", "steps=4", "--seconds", "0.5", "--size", "100", "--out", out]) == 0
    frames = _frames(str(tmp_path / "t"))
    # 4 steps, then the final images held 0.5 s at 12 fps; x_t above x̂₀ for 3 seeds, 100 px wide
    # at most: whole-pixel cells of (100 − 4 gaps of 2) // 3 = 30 px.
    assert len(frames) == 4 + 6 and frames[0].shape == (2 * 30 + 3 * 2, 3 * 30 + 4 * 2)
