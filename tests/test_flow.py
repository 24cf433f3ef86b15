"""The Glow-style flow (engines/flow, issue #21): every layer and the whole flow invert exactly and
their log-determinants match a brute-force Jacobian; bits/dim is the dequantisation bound computed
by hand; training, cancel, resume and save go through the shared loop; temperature sets the
samples' spread; bad settings are one clear line."""
import copy
import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

import engines
from engines import checkpoint as ckpt
from engines.base import Batch
from engines.config import ConfigError
from engines.flow.coupling import AffineCoupling
from engines.flow.dequant import VariationalDequantizer, dequantize
from engines.flow.layers import ActNorm, InvConv1x1, squeeze, unsqueeze
from engines.flow.model import FlowStep, Glow
from engines.flow.prior import Split, TopPrior
from engines.spec import ImageSpec
from engines.train import TrainControl, TrainOptions, run_to_end, train

TINY = {"steps": 2, "width": 8, "batch_size": 16, "warmup_steps": 2}


def jiggle(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Random parameters (zero-initialised layers would make couplings and priors trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def brute_logdet(fn, x: torch.Tensor) -> float:
    """log |det ∂fn(x)/∂x| of one image, from the full Jacobian (float64)."""
    jac = jacobian(lambda v: fn(v.view(1, *x.shape[1:])).flatten(), x.flatten())
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    return float(logabs)


def tiny_engine(spec=ImageSpec(1, 8, 8), seed=0, scale=0.1, **kw):
    e = engines.create("flow", spec, device="cpu", seed=seed, **{**TINY, **kw})
    jiggle(e.nets, seed, scale)
    return e


LAYERS = {
    "actnorm": lambda c: ActNorm(c),
    "invconv": lambda c: InvConv1x1(c),
    "coupling": lambda c: AffineCoupling(c, 8),
    "step": lambda c: FlowStep(c, 8),
}


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("channels", [4, 6])
def test_each_layer_inverts_and_its_logdet_matches_the_jacobian(name, channels):
    torch.manual_seed(0)
    layer = jiggle(LAYERS[name](channels)).double().eval()
    x = torch.randn(3, channels, 3, 2, dtype=torch.float64)
    y, logdet = layer(x)
    assert y.shape == x.shape and logdet.shape == (3,)
    assert torch.allclose(layer.inverse(y), x, atol=1e-10)
    for i in range(3):
        assert float(logdet[i]) == pytest.approx(brute_logdet(lambda v: layer(v)[0], x[i:i + 1]), abs=1e-8)


def test_squeeze_is_a_permutation_and_unsqueeze_inverts_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert torch.equal(unsqueeze(s), x)
    assert torch.equal(s[0, :4, 0, 0], torch.tensor([0.0, 1, 6, 7]))  # one 2×2 patch → 4 channels
    assert brute_logdet(squeeze, x[:1]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("labels", [None, torch.tensor([1, 0])])
def test_split_and_top_prior_standardise_with_the_right_logdet(labels):
    n_labels = 0 if labels is None else 2
    split = jiggle(Split(6, n_labels)).double()
    top = jiggle(TopPrior(3, 2, 2, n_labels)).double()
    x = torch.randn(2, 6, 2, 2, dtype=torch.float64)
    kept, eps, ld = split(x, labels)
    assert kept.shape == (2, 3, 2, 2) and eps.shape == (2, 3, 2, 2)
    assert torch.allclose(split.inverse(kept, eps, labels), x, atol=1e-12)
    e2, ld2 = top(kept, labels)
    assert torch.allclose(top.inverse(e2, labels), kept, atol=1e-12)
    for i in range(2):
        lab = None if labels is None else labels[i:i + 1]
        assert float(ld[i]) == pytest.approx(
            brute_logdet(lambda v: torch.cat([t.flatten(1) for t in split(v, lab)[:2]], 1), x[i:i + 1]), abs=1e-9)
        assert float(ld2[i]) == pytest.approx(brute_logdet(lambda v: top(v, lab)[0], kept[i:i + 1]), abs=1e-9)


@pytest.mark.parametrize("channels,levels,n_labels", [(1, 2, 0), (3, 2, 0), (1, 1, 3)])
def test_whole_flow_inverts_and_its_logdet_matches_the_jacobian(channels, levels, n_labels):
    torch.manual_seed(1)
    flow = jiggle(Glow(channels, 4, 4, levels, steps=2, hidden=8, n_labels=n_labels), seed=1).double().eval()
    y = torch.rand(2, channels, 4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 2]) if n_labels else None
    eps, logdet = flow(y, labels)
    z = flow.flatten(eps)
    assert z.shape == (2, channels * 16)
    assert torch.allclose(flow.inverse(flow.unflatten(z), labels), y, atol=1e-10)
    for i in range(2):
        lab = None if labels is None else labels[i:i + 1]
        brute = brute_logdet(lambda v: flow.flatten(flow(v, lab)[0]), y[i:i + 1])
        assert float(logdet[i]) == pytest.approx(brute, abs=1e-7)


@pytest.mark.parametrize("spec,kw", [(ImageSpec(1, 8, 8), {}), (ImageSpec(3, 16, 16), {}),
                                     (ImageSpec(1, 28, 28), {"levels": 3}), (ImageSpec(1, 8, 8), {"num_classes": 3})])
def test_engine_round_trip_is_exact_in_float32(spec, kw):
    e = tiny_engine(spec, scale=0.05, **kw)
    x = torch.rand(5, *spec.shape)
    z = e.encode(x)
    assert z.shape == (5, spec.numel) and z.dtype == torch.float32
    # Random weights (every scale of every layer off 1; the bundled model: see
    # test_bundled_model_round_trip_and_bits) amplify float32 rounding through the 2·L·K layers.
    assert float((e.decode(z) - x).abs().max()) < 2e-5
    u8 = (np.random.default_rng(0).random((4, spec.height, spec.width, spec.channels)) * 255).astype(np.uint8)
    assert float((e.decode(e.encode(u8)) - e.encode(u8).new_tensor(u8).permute(0, 3, 1, 2) / 255).abs().max()) < 2e-5
    if spec.height == 28:
        assert e.levels == 2  # 28 → 14 → 7: a third squeeze would need an even side


def test_bits_per_dim_is_the_bound_summed_pixel_by_pixel():
    """bpd = (Σ_pixels ½(ε_i² + log 2π) − log|det ∂ε/∂y|) / (D ln 2) + 8 with y = (k + u)/256:
    the engine's number against one computed from scratch in float64 with a brute-force Jacobian."""
    spec = ImageSpec(1, 4, 4)
    e = tiny_engine(spec, levels=2)
    x = torch.randint(0, 256, (3, *spec.shape)).float() / 255
    ours = e.bits(x, torch.Generator().manual_seed(5))
    flow = copy.deepcopy(e.nets["flow"]).double().eval()
    k = torch.round(x.double() * 255)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)).double()
    y = (k + u) / 256
    D = spec.numel
    for i in range(3):
        eps = flow.flatten(flow(y[i:i + 1])[0])[0]
        logdet = brute_logdet(lambda v: flow.flatten(flow(v)[0]), y[i:i + 1])
        nats = sum(0.5 * (float(v) ** 2 + math.log(2 * math.pi)) for v in eps) - logdet
        assert float(ours[i]) == pytest.approx(nats / (D * math.log(2)) + 8, abs=2e-5)
    # `likelihood` (what `evaluate` reports) is the mean over images and dequantisation draws.
    one = e.likelihood(x, quick=True)["bpd"]
    assert one == pytest.approx(float(e.bits(x, torch.Generator().manual_seed(0)).mean()), abs=1e-6)
    assert e.evaluate(x)["bpd"] == pytest.approx(e.likelihood(x)["bpd"])


