"""VQ-VAE family: quantisers, codebook behaviour, VQGAN step, prior, checkpoint and CLI."""
import math

import pytest
import torch

import engines
from engines.vq.quantize import GumbelQuantizer, VectorQuantizer, kmeans, perplexity
from engines.spec import ImageSpec

SIZES = (8, 16, 28, 32, 64)
TINY = dict(codebook_size=16, code_dim=4, width=8, batch_size=8, prior_dim=16, prior_layers=1, prior_heads=2)


def tiny(spec, **kw):
    return engines.create("vqvae", spec, device="cpu", **{**TINY, **kw})


@pytest.mark.parametrize("quantizer", ("vq", "gumbel"))
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SIZES)
def test_shapes_round_trip(quantizer, size, channels):
    spec = ImageSpec(channels, size, size)
    e = tiny(spec, quantizer=quantizer)
    x = torch.rand(5, channels, size, size)
    e.train_step(x)
    z = e.encode(x)
    assert z.shape == (5, *e.latent_shape)
    assert e.latent_shape[1:] == e.grid and min(e.grid) >= 4 or size == 8
    y = e.decode(z)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    idx = e.encode_indices(x)
    assert idx.shape == (5, *e.grid) and idx.dtype == torch.long
    # decode(latent) is decode of its code grid: the latent is quantised first.
    assert torch.allclose(e.decode_indices(idx), y, atol=1e-6)
    # A flattened latent (what the Manifold/Arithmetic panels hand over) decodes the same.
    assert torch.allclose(e.decode(z.reshape(5, -1)), y, atol=1e-6)
    s = e.sample(3, seed=5)
    assert s.shape == (3, channels, size, size)
    assert torch.equal(s, e.sample(3, seed=5))


def test_grid_sizes():
    assert tiny(ImageSpec(3, 64, 64)).grid == (8, 8)
    assert tiny(ImageSpec(1, 28, 28)).grid == (7, 7)
    assert tiny(ImageSpec(1, 8, 8)).grid == (4, 4)
    assert tiny(ImageSpec(1, 32, 32), downsample=2).grid == (8, 8)
    with pytest.raises(ValueError, match="downsample"):
        tiny(ImageSpec(1, 28, 28), downsample=3)


def test_perplexity_of_known_assignments():
    assert float(perplexity(torch.tensor([5.0, 5, 0, 0]))) == pytest.approx(2.0)
    assert float(perplexity(torch.full((16,), 3.0))) == pytest.approx(16.0)
    assert float(perplexity(torch.tensor([7.0, 0, 0]))) == pytest.approx(1.0)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert float(perplexity(p * 8)) == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)
    # Through the quantiser: codes placed on a known assignment.
    q = VectorQuantizer(4, 2, kmeans_init=False)
    q.codebook.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]))
    z = torch.tensor([[0.1, 0], [9.9, 0.2], [0.2, 0.1], [10.1, 0]]).T.reshape(1, 2, 2, 2)
    q.eval()
    out = q(z)
    assert out.indices.flatten().tolist() == [0, 1, 0, 1]
    assert float(out.terms["perplexity"]) == pytest.approx(2.0)
    assert float(out.terms["codes_used"]) == 2


@pytest.mark.parametrize("ema", (True, False))
def test_straight_through_gradients_reach_the_encoder(ema):
    e = tiny(ImageSpec(1, 16, 16), ema=ema)
    x = torch.rand(4, 1, 16, 16)
    e.nets.train()
    loss, _ = e._loss(engines.base.Batch(x))
    loss.backward()
    first = e.nets["encoder"].body[0].weight.grad
    assert first is not None and float(first.abs().sum()) > 0
    cb = e.nets["quantizer"].codebook
    assert (cb.grad is None) == ema  # EMA codebooks are not trained by gradients
    # The reconstruction term alone also reaches it (not just the commitment term).
    e.nets.zero_grad()
    out, q = e._forward(x)
    torch.nn.functional.mse_loss(torch.sigmoid(out), x).backward()
    assert float(e.nets["encoder"].body[0].weight.grad.abs().sum()) > 0


