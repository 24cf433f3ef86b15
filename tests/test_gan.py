"""The GAN engine: losses on a toy mixture, penalties against finite differences, inversion,
the size/channel grid, options, checkpoints and sampling options."""
import math

import pytest
import torch
from torch import nn

import engines
from engines import checkpoint as ckpt
from engines.gan.losses import (LOSSES, StepSettings, adversarial_step, d_accuracy, diff_augment,
                                gradient_penalty, pairwise_diversity, r1_penalty)
from engines.spec import ImageSpec

SIZES = (8, 16, 28, 32, 64)


def tiny(**kw):
    cfg = dict(latent_dim=4, width=8, batch_size=8, invert_steps=3)
    cfg.update(kw)
    return cfg


# ---- the size/channel grid ----------------------------------------------------------------------
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SIZES)
def test_shapes_round_trip(size, channels):
    arch = "resnet" if size in (16, 64) else "dcgan"
    spec = ImageSpec(channels, size, size)
    e = engines.create("gan", spec, device="cpu", arch=arch, **tiny())
    x = torch.rand(6, channels, size, size)
    terms = e.train_step(x)
    assert all(math.isfinite(v) for v in terms.values())
    z = e.encode(x)
    assert z.shape == (6, *e.latent_shape) and e.latent_dim == 4
    assert e.last_inversion.mse.shape == (6,)
    y = e.decode(z)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    s = e.sample(3, seed=5)
    assert s.shape == (3, channels, size, size)
    assert torch.equal(s, e.sample(3, seed=5))
    assert not torch.equal(s, e.sample(3, seed=6))
    # Batch norm runs on running statistics at inference: one image decodes like in a batch.
    assert torch.allclose(e.decode(z[:1]), y[:1], atol=1e-5)


def test_training_reports_health_terms():
    e = engines.create("gan", ImageSpec(1, 16, 16), device="cpu", **tiny())
    out = e.train_step(torch.rand(8, 1, 16, 16))
    assert {"d_loss", "g_loss", "d_real_acc", "d_fake_acc", "d_grad_norm", "g_grad_norm", "diversity", "enc_loss"} <= set(out)
    assert 0 <= out["d_real_acc"] <= 1 and 0 <= out["d_fake_acc"] <= 1
    assert out["d_grad_norm"] > 0 and out["g_grad_norm"] > 0
    assert set(e.health_terms) <= set(out)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_and_regulariser_steps(loss):
    e = engines.create("gan", ImageSpec(3, 16, 16), device="cpu", loss=loss, n_critic=2, r1_gamma=1.0,
                       spectral_norm=True, augment="color,translation,cutout", **tiny())
    w0 = e.nets["generator"].head.weight.clone()
    out = e.train_step(torch.rand(8, 3, 16, 16))
    assert "r1" in out and (("gp" in out) == (loss == "wgan-gp"))
    assert not torch.equal(w0, e.nets["generator"].head.weight)


def test_ema_generator_lags_the_live_one():
    e = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", ema_decay=0.99, **tiny())
    x = torch.rand(8, 1, 8, 8)
    for _ in range(20):
        e.train_step(x)
    live = e.nets["generator"].head.weight
    ema = e.nets["generator_ema"].head.weight
    assert not torch.equal(live, ema)
    # No EMA: sampling uses the live generator.
    f = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", ema_decay=0.0, **tiny())
    assert f.sampler is f.nets["generator"]


def test_truncation_and_cli_sampling_option(tmp_path):
    e = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", **tiny())
    e.train_step(torch.rand(8, 1, 8, 8))
    psi0 = e.sample(4, seed=1, truncation=0.0)
    assert torch.allclose(psi0, psi0[:1].expand_as(psi0))  # ψ = 0: every sample is the mean image
    assert not torch.allclose(e.sample(4, seed=1), psi0)
    z = torch.randn(3, 4)
    assert torch.allclose(e.truncate(z, 0.5), 0.5 * z)
    path = str(tmp_path / "g.safetensors")
    ckpt.save(path, e)
    from engines.cli.main import main

    assert main(["sample", "--checkpoint", path, "--n", "4", "--out", str(tmp_path / "s.png"),
                 "--set", "truncation=0.7"]) == 0
    assert main(["sample", "--checkpoint", path, "--n", "4", "--out", str(tmp_path / "s.png"),
                 "--set", "temprature=0.7"]) == 2


