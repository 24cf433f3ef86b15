"""Headless servers: `train`, `evaluate` and `export` run without ever importing Qt."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "shiboken6")

def test_train_evaluate_export_never_import_qt(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64, size=16)
    npz = str(tmp_path / "blobs.npz")
    # No labels: evaluate then skips training its feature classifier (20 s) but runs the rest.
    np.savez(npz, images=ds.images[..., 0])
    ckpt = str(tmp_path / "m.safetensors")
    commands = [
        ["train", "--engine", "ae", "--data", npz, "--epochs", "1", "--device", "cpu",
         "--set", "latent_dim=2", "--set", "width=8", "--out", ckpt],
        ["evaluate", "--checkpoint", ckpt, "--n", "16", "--quick", "--device", "cpu"],
        ["export", "--checkpoint", ckpt, "--kind", "grid", "--n", "4", "--out", str(tmp_path / "grid.png"),
         "--device", "cpu"],
    ]
    # One fresh interpreter runs the commands, then lists every Qt module imported on the way.
    code = (
        "import sys\n"
        "from engines.cli.main import build_parser, main\n"
        "subcommands = build_parser()._subparsers._group_actions[0].choices\n"
        f"for argv in {commands!r}:\n"
        "    assert argv[0] in subcommands, ('no such command', argv[0])\n"
        "    rc = main(argv)\n"
        "    assert rc == 0, (argv[0], rc)\n"
        "    print('ran', argv[0])\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT!r})\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ran = [line for line in r.stdout.splitlines() if line.startswith("ran ")]
    assert ran == ["ran train", "ran evaluate", "ran export"], r.stdout[-2000:]
    assert os.path.exists(ckpt) and os.path.exists(tmp_path / "grid.png")