def test_variational_dequantiser_log_q_matches_its_jacobian():
    net = jiggle(VariationalDequantizer(1, 8)).double()
    k = torch.randint(0, 256, (2, 1, 3, 3)).double()
    eta = torch.randn(k.shape, dtype=torch.float64)
    u, log_q = net(k, eta)
    assert float(u.min()) > 0 and float(u.max()) < 1
    for i in range(2):
        logdet = brute_logdet(lambda v: net(k[i:i + 1], v)[0], eta[i:i + 1])  # u = f(η), q(u) = N(η)/|det|
        log_n = float((-0.5 * (eta[i] ** 2 + math.log(2 * math.pi))).sum())
        assert float(log_q[i]) == pytest.approx(log_n - logdet, abs=1e-9)
    y, lq = dequantize(k / 255, torch.Generator().manual_seed(0), None)
    assert torch.equal(torch.floor(y * 256), k) and torch.equal(lq, torch.zeros(2, dtype=torch.float64))


def test_actnorm_initialises_from_the_first_training_batch_only():
    a = ActNorm(3)
    x = torch.randn(16, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 2
    a.eval()
    assert torch.equal(a(x)[0], x)  # inference never initialises
    a.train()
    y = a(x)[0]
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    before = a.logs.clone()
    a(x * 7)
    assert torch.equal(a.logs, before) and int(a.initialized) == 1


def test_temperature_sets_the_spread_and_zero_gives_one_image():
    e = tiny_engine(ImageSpec(1, 8, 8), scale=0.03)
    g = torch.Generator().manual_seed(0)
    assert float(e.prior_sample(4000, g, temperature=0.5).std()) == pytest.approx(0.5, rel=0.02)
    cold = e.sample(6, seed=1, temperature=0.0)
    assert torch.allclose(cold, cold[:1].expand_as(cold))
    spread = {t: float(e.sample(64, seed=3, temperature=t).std(0).mean()) for t in (0.3, 0.7, 1.0)}
    assert spread[0.3] < spread[0.7] < spread[1.0]
    assert torch.equal(e.sample(3, seed=2, temperature=0.7), e.sample(3, seed=2, temperature=0.7))
    with pytest.raises(ConfigError, match="temperature"):
        e.sample(2, temperature=-1)
    assert torch.allclose(e.log_prior(torch.zeros(2, 64)), torch.full((2,), -32 * math.log(2 * math.pi)))


def test_class_conditional_flow_trains_and_samples_each_class():
    e = tiny_engine(ImageSpec(1, 8, 8), num_classes=3)
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 3
    assert math.isfinite(e.train_step(Batch(x, y))["bpd"])
    a, b = e.sample(4, seed=0, label=0), e.sample(4, seed=0, label=2)
    assert a.shape == (4, 1, 8, 8) and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="label must be within"):
        e.sample(2, label=3)
    with pytest.raises(ConfigError, match="num_classes is 3"):
        e.train_step(Batch(x, torch.full((16,), 5)))
    with pytest.raises(ConfigError, match="unconditional"):
        tiny_engine().sample(2, label=1)


