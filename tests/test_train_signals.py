"""Ctrl-C / SIGTERM during `main.py train` cancel between two steps and save the state reached."""
import os
import signal
import subprocess
import sys
import time

import numpy as np

from engines import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ctrl_c_cancels_and_saves(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64, size=16)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images[..., 0])
    out = str(tmp_path / "m.safetensors")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "main.py", "train", "--engine", "ae", "--data", npz, "--minutes", "5",
                          "--device", "cpu", "--set", "latent_dim=2", "--set", "width=8", "--out", out],
                         cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        # The progress bar's first line (non-tty: one line per report) means steps are running.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = p.stderr.readline()
            if "step " in line:
                break
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, rest
    info = ckpt.read_info(out)
    assert info.train_state["state"] == "cancelled" and info.train_state["step"] >= 1
    assert "cancelled" in rest and "Traceback" not in rest


def test_sigterm_cancels_and_a_second_signal_interrupts():
    from engines.cli.terminal import _CancelOnSignals
    from engines.train import TrainControl

    control = TrainControl()
    before = signal.getsignal(signal.SIGTERM)
    with _CancelOnSignals(control):
        os.kill(os.getpid(), signal.SIGTERM)  # what torchrun forwards when it is stopped
        time.sleep(0.05)
        assert control.cancelled
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        assert interrupted
    assert signal.getsignal(signal.SIGTERM) is before