def test_ema_update_moves_codes_to_their_assigned_mean():
    q = VectorQuantizer(2, 2, ema=True, decay=0.5, kmeans_init=False, dead_after=0, eps=0.0)
    q.codebook.copy_(torch.tensor([[0.0, 0], [10, 10]]))
    q.ema_sum.copy_(q.codebook)
    q.ema_count.fill_(1.0)
    z = torch.tensor([[1.0, 1], [3, 1], [9, 9], [11, 9]]).T.reshape(1, 2, 2, 2)
    q.train()
    q(z, torch.Generator().manual_seed(0))
    # count_k = 0.5·1 + 0.5·2 = 1.5; sum_0 = 0.5·(0,0) + 0.5·(4,2) = (2,1) → code 0 = (4/3, 2/3)
    assert torch.allclose(q.codebook[0], torch.tensor([4 / 3, 2 / 3]), atol=1e-5)
    assert torch.allclose(q.codebook[1], torch.tensor([(5 + 10) / 1.5, (5 + 9) / 1.5]), atol=1e-5)
    for _ in range(30):
        q(z, torch.Generator().manual_seed(0))
    assert torch.allclose(q.codebook, torch.tensor([[2.0, 1], [10, 9]]), atol=1e-3)


def test_planted_dead_code_is_revived():
    g = torch.Generator().manual_seed(0)
    q = VectorQuantizer(8, 3, ema=True, kmeans_init=True, dead_after=5)
    q.train()
    z = torch.randn(4, 3, 4, 4, generator=g)
    q(z, g)
    assert bool(q.initialised)
    q.codebook[3] = 1e3  # far from every encoder output: never the nearest code
    q.ema_sum[3] = 1e3
    for step in range(4):
        out = q(z, g)
        assert out.counts[3] == 0 and float(q.codebook[3, 0]) > 100
    q(z, g)  # fifth step unused: re-seeded from this batch's encoder outputs
    assert float(q.codebook[3].abs().max()) < 10
    assert int(q.revived_total) >= 1
    d = torch.cdist(q.codebook[3:4], z.permute(0, 2, 3, 1).reshape(-1, 3))
    assert float(d.min()) < 0.1
    # Without revival the planted code stays dead.
    q2 = VectorQuantizer(8, 3, ema=True, dead_after=0)
    q2.train()
    q2(z, g)
    q2.codebook[3] = 1e3
    q2.ema_sum[3] = 1e3
    for _ in range(10):
        q2(z, g)
    assert float(q2.codebook[3, 0]) > 100 and int(q2.revived_total) == 0


def test_kmeans_init_places_codes_on_the_data():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0], [-5, 0], [0, 5], [0, -5]])
    x = (centres[torch.arange(400) % 4] + 0.1 * torch.randn(400, 2, generator=g))
    c = kmeans(x, 4, 10, g)
    d = torch.cdist(centres, c).min(1).values
    assert float(d.max()) < 0.2
    e = tiny(ImageSpec(1, 16, 16))
    before = e.nets["quantizer"].codebook.clone()
    e.train_step(torch.rand(8, 1, 16, 16))
    assert not torch.allclose(before, e.nets["quantizer"].codebook)
    assert bool(e.nets["quantizer"].initialised)


def test_edited_grid_changes_only_the_neighbourhood():
    e = tiny(ImageSpec(3, 64, 64))
    x = torch.rand(2, 3, 64, 64)
    for _ in range(2):
        e.train_step(x)
    idx = e.encode_indices(x[:1])
    edited = idx.clone()
    edited[0, 1, 2] = (idx[0, 1, 2] + 1) % 16
    a, b = e.decode_indices(idx), e.decode_indices(edited)
    diff = (a - b).abs().amax(1)[0]  # (64, 64)
    cell = 8
    top, left, bottom, right = (1 - 3) * cell, (2 - 3) * cell, (1 + 4) * cell, (2 + 4) * cell
    inside = torch.zeros_like(diff, dtype=torch.bool)
    inside[max(top, 0):bottom, max(left, 0):right] = True
    assert float(diff[1 * cell:2 * cell, 2 * cell:3 * cell].max()) > 1e-4  # the edited cell itself changes
    assert float(diff[~inside].max()) == 0.0  # nothing outside its neighbourhood does


