"""Every engine over the size/channel grid: shapes, learning, determinism."""
import pytest
import torch

import engines
from engines.spec import ImageSpec

SIZES = (8, 16, 28, 32, 64)
ENGINES = ("pca", "ae", "vae")


def small(name):
    return {"n_components": 4} if name == "pca" else {"latent_dim": 4, "width": 8, "batch_size": 8}


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SIZES)
def test_shapes_round_trip(name, size, channels):
    spec = ImageSpec(channels, size, size)
    e = engines.create(name, spec, device="cpu", **small(name))
    x = torch.rand(6, channels, size, size)
    if e.closed_form:
        e.fit(x)
    z = e.encode(x)
    assert z.shape == (6, *e.latent_shape)
    assert e.latent_dim == 4
    y = e.decode(z)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    s = e.sample(3, seed=5)
    assert s.shape == (3, channels, size, size)
    assert torch.equal(s, e.sample(3, seed=5))
    assert not torch.equal(s, e.sample(3, seed=6))
    assert e.decode(z[:1]).shape == (1, channels, size, size)


@pytest.mark.parametrize("name", ("ae", "vae"))
@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3), (64, 3)])
def test_losses_finite_and_decrease(name, size, channels, tiny_dataset):
    ds = tiny_dataset(n=16, size=size, channels=channels)
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255
    e = engines.create(name, ds.spec, device="cpu", latent_dim=4, width=8, lr=3e-3)
    losses = [e.train_step(x)["loss"] for _ in range(25)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5


def test_same_seed_same_model_on_cpu():
    spec = ImageSpec(1, 16, 16)
    x = torch.rand(8, 1, 16, 16)
    outs = []
    for _ in range(2):
        e = engines.create("vae", spec, device="cpu", seed=3, latent_dim=4, width=8)
        e.rng.manual_seed(0)
        e.train_step(x)
        outs.append(e.decode(torch.ones(1, 4)))
    assert torch.equal(outs[0], outs[1])
    other = engines.create("vae", spec, device="cpu", seed=4, latent_dim=4, width=8)
    assert not torch.equal(other.decode(torch.ones(1, 4)), outs[0])


def test_pca_matches_numpy_svd():
    import numpy as np

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 64))
    coeff = rng.normal(size=(200, 3)) * [3.0, 2.0, 1.0]
    x = ((coeff @ basis) * 0.01 + 0.5).astype(np.float32)
    assert 0 < x.min() and x.max() < 1  # inside the valid range, so decode needs no clamping
    e = engines.create("pca", ImageSpec(1, 8, 8), device="cpu", n_components=3)
    m = e.fit(torch.from_numpy(x).view(200, 1, 8, 8))
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    got = e.basis.components.numpy()
    # Same subspace, same variances.
    assert np.allclose(np.abs(got @ vt[:3].T), np.eye(3), atol=1e-3)
    assert np.allclose(e.basis.variance.numpy(), s[:3] ** 2 / 199, rtol=1e-3)
    assert m["explained_variance"] > 0.999
    # Exact reconstruction inside the subspace.
    rec = e.decode(e.encode(torch.from_numpy(x).view(200, 1, 8, 8)))
    assert float(((rec.view(200, -1) - torch.from_numpy(x)) ** 2).max()) < 1e-10


def test_pca_randomized_path_agrees_with_exact():
    x = torch.rand(300, 1, 16, 16) ** 2
    a = engines.create("pca", ImageSpec(1, 16, 16), device="cpu", n_components=5)
    b = engines.create("pca", ImageSpec(1, 16, 16), device="cpu", n_components=5, exact_limit=10)
    a.fit(x)
    b.fit(x)
    assert torch.allclose(a.basis.variance, b.basis.variance, rtol=0.05)


def test_pca_too_many_components():
    e = engines.create("pca", ImageSpec(1, 8, 8), device="cpu", n_components=50)
    with pytest.raises(ValueError, match="n_components"):
        e.fit(torch.rand(10, 1, 8, 8))


def test_vae_bounds_are_ordered():
    spec = ImageSpec(1, 8, 8)
    e = engines.create("vae", spec, device="cpu", latent_dim=4, width=8)
    x = torch.rand(16, 1, 8, 8).round()
    for _ in range(30):
        e.train_step(x)
    nelbo, niwae = e.bounds(x, k=32)
    # IWAE is a tighter bound on −log p(x): never above −ELBO (up to MC noise).
    assert float(niwae.mean()) <= float(nelbo.mean()) + 0.5
    m = e.evaluate(x)
    assert {"elbo_nats", "iwae_nats", "mse", "psnr"} <= set(m)


def test_vae_options():
    spec = ImageSpec(3, 16, 16)
    x = torch.rand(8, 3, 16, 16)
    e = engines.create("vae", spec, device="cpu", latent_dim=4, width=8, likelihood="gaussian",
                       kl_warmup_steps=10, free_bits=0.5)
    w = e.kl_weight()
    assert w == pytest.approx(0.1)
    out = e.train_step(x)
    assert e.kl_weight() == pytest.approx(0.2)
    assert set(out) >= {"loss", "recon", "kl", "neg_elbo"}
    assert out["neg_elbo"] == pytest.approx(out["recon"] + out["kl"], rel=1e-5)
    # free bits: the objective's KL part is at least free_bits per dimension.
    assert out["loss"] >= out["recon"] + w * 0.5 * 4 - 0.01
    mu, logvar = e.encode_distribution(x)
    assert float(logvar.min()) >= e.config.logvar_min and float(logvar.max()) <= e.config.logvar_max


def test_denoising_ae_corrupts_only_in_training():
    spec = ImageSpec(1, 16, 16)
    e = engines.create("ae", spec, device="cpu", latent_dim=4, width=8, noise_std=0.3)
    x = torch.full((4, 1, 16, 16), 0.5)
    assert not torch.equal(e.corrupt(x), x)
    assert torch.equal(e.encode(x), e.encode(x))  # inference is deterministic
    assert "denoise" in e.capabilities


def test_unknown_engine_and_bad_config():
    from engines.config import ConfigError

    with pytest.raises(engines.UnknownEngine):
        engines.create("nope", ImageSpec())
    with pytest.raises(ConfigError, match="latent_dim"):
        engines.create("vae", ImageSpec(), latnt_dim=3)
    with pytest.raises(ConfigError, match="bernoulli"):
        engines.create("vae", ImageSpec(), likelihood="poisson")