def test_checkpoint_round_trip(tmp_path):
    spec = ImageSpec(3, 16, 16)
    e = engines.create("gan", spec, device="cpu", spectral_norm=True, arch="resnet", **tiny())
    for _ in range(2):
        e.train_step(torch.rand(8, 3, 16, 16))
    path = str(tmp_path / "gan.safetensors")
    ckpt.save(path, e)
    back = ckpt.load(path, device="cpu").engine
    assert torch.equal(back.sample(4, seed=2), e.sample(4, seed=2))
    assert set(back.optimizers) == {"generator", "discriminator", "encoder"}
    # Resumed training continues identically.
    x = torch.rand(8, 3, 16, 16)
    e.rng.manual_seed(9)
    back.rng.manual_seed(9)
    assert e.train_step(x) == pytest.approx(back.train_step(x))


def test_conditional_gan_uses_labels():
    spec = ImageSpec(1, 8, 8)
    e = engines.create("gan", spec, device="cpu", n_classes=3, **tiny())
    assert e.latent_shape == (7,)
    x = torch.rand(8, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    out = e.train_step(engines.base.Batch(x, y))
    assert math.isfinite(out["d_loss"])
    s = e.sample(4, seed=0, label=2)
    z = e.prior_sample(4, torch.Generator().manual_seed(0), label=2)
    assert torch.equal(z[:, 4:], torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))
    assert s.shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        e.train_step(x)
    with pytest.raises(ValueError, match="n_classes"):
        e.train_step(engines.base.Batch(x, y + 5))
    inv = e.invert(x[:2], steps=2)
    assert torch.allclose(inv.z[:, 4:].sum(1), torch.ones(2))  # class weights stay a distribution


# ---- toy 2-D Gaussian mixture: every loss covers every mode ---------------------------------------
MODES = 4


def _mixture(n, g):
    k = torch.randint(MODES, (n,), generator=g)
    ang = k.float() * 2 * math.pi / MODES
    return torch.stack([2 * torch.cos(ang), 2 * torch.sin(ang)], 1) + 0.05 * torch.randn(n, 2, generator=g)


class _ToyD(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x, y=None):
        return self.net(x).squeeze(1)


@pytest.mark.parametrize("loss", LOSSES)
def test_toy_mixture_covers_every_mode(loss):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    D = _ToyD()
    og = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9))
    od = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.9))
    # WGAN-GP brings its own penalty; the others get a little R1, the engine's regulariser for them.
    s = (StepSettings(loss, n_critic=2, gp_weight=1.0) if loss == "wgan-gp"
         else StepSettings(loss, r1_gamma=1.0))
    for _ in range(500):
        adversarial_step(G, D, og, od, _mixture(64, g), lambda n: (torch.randn(n, 2, generator=g), None), s, generator=g)
    with torch.no_grad():
        x = G(torch.randn(2000, 2, generator=g))
    ang = torch.arange(MODES).float() * 2 * math.pi / MODES
    centres = torch.stack([2 * torch.cos(ang), 2 * torch.sin(ang)], 1)
    near, which = torch.cdist(x, centres).min(1)
    counts = torch.bincount(which[near < 0.3], minlength=MODES)
    assert float((near < 0.3).float().mean()) > 0.5, "samples should sit on the modes"
    fair = len(x) / MODES
    assert int(counts.min()) > 0.3 * fair, f"a mode is (nearly) missing: {counts.tolist()}"


