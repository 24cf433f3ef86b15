"""Latent diffusion: both stages train, cancel cleanly and resume; the checkpoint round-trips with
its scale factor; DDIM inversion in latent space reconstructs; a reused AE checkpoint works and a
bad one is one line; the Diffusion panel's runs show images, not latent grids."""
import os

import numpy as np
import pytest
import torch

import engines
from engines import checkpoint as ckpt
from engines.cli import main
from engines.train import TrainControl, TrainOptions, train

TINY = dict(ae_width=8, latent_channels=2, width=8, blocks=1, levels=1, timesteps=100, batch_size=16,
            sample_steps=5, latent_steps=10, num_classes=3, ae_epochs=2.0, ae_lr=3e-3, lr=3e-3)


def _blobs():
    from conftest import make_blobs

    return make_blobs(n=96, size=16, channels=1)


def _engine(spec, **kw):
    return engines.create("latent-diffusion", spec, device="cpu", seed=0, **{**TINY, **kw})


def _train(engine, data, out, epochs, control=None, stop=None):
    """All progress reports of a run; `stop(progress)` → True cancels it there."""
    control = control or TrainControl()
    seen = []
    for p in train(engine, data, TrainOptions(epochs=epochs, out=out, report_every_s=0.0, eval_images=16), control):
        seen.append(p)
        if stop is not None and p.state == "running" and stop(p):
            control.cancel()
    return seen


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = _blobs()
    out = str(tmp_path_factory.mktemp("ldm") / "ldm.safetensors")
    engine = _engine(data.spec)
    seen = _train(engine, data, out, epochs=6)
    return engine, data, out, seen


def test_both_stages_train_in_one_run_and_report_their_stage(trained):
    engine, data, out, seen = trained
    assert seen[-1].state == "finished"
    stages = [p.metrics.get("stage") for p in seen if p.state == "running"]
    first = [p.metrics for p in seen if p.metrics.get("stage") == 1.0]
    second = [p.metrics for p in seen if p.metrics.get("stage") == 2.0]
    assert stages[0] == 1.0 and stages[-1] == 2.0 and stages == sorted(stages)  # stage 1, then stage 2
    assert {"ae_loss", "ae_rec", "ae_kl"} <= first[0].keys() and "loss" in second[0]
    assert first[-1]["ae_rec"] < 0.7 * first[0]["ae_rec"]  # the autoencoder learns
    steps_per_epoch = engine.epoch_steps
    assert int(engine.nets["stats"].ae_steps) == 2 * steps_per_epoch == engine.stage1_steps()
    assert engine.step == 6 * steps_per_epoch and engine.ema_age() == 4 * steps_per_epoch


def test_checkpoint_round_trips_with_identical_samples(trained):
    engine, data, out, _ = trained
    loaded = ckpt.load(out, device="cpu").engine
    assert loaded.name == "latent-diffusion" and loaded.latent_shape == (2, 4, 4)
    for kw in ({}, {"sampler": "ddim", "steps": 4, "label": 1}):
        assert torch.equal(engine.sample(4, seed=3, **kw), loaded.sample(4, seed=3, **kw))
    x = data.images[:3]
    assert torch.equal(engine.encode(x), loaded.encode(x))
    assert int(loaded.nets["stats"].ae_steps) == int(engine.nets["stats"].ae_steps)


