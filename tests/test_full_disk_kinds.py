"""Issue #17, writes, for the newer writers: Compare's CSV and samples PNG (`compare A B --csv
--samples`), the directions strip (`directions --out`) and its JSON (`--json` into a file on the
full disk), the PixelCNN's raster video (`sample --video`) and completions (`sample --complete`).
On a full 4 MiB tmpfs each exits 2 with one `error:` line, the previous file survives byte for
byte, and no temp is left; a `sample --video` killed with -9 while writing leaves the previous
video intact and the next write into the folder removes its temp. The disk and the kill helper
are tests/test_full_disk.py's (a tmpfs mounted here as root; injected ENOSPC where mounting is not
permitted, printed)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from engines import atomic
from tests.compare_models import digits
from tests.test_full_disk import ROOT, _kill_when_writing, _snapshot, disk  # noqa: F401 (the fixture)

TINY = {
    "pixelcnn": {"hidden": 4, "layers": 2, "kernel": 3, "batch_size": 16},
    "flow": {"steps": 1, "width": 4, "levels": 2, "batch_size": 16},
    "vae": {"latent_dim": 3, "width": 8},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the conftest's isolation, for this module's shared models
        mp.setenv("LATENT_EXPLORER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        folder = tmp_path_factory.mktemp("fd-kinds")
        data = digits()
        yield {f: _save(folder / f"{f}-digits.safetensors", f, data) for f in TINY}


def _save(path, family, data) -> str:
    """A tiny model of `family` trained 3 steps on the digits, saved with the data it was trained on
    (as tests/compare_models.save_model, whose `steps` argument would clash with the flow's)."""
    import engines
    from engines import checkpoint as ckpt

    e = engines.create(family, data.spec, device="cpu", seed=0, **TINY[family])
    train = data.split("train").images
    rng = np.random.default_rng(0)
    for _ in range(3):
        e.train_step(train[rng.choice(len(train), 16, replace=False)])
    return ckpt.save(str(path), e, data=data.describe(), include_optimizer=False)


def _commands(models, out) -> dict:
    """kind: (the file it writes, its arguments)."""
    pix, flow, vae = models["pixelcnn"], models["flow"], models["vae"]
    compare = ["compare", pix, flow, "--n", "16", "--seeds", "2", "--device", "cpu"]
    return {
        "compare-csv": (out("table.csv"), compare + ["--csv", out("table.csv")]),
        "compare-png": (out("samples.png"), compare + ["--samples", out("samples.png")]),
        "directions-strip": (out("strip.png"), ["directions", "--checkpoint", vae, "--method", "sefa", "--n", "2",
                                                "--out", out("strip.png"), "--device", "cpu"]),
        "raster-video": (out("raster.mp4"), ["sample", "--checkpoint", pix, "--n", "4", "--video", out("raster.mp4"),
                                             "--out", out("grid.png"), "--device", "cpu"]),
        "completions": (out("complete.png"), ["sample", "--checkpoint", pix, "--complete", "2", "--per-image", "2",
                                              "--out", out("complete.png"), "--device", "cpu"]),
    }


def test_new_writers_on_a_full_disk_exit_2_with_one_line(disk, models, capsys):
    from engines.cli.main import main

    cmds = _commands(models, lambda name: os.path.join(disk.dir, name))
    good = dict(cmds)  # the good files, written by the commands themselves (Compare's two at once)
    good["compare-csv"] = (None, cmds["compare-csv"][1] + ["--samples", cmds["compare-png"][0]])
    del good["compare-png"]
    for kind, (_, argv) in good.items():
        assert main(argv) == 0, (kind, capsys.readouterr().err)
    capsys.readouterr()
    before = {kind: _snapshot(target) for kind, (target, _) in cmds.items()}
    grids = {n: _snapshot(os.path.join(disk.dir, n)) for n in ("grid.png",)}
    disk.fill(leave=0)
    for kind, (target, argv) in cmds.items():
        rc = main(argv)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        with capsys.disabled():
            print(f"\n{kind} ({disk.method}): rc {rc}: {lines}")
        assert rc == 2, (kind, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and "disk full" in lines[0], (kind, err)
        assert "Traceback" not in err and os.path.basename(target) in lines[0], (kind, err)
        assert _snapshot(target) == before[kind], kind
        assert disk.temps() == [], (kind, disk.temps())
    assert {n: _snapshot(os.path.join(disk.dir, n)) for n in grids} == grids
    disk.empty()
    assert main(cmds["completions"][1][:-4] + ["--seed", "3"] + cmds["completions"][1][-4:]) == 0  # room again
    assert _snapshot(cmds["completions"][0]) != before["completions"] and disk.temps() == []


def test_directions_json_into_a_full_disk_is_one_line(disk, models):
    """`directions --json > file` on a full disk: the JSON cannot be flushed; one line, exit 2 —
    not Python's "Exception ignored" report."""
    import subprocess

    if not disk.mounted:  # an injected ENOSPC reaches atomic writes only, not a redirected stdout
        pytest.skip("stdout into a full disk needs a real full disk: mounting a tmpfs is not permitted here")
    out = os.path.join(disk.dir, "directions.json")
    disk.fill(leave=0)
    env = {**os.environ, "PYTHONPATH": ROOT}
    with open(out, "w") as f:
        r = subprocess.run([sys.executable, "main.py", "directions", "--checkpoint", models["vae"], "--method", "sefa",
                            "--n", "2", "--json", "--device", "cpu"], cwd=ROOT, env=env, stdout=f,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    print(f"{disk.method}: rc {r.returncode}: {lines}")
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "disk full" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_kill_9_during_the_raster_video_keeps_the_previous_one(tmp_path, models):
    import imageio.v3 as iio

    pix = models["pixelcnn"]
    out = str(tmp_path / "raster.mp4")
    argv = ["sample", "--checkpoint", pix, "--n", "4", "--video", out, "--out", str(tmp_path / "g.png"), "--device", "cpu"]
    from engines.cli.main import main

    assert main(argv) == 0
    before = _snapshot(out)
    frames = len(iio.imread(out))
    env = {**os.environ, "PYTHONPATH": ROOT}
    # long enough to be caught writing: many frames, large ones (64 × 64 × 16 per frame)
    slow = [sys.executable, "main.py", "sample", "--checkpoint", pix, "--n", "64", "--video", out, "--scale", "16",
            "--frames", "10000", "--fps", "120", "--out", str(tmp_path / "g.png"), "--device", "cpu"]
    tmp = _kill_when_writing(slow, str(tmp_path), env)
    assert tmp.endswith("-raster.mp4")
    assert _snapshot(out) == before and len(iio.imread(out)) == frames
    atomic.write_text(str(tmp_path / "next.txt"), "the next write into the folder")
    assert [n for n in os.listdir(tmp_path) if n.startswith(atomic.PREFIX)] == []
    assert np.asarray(iio.imread(out)).shape[0] == frames