def test_training_lowers_bits_per_dim_and_nan_skips_the_step(tiny_dataset):
    ds = tiny_dataset(n=64)
    for deq in ("uniform", "variational"):
        e = engines.create("flow", ds.spec, device="cpu", seed=0, **TINY, dequantization=deq)
        ps = [p for p in train(e, ds, TrainOptions(epochs=8, report_every_s=0)) if p.state == "running"]
        assert ps[-1].metrics["bpd"] < ps[0].metrics["bpd"] - 0.5, deq
        assert 0 < ps[-1].metrics["grad_norm"]
    before = {k: v.clone() for k, v in e.nets.state_dict().items()}
    out = e.train_step(Batch(torch.full((4, 1, 16, 16), float("nan"))))
    assert not math.isfinite(out["loss"])
    assert all(torch.equal(v, e.nets.state_dict()[k]) for k, v in before.items())


def test_train_cancel_resume_and_save_round_trip(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64)
    make = lambda: engines.create("flow", ds.spec, device="cpu", seed=0, **TINY)  # noqa: E731
    straight = make()
    run_to_end(train(straight, ds, TrainOptions(epochs=4, seed=3)))
    first = make()
    half = str(tmp_path / "half.safetensors")
    control = TrainControl()
    for p in train(first, ds, TrainOptions(epochs=4, seed=3, out=half, report_every_s=0), control):
        if p.step >= 3 and not control.cancelled:
            control.cancel()
    assert p.state == "cancelled" and p.step < straight.step
    loaded = ckpt.load(half, device="cpu")
    assert loaded.info.train_state["state"] == "cancelled" and loaded.engine.step == p.step
    resumed = loaded.engine
    run_to_end(train(resumed, ds, TrainOptions(epochs=4, seed=3)))
    assert resumed.step == straight.step
    for k, v in straight.nets.state_dict().items():
        assert torch.equal(v, resumed.nets.state_dict()[k]), k  # actnorm init and warm-up resume exactly
    full = str(tmp_path / "full.safetensors")
    ckpt.save(full, straight)
    again = ckpt.load(full, device="cpu").engine
    assert torch.equal(again.sample(3, seed=1, temperature=0.7), straight.sample(3, seed=1, temperature=0.7))
    x = ds.split("test").images[:8]
    assert torch.equal(again.encode(x), straight.encode(x))
    assert again.evaluate(x)["bpd"] == straight.evaluate(x)["bpd"]


@pytest.mark.parametrize("argv,needle", [
    (["--set", "levels=0"], "'levels' must be within"),
    (["--set", "dequantization=magic"], "must be one of uniform, variational"),
    (["--set", "steps=2.5"], "needs an integer"),
    (["--size", "9"], "image sides must be even"),
])
def test_bad_settings_are_one_clear_line(argv, needle, tmp_path, capsys):
    from engines.cli.main import main

    rc = main(["train", "--engine", "flow", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "f.safetensors"),
               *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err


def test_cli_sample_temperature_and_bad_options(tmp_path, capsys):
    from engines.cli.main import main

    path = str(tmp_path / "f.safetensors")
    ckpt.save(path, tiny_engine(ImageSpec(1, 8, 8)))
    out = str(tmp_path / "s.npz")
    assert main(["sample", "--checkpoint", path, "--n", "3", "--out", out, "--set", "temperature=0.7"]) == 0
    assert np.load(out)["images"].shape == (3, 8, 8)
    capsys.readouterr()
    for bad, needle in (("temperature=-1", "temperature"), ("label=1", "unconditional")):
        assert main(["sample", "--checkpoint", path, "--n", "3", "--out", out, "--set", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_bundled_model_round_trip_and_bits():
    """The committed flow-digits-28: exact round trips on test digits and a bound well below the
    8 bits/dim of a uniform model."""
    import os

    from engines.data import load_dataset

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models",
                        "flow-digits-28.safetensors")
    e = ckpt.load(path, device="cpu").engine
    x = load_dataset("digits", size=28, channels=1).split("test").images[:32]
    z = e.encode(x)
    assert float((e.decode(z) - e.decode(z).new_tensor(x).permute(0, 3, 1, 2) / 255).abs().max()) < 1e-5
    assert e.evaluate(x, quick=True)["bpd"] < 3.0
