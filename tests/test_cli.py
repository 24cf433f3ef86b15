"""The command line: names, outputs and one-line errors."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from engines import checkpoint as ckpt
from engines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def npz_data(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=80, size=16, channels=1)
    p = tmp_path / "blobs.npz"
    np.savez(p, images=ds.images[..., 0], labels=ds.labels, height=ds.attributes["height"])
    return str(p)


@pytest.fixture
def trained_vae(tmp_path, npz_data):
    out = str(tmp_path / "vae.safetensors")
    rc = main(["train", "--engine", "vae", "--data", npz_data, "--epochs", "2", "--seed", "1",
               "--set", "latent_dim=3", "--set", "width=8", "--out", out])
    assert rc == 0
    return out


def test_train_writes_checkpoint_with_settings(trained_vae):
    info = ckpt.read_info(trained_vae)
    assert info.engine == "vae" and info.config["latent_dim"] == 3 and info.config["width"] == 8
    assert info.spec.height == 16 and info.spec.channels == 1
    assert info.train_state["seed"] == 1


def test_train_size_option(tmp_path, npz_data):
    out = str(tmp_path / "p.safetensors")
    assert main(["train", "--engine", "pca", "--data", npz_data, "--size", "8", "--channels", "3",
                 "--set", "n_components=2", "--out", out]) == 0
    assert ckpt.read_info(out).spec.shape == (3, 8, 8)


def test_resume_extends_run(tmp_path, trained_vae, npz_data):
    before = ckpt.read_info(trained_vae).train_state["step"]
    assert main(["train", "--resume", trained_vae, "--data", npz_data, "--epochs", "4"]) == 0
    assert ckpt.read_info(trained_vae).train_state["step"] == 2 * before


def test_sample_png_and_npz(tmp_path, trained_vae):
    png = str(tmp_path / "s.png")
    assert main(["sample", "--checkpoint", trained_vae, "--n", "6", "--out", png, "--scale", "2"]) == 0
    assert Image.open(png).size[0] > 16
    npz = str(tmp_path / "s.npz")
    assert main(["sample", "--checkpoint", trained_vae, "--n", "6", "--seed", "3", "--out", npz,
                 "--set", "temperature=0.5"]) == 0
    with np.load(npz, allow_pickle=False) as f:
        imgs = f["images"]
    assert imgs.dtype == np.uint8 and imgs.shape == (6, 16, 16)
    npz2 = str(tmp_path / "s2.npz")
    main(["sample", "--checkpoint", trained_vae, "--n", "6", "--seed", "3", "--out", npz2, "--set", "temperature=0.5"])
    with np.load(npz2) as f:
        assert np.array_equal(f["images"], imgs)


def test_sample_rgb_npz_shape(tmp_path, npz_data):
    out = str(tmp_path / "ae.safetensors")
    main(["train", "--engine", "ae", "--data", npz_data, "--channels", "3", "--epochs", "1",
          "--set", "width=8", "--out", out])
    npz = str(tmp_path / "rgb.npz")
    assert main(["sample", "--checkpoint", out, "--n", "2", "--out", npz]) == 0
    with np.load(npz) as f:
        assert f["images"].shape == (2, 16, 16, 3)


def test_encode_to_h5(tmp_path, trained_vae, npz_data):
    out = str(tmp_path / "z.h5")
    assert main(["encode", "--checkpoint", trained_vae, "--data", npz_data, "--out", out]) == 0
    with h5py.File(out) as h:
        assert h["latents"].shape == (80, 3)
        assert h["labels"].shape == (80,)
        assert h["attributes/height"].shape == (80,)
        assert set(np.unique(h["split"][:])) == {0, 1}
        assert h.attrs["engine"] == "vae"


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"pca", "ae", "vae"} <= set(info["engines"])
    assert "torch" in info["packages"]


@pytest.mark.parametrize("argv,needle", [
    (["train", "--engine", "vae", "--data", "/no/such", "--out", "x.safetensors"], "no such built-in"),
    (["train", "--engine", "gpt", "--data", "digits", "--out", "x.safetensors"], "unknown engine"),
    (["train", "--engine", "vae", "--data", "digits", "--set", "latent_dim=abc", "--out", "x.safetensors"], "needs an integer"),
    (["train", "--engine", "vae", "--data", "digits", "--device", "cuda:0", "--out", "x.safetensors"], "CUDA is not available"),
    (["sample", "--checkpoint", "/no/file.safetensors", "--out", "x.png"], "no such file"),
    (["sample", "--checkpoint", "/no/file.safetensors", "--out", "x.jpg"], ".png"),
    (["train", "--bogus"], "unrecognized"),
])
def test_user_errors_exit_2_with_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    import torch

    if "cuda:0" in argv and torch.cuda.is_available():
        pytest.skip("CUDA present")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ex:
        raise SystemExit(main(argv))
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_corrupt_checkpoint_subprocess_no_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "sample", "--checkpoint", str(bad),
                        "--out", str(tmp_path / "x.png")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def _run_main(args, poison_qt=False, **kw):
    """`python main.py ARGS` in a fresh interpreter; with `poison_qt` PySide6 cannot be imported."""
    pre = "import sys; sys.modules['PySide6'] = None; " if poison_qt else "import sys; "
    code = pre + f"sys.argv = ['main.py'] + {list(args)!r}; import runpy; runpy.run_path('main.py', run_name='__main__')"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, **kw)


def test_app_without_pyside6_says_so_in_one_line_and_exits_2():
    r = _run_main([], poison_qt=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs PySide6" in lines[0] and "Traceback" not in r.stderr, r.stderr
    r = _run_main(["screenshot", "--out", "x.png"], poison_qt=True, timeout=60)
    assert r.returncode == 2 and "needs PySide6" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _run_main(["info", "--json"], poison_qt=True, timeout=120)  # the command line does not need it
    assert r.returncode == 0 and "engines" in json.loads(r.stdout.strip().splitlines()[-1])


def test_help_lists_screenshot_and_main_py_dispatches_it():
    r = _run_main(["--help"], timeout=60)
    assert r.returncode == 0 and "screenshot" in r.stdout and "render a panel" in r.stdout
    r = _run_main(["screenshot", "--help"], timeout=60)
    assert r.returncode == 0 and "--panel-only" in r.stdout and "more panels" not in r.stdout
    r = _run_main(["screenshot", "--panel", "nonsense", "--out", "x.png"], timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown panel 'nonsense' (available: train, manifold, arithmetic, codebook, diffusion, raster, export)"]


def test_headless_command_line_refuses_app_commands_in_one_line(capsys):
    assert main(["screenshot", "--out", "x.png"], app_commands={"screenshot": "render"}) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python main.py screenshot" in err[0]


def test_cli_modules_never_import_the_explorer():
    code = ("import sys, pkgutil, importlib, engines.cli\n"
            "for m in pkgutil.walk_packages(engines.cli.__path__, 'engines.cli.'):\n"
            "    importlib.import_module(m.name)\n"
            "from engines.cli import main\n"
            "assert main(['--help']) == 0\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'explorer']\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]