def test_gumbel_anneals_and_reports_kl():
    e = tiny(ImageSpec(1, 16, 16), quantizer="gumbel", tau_anneal_steps=4, tau_start=1.0, tau_end=0.25)
    x = torch.rand(8, 1, 16, 16)
    taus = [e.train_step(x)["tau"] for _ in range(5)]
    assert taus[0] == pytest.approx(1.0) and taus[2] == pytest.approx(0.5) and taus[4] == pytest.approx(0.25)
    q = GumbelQuantizer(4, 2)
    q.eval()
    logits = torch.zeros(1, 4, 2, 2)
    assert float(q(logits).terms["kl"]) == pytest.approx(0.0, abs=1e-6)  # uniform q: KL 0
    logits[:, 0] = 20
    assert float(q(logits).terms["kl"]) == pytest.approx(math.log(4), rel=1e-3)


def test_vqgan_step_trains_the_discriminator_with_adaptive_weight():
    e = tiny(ImageSpec(3, 32, 32), gan_weight=0.5, gan_start=1)
    x = torch.rand(8, 3, 32, 32)
    first = e.train_step(x)
    assert "d_loss" not in first  # before gan_start only the VQ-VAE trains
    w0 = [p.clone() for p in e.nets["disc"].parameters()]
    out = e.train_step(x)
    assert {"d_loss", "g_loss", "adaptive_weight", "mse"} <= set(out)
    assert out["adaptive_weight"] > 0 and math.isfinite(out["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(w0, e.nets["disc"].parameters()))


def test_losses_decrease():
    e = tiny(ImageSpec(1, 16, 16), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 1, 16, 16, generator=g) > 0.5).float().repeat_interleave(1, 0)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    losses = [e.train_step(x)["mse"] for _ in range(40)]
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])


def test_prior_learns_samples_and_inpaints(tmp_path):
    from engines import checkpoint as ckpt

    e = tiny(ImageSpec(1, 16, 16), prior_dim=32)
    assert not e.prior_trained
    # Grids from a simple distribution: every row repeats its first code.
    g = torch.Generator().manual_seed(0)
    grids = torch.randint(0, 4, (64, 8, 1), generator=g).expand(64, 8, 8).contiguous()
    first = e.prior_step(grids)
    for _ in range(60):
        last = e.prior_step(grids)
    assert e.prior_trained and last < 0.5 * first
    s = e.sample_indices(16, seed=1, temperature=0.5)
    assert s.shape == (16, 8, 8)
    rows_constant = (s == s[:, :, :1]).float().mean()
    assert float(rows_constant) > 0.8
    assert torch.equal(s, e.sample_indices(16, seed=1, temperature=0.5))
    greedy = e.sample_indices(2, seed=1, temperature=0.0)
    assert torch.equal(greedy, e.sample_indices(2, seed=9, temperature=0.0))
    mask = torch.zeros(16, 8, 8, dtype=torch.bool)
    mask[:, 3:5, 2:6] = True
    filled = e.inpaint(s, mask, seed=3)
    assert torch.equal(filled[~mask], s[~mask])
    # The prior lives in the same checkpoint and survives a round trip.
    path = str(tmp_path / "vq.safetensors")
    ckpt.save(path, e)
    back = ckpt.load(path, device="cpu").engine
    assert back.prior_trained
    assert torch.equal(back.sample_indices(4, seed=2), e.sample_indices(4, seed=2))


def test_untrained_prior_samples_from_usage_and_inpaint_refuses():
    e = tiny(ImageSpec(1, 16, 16))
    e.prepare_checkpoint(torch.rand(8, 1, 16, 16))
    assert e.stored_usage is not None and float(e.stored_usage.sum()) == 8 * 64
    s = e.sample_indices(4, seed=0)
    used = set(torch.nonzero(e.stored_usage).flatten().tolist())
    assert set(s.flatten().tolist()) <= used | set(range(16))
    with pytest.raises(ValueError, match="prior"):
        e.inpaint(s, torch.ones_like(s, dtype=torch.bool))


