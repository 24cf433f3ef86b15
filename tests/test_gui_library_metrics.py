"""The model library shows each checkpoint's metrics (list line and tooltip) and evaluates a
checkpoint from its context menu, storing the result like `main.py evaluate`."""
import os
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.data import load_dataset  # noqa: E402

TRAINED = {"loss": 282.98, "recon": 268.73, "kl": 14.25, "neg_elbo": 282.98, "test_mse": 0.00286,
           "test_psnr": 25.4355, "test_elbo_nats": 282.6379, "test_iwae_nats": 280.68, "test_iwae_k": 8.0}
EVALUATED = {"mse": 0.0029, "psnr": 25.37, "elbo_nats": 283.14, "iwae_nats": 279.93, "iwae_k": 64.0,
             "cfid": 12.345, "cfid_ref": 3.21, "precision": 0.8123, "recall": 0.7712, "coverage": 1.0,
             "label_tv": 0.08, "label_kl": 0.0123, "classifier_acc": 0.97, "n_test": 270, "n_samples": 1000,
             "n_ref": 1000, "label_hist": [0.5, 0.5], "label_hist_test": [0.4, 0.6], "label_names": ["a", "b"],
             "evaluated_on": "digits", "evaluated_at": time.mktime((2026, 3, 14, 15, 9, 0, 0, 0, -1))}


@pytest.fixture
def lib_env(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(models))
    return tmp_path


@pytest.fixture
def make_library(qtbot, lib_env):
    from explorer.app import make_app
    from explorer.library import Library
    from explorer.session import ModelSession
    from explorer.settings import Settings

    make_app()

    def make():
        session = ModelSession("cpu")
        lib = Library(Settings(runs_dir=str(lib_env / "runs")), session=session)
        qtbot.addWidget(lib)
        lib.show()
        with qtbot.waitSignal(lib.refreshed, timeout=10_000):
            lib.refresh()
        return lib, session

    return make


def save_tiny(path, ds, metrics, data=None):
    e = engines.create("vae", ds.spec, device="cpu", latent_dim=2, width=8, iwae_k=4)
    ckpt.save(str(path), e, data=data or ds.describe(), metrics=metrics,
              train_state={"elapsed_s": 75.0, "state": "finished", "step": 1800000})
    return str(path)


def text(item):
    return item.text().replace("\u00a0", " ")  # items keep their parts together with no-break spaces


def item_for(lib, name):
    for i in range(lib.list.count()):
        item = lib.list.item(i)
        if item.text().startswith(name + "\n"):
            return item
    raise AssertionError(f"{name} not listed")


def test_library_shows_metrics_formatted(make_library, lib_env, tiny_dataset):
    ds = tiny_dataset()
    save_tiny(lib_env / "models" / "trained.safetensors", ds, TRAINED)
    save_tiny(lib_env / "models" / "evaluated.safetensors", ds, {**TRAINED, **EVALUATED})
    save_tiny(lib_env / "models" / "bare.safetensors", ds, {})
    lib, _ = make_library()

    trained = item_for(lib, "trained")
    assert text(trained).splitlines()[-1] == "−ELBO 282.6 · PSNR 25.4 dB"
    tip = trained.toolTip()
    assert "Test split when training ended:" in tip
    assert "−ELBO (bound on −log p(x)): 282.6 nats/image, lower is better" in tip
    assert "−IWAE bound on −log p(x) (k = 8): 280.7 nats/image" in tip
    assert "reconstruction PSNR: 25.4 dB, higher is better" in tip
    assert "steps: 1,800,000" in tip and "Evaluated" not in tip

    evaluated = item_for(lib, "evaluated")
    lines = text(evaluated).splitlines()
    assert lines[-2:] == ["−ELBO 283.1 · PSNR 25.4 dB", "FD 12.3 · P 0.81 · R 0.77"]
    tip = evaluated.toolTip()
    assert "Evaluated 2026-03-14 15:09 on digits (270 test images, 1,000 samples):" in tip
    assert "Fréchet distance of classifier features: 12.3 (perfect-model reference 3.21), lower is better" in tip
    assert "precision (realism): 0.81" in tip and "recall (variety): 0.77" in tip
    assert "mode coverage: 100.0%" in tip and "−IWAE bound on −log p(x) (k = 64): 279.9 nats/image" in tip
    assert "Last training steps: loss 283.0 · −ELBO 283.0 nats" in tip
    assert "evaluated_at" not in tip and "e+09" not in tip and "label_hist" not in tip

    bare = item_for(lib, "bare")
    assert text(bare).splitlines()[-1].startswith("latent 2")  # no metrics line at all
    assert "Evaluate" in [a.text() for a in lib.context_menu(bare).actions()]


def test_evaluate_from_the_library_stores_and_shows_metrics(qtbot, make_library, lib_env, tiny_dataset):
    ds = tiny_dataset(n=120)
    data = lib_env / "blobs.npz"
    np.savez(data, images=ds.images[..., 0], labels=ds.labels)
    path = save_tiny(lib_env / "models" / "blobs-vae.safetensors", load_dataset(str(data)), TRAINED,
                     data=load_dataset(str(data)).describe())
    lib, session = make_library()
    busy = []
    session.busy_changed.connect(busy.append)
    with qtbot.waitSignal(lib.evaluated, timeout=60_000) as got:
        assert lib.evaluate(path, n=40)
        assert not lib.evaluate(path, n=40)  # one evaluation per checkpoint at a time
    assert got.args[0] == path and "cfid" in got.args[1]
    assert any(b.startswith("evaluating blobs-vae") for b in busy) and session.busy_text == ""
    stored = ckpt.read_info(path).metrics
    assert stored["evaluated_at"] > 0 and stored["cfid"] == pytest.approx(got.args[1]["cfid"])
    assert stored["test_psnr"] == TRAINED["test_psnr"]  # training metrics are kept
    qtbot.waitUntil(lambda: "FD " in text(item_for(lib, "blobs-vae")), timeout=10_000)
    assert "Evaluated " in item_for(lib, "blobs-vae").toolTip()

    # The data set has gone: a message, nothing stored, nothing left busy.
    os.unlink(data)
    errors = []
    session.error.connect(lambda title, msg: errors.append(msg))
    with qtbot.waitSignal(lib.evaluation_failed, timeout=30_000) as failed:
        lib.evaluate(path, n=40)
    assert "not available" in failed.args[1] and errors and session.busy_text == ""
