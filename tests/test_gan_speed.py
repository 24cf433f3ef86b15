"""The GAN training speed-ups change nothing they should not: the step with fresh fakes is the old
step bit for bit, reusing the discriminator step's fakes leaves that step unchanged and gives the
DCGAN example's generator step, the fused EMA is the per-parameter one, and the encoder, EMA and
diversity schedules run on the steps they name."""
import contextlib
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import engines
from engines.gan.losses import LOSSES, StepSettings, adversarial_step, d_accuracy, d_loss, diff_augment, g_loss
from engines.gan.nets import Discriminator, ema_update, make_generator
from engines.spec import ImageSpec
from engines.train import TrainOptions, run_to_end, train

SPEC = ImageSpec(3, 16, 16)


# ---- the step as it was before the speed-ups (commit bf66f08), kept as the reference ----------
def old_grad_norm(module) -> float:
    sq = [p.grad.detach().float().pow(2).sum() for p in module.parameters() if p.grad is not None]
    return math.sqrt(float(torch.stack(sq).sum())) if sq else 0.0


def old_adversarial_step(G, D, opt_g, opt_d, real, sample_latent, s, labels=None, generator=None):
    ctx = contextlib.nullcontext
    n = len(real)
    aug = (lambda t: diff_augment(t, s.augment, generator)) if s.augment and s.augment != "none" else (lambda t: t)
    terms = {}
    D.requires_grad_(True)

    def d_phase():
        z, y_fake = sample_latent(n)
        with torch.no_grad(), ctx():
            fake = G(z)
        with ctx():
            real_in, fake_in = aug(real), aug(fake.float())
            r, f = D(real_in, labels).float(), D(fake_in, y_fake).float()
            loss = d_loss(s.loss, r, f)
        return loss, loss, r, f

    for _ in range(max(1, s.n_critic)):
        total, loss_d, r, f = d_phase()
        opt_d.zero_grad(set_to_none=True)
        total.backward()
        terms["d_grad_norm"] = old_grad_norm(D)
        opt_d.step()
    terms["d_loss"] = float(loss_d.detach())
    terms["d_real_acc"], terms["d_fake_acc"] = d_accuracy(s.loss, r.detach(), f.detach())
    D.requires_grad_(False)
    z, y_fake = sample_latent(n)
    fake = G(z)
    loss_g = g_loss(s.loss, D(aug(fake), y_fake).float())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    terms["g_grad_norm"] = old_grad_norm(G)
    opt_g.step()
    D.requires_grad_(True)
    terms["g_loss"] = float(loss_g.detach())
    return terms, fake.detach()


def old_ema_update(ema, live, decay):
    for pe, p in zip(ema.parameters(), live.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)


# ---- helpers -------------------------------------------------------------------------------------
def players(seed=0, arch="dcgan"):
    torch.manual_seed(seed)
    G = make_generator(arch, SPEC, 8, 8, 32)
    D = Discriminator(SPEC, 8, 32, arch, False, 0)
    return G, D


def twin(G, D):
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    return G2, D2, adam(G2), adam(D2)


