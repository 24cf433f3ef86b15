"""The shared training loop: progress, resume, cancel, pause, NaN stop."""
import math
import threading
import time

import pytest
import torch

import engines
from engines import checkpoint as ckpt
from engines.train import TrainControl, TrainOptions, run_to_end, train


def make(ds, name="vae", seed=0):
    cfg = {"n_components": 3} if name == "pca" else {"latent_dim": 3, "width": 8, "batch_size": 16}
    return engines.create(name, ds.spec, device="cpu", seed=seed, **cfg)


def weights(e):
    return {k: v.clone() for k, v in e.nets.state_dict().items()}


@pytest.mark.parametrize("name", ("pca", "ae", "vae"))
def test_train_to_end_writes_checkpoint(tmp_path, tiny_dataset, name):
    ds = tiny_dataset()
    out = str(tmp_path / "m.safetensors")
    states = [p for p in train(make(ds, name), ds, TrainOptions(epochs=3, out=out, report_every_s=0))]
    last = states[-1]
    assert last.state == "finished" and last.checkpoint == out
    info = ckpt.read_info(out)
    assert info.data["name"] == "blobs" and info.train_state["state"] == "finished"
    assert any(k.startswith("test_") for k in info.metrics)
    if name != "pca":
        n_train = len(ds.train_idx)
        assert last.step == 3 * (n_train // 16)
        running = [p for p in states if p.state == "running"]
        assert running and all(p.images_per_s >= 0 for p in running)
        assert all(math.isfinite(v) for v in last.metrics.values())


def test_loss_goes_down(tiny_dataset):
    ds = tiny_dataset(n=128)
    e = make(ds, "vae")
    ps = [p for p in train(e, ds, TrainOptions(epochs=15, report_every_s=0)) if p.state == "running"]
    assert ps[-1].metrics["neg_elbo"] < 0.8 * ps[0].metrics["neg_elbo"]


def test_resume_continues_exactly(tmp_path, tiny_dataset):
    ds = tiny_dataset()
    straight = make(ds)
    run_to_end(train(straight, ds, TrainOptions(epochs=4, seed=7)))

    first = make(ds)
    out = str(tmp_path / "half.safetensors")
    run_to_end(train(first, ds, TrainOptions(epochs=2, seed=7, out=out)))
    resumed = ckpt.load(out, device="cpu").engine
    assert resumed.step == first.step
    run_to_end(train(resumed, ds, TrainOptions(epochs=4, seed=7)))
    assert resumed.step == straight.step
    a, b = weights(straight), weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cancel_within_one_step_keeps_valid_checkpoint(tmp_path, tiny_dataset):
    ds = tiny_dataset()
    e = make(ds)
    control = TrainControl()
    out = str(tmp_path / "c.safetensors")
    gen = train(e, ds, TrainOptions(epochs=1000, out=out, report_every_s=0), control)
    steps_seen = []
    for p in gen:
        steps_seen.append(p.step)
        if p.step >= 5 and not control.cancelled:
            control.cancel()
            at_cancel = p.step
    assert p.state == "cancelled"
    assert p.step <= at_cancel + 1
    loaded = ckpt.load(out, device="cpu")
    assert loaded.info.train_state["state"] == "cancelled"
    assert loaded.engine.step == p.step


def test_pause_and_resume_from_another_thread(tiny_dataset):
    ds = tiny_dataset()
    e = make(ds)
    control = TrainControl()
    seen = []
    control.pause()
    resumer = threading.Timer(0.3, control.resume)
    t0 = time.perf_counter()
    resumer.start()
    for p in train(e, ds, TrainOptions(epochs=1, report_every_s=0), control):
        seen.append((p.state, p.step))
    wall = time.perf_counter() - t0
    assert seen[0] == ("paused", 0)  # held before the first step …
    assert wall >= 0.3 and p.elapsed_s < wall - 0.2  # … until the other thread resumed it; the pause is not training time
    assert seen[-1][0] == "finished" and seen[-1][1] > 0


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_dataset):
    ds = tiny_dataset()
    e = make(ds, "ae")
    out = str(tmp_path / "n.safetensors")
    original = e._loss
    calls = {"n": 0}

    def poisoned(batch):
        calls["n"] += 1
        loss, terms = original(batch)
        if calls["n"] > 8:
            loss = loss * float("nan")
            terms = {**terms, "loss": loss}
        return loss, terms

    e._loss = poisoned
    # checkpoint_every_s=0: a good checkpoint after every step before the NaN.
    last = run_to_end(train(e, ds, TrainOptions(epochs=100, out=out, checkpoint_every_s=0), TrainControl()))
    assert last.state == "failed"
    assert "NaN" in last.message and out in last.message
    loaded = ckpt.load(out, device="cpu")
    assert loaded.engine.step == 8
    for v in loaded.engine.nets.state_dict().values():
        assert torch.isfinite(v.float()).all()


def test_time_limited_training(tiny_dataset):
    ds = tiny_dataset()
    last = run_to_end(train(make(ds), ds, TrainOptions(minutes=0.01)))
    assert last.state == "finished"
    assert 0.5 <= last.elapsed_s < 5
