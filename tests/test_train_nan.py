"""NaN during training (issue #17): a loss or the weights turning NaN mid-run stop it, and the
checkpoint kept is the last one whose weights are all finite and which samples finite images;
a damaged training state on resume is a one-line error."""
import os
import subprocess
import sys

import pytest
import torch

import engines
from engines import checkpoint as ckpt
from engines.config import ConfigError
from engines.train import TrainControl, TrainOptions, check_resume_state, nonfinite_tensors, run_to_end, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"vae": {"latent_dim": 2, "width": 4, "batch_size": 16},
        "gan": {"latent_dim": 4, "width": 4, "batch_size": 16, "invert_steps": 2, "invert_restarts": 1}}
K = 5  # the step that goes wrong


def _kept_is_good(out: str, step: int) -> None:
    loaded = ckpt.load(out, device="cpu")
    assert loaded.engine.step == step
    for name, v in loaded.engine.nets.state_dict().items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), name
    assert not nonfinite_tensors(loaded.engine)
    imgs = loaded.engine.sample(4, seed=0)
    assert torch.isfinite(torch.as_tensor(imgs, dtype=torch.float32)).all()


def _run(engine, ds, out):
    # checkpoint_every_s=0: a checkpoint after every step, so the one before the bad step is there.
    return run_to_end(train(engine, ds, TrainOptions(epochs=100, out=out, checkpoint_every_s=0), TrainControl()))


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_nan_loss_keeps_last_finite_checkpoint(name, tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64)
    e = engines.create(name, ds.spec, device="cpu", **TINY[name])
    original = type(e).train_step

    def poisoned(self, batch):
        terms = original(self, batch)
        if self.step >= K:  # the loss reported NaN (the step itself may or may not have been taken)
            key = "loss" if "loss" in terms else next(iter(terms))
            terms = {**terms, key: float("nan")}
        return terms

    e.train_step = poisoned.__get__(e)
    out = str(tmp_path / f"{name}.safetensors")
    last = _run(e, ds, out)
    assert last.state == "failed" and "NaN" in last.message and out in last.message, last.message
    _kept_is_good(out, K - 1)


@pytest.mark.parametrize("name,net", [("vae", "decoder"), ("gan", "generator_ema"), ("gan", "generator")])
def test_nan_weights_with_finite_loss_are_never_saved(name, net, tmp_path, tiny_dataset):
    """The GAN case of the issue: the losses of a step were finite but the update (or the EMA
    average after it) left NaN weights; the save after it used to overwrite the good file."""
    ds = tiny_dataset(n=64)
    e = engines.create(name, ds.spec, device="cpu", **TINY[name])
    nets = [k for k in e.nets if k.startswith(net)] or list(e.nets)
    original = type(e).train_step

    def poisoned(self, batch):
        terms = original(self, batch)
        if self.step == K:
            with torch.no_grad():
                p = next(self.nets[nets[0]].parameters())
                p.view(-1)[0] = float("nan")
        return terms  # finite

    e.train_step = poisoned.__get__(e)
    out = str(tmp_path / f"{name}.safetensors")
    last = _run(e, ds, out)
    assert last.state == "failed", last.message
    assert "weights became NaN/Inf" in last.message and out in last.message, last.message
    assert last.step == K
    _kept_is_good(out, K - 1)


def test_nan_weights_before_the_first_save_write_nothing(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64)
    e = engines.create("vae", ds.spec, device="cpu", **TINY["vae"])
    with torch.no_grad():
        next(e.nets.parameters()).view(-1)[0] = float("inf")
    out = str(tmp_path / "never.safetensors")
    last = run_to_end(train(e, ds, TrainOptions(epochs=1, out=out, checkpoint_every_s=1e9), TrainControl()))
    assert last.state == "failed" and "nothing was saved" in last.message
    assert not os.path.exists(out)


@pytest.mark.parametrize("state,needle", [
    ({"elapsed_s": "abc"}, "elapsed_s"), ({"elapsed_s": float("nan")}, "elapsed_s"), ({"epochs": -5}, "epochs"),
    ({"epochs": 0}, "epochs"), ({"step": -1}, "step"), ({"step": 10**30}, "step"), ({"seed": 1.5}, "seed"),
    ({"world_size": 0}, "world_size"), ({"effective_batch": True}, "effective_batch"), ([], "not an object"),
])
def test_damaged_training_state_is_a_config_error(state, needle):
    with pytest.raises(ConfigError, match=needle):
        check_resume_state(state)


def test_resume_of_damaged_state_is_one_line(tmp_path, tiny_dataset, capsys):
    from engines.cli import main

    ds = tiny_dataset(n=64)
    e = engines.create("vae", ds.spec, device="cpu", **TINY["vae"])
    data = str(tmp_path / "d.npz")
    import numpy as np

    np.savez(data, images=ds.images, labels=ds.labels)
    bad = str(tmp_path / "bad.safetensors")
    ckpt.save(bad, e, data={"name": "d", "source": data}, train_state={"elapsed_s": "yesterday", "epochs": 1})
    assert main(["train", "--resume", bad, "--data", data, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # Refused when the checkpoint's metadata is read (before any training state is used).
    assert len(err) == 1 and "elapsed_s" in err[0] and "damaged" in err[0], err
    # Weights that hold NaN (written by something else): refused on resume, in process.
    e2 = engines.create("vae", ds.spec, device="cpu", **TINY["vae"])
    with torch.no_grad():
        next(e2.nets.parameters()).view(-1)[0] = float("nan")
    e2.resume_state = {"step": 3, "elapsed_s": 1.0}
    with pytest.raises(ConfigError, match="NaN"):
        run_to_end(train(e2, ds, TrainOptions(epochs=1), TrainControl()))
    # And as a real process: exit 2, one line, no traceback.
    r = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train", "--resume", bad, "--data", data,
                        "--epochs", "1", "--device", "cpu"], capture_output=True, text=True, cwd=str(tmp_path),
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"epochs": float("nan")}, {"minutes": -1}, {"minutes": float("inf")},
                                {"seed": -1}, {"seed": 1.5}, {"checkpoint_every_s": float("nan")},
                                {"report_every_s": -1}, {"eval_images": -3}, {"epochs": "10"}])
def test_train_options_are_bounded(kw):
    with pytest.raises(ConfigError):
        TrainOptions(**kw)


def test_prior_training_never_saves_nan_weights(tmp_path, tiny_dataset):
    """The VQ prior's own loop checks its weights before saving too: a step that leaves NaN in the
    prior (with a finite loss) stops the run as failed, and the checkpoint on disk is unchanged."""
    import torch

    import engines
    from engines import checkpoint as ckpt
    from engines.vq.prior_train import train_prior

    ds = tiny_dataset(n=32, size=16)
    e = engines.create("vqvae", ds.spec, device="cpu", seed=0, codebook_size=8, code_dim=4, width=8, prior_dim=16,
                       prior_layers=1, prior_heads=2)
    path = str(tmp_path / "vq.safetensors")
    ckpt.save(path, e)
    before = open(path, "rb").read()
    real_step = e.prior_step
    calls = {"n": 0}

    def poisoned(grids):
        loss = real_step(grids)
        calls["n"] += 1
        if calls["n"] == 3:
            with torch.no_grad():
                next(e.nets["prior"].parameters()).fill_(float("nan"))
        return loss

    e.prior_step = poisoned
    states = [p for p in train_prior(e, ds, epochs=3, out=path, report_every_s=0)]
    assert states[-1].state == "failed" and "NaN/Inf" in states[-1].message
    assert open(path, "rb").read() == before
    assert ckpt.load(path, device="cpu").engine is not None
