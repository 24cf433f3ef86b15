"""Step-wise samplers: each sampler is an object with `step(x_t, t, model_output) → (x_prev, x̂₀)`
and one driver loop runs them. The reference functions below are the samplers as they were
before the redesign (verbatim, loops and all); the step-wise objects must give the same numbers
bit for bit on a fixed seed — for DDPM (both variances), DDIM (η = 0 and η > 0), DPM-Solver++(2M),
DDIM inversion (with and without refinement) and SDEdit (a run that starts at an inner t)."""
import math

import pytest
import torch

import engines
from engines.diffusion import samplers as smp
from engines.diffusion.schedule import NoiseSchedule
from engines.spec import ImageSpec


# ---- the reference: the samplers before they became step-wise (2c2c8f9) -------------------------
def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ref_ddpm(denoise, schedule, x, timesteps, generator=None, callback=None, variance="small"):
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
        c0, ct, var = schedule.posterior(t, s)
        mean = c0 * x0 + ct * x
        if s < 0:
            x = mean
            continue
        if variance == "large":
            var = 1.0 - schedule.abar(t) / schedule.abar(s)
        x = mean + math.sqrt(var) * _noise(x, generator)
    return x


def ref_ddim(denoise, schedule, x, timesteps, generator=None, callback=None, eta=0.0):
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
        a_t, a_s = schedule.abar(t), schedule.abar(s)
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) if eta > 0 else 0.0
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _noise(x, generator)
    return x


def ref_dpm(denoise, schedule, x, timesteps, generator=None, callback=None):
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
        if s < 0:
            x = x0
            continue
        a_t, a_s = schedule.abar(t), schedule.abar(s)
        al_t, sg_t, al_s, sg_s = math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_s), math.sqrt(1 - a_s)
        h = math.log(al_s / sg_s) - math.log(al_t / sg_t)
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        x = (sg_s / sg_t) * x - al_s * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


def ref_invert(denoise, schedule, x0, timesteps, callback=None, refine=0):
    x = x0
    ts = list(reversed(timesteps))
    for i, t in enumerate(ts):
        prev = ts[i - 1] if i > 0 else -1
        a_p, a_t = schedule.abar(prev), schedule.abar(t)
        eps = denoise(x, prev if prev >= 0 else t)[1]
        x0_hat = (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p)
        if callback is not None:
            callback((i, t, x, x0_hat, eps))
        x_new = math.sqrt(a_t) * x0_hat + math.sqrt(1 - a_t) * eps
        for _ in range(refine):
            eps = denoise(x_new, t)[1]
            x_new = math.sqrt(a_t) * (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p) + math.sqrt(1 - a_t) * eps
        x = x_new
    return x


REFERENCE = {"ddpm": lambda d, s, x, ts, g, cb, eta: ref_ddpm(d, s, x, ts, g, cb, "small"),
             "ddpm-large": lambda d, s, x, ts, g, cb, eta: ref_ddpm(d, s, x, ts, g, cb, "large"),
             "ddim": lambda d, s, x, ts, g, cb, eta: ref_ddim(d, s, x, ts, g, cb, eta),
             "dpm": lambda d, s, x, ts, g, cb, eta: ref_dpm(d, s, x, ts, g, cb)}


def wiggly(sch: NoiseSchedule):
    """A nonlinear stand-in for a network (float32, any shape): x̂₀ = tanh(0.8 x + t/T), ε̂ from it."""

    def denoise(x, t):
        a = sch.abar(t)
        x0 = torch.tanh(0.8 * x + t / sch.T)
        return x0, (x - math.sqrt(a) * x0) / math.sqrt(1 - a)

    return denoise