def test_evaluate_reports_codebook_metrics():
    e = tiny(ImageSpec(1, 16, 16))
    x = torch.rand(16, 1, 16, 16)
    e.train_step(x)
    m = e.evaluate(x)
    assert {"mse", "psnr", "perplexity", "codes_used_frac"} <= set(m)
    counts = e.code_usage(x)
    assert m["codes_used_frac"] == pytest.approx(float((counts > 0).float().mean()))
    assert 1.0 <= m["perplexity"] <= 16.0


def test_decode_indices_rejects_bad_grids():
    e = tiny(ImageSpec(1, 16, 16))
    with pytest.raises(ValueError, match="grid"):
        e.decode_indices(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="codes"):
        e.decode_indices(torch.full((1, 8, 8), 16))


def test_cli_train_prior_sample_evaluate(tmp_path, capsys):
    import json

    from engines.cli.main import main

    ck = str(tmp_path / "vq.safetensors")
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert main(["train", "--engine", "vqvae", "--data", "digits", "--epochs", "1", "--out", ck, *sets]) == 0
    assert main(["train-prior", "--checkpoint", ck, "--epochs", "1"]) == 0
    assert main(["sample", "--checkpoint", ck, "--n", "4", "--set", "temperature=0.7",
                 "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", ck, "--n", "50", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < res["codes_used_frac"] <= 1 and res["perplexity"] >= 1 and "prior_nats_per_token" in res
    # A model without codes: one-line error, exit 2.
    ae = str(tmp_path / "ae.safetensors")
    assert main(["train", "--engine", "ae", "--data", "digits", "--epochs", "1", "--out", ae,
                 "--set", "latent_dim=2", "--set", "width=8"]) == 0
    capsys.readouterr()
    assert main(["train-prior", "--checkpoint", ae]) == 2
    assert "only vqvae" in capsys.readouterr().err


def test_codes_used_per_epoch_counts_a_window_of_steps():
    from engines.vq.quantize import codes_used_within

    q = VectorQuantizer(4, 2, kmeans_init=False, dead_after=0)
    q.codebook.copy_(torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]))
    q.ema_sum.copy_(q.codebook)
    q.train()
    near_01 = torch.tensor([[0.1, 0], [9.9, 0.1]]).T.reshape(1, 2, 1, 2)
    near_2 = torch.tensor([[0.1, 9.9], [0.2, 10]]).T.reshape(1, 2, 1, 2)
    q(near_01)
    q(near_2)
    assert codes_used_within(q.since_used, 1) == 1  # the last step used code 2 only
    assert codes_used_within(q.since_used, 2) == 3  # the last two: codes 0, 1, 2; code 3 never
    e = tiny(ImageSpec(1, 16, 16))
    e.epoch_steps = 3
    out = e.train_step(torch.rand(8, 1, 16, 16))
    assert out["codes_used_epoch"] == out["codes_used"]  # after one step the epoch so far is that step


@pytest.mark.parametrize("loop", ("prior", "autoencoder"))
def test_time_budget_and_elapsed_exclude_pauses_in_both_training_loops(loop, tiny_dataset):
    """Paused longer than its whole time budget, a run still trains its budget of active time
    after resuming, and reports elapsed time without the pause: the prior's loop like the main one."""
    import threading
    import time

    from engines.train import TrainControl, TrainOptions, train
    from engines.vq.prior_train import train_prior

    ds = tiny_dataset(n=32, size=16)
    e = tiny(ds.spec)
    control = TrainControl()
    budget_s, pause_s = 1.0, 1.5
    if loop == "prior":
        gen = train_prior(e, ds, minutes=budget_s / 60, control=control, report_every_s=0)
    else:
        gen = train(e, ds, TrainOptions(minutes=budget_s / 60, report_every_s=0), control)
    t0 = time.perf_counter()
    paused_at, states = None, []
    for p in gen:
        states.append(p.state)
        if paused_at is None and p.state == "running" and p.step > 0:
            paused_at = p.step
            control.pause()
            threading.Timer(pause_s, control.resume).start()
    wall = time.perf_counter() - t0
    assert "paused" in states and states[-1] == "finished"
    assert p.step > paused_at  # trained on after the pause: the budget counts active time only
    assert budget_s <= p.elapsed_s <= wall - pause_s + 0.3, (p.elapsed_s, wall)
