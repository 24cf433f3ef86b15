"""Diffusion: schedules and posteriors against closed forms, every sampler against an analytic
oracle on Gaussian data, DDIM determinism and inversion, the engine over the size grid."""
import math

import numpy as np
import pytest
import torch

import engines
from engines.diffusion import samplers as smp
from engines.base import Batch
from engines.config import ConfigError
from engines.diffusion.schedule import NoiseSchedule
from engines.spec import ImageSpec
from engines.diffusion.vlb import discretized_gaussian_log_likelihood

SIZES = (8, 16, 28, 32, 64)


# ---- schedules ------------------------------------------------------------------------------
def test_linear_schedule_matches_ddpm():
    s = NoiseSchedule("linear", 1000)
    assert s.betas[0] == pytest.approx(1e-4) and s.betas[-1] == pytest.approx(0.02)
    assert s.abar(999) == pytest.approx(np.prod(1 - np.linspace(1e-4, 0.02, 1000)))
    assert s.abar(-1) == 1.0


def test_cosine_schedule_follows_its_formula():
    s = NoiseSchedule("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert s.abar(t) == pytest.approx(f(t + 1) / f(0), rel=1e-6)
    assert np.all(np.diff(s.alphas_cumprod) < 0) and s.abar(999) < 1e-4
    assert np.all(np.diff(s.snr()) < 0)


def test_unknown_schedule_refused():
    with pytest.raises(ValueError, match="unknown noise schedule"):
        NoiseSchedule("sigmoid")


@pytest.mark.parametrize("kind", ("linear", "cosine"))
@pytest.mark.parametrize("spacing", ("linear", "quadratic", "logsnr"))
def test_timesteps_visit_both_ends(kind, spacing):
    s = NoiseSchedule(kind, 1000)
    for n in (2, 3, 7, 10, 25, 333, 1000):
        ts = s.timesteps(n, spacing=spacing)
        assert len(ts) == n and ts[0] == 999 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    assert s.timesteps(5000, spacing=spacing) == list(range(999, -1, -1))  # never more steps than T
    assert s.timesteps(1) == [999]
    part = s.timesteps(4, start=300, spacing=spacing)
    assert part[0] == 300 and part[-1] == 0 and len(part) == 4
    with pytest.raises(ValueError):
        s.timesteps(4, start=1000)


def test_timesteps_spacings():
    s = NoiseSchedule("linear", 1000)
    assert s.timesteps(10, spacing="linear") == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert s.timesteps(4, spacing="quadratic") == [999, 444, 111, 0]
    lam = np.log(s.snr())[s.timesteps(10, spacing="logsnr")]
    assert np.ptp(np.diff(lam[1:-1])) < 0.1 * abs(np.diff(lam).mean())  # even steps in log-SNR


@pytest.mark.parametrize("kind", ("linear", "cosine"))
@pytest.mark.parametrize("t,s", [(1, 0), (10, 9), (500, 499), (999, 998), (700, 400), (0, -1), (300, -1)])
def test_posterior_matches_bayes(kind, t, s):
    """q(x_s|x_t,x₀) ∝ q(x_t|x_s)·q(x_s|x₀), both Gaussian: precision and mean by hand."""
    sch = NoiseSchedule(kind, 1000)
    a_t, a_s = sch.abar(t), sch.abar(s)
    c0, ct, var = sch.posterior(t, s)
    if s < 0:  # to clean data the posterior is x₀ itself
        assert (c0, ct, var) == pytest.approx((1.0, 0.0, 0.0), abs=1e-12)
        return
    step_a = a_t / a_s  # q(x_t|x_s) = N(√(step_a) x_s, 1 − step_a)
    prec = 1 / (1 - a_s) + step_a / (1 - step_a)
    x0, xt = 0.7, -1.3
    mean = (math.sqrt(a_s) * x0 / (1 - a_s) + math.sqrt(step_a) * xt / (1 - step_a)) / prec
    assert var == pytest.approx(1 / prec, rel=1e-9)
    assert c0 * x0 + ct * xt == pytest.approx(mean, rel=1e-9, abs=1e-12)


def test_forward_marginals_match_closed_form():
    """Running the one-step chain x_t = √(1−β_t) x_{t−1} + √β_t z gives q(x_t|x₀)'s moments."""
    sch = NoiseSchedule("linear", 200)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((40000,), 0.8, dtype=torch.float64)
    x = x0.clone()
    for t in range(200):
        b = float(sch.betas[t])
        x = math.sqrt(1 - b) * x + math.sqrt(b) * torch.randn(x.shape, generator=g, dtype=torch.float64)
        if t in (0, 20, 99, 199):
            direct = sch.q_sample(x0, torch.full((len(x0),), t), torch.randn(x.shape, generator=g, dtype=torch.float64))
            for sample in (x, direct):
                assert float(sample.mean()) == pytest.approx(math.sqrt(sch.abar(t)) * 0.8, abs=0.01)
                assert float(sample.var()) == pytest.approx(1 - sch.abar(t), rel=0.03, abs=1e-4)


# ---- samplers on an analytic oracle ----------------------------------------------------------
MU = torch.tensor([0.3, -0.5, 0.0], dtype=torch.float64)
SD = torch.tensor([0.2, 0.5, 0.05], dtype=torch.float64)


def oracle(sch: NoiseSchedule):
    """The exact denoiser of data x₀ ~ N(MU, diag SD²): E[x₀|x_t] in closed form."""

    def denoise(x, t):
        a = sch.abar(t)
        sa = math.sqrt(a)
        x0 = MU + sa * SD ** 2 / (a * SD ** 2 + 1 - a) * (x - sa * MU)
        return x0, (x - sa * x0) / math.sqrt(1 - a)

    return denoise


@pytest.mark.parametrize("kind", ("linear", "cosine"))
@pytest.mark.parametrize("name,steps,rtol", [("ddpm", 250, 0.1), ("ddpm-large", 250, 0.06), ("ddim", 50, 0.08),
                                             ("dpm", 20, 0.05)])
def test_samplers_recover_gaussian_data(kind, name, steps, rtol):
    """Fixed-small DDPM is known to undershoot the variance with coarse steps (its variance is
    the lower bound of Ho et al.), hence its wider tolerance."""
    sch = NoiseSchedule(kind, 1000)
    g = torch.Generator().manual_seed(1)
    xT = torch.randn((20000, 3), generator=g, dtype=torch.float64)
    x = smp.run(name, oracle(sch), sch, xT, sch.timesteps(steps, spacing=smp.default_spacing(name)), generator=g)
    assert torch.allclose(x.mean(0), MU, atol=0.015)
    assert torch.allclose(x.std(0), SD, rtol=rtol)


def test_ddim_eta_one_is_stochastic_and_right():
    sch = NoiseSchedule("cosine", 1000)
    g = torch.Generator().manual_seed(2)
    xT = torch.randn((10000, 3), generator=g, dtype=torch.float64)
    x = smp.run("ddim", oracle(sch), sch, xT, sch.timesteps(200), generator=g, eta=1.0)
    assert torch.allclose(x.mean(0), MU, atol=0.02) and torch.allclose(x.std(0), SD, rtol=0.1)
    y = smp.run("ddim", oracle(sch), sch, xT, sch.timesteps(200), generator=g, eta=1.0)
    assert not torch.allclose(x, y)


def test_ddim_deterministic_and_inversion_round_trips():
    sch = NoiseSchedule("linear", 1000)
    den = oracle(sch)
    x0 = MU + SD * torch.randn((500, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = sch.timesteps(100)
    xT = smp.ddim_invert(den, sch, x0, ts)
    a = smp.ddim(den, sch, xT, ts, generator=torch.Generator().manual_seed(0))
    b = smp.ddim(den, sch, xT, ts, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b)
    assert float((a - x0).abs().max()) < 0.06
    # One fixed-point refinement per step makes the inversion nearly exact.
    xT = smp.ddim_invert(den, sch, x0, ts, refine=1)
    assert float(xT.std()) == pytest.approx(1.0, abs=0.05)  # inverted data looks like noise
    assert float((smp.ddim(den, sch, xT, ts) - x0).abs().max()) < 0.005


def test_callback_sees_every_step_and_changes_nothing():
    sch = NoiseSchedule("cosine", 1000)
    xT = torch.randn((64, 3), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for name in smp.NAMES:
        plain = smp.run(name, oracle(sch), sch, xT, sch.timesteps(12), torch.Generator().manual_seed(5), eta=0.5)
        tr = smp.Trajectory()
        rec = smp.run(name, oracle(sch), sch, xT, sch.timesteps(12), torch.Generator().manual_seed(5), tr, eta=0.5)
        assert torch.equal(plain, rec)
        x, x0, eps = tr.stacked()
        assert len(tr) == 12 and tr.t == sch.timesteps(12) and x.shape == (12, 64, 3) == x0.shape == eps.shape
        assert torch.equal(x[0], xT.float())


def test_discretized_likelihood_sums_to_one():
    grid = torch.arange(256, dtype=torch.float64) / 255 * 2 - 1
    for mean, std in ((0.1, 0.05), (-0.98, 0.01), (0.5, 0.7)):
        p = discretized_gaussian_log_likelihood(grid, torch.full_like(grid, mean), std).exp()
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)


# ---- the engine -------------------------------------------------------------------------------
def tiny(**kw):
    return {"width": 8, "batch_size": 8, "levels": 3, "latent_steps": 3, **kw}


@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SIZES)
def test_engine_shapes_over_grid(size, channels):
    e = engines.create("diffusion", ImageSpec(channels, size, size), device="cpu", **tiny(num_classes=2))
    x = torch.rand(3, channels, size, size)
    e.train_step(Batch(x, torch.tensor([0, 1, 0])))
    for name in smp.NAMES:
        s = e.sample(2, seed=1, sampler=name, steps=2, eta=0.3, label=1)
        assert s.shape == (2, channels, size, size) and 0 <= float(s.min()) and float(s.max()) <= 1
    z = e.encode(x)
    assert z.shape == (3, *e.latent_shape) == (3, channels, size, size)
    assert e.decode(z).shape == x.shape


@pytest.mark.parametrize("target", ("eps", "x0", "v"))
def test_tiny_model_learns(target, tiny_dataset):
    ds = tiny_dataset(n=16, size=8)
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(ds.labels)
    e = engines.create("diffusion", ds.spec, device="cpu", seed=0, **tiny(target=target, lr=3e-3, num_classes=3, levels=1))
    losses = []
    for i in range(40):
        e.rng.manual_seed(i)
        losses.append(e.train_step(Batch(x, y))["loss"])
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    ema = dict(e.nets["ema"].named_parameters())
    assert any(not torch.equal(p, ema[k]) for k, p in e.nets["unet"].named_parameters())


def test_sampling_seeded_guided_and_recorded():
    e = engines.create("diffusion", ImageSpec(1, 16, 16), device="cpu", **tiny(num_classes=3))
    with torch.no_grad():  # an untrained U-Net outputs zeros (zero-initialised last layers)
        g = torch.Generator().manual_seed(0)
        for p in e.nets["ema"].parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    a = e.sample(4, seed=3, steps=4)
    assert torch.equal(a, e.sample(4, seed=3, steps=4)) and not torch.equal(a, e.sample(4, seed=4, steps=4))
    tr = smp.Trajectory()
    assert torch.equal(a, e.sample(4, seed=3, steps=4, callback=tr)) and len(tr) == 4
    # Guidance changes the result; guidance 0 is the unconditional model whatever the label.
    assert not torch.equal(e.sample(4, seed=3, steps=4, guidance=1.0), e.sample(4, seed=3, steps=4, guidance=4.0))
    assert torch.equal(e.sample(4, seed=3, steps=4, guidance=0.0, label=0), e.sample(4, seed=3, steps=4, guidance=0.0, label=2))
    with pytest.raises(ConfigError, match="label"):
        e.sample(1, label=3)
    with pytest.raises(ConfigError, match="unknown sampler"):
        e.sample(1, sampler="euler-a")


def test_encode_decode_deterministic_and_forward_process():
    e = engines.create("diffusion", ImageSpec(1, 16, 16), device="cpu", **tiny(latent_steps=4))
    x = torch.rand(4, 1, 16, 16)
    z = e.encode(x)
    assert torch.equal(z, e.encode(x)) and torch.equal(e.decode(z), e.decode(z))
    xt0 = e.forward_process(x, 0, seed=1)
    assert float((xt0 - (x * 2 - 1)).abs().max()) < 0.1
    xtT = e.forward_process(x, e.schedule.T - 1, seed=1)
    assert float(xtT.std()) == pytest.approx(1.0, abs=0.15)
    assert torch.equal(xtT, e.forward_process(x, e.schedule.T - 1, seed=1))


def test_save_load_same_samples_and_bound(tmp_path):
    from engines import checkpoint as ckpt

    e = engines.create("diffusion", ImageSpec(1, 8, 8), device="cpu", **tiny(num_classes=2, schedule="linear", target="v"))
    for _ in range(3):
        e.train_step(Batch(torch.rand(8, 1, 8, 8), torch.arange(8) % 2))
    path = str(tmp_path / "d.safetensors")
    ckpt.save(path, e)
    f = ckpt.load(path, device="cpu").engine
    assert f.config == e.config
    assert torch.equal(f.sample(3, seed=2, steps=3), e.sample(3, seed=2, steps=3))
    u8 = (torch.rand(16, 8, 8, 1) * 255).to(torch.uint8).numpy()
    m = f.evaluate(u8, quick=True)
    assert m["bpd"] > 0 and math.isfinite(m["bpd"]) and m["bpd"] == e.evaluate(u8, quick=True)["bpd"]
    assert "mse" in m


def test_cli_sampling_options(tmp_path, capsys):
    from engines import checkpoint as ckpt
    from engines.cli.main import main

    e = engines.create("diffusion", ImageSpec(1, 8, 8), device="cpu", **tiny(num_classes=2))
    path = str(tmp_path / "d.safetensors")
    ckpt.save(path, e)
    out = str(tmp_path / "s.npz")
    rc = main(["sample", "--checkpoint", path, "--n", "3", "--out", out, "--set", "sampler=ddim", "--set", "steps=3",
               "--set", "eta=0.5", "--set", "guidance=3", "--set", "label=1"])
    assert rc == 0 and np.load(out)["images"].shape == (3, 8, 8)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", path, "--n", "3", "--out", out, "--set", "sampler=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown sampler" in err and len(err.splitlines()) == 1