def test_scale_factor_is_measured_stored_and_used(trained):
    engine, data, out, _ = trained
    from safetensors import safe_open

    with safe_open(out, framework="pt") as f:
        stored = float(f.get_tensor("model/stats.scale"))
    assert stored == pytest.approx(engine.scale) and stored > 0
    x = torch.from_numpy(data.images[:64]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        z = engine.first.encode(x)
        assert torch.allclose(engine.to_model(x), z * stored)
        assert torch.allclose(engine.view(engine.to_model(x)), engine.first.decode(z).clamp(0, 1), atol=1e-5)
    # measured on one batch: the training latents, scaled, have close to unit variance
    assert 0.7 < float((z * stored).std()) < 1.4
    fresh = _engine(data.spec)
    assert float(fresh.nets["stats"].scale) == 0 and fresh.scale == 1.0  # not measured before stage 2


def test_ddim_inversion_in_latent_space_reconstructs(trained):
    engine, data, out, _ = trained
    engine = ckpt.load(out, device="cpu").engine
    engine.config.latent_steps = 50
    x = data.images[:8]
    rec = engine.reconstruct(x)  # the first stage alone
    z = engine.encode(x)
    assert z.shape == (8, 2, 4, 4)
    assert torch.isfinite(z).all()
    back = engine.decode(z)
    err = float((back - rec).abs().mean())
    other = float((back - rec.roll(1, 0)).abs().mean())
    assert err < 0.03 and err < 0.2 * other, (err, other)


@pytest.mark.parametrize("stage", (1, 2))
def test_cancel_in_either_stage_leaves_a_clean_checkpoint_that_resumes(tmp_path, stage):
    data = _blobs()
    out = str(tmp_path / "ldm.safetensors")
    engine = _engine(data.spec)
    seen = _train(engine, data, out, epochs=3, stop=lambda p: p.metrics.get("stage") == stage and p.step >= 2)
    assert seen[-1].state == "cancelled" and seen[-1].checkpoint == out
    assert os.listdir(tmp_path) == ["ldm.safetensors"]  # no temporary or half-written file
    loaded = ckpt.load(out, device="cpu").engine
    ae_steps = int(loaded.nets["stats"].ae_steps)
    if stage == 1:
        assert 2 <= ae_steps == loaded.step < 2 * engine.epoch_steps and float(loaded.nets["stats"].scale) == 0
    else:
        assert ae_steps == 2 * engine.epoch_steps < loaded.step and float(loaded.nets["stats"].scale) > 0
    # the resumed run finishes both stages
    rest = _train(loaded, data, out, epochs=3)
    assert rest[-1].state == "finished" and loaded.step == 3 * loaded.epoch_steps
    assert int(loaded.nets["stats"].ae_steps) == 2 * loaded.epoch_steps
    assert rest[-2].metrics.get("stage") == 2.0


@pytest.fixture
def npz_data(tmp_path):
    ds = _blobs()
    p = tmp_path / "blobs.npz"
    np.savez(p, images=ds.images[..., 0], labels=ds.labels)
    return str(p)


def test_cli_train_sample_encode_evaluate(tmp_path, npz_data, capsys):
    out = str(tmp_path / "ldm.safetensors")
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main(["train", "--engine", "latent-diffusion", "--data", npz_data, "--epochs", "3", "--out", out] + sets) == 0
    assert "stage=" in capsys.readouterr().err
    npz = str(tmp_path / "s.npz")
    assert main(["sample", "--checkpoint", out, "--n", "4", "--out", npz, "--set", "steps=3"]) == 0
    assert np.load(npz)["images"].shape[:3] == (4, 16, 16)
    h5 = str(tmp_path / "z.h5")
    assert main(["encode", "--checkpoint", out, "--data", npz_data, "--out", h5]) == 0
    assert main(["evaluate", "--checkpoint", out, "--n", "32", "--json", "--quick"]) == 0


def test_reusing_an_autoencoder_checkpoint(tmp_path, npz_data, capsys):
    ae_path = str(tmp_path / "ae.safetensors")
    assert main(["train", "--engine", "ae", "--data", npz_data, "--epochs", "2", "--set", "latent_dim=6",
                 "--set", "width=8", "--out", ae_path]) == 0
    ae = ckpt.load(ae_path, device="cpu").engine
    out = str(tmp_path / "ldm.safetensors")
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main(["train", "--engine", "latent-diffusion", "--data", npz_data, "--epochs", "2", "--out", out,
                 "--set", f"autoencoder={ae_path}"] + sets) == 0
    os.remove(ae_path)  # the model's file holds both stages
    ldm = ckpt.load(out, device="cpu").engine
    assert ldm.latent_shape == (6, 1, 1) and not ldm.first.trainable and "ae" not in ldm.optimizers
    assert int(ldm.nets["stats"].ae_steps) == 0 and ldm.ema_age() == ldm.step > 0  # stage 1 skipped
    x = _blobs().images[:5]
    with torch.inference_mode():
        xs = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
        assert torch.allclose(ldm.first.encode(xs).flatten(1), ae._encode(xs))  # the AE's own weights
    assert torch.allclose(ldm.reconstruct(x), ae.decode(ae.encode(x)))
    assert ldm.sample(3, seed=1).shape == (3, 1, 16, 16)
    capsys.readouterr()


def test_a_bad_autoencoder_is_one_clear_line(tmp_path, npz_data, capsys):
    base = ["train", "--engine", "latent-diffusion", "--data", npz_data, "--epochs", "1",
            "--out", str(tmp_path / "x.safetensors")]
    assert main(base + ["--set", f"autoencoder={tmp_path / 'missing.safetensors'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint at" in err[0] and "Traceback" not in err[0]
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(base + ["--set", f"autoencoder={bad}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "autoencoder" in err[0]
    from engines.config import ConfigError
    from engines.spec import ImageSpec

    with pytest.raises(ValueError, match="multiples of 4"):
        _engine(ImageSpec(1, 10, 10))
    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models")
    with pytest.raises(ConfigError, match="is for 28×28×1 images, this model for 16×16×1"):
        _engine(ImageSpec(1, 16, 16), autoencoder=os.path.join(models, "ae-digits-28.safetensors"))
    with pytest.raises(ConfigError, match="no exact encoder"):  # a diffusion model only inverts
        _engine(ImageSpec(1, 28, 28), autoencoder=os.path.join(models, "diffusion-digits-28.safetensors"))


def test_diffusion_panel_runs_show_decoded_images(trained):
    from explorer.panels.diffusion import jobs

    engine, data, out, _ = trained
    gen = jobs.run(engine, jobs.RunRequest(sampler="ddim", steps=4, n=2, seed=5))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        traj = stop.value
    assert len(traj.x_t) == len(traj.x0) == 5
    assert all(f.shape == (2, 16, 16, 1) and f.dtype == np.uint8 for f in traj.x_t + traj.x0)  # images, not 4×4 grids
    same = engine.sample(2, seed=5, sampler="ddim", steps=4, label=-1, guidance=1.0)
    from engines.data.dataset import to_uint8

    assert np.abs(traj.result.astype(int) - to_uint8(same).astype(int)).max() <= 1
    x, shown, abar = jobs.noise_job((engine, data.images[0], 50, 0))
    assert x.shape == (1, 2, 4, 4) and shown.shape == (16, 16, 1)
