"""Training on several processes: a real 2-process gloo run on CPU under torchrun.

One launch for the whole module (process start-up is most of its cost): tests/distributed_worker.py
runs several scenarios in one process group, then `main.py train` itself."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import engines
from conftest import make_blobs
from engines import checkpoint as ckpt
from engines.data import load_dataset
from engines.distributed import DistributedError, Processes, resume_batch
from engines.train import TrainOptions, run_to_end, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this PyTorch build has no gloo backend")


def torchrun(*args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM lets torchrun stop its workers (they run in sessions of their own, so killing
        # torchrun alone would leave them waiting in a collective).
        p.terminate()
        out, err = p.communicate(timeout=60)
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    # The conftest's tiny blobs, as a file every process can load.
    ds = make_blobs()
    path = tmp_path_factory.mktemp("dist") / "blobs.npz"
    np.savez(path, images=ds.images[..., 0], labels=ds.labels)
    return str(path)


AE = ["--set", "latent_dim=3", "--set", "width=8"]


@pytest.fixture(scope="module")
def scenarios(blobs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("scenarios"))
    r = torchrun(os.path.join("tests", "distributed_worker.py"), blobs, out)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.load(open(os.path.join(out, f"rank{i}.json"))) for i in (0, 1)]
    return ranks, out, r.stderr


@pytest.fixture(scope="module")
def cli_run(scenarios):
    ranks, out, log = scenarios
    assert [r["cli_rc"] for r in ranks] == [0, 0]
    return os.path.join(out, "cli.safetensors"), log


def single_process(blobs, name="ae", batch_size=16, epochs=4, seed=0, **config):
    data = load_dataset(blobs)
    cfg = {"latent_dim": 3, "width": 8, **config} if name == "ae" else config
    e = engines.create(name, data.spec, device="cpu", seed=seed, batch_size=batch_size, **cfg)
    run_to_end(train(e, data, TrainOptions(epochs=epochs, seed=seed)))
    return e


def test_torchrun_cli_checkpoint_has_the_single_process_format(cli_run, blobs, tmp_path):
    out, log = cli_run
    # Only rank 0 talks.
    assert log.count("training ae on blobs") == 1 and "× 2 processes (effective batch 2 × 8)" in log
    assert log.count("finished:") == 1
    info = ckpt.read_info(out)
    assert info.train_state["world_size"] == 2 and info.train_state["effective_batch"] == 16
    assert info.train_state["step"] == 4 * (82 // 16)  # steps of the effective batch
    single = str(tmp_path / "single.safetensors")
    from engines.cli.main import main

    assert main(["train", "--engine", "ae", "--data", blobs, "--epochs", "1", "--device", "cpu", *AE,
                 "--out", single]) == 0
    from safetensors import safe_open

    def layout(path):
        with safe_open(path, framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, set(f.metadata())

    assert layout(out) == layout(single)
    assert not any("module." in k for k in layout(out)[0])
    loaded = ckpt.load(out, device="cpu").engine  # what the app does with a file
    assert loaded.sample(4).shape == (4, 1, 16, 16)


def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(cli_run, blobs):
    # The AE without input noise is deterministic: the averaged gradients of two half batches
    # are the gradient of the whole batch, so both runs give the same model up to float rounding.
    # (Compared as functions: a conv bias right before a per-channel GroupNorm has a zero
    # gradient, and Adam turns its rounding noise into steps that change nothing downstream.)
    ddp = ckpt.load(cli_run[0], device="cpu").engine
    x = load_dataset(blobs).images

    def outputs(e):
        z = e.encode(x)
        return z, e.decode(z)

    one = single_process(blobs, batch_size=16, epochs=4)
    assert ddp.step == one.step
    for a, b in zip(outputs(ddp), outputs(one)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # …and one process with batch 8 (same images per rank, half the batch) is told apart.
    half = single_process(blobs, batch_size=8, epochs=4)
    assert not torch.allclose(outputs(half)[0], outputs(ddp)[0], atol=1e-3)


def test_torchrun_loss_goes_down(cli_run, blobs):
    data = load_dataset(blobs)
    fresh = engines.create("ae", data.spec, device="cpu", seed=0, latent_dim=3, width=8)
    info = ckpt.read_info(cli_run[0])
    before = fresh.evaluate(data.split("test").images)["mse"]
    assert info.metrics["test_mse"] < 0.8 * before


def test_resume_keeps_the_effective_batch(cli_run, blobs, tmp_path, capsys):
    from engines.cli.main import main

    out = str(tmp_path / "more.safetensors")
    assert main(["train", "--resume", cli_run[0], "--data", blobs, "--epochs", "5", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "effective batch of 16" in err and "batch_size=16" in err and len(err.splitlines()) == 1
    # One process with the whole effective batch continues the run (a server run, finished on a
    # laptop); the data file it was trained on is found again without --data.
    assert main(["train", "--resume", cli_run[0], "--epochs", "5", "--set", "batch_size=16", "--out", out]) == 0
    info = ckpt.read_info(out)
    assert info.train_state["step"] == 5 * (82 // 16)
    assert info.train_state["world_size"] == 1 and info.train_state["effective_batch"] == 16
    assert main(["train", "--resume", cli_run[0], "--data", blobs, "--set", "lr=0.1", "--out", out]) == 2


def test_resume_batch_rules():
    from engines.config import EngineConfig

    cfg = EngineConfig(batch_size=64)
    resume_batch({}, cfg, {}, 1)  # a single-process run resumed on one process
    with pytest.raises(DistributedError, match="4 process"):
        resume_batch({"world_size": 4, "effective_batch": 256}, cfg, {}, 1)
    resume_batch({"world_size": 4, "effective_batch": 256}, cfg, {}, 4)
    resume_batch({"world_size": 4, "effective_batch": 256}, cfg, {"batch_size": "128"}, 2)
    assert cfg.batch_size == 128


def test_single_process_sharding_is_the_plain_permutation():
    # With one process the sampler is the trainer's old per-epoch order: single-process
    # checkpoints resume exactly as before.
    s = Processes().sampler(50, 7 * 1_000_003)
    s.set_epoch(3)
    g = torch.Generator().manual_seed(7 * 1_000_003 + 3)
    assert list(s) == torch.randperm(50, generator=g).tolist()
    shards = [Processes(rank=r, world_size=2).sampler(50, 5) for r in (0, 1)]
    for sh in shards:
        sh.set_epoch(1)
    a, b = (list(sh) for sh in shards)
    assert len(a) == len(b) == 25 and not set(a) & set(b)


# ---- scenarios inside the same 2-process group -------------------------------------------------------
def test_multi_net_engine_ranks_agree_and_match_one_process(scenarios, blobs):
    from distributed_worker import PairConfig, PairEngine

    (r0, r1), _, _ = scenarios
    assert r0["pair"]["state"] == r1["pair"]["state"] == "finished"
    assert r0["pair"]["weights"] == r1["pair"]["weights"]  # DDP keeps the ranks identical
    data = load_dataset(blobs)
    one = PairEngine(data.spec, PairConfig(batch_size=16, lr=3e-3), device="cpu", seed=3)
    run_to_end(train(one, data, TrainOptions(epochs=3, seed=5)))
    assert one.step == r0["pair"]["step"]
    for k, v in one.state_tensors().items():
        torch.testing.assert_close(torch.tensor(r0["pair"]["weights"][k]), v.flatten(), rtol=1e-4, atol=1e-5)
    # Both optimisers moved their own net.
    fresh = PairEngine(data.spec, PairConfig(), device="cpu", seed=3).state_tensors()
    assert all(not torch.equal(fresh[k], v) for k, v in one.state_tensors().items())


def test_gan_trains_on_two_processes_in_step(scenarios):
    (r0, r1), _, _ = scenarios
    assert r0["gan"]["state"] == r1["gan"]["state"] == "finished" and r0["gan"]["step"] == 2
    assert r0["gan"]["weights"] == r1["gan"]["weights"]


def test_vq_model_and_its_prior_train_on_two_processes_in_step(scenarios):
    (r0, r1), out, _ = scenarios
    assert r0["vq"]["state"] == r1["vq"]["state"] == "finished" and r0["vq"]["step"] == 2
    assert r0["vq"]["weights"] == r1["vq"]["weights"]  # codebook EMA included: rank 0's everywhere
    assert r0["vq_prior"]["state"] == r1["vq_prior"]["state"] == "finished"
    assert r0["vq_prior"]["step"] == 82 // 16
    assert r0["vq_prior"]["weights"] == r1["vq_prior"]["weights"]
    info = ckpt.read_info(os.path.join(out, "vq.safetensors"))
    assert info.train_state["prior_state"] == "finished" and info.metrics["prior_steps"] == 82 // 16


def test_vq_codebook_statistics_are_summed_over_the_ranks(scenarios):
    from engines.vq.quantize import VectorQuantizer

    (r0, r1), _, _ = scenarios
    assert r0["vq_synced_while_attached"] and all(r0["vq_synced_while_attached"])
    assert not any(r0["vq_synced_after"])
    xs = torch.randn(2, 4, 2, 3, 3, generator=torch.Generator().manual_seed(12))

    def stats(x):
        torch.manual_seed(11)
        q = VectorQuantizer(8, 2, kmeans_init=False, dead_after=0).train()
        q(x)
        return torch.tensor(q.ema_count.tolist()), torch.tensor(q.ema_sum.flatten().tolist())

    both = stats(torch.cat([xs[0], xs[1]]))
    for r in (r0, r1):
        torch.testing.assert_close(torch.tensor(r["vq_stats"]["count"]), both[0])
        torch.testing.assert_close(torch.tensor(r["vq_stats"]["sum"]), both[1])
    assert not torch.allclose(stats(xs[0])[1], both[1])  # rank 0's batch alone would differ


def test_resume_under_ddp_continues_exactly(scenarios):
    (r0, r1), _, _ = scenarios
    assert r0["resume_equal"] and r1["resume_equal"]
    assert r0["resume_steps"][0] == r0["resume_steps"][1] > 0


def test_cancel_on_one_rank_stops_all_together(scenarios):
    (r0, r1), out, _ = scenarios
    assert r0["cancel"]["state"] == r1["cancel"]["state"] == "cancelled"
    assert r0["cancel"]["step"] == r1["cancel"]["step"] >= 3
    assert r1["cancel"]["checkpoint"] is None and r0["cancel"]["checkpoint"]
    info = ckpt.read_info(os.path.join(out, "cancel.safetensors"))
    assert info.train_state["state"] == "cancelled" and info.train_state["step"] == r0["cancel"]["step"]


def test_nan_on_one_rank_stops_all_together(scenarios):
    (r0, r1), out, _ = scenarios
    assert r0["nan"]["state"] == r1["nan"]["state"] == "failed"
    assert r0["nan"]["step"] == r1["nan"]["step"] == 3  # the step that produced the NaN was step 2 (0-based)
    assert "dec_loss became NaN" in r0["nan"]["message"]
    assert r0["nan_weights_finite"] and r1["nan_weights_finite"]  # the poisoned step was skipped everywhere
    assert not os.path.exists(os.path.join(out, "nan.safetensors"))


def test_engine_bypassing_forward_loss_is_refused(scenarios):
    (r0, r1), _, _ = scenarios
    assert "without Engine.forward_loss" in r0["bypass"] and "without Engine.forward_loss" in r1["bypass"]


@pytest.mark.parametrize("argv, needle", [
    (["train", "--engine", "ae", "--data", "digits", "--device", "cuda:1", "--out", "x.safetensors"], "local rank"),
    (["train", "--engine", "ae", "--data", "digits", "--device", "mps", "--out", "x.safetensors"], "CUDA (NCCL) or CPU"),
])
def test_torchrun_user_errors_are_one_line(argv, needle, monkeypatch, capsys):
    from engines.cli.main import main

    # What torchrun puts in each process's environment (no process group is joined: the
    # settings are refused first).
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