def test_diversity_indicator_sees_collapse():
    real = torch.rand(32, 3, 16, 16)
    assert pairwise_diversity(real[:1].expand(32, -1, -1, -1), real) == pytest.approx(0.0, abs=1e-3)
    assert pairwise_diversity(torch.rand(32, 3, 16, 16), real) == pytest.approx(1.0, abs=0.15)


def test_d_accuracy_thresholds():
    r, f = torch.tensor([1.0, -1.0]), torch.tensor([-1.0, -1.0])
    assert d_accuracy("ns", r, f) == (0.5, 1.0)
    assert d_accuracy("lsgan", torch.tensor([0.9, 0.4]), torch.tensor([0.1, 0.6])) == (0.5, 0.5)


# ---- penalties against finite differences ------------------------------------------------------------
@torch.no_grad()
def _fd_input_grad(D, x, eps=1e-6):
    g = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            d = torch.zeros_like(x)
            d[i, j] = eps
            g[i, j] = (D(x + d)[i] - D(x - d)[i]) / (2 * eps)
    return g


def _fd_param_grad(fn, p, eps=1e-6):
    """Central differences of a scalar fn() over a few entries of parameter p."""
    out = []
    flat = p.data.view(-1)
    for k in range(min(5, flat.numel())):
        old = float(flat[k])
        flat[k] = old + eps
        hi = float(fn().detach())
        flat[k] = old - eps
        lo = float(fn().detach())
        flat[k] = old
        out.append((hi - lo) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)


def test_r1_penalty_matches_finite_differences():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    Dxy = lambda x, y=None: D(x).squeeze(1)  # noqa: E731
    x = torch.randn(5, 3, dtype=torch.float64)
    fd = _fd_input_grad(Dxy, x)
    assert float(r1_penalty(Dxy, x).detach()) == pytest.approx(float(fd.pow(2).sum(1).mean()), rel=1e-6)
    # Its gradient with respect to D's weights (double backprop) is right too.
    w = D[0].weight
    auto = torch.autograd.grad(r1_penalty(Dxy, x), w)[0].view(-1)[:5]
    assert torch.allclose(auto, _fd_param_grad(lambda: r1_penalty(Dxy, x), w), rtol=1e-4, atol=1e-7)


def test_gradient_penalty_matches_finite_differences():
    torch.manual_seed(1)
    D = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    Dxy = lambda x, y=None: D(x).squeeze(1)  # noqa: E731
    real, fake = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    gp = gradient_penalty(Dxy, real, fake, generator=torch.Generator().manual_seed(4))
    eps = torch.rand((6, 1), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    mix = eps * real + (1 - eps) * fake
    fd = _fd_input_grad(Dxy, mix)
    assert float(gp.detach()) == pytest.approx(float((fd.norm(dim=1) - 1).pow(2).mean()), rel=1e-6)
    w = D[0].weight

    def pen():
        return gradient_penalty(Dxy, real, fake, generator=torch.Generator().manual_seed(4))

    auto = torch.autograd.grad(pen(), w)[0].view(-1)[:5]
    assert torch.allclose(auto, _fd_param_grad(pen, w), rtol=1e-4, atol=1e-7)


def test_diff_augment_keeps_shape_and_gradient():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    y = diff_augment(x, "color,translation,cutout", g)
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert diff_augment(x, "none") is x
    with pytest.raises(ValueError, match="DiffAugment"):
        diff_augment(x, "rotate", g)


# ---- inversion -----------------------------------------------------------------------------------------
def test_inversion_recovers_a_planted_latent():
    """On a fixed generator, images made from known latents are inverted back to them."""
    e = engines.create("gan", ImageSpec(1, 16, 16), device="cpu", seed=3, latent_dim=6, width=16,
                       encoder=False, ema_decay=0.0, invert_prior=0.0)
    z_true = torch.randn(4, 6, generator=torch.Generator().manual_seed(11))
    x = e.decode(z_true)
    inv = e.invert(x, steps=300, restarts=4)
    assert float(inv.mse.max()) < 1e-5
    rel = (inv.z - z_true).norm(dim=1) / z_true.norm(dim=1)
    assert float(rel.max()) < 0.05, rel
    # Fewer steps from one random start does worse: the restarts and steps matter.
    rough = e.invert(x, steps=5, restarts=1)
    assert float(rough.mse.mean()) > float(inv.mse.mean())


def test_encoder_guess_starts_inversion_closer():
    """After training the encoder on the generator's own samples, its guess beats a random start."""
    e = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", latent_dim=4, width=8, batch_size=32,
                       ema_decay=0.0, lr=1e-8, lr_d=1e-8)  # G and D as good as frozen (a learning rate is
    # positive): the encoder chases a fixed target
    x = torch.rand(32, 1, 8, 8)
    for _ in range(150):
        e.train_step(x)
    targets = e.decode(torch.randn(16, 4, generator=torch.Generator().manual_seed(2)))
    guessed = e.invert(targets, steps=0, restarts=1)
    random = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", latent_dim=4, width=8, encoder=False, ema_decay=0.0)
    random.load_state_tensors({k: v for k, v in e.state_tensors().items() if not k.startswith("encoder.")})
    assert float(guessed.mse.mean()) < float(random.invert(targets, steps=0, restarts=1).mse.mean())