def latents(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda n: (torch.randn(n, 8, generator=g), None)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


REAL = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
EXACT = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("n_critic", (1, 2))
def test_fresh_fakes_is_the_old_step_bit_for_bit(loss, n_critic):
    G, D = players()
    Ga, Da, oga, oda = twin(G, D)
    Gb, Db, ogb, odb = twin(G, D)
    s = StepSettings(loss, n_critic, gp_weight=0.0, augment="translation", reuse_fakes=False)
    for step in range(3):
        new, fake_new = adversarial_step(Ga, Da, oga, oda, REAL, latents(step), s,
                                         generator=torch.Generator().manual_seed(step))
        old, fake_old = old_adversarial_step(Gb, Db, ogb, odb, REAL, latents(step), s,
                                             generator=torch.Generator().manual_seed(step))
        assert {k: new[k] for k in EXACT} == {k: old[k] for k in EXACT}
        # the norms are summed in another order (one fused per-tensor norm): float rounding only
        assert new["d_grad_norm"] == pytest.approx(old["d_grad_norm"], rel=1e-5)
        assert new["g_grad_norm"] == pytest.approx(old["g_grad_norm"], rel=1e-5)
        assert torch.equal(fake_new, fake_old)
    assert same_weights(Ga, Gb) and same_weights(Da, Db)


def test_reuse_is_ignored_with_several_critic_steps():
    G, D = players()
    Ga, Da, oga, oda = twin(G, D)
    Gb, Db, ogb, odb = twin(G, D)
    a, _ = adversarial_step(Ga, Da, oga, oda, REAL, latents(1), StepSettings(n_critic=3, reuse_fakes=True))
    b, _ = old_adversarial_step(Gb, Db, ogb, odb, REAL, latents(1), StepSettings(n_critic=3))
    assert {k: a[k] for k in EXACT} == {k: b[k] for k in EXACT}
    assert same_weights(Ga, Gb) and same_weights(Da, Db)


@pytest.mark.parametrize("arch", ("dcgan", "resnet"))
def test_reused_fakes_leave_the_d_step_unchanged_and_give_the_dcgan_g_step(arch):
    G, D = players(1, arch)
    Ga, Da, oga, oda = twin(G, D)  # ours, reusing fakes
    Gb, Db, ogb, odb = twin(G, D)  # the old step (fresh fakes for G)
    Gc, Dc, ogc, odc = twin(G, D)  # the DCGAN example's step, written out
    reuse = StepSettings("ns", 1, reuse_fakes=True)
    new, _ = adversarial_step(Ga, Da, oga, oda, REAL, latents(5), reuse)
    old, _ = old_adversarial_step(Gb, Db, ogb, odb, REAL, latents(5), StepSettings("ns", 1))
    # The discriminator step is the old one: same fakes (the first latent draw), same loss, same D.
    assert new["d_loss"] == old["d_loss"] and new["d_real_acc"] == old["d_real_acc"]
    assert same_weights(Da, Db)
    # The generator step scores those same fakes with the updated D (the peer's loop) …
    z, _ = latents(5)(len(REAL))
    fake = Gc(z)
    err_d = F.softplus(-Dc(REAL, None)).mean() + F.softplus(Dc(fake.detach(), None)).mean()
    odc.zero_grad()
    err_d.backward()
    odc.step()
    err_g = F.softplus(-Dc(fake, None)).mean()
    ogc.zero_grad()
    err_g.backward()
    ogc.step()
    assert new["d_loss"] == float(err_d.detach()) and new["g_loss"] == float(err_g.detach())
    for p, q in zip(Ga.parameters(), Gc.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    # … so its loss differs from the old step's, which drew new latents for G.
    assert new["g_loss"] != old["g_loss"]


def test_foreach_ema_equals_the_per_parameter_ema():
    G, _ = players(2)
    live = copy.deepcopy(G)
    with torch.no_grad():
        for p in live.parameters():
            p.add_(torch.randn_like(p))
    a, b = copy.deepcopy(G).requires_grad_(False), copy.deepcopy(G).requires_grad_(False)  # as the engine's copy
    for decay in (0.0, 0.5, 0.9, 0.999):
        ema_update(a, live, decay)
        old_ema_update(b, live, decay)
        assert same_weights(a, b)


def tiny_engine(**kw):
    return engines.create("gan", ImageSpec(1, 8, 8), device="cpu", latent_dim=4, width=8, batch_size=8,
                          invert_steps=3, **kw)


def test_ema_every_k_steps_applies_decay_to_the_k():
    e = tiny_engine(ema_decay=0.9, ema_every=3)
    x = torch.rand(8, 1, 8, 8)
    start = copy.deepcopy(e.nets["generator_ema"])
    for _ in range(2):
        e.train_step(x)
    assert same_weights(e.nets["generator_ema"], start)  # steps 0, 1: no update
    e.train_step(x)
    expect = copy.deepcopy(start)
    old_ema_update(expect, e.nets["generator"], min(0.9, 3 / 12) ** 3)  # at step 2, warm-up decay³
    for p, q in zip(e.nets["generator_ema"].parameters(), expect.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_encoder_and_diversity_run_on_their_steps():
    e = tiny_engine(encoder_every=3, diversity_every=2)
    x = torch.rand(8, 1, 8, 8)
    for step in range(6):
        before = [p.clone() for p in e.nets["encoder"].parameters()]
        t = e.train_step(x)
        trained = not all(torch.equal(a, b) for a, b in zip(before, e.nets["encoder"].parameters()))
        assert ("enc_loss" in t) == trained == (step % 3 == 0)
        assert ("diversity" in t) == (step % 2 == 0)


def test_trainer_reports_terms_measured_every_n_steps(tiny_dataset):
    ds = tiny_dataset(n=64, size=8)
    e = tiny_engine(diversity_every=1000, encoder_every=1000)
    reports = [p for p in train(e, ds, TrainOptions(epochs=3, report_every_s=0.0, eval_images=8)) if p.metrics]
    assert reports[-1].state == "finished" and e.step > 3
    # measured once (step 0); every later report carries that value, undiluted by the other steps
    first = reports[0].metrics["diversity"]
    assert first > 0 and all(r.metrics["diversity"] == first for r in reports)
    assert all("enc_loss" in r.metrics for r in reports)


def test_default_trains_like_the_dcgan_example():
    c = tiny_engine().config
    assert c.reuse_fakes and c.n_critic == 1 and c.ema_every == 1
    assert c.encoder_every > 1 and c.diversity_every > 1