def _start(seed=0, shape=(6, 1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), g


def _records(into):
    return lambda rec: into.append(tuple(rec)[:5])


def _same_records(a, b):
    assert len(a) == len(b) and len(a) > 0
    for ra, rb in zip(a, b):
        assert ra[:2] == rb[:2] and all(torch.equal(u, v) for u, v in zip(ra[2:], rb[2:]))


@pytest.mark.parametrize("name", smp.NAMES)
@pytest.mark.parametrize("eta", (0.0, 0.6))
@pytest.mark.parametrize("kind,start", [("cosine", None), ("linear", None), ("linear", 400)])  # 400: SDEdit
def test_step_wise_samplers_equal_the_old_loops_bit_for_bit(name, eta, kind, start):
    sch = NoiseSchedule(kind, 1000)
    ts = sch.timesteps(9, start=start, spacing=smp.default_spacing(name))
    x, g = _start(1)
    ref_recs, new_recs = [], []
    ref = REFERENCE[name](wiggly(sch), sch, x, ts, torch.Generator().manual_seed(7), _records(ref_recs), eta)
    sampler = smp.make(name, sch, ts, torch.Generator().manual_seed(7), eta=eta)
    loop = smp.Loop(sampler, wiggly(sch), x)
    assert len(loop) == 9 and sampler.timesteps == ts
    for rec in loop:
        new_recs.append(tuple(rec)[:5])
        assert rec.x_prev is not None and rec.x_prev.shape == x.shape
    assert torch.equal(loop.result, ref) and not torch.equal(ref, x)
    _same_records(ref_recs, new_recs)
    # The old entry points are the driver too: same numbers.
    assert torch.equal(smp.run(name, wiggly(sch), sch, x, ts, torch.Generator().manual_seed(7), eta=eta), ref)


@pytest.mark.parametrize("refine", (0, 1, 2))
def test_ddim_inversion_equals_the_old_loop_bit_for_bit(refine):
    sch = NoiseSchedule("linear", 1000)
    x0, _ = _start(2, (5, 3))
    x0 = x0.double() * 0.3
    ts = sch.timesteps(12)
    ref_recs, new_recs = [], []
    ref = ref_invert(wiggly(sch), sch, x0, ts, _records(ref_recs), refine=refine)
    inv = smp.DDIMInverse(sch, ts, refine=refine)
    assert inv.timesteps == ts[::-1] and inv.model_timestep(ts[-1]) == ts[-1] and inv.model_timestep(ts[0]) == ts[1]
    out = smp.Loop(inv, wiggly(sch), x0).run(_records(new_recs))
    assert torch.equal(out, ref) and float((out - x0).abs().max()) > 0.5
    _same_records(ref_recs, new_recs)
    assert torch.equal(smp.ddim_invert(wiggly(sch), sch, x0, ts, refine=refine), ref)


def test_oracle_runs_equal_the_old_loops():
    """The same on float64 Gaussian data with the analytic denoiser of test_diffusion (many steps)."""
    from tests.test_diffusion import oracle

    sch = NoiseSchedule("cosine", 1000)
    xT = torch.randn((300, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for name in smp.NAMES:
        ts = sch.timesteps(40, spacing=smp.default_spacing(name))
        ref = REFERENCE[name](oracle(sch), sch, xT, ts, torch.Generator().manual_seed(1), None, 0.3)
        assert torch.equal(smp.run(name, oracle(sch), sch, xT, ts, torch.Generator().manual_seed(1), eta=0.3), ref)


def test_previous_timestep_comes_from_the_list_and_state_resets():
    sch = NoiseSchedule("cosine", 1000)
    ts = sch.timesteps(5, spacing="logsnr")
    s = smp.DDIM(sch, ts)
    assert [s.prev_timestep(t) for t in ts] == ts[1:] + [-1]  # never t − T/n
    with pytest.raises(ValueError, match="not one of"):
        s.prev_timestep(ts[0] - 1)
    with pytest.raises(ValueError, match="strictly decreasing"):
        smp.DDIM(sch, [10, 10, 0])
    with pytest.raises(ValueError, match="unknown sampler"):
        smp.make("euler", sch, ts)
    # DPM-Solver-2M keeps the previous x̂₀: a second run of the same object starts afresh.
    x, _ = _start(3)
    dpm = smp.DPMSolver2M(sch, ts)
    a = smp.Loop(dpm, wiggly(sch), x).run()
    assert dpm.x0_prev is not None and dpm.h_prev is not None
    assert torch.equal(smp.Loop(dpm, wiggly(sch), x).run(), a)
    # A step by hand: the first step's D is x̂₀, the second's extrapolates from the kept one.
    dpm.reset()
    p0 = smp.Prediction(*wiggly(sch)(x, ts[0]))
    out0 = dpm.step(x, ts[0], p0)
    assert torch.equal(dpm.x0_prev, p0.x0) and torch.equal(out0.x0, p0.x0)


def test_stopping_between_steps_leaves_no_result():
    sch = NoiseSchedule("cosine", 1000)
    x, _ = _start(4)
    loop = smp.Loop(smp.make("ddpm", sch, sch.timesteps(6), torch.Generator().manual_seed(0)), wiggly(sch), x)
    it = iter(loop)
    seen = [next(it).index for _ in range(2)]
    it.close()
    assert seen == [0, 1] and loop.result is None


def test_engine_sampling_equals_the_old_loops():
    """DiffusionEngine.sample / encode / decode against the reference loops on the engine's own
    denoiser (random weights, a conditional model, guidance)."""
    e = engines.create("diffusion", ImageSpec(1, 8, 8), device="cpu", width=8, levels=2, num_classes=2, latent_steps=4)
    with torch.no_grad():  # an untrained U-Net outputs zeros (zero-initialised last layers)
        gw = torch.Generator().manual_seed(0)
        for p in e.nets["ema"].parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gw))
    for name in smp.NAMES:
        got = e.sample(3, seed=5, sampler=name, steps=4, eta=0.4, guidance=2.5, label=1)
        g = torch.Generator().manual_seed(5)
        x_T = torch.randn((3, 1, 8, 8), generator=g)
        ts = e.schedule.timesteps(4, spacing=smp.default_spacing(name))
        with torch.inference_mode():
            den = e.denoiser(torch.full((3,), 1, dtype=torch.long), 2.5)
            ref = ((REFERENCE[name](den, e.schedule, x_T, ts, g, None, 0.4) + 1) / 2).clamp_(0, 1)
        assert torch.equal(got, ref), name
        loop = e.sample_loop(3, seed=5, sampler=name, steps=4, eta=0.4, guidance=2.5, label=1)
        assert len(loop) == 4 and [r.t for r in loop] == ts and torch.equal(loop.result, ref)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ts = e.schedule.timesteps(4)
    with torch.inference_mode():
        z_ref = ref_invert(e.denoiser(None, 1.0, clip=False), e.schedule, x * 2 - 1, ts, refine=e.config.inversion_refine)
        x_ref = (ref_ddim(e.denoiser(None, 1.0), e.schedule, z_ref, ts) + 1) / 2
    z = e.encode(x)
    assert torch.equal(z, z_ref) and torch.equal(e.decode(z), x_ref.clamp(0, 1))


def test_command_line_samples_through_the_driver(tmp_path, monkeypatch):
    """`sample` on a diffusion model drives the engine's sample_loop step by step and writes
    exactly engine.sample's images."""
    import numpy as np

    from engines import checkpoint as ckpt
    from engines.cli.main import main
    from engines.data.dataset import to_uint8
    from engines.diffusion.model import DiffusionEngine

    e = engines.create("diffusion", ImageSpec(1, 8, 8), device="cpu", width=8, levels=2)
    with torch.no_grad():
        for p in e.nets["ema"].parameters():
            p.add_(0.1)
    path = ckpt.save(str(tmp_path / "d.safetensors"), e)
    steps = []
    original = DiffusionEngine.sample_loop

    def counting(self, *a, **k):
        loop = original(self, *a, **k)
        return type("Counted", (), {"__iter__": lambda _s: (steps.append(r.index) or r for r in loop),
                                    "__len__": lambda _s: len(loop), "result": property(lambda _s: loop.result)})()

    monkeypatch.setattr(DiffusionEngine, "sample_loop", counting)
    out = str(tmp_path / "s.npz")
    assert main(["sample", "--checkpoint", path, "--n", "2", "--seed", "4", "--out", out, "--set", "sampler=ddpm",
                 "--set", "steps=3"]) == 0
    assert steps == [0, 1, 2]
    monkeypatch.setattr(DiffusionEngine, "sample_loop", original)
    want = to_uint8(e.sample(2, seed=4, sampler="ddpm", steps=3))[..., 0]
    assert np.array_equal(np.load(out)["images"], want)