def test_inversion_subset_keeps_the_split(tiny_dataset):
    from engines.gan.inversion import inversion_subset

    ds = tiny_dataset(n=96)
    assert inversion_subset(ds, limit=200) is ds
    sub = inversion_subset(ds, limit=40)
    assert len(sub) == 40 and "40 of 96" in sub.name
    assert len(sub.test_idx) == round(40 * len(ds.test_idx) / 96)
    assert set(sub.train_idx) | set(sub.test_idx) == set(range(40))
    # Same seed, same subset (so its latents are found in the cache again).
    again = inversion_subset(ds, limit=40)
    assert (again.images == sub.images).all()


def test_seed_plane_blends_neighbouring_seeds():
    from engines.latent.seeds import blend, seed_at, seed_latents

    e = engines.create("gan", ImageSpec(1, 8, 8), device="cpu", latent_dim=256, width=8)
    corner = seed_latents(e, [seed_at(3, 4)])[0]
    assert torch.allclose(torch.from_numpy(blend(e, 3, 4)), torch.from_numpy(corner))
    # Midway the plain average of four N(0, I) draws would have variance ¼; renormalised it stays ≈ 1.
    mid = blend(e, 3.5, 4.5)
    assert 0.8 < float((mid ** 2).mean()) < 1.25
    # Smooth: a small move changes the latent a little.
    assert float(abs(blend(e, 3.5, 4.51) - mid).max()) < 0.1
    assert seed_at(1, 2) == 2001 and seed_at(-1, 0) == 999


def test_cli_user_errors_for_conditional_gans(tmp_path, tiny_dataset):
    """Wrong n_classes or label: one line and exit status 2, nothing written."""
    import numpy as np

    from engines.cli.main import main

    ds = tiny_dataset(n=32, size=8)  # labels 0..2
    data = str(tmp_path / "blobs.npz")
    np.savez(data, images=ds.images, labels=ds.labels)
    out = str(tmp_path / "c.safetensors")
    args = ["train", "--engine", "gan", "--data", data, "--epochs", "1", "--out", out,
            "--set", "width=8", "--set", "latent_dim=4", "--set", "batch_size=8", "--set", "invert_steps=1"]
    assert main(args + ["--set", "n_classes=2"]) == 2
    assert not (tmp_path / "c.safetensors").exists()
    assert main(args + ["--set", "n_classes=3"]) == 0
    png = str(tmp_path / "s.png")
    assert main(["sample", "--checkpoint", out, "--n", "2", "--out", png, "--set", "label=2"]) == 0
    assert main(["sample", "--checkpoint", out, "--n", "2", "--out", png, "--set", "label=3"]) == 2
