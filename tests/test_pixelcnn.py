"""The PixelCNN engine: causal masks (by gradients), exact bits per dimension, sampling and
completion in raster order, training round trips, and the gated PixelCNN as a prior over VQ codes."""
import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F

import engines
from engines import checkpoint as ckpt
from engines.base import Batch
from engines.config import ConfigError
from engines.pixelcnn.net import GatedPixelCNN
from engines.spec import ImageSpec
from engines.train import TrainControl, TrainOptions, run_to_end, train


def make(channels=1, size=8, **kw):
    cfg = {"hidden": 6 if channels == 3 else 4, "layers": 2, "kernel": 3, "batch_size": 16, **kw}
    return engines.create("pixelcnn", ImageSpec(channels, size, size), device="cpu", seed=0, **cfg)


def input_gradient(net, x, i, j, g):
    """|∂ logits[:, :, g, i, j] / ∂ x| summed over the values: (C, H, W)."""
    x = x.clone().requires_grad_(True)
    net(x)[0, :, g, i, j].sum().backward()
    return x.grad[0].abs()


def receptive(h, w, i, j, r):
    """The pixels that the output at (i, j) must see: rows i−1−r … i−1 over columns j−r … j+r,
    and j−r … j−1 of row i."""
    m = torch.zeros(h, w, dtype=torch.bool)
    m[max(0, i - 1 - r): i, max(0, j - r): j + r + 1] = True
    m[i, max(0, j - r): j] = True
    return m


@pytest.mark.parametrize("layers,kernel,inner", [(1, 3, 3), (2, 3, 3), (3, 5, 3), (2, 3, 5), (3, 3, 5)])
def test_grey_output_sees_exactly_the_earlier_pixels_of_its_receptive_field(layers, kernel, inner):
    torch.manual_seed(0)
    net = GatedPixelCNN(1, 1, 16, hidden=8, layers=layers, kernel=kernel, inner_kernel=inner)
    h = w = 9
    x = torch.randn(1, 1, h, w)
    r = net.receptive_radius()
    assert r == kernel // 2 + (layers - 1) * (inner // 2)
    for i, j in [(4, 4), (0, 3), (5, 0), (8, 8), (3, 8)]:
        seen = input_gradient(net, x, i, j, 0)[0] > 0
        expected = receptive(h, w, i, j, r)
        assert torch.equal(seen, expected), (i, j, seen.int(), expected.int())
        # nothing at or after the pixel in raster order
        later = torch.arange(h * w).view(h, w) >= i * w + j
        assert not seen[later].any()
        if i > 0 and j + 1 < w:  # no blind spot: the pixel up and to the right is seen
            assert seen[i - 1, j + 1]


def test_rgb_sub_pixels_follow_r_then_g_then_b():
    torch.manual_seed(0)
    net = GatedPixelCNN(3, 3, 16, hidden=9, layers=3, kernel=3)
    x = torch.randn(1, 3, 7, 7)
    i, j = 3, 3
    r = net.receptive_radius()
    before = receptive(7, 7, i, j, r)
    for g in range(3):
        grad = input_gradient(net, x, i, j, g)
        for c in range(3):  # the current pixel: channel c reaches sub-pixel g exactly when c < g
            assert bool(grad[c, i, j] > 0) == (c < g), (g, c)
            assert torch.equal(grad[c] > 0, before | ((torch.arange(49).view(7, 7) == i * 7 + j) & (c < g)))


def test_cropped_rows_give_the_same_logits_as_the_whole_image():
    torch.manual_seed(1)
    net = GatedPixelCNN(1, 1, 16, hidden=8, layers=3, kernel=5)
    x = torch.randn(2, 1, 12, 10)
    full = net(x)
    top = 11 - net.context_rows()
    assert top > 0
    torch.testing.assert_close(net(x[:, :, top:])[:, :, :, -1], full[:, :, :, 11], rtol=1e-5, atol=1e-5)


def test_position_biases_follow_a_crop_and_keep_the_net_causal():
    """With learned row/column biases a crop must be told its first row (`row0`): then its logits
    equal the whole image's; without it they differ. The biases carry no data, so every output
    still depends on exactly the earlier pixels (checked by gradient)."""
    torch.manual_seed(2)
    net = GatedPixelCNN(1, 1, 16, hidden=8, layers=3, kernel=5, positions=(12, 10))
    for layer in net.layers:
        torch.nn.init.normal_(layer.row)
        torch.nn.init.normal_(layer.col)
    x = torch.randn(2, 1, 12, 10)
    full = net(x)
    top = 11 - net.context_rows()
    torch.testing.assert_close(net(x[:, :, top:], row0=top)[:, :, :, -1], full[:, :, :, 11], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(net(x[:, :, top:])[:, :, :, -1], full[:, :, :, 11], atol=1e-3)
    for i, j in [(0, 0), (5, 4), (11, 9)]:
        grad = input_gradient(net, torch.randn(1, 1, 12, 10), i, j, 0)
        assert torch.equal(grad[0] > 0, receptive(12, 10, i, j, net.receptive_radius()))


def test_files_without_the_positions_field_load_without_position_biases(tmp_path):
    """A checkpoint written before `positions` existed (its config lacks the key) loads as the
    position-free net it was trained as, not as today's default."""
    import json

    e = make(positions=False)
    path = str(tmp_path / "old.safetensors")
    ckpt.save(path, e)
    meta, tensors = ckpt._read_all(path)
    cfg = json.loads(meta["config"])
    del cfg["positions"]
    meta["config"] = json.dumps(cfg)
    ckpt._write(path, tensors, meta)
    loaded = ckpt.load(path, device="cpu")
    assert loaded.engine.config.positions is False
    assert not any("row" in k for k in loaded.engine.nets.state_dict())
    assert make().config.positions is True


def direct_nll(e, x, labels=None):
    """−log p(x) as a sum over sub-pixels in raster order, each scored by a forward pass on an
    image whose later sub-pixels are noise (so causality is checked too)."""
    v = e.values_of(x)
    n, ch, h, w = v.shape
    total = torch.zeros(n)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                for c in range(ch):
                    probe = torch.randint(0, 256, v.shape, generator=gen)
                    flat_probe, flat_v = probe.view(n, ch, -1), v.view(n, ch, -1)
                    k = i * w + j
                    flat_probe[:, :, :k] = flat_v[:, :, :k]
                    probe[:, :c, i, j] = v[:, :c, i, j]
                    logp = F.log_softmax(e.logits(probe, labels)[:, :, c, i, j], 1)
                    total -= logp.gather(1, v[:, c, i, j][:, None])[:, 0]
    return total


@pytest.mark.parametrize("channels", (1, 3))
def test_bpd_is_the_direct_per_pixel_sum(channels):
    e = make(channels, size=4)
    x = torch.rand(3, channels, 4, 4, generator=torch.Generator().manual_seed(2))
    nll = direct_nll(e, x)
    torch.testing.assert_close(e.nll(x), nll, rtol=1e-4, atol=1e-3)
    dims = channels * 16
    assert e.likelihood(x)["bpd"] == pytest.approx(float(nll.mean()) / (dims * math.log(2)), rel=1e-5)
    assert e.evaluate(x)["bpd"] == pytest.approx(e.likelihood(x)["bpd"])


def test_conditional_bpd_is_the_exact_marginal_over_classes():
    e = make(1, size=4, num_classes=3)
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    per_class = torch.stack([direct_nll(e, x, torch.full((2,), y)) for y in range(3)], 1)
    marginal = -(torch.logsumexp(-per_class, 1) - math.log(3))
    torch.testing.assert_close(e.nll(x), marginal, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(e.nll(x, torch.tensor([1, 2])), per_class[[0, 1], [1, 2]], rtol=1e-4, atol=1e-3)


def test_sampling_is_pixel_by_pixel_and_seeded():
    e = make(1, size=6)
    loop = e.raster_loop(3, seed=4)
    assert len(loop) == 36
    seen = []
    for step in loop:
        seen.append((step.row, step.col))
        filled = step.index + 1
        # pixels not drawn yet are still 0
        assert not step.values.view(3, -1)[:, filled:].any()
    assert seen == [(i, j) for i in range(6) for j in range(6)]
    a = e.images_of(loop.result)
    assert torch.equal(a, e.sample(3, seed=4)) and not torch.equal(a, e.sample(3, seed=5))
    assert torch.equal(a, e.images_of(e.values_of(a)))  # on the 8-bit grid
    greedy = e.sample(2, seed=0, temperature=0)
    assert torch.equal(greedy, e.sample(2, seed=9, temperature=0))


def test_completion_keeps_the_given_rows_exactly():
    e = make(3, size=8)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    loop = e.completion_loop(x, per_image=3, seed=0)
    assert len(loop) == 32  # only the bottom half is drawn
    out = e.images_of(loop.run())
    assert out.shape == (6, 3, 8, 8)
    given = e.images_of(e.values_of(x)).repeat_interleave(3, 0)
    assert torch.equal(out[:, :, :4], given[:, :, :4])
    assert not torch.equal(out[0, :, 4:], out[1, :, 4:])  # three different completions of one image
    with pytest.raises(ConfigError, match="rows to keep"):
        e.completion_loop(x, rows=9)
    with pytest.raises(ConfigError, match="images are"):
        e.completion_loop(torch.rand(1, 1, 8, 8))


def test_bad_settings_and_labels_are_one_line():
    with pytest.raises(ConfigError, match="multiple of the image channels"):
        make(3, hidden=4)
    with pytest.raises(ConfigError, match="unconditional"):
        make().sample(1, label=2)
    with pytest.raises(ConfigError, match="label must be within"):
        make(num_classes=2).sample(1, label=2)
    with pytest.raises(ConfigError, match="needs a data set with labels"):
        make(num_classes=2).train_step(Batch(torch.rand(2, 1, 8, 8)))
    with pytest.raises(NotImplementedError, match="cannot encode"):
        make().encode(torch.rand(1, 1, 8, 8))


def weights(e):
    return {k: v.clone() for k, v in e.nets.state_dict().items()}


def test_learns_and_resumes_exactly(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64, size=8)
    straight = make(num_classes=3, lr=0.01)
    states = [p for p in train(straight, ds, TrainOptions(epochs=6, seed=3, report_every_s=0))]
    running = [p for p in states if p.state == "running"]
    assert running[-1].metrics["bpd"] < running[0].metrics["bpd"] - 0.5

    first = make(num_classes=3, lr=0.01)
    out = str(tmp_path / "half.safetensors")
    run_to_end(train(first, ds, TrainOptions(epochs=3, seed=3, out=out)))
    resumed = ckpt.load(out, device="cpu").engine
    assert resumed.step == first.step and resumed.config.num_classes == 3
    run_to_end(train(resumed, ds, TrainOptions(epochs=6, seed=3)))
    a, b = weights(straight), weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cancel_saves_and_the_file_samples_the_same(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=64, size=8)
    e = make()
    control = TrainControl()
    out = str(tmp_path / "c.safetensors")
    for p in train(e, ds, TrainOptions(epochs=1000, out=out, report_every_s=0), control):
        if p.step >= 3 and not control.cancelled:
            control.cancel()
    assert p.state == "cancelled"
    loaded = ckpt.load(out, device="cpu")
    assert loaded.info.train_state["state"] == "cancelled" and loaded.engine.step == p.step
    assert torch.equal(loaded.engine.sample(2, seed=1), e.sample(2, seed=1))
    assert loaded.engine.likelihood(ds.images[:4])["bpd"] == pytest.approx(e.likelihood(ds.images[:4])["bpd"])


def test_pixelcnn_code_prior_trains_and_reports_nats_per_code(tiny_dataset):
    from engines.vq.prior_pixelcnn import PixelCNNCodePrior
    from engines.vq.prior_train import train_prior

    ds = tiny_dataset(n=64, size=8)
    vq = engines.create("vqvae", ds.spec, device="cpu", codebook_size=6, code_dim=2, width=8, batch_size=16,
                        prior_dim=8, prior_layers=1, prior_heads=2)
    run_to_end(train(vq, ds, TrainOptions(epochs=2)))
    with pytest.raises(ConfigError, match="not a prior setting"):
        vq.replace_prior(width=3)
    vq.replace_prior(prior="pixelcnn", prior_dim=8, prior_layers=2)
    assert isinstance(vq.nets["prior"], PixelCNNCodePrior) and vq.config.prior == "pixelcnn"
    assert not vq.prior_trained
    # nets rest in eval mode (Engine.__init__): after training, a new prior, and prior training
    assert not any(m.training for m in vq.nets.modules())
    states = list(train_prior(vq, ds, epochs=6, report_every_s=0))
    assert not any(m.training for m in vq.nets.modules())
    last = states[-1]
    assert last.state == "finished"
    first = next(p for p in states if p.metrics)
    assert last.metrics["nats_per_token"] < first.metrics["nats_per_token"]
    assert 0 < last.metrics["test_nats_per_token"] < math.log(6) + 0.5
    out = vq.evaluate(ds.images[:16])
    grids = vq.encode_indices(ds.images[:16])
    assert out["prior_nats_per_token"] == pytest.approx(float(vq.prior_nll(grids).mean()) / grids[0].numel())
    # the prior's likelihood is the per-cell sum: cell k scored with later cells scrambled
    prior = vq.nets["prior"]
    with torch.no_grad():
        direct = torch.zeros(len(grids))
        flat = grids.view(len(grids), -1)
        for k in range(flat.shape[1]):
            probe = torch.randint(0, 6, flat.shape, generator=torch.Generator().manual_seed(k))
            probe[:, :k] = flat[:, :k]
            lg = prior.logits(probe.view_as(grids)[:, None])[:, :, 0].flatten(2)[:, :, k]
            direct -= F.log_softmax(lg, 1).gather(1, flat[:, k:k + 1])[:, 0]
    torch.testing.assert_close(vq.prior_nll(grids), direct, rtol=1e-4, atol=1e-3)
    # inpainting keeps the unmasked cells
    mask = torch.zeros_like(grids, dtype=torch.bool)
    mask[:, -1] = True
    filled = vq.inpaint(grids, mask, seed=0)
    assert torch.equal(filled[~mask], grids[~mask])
    assert vq.sample(2, seed=0).shape == (2, 1, 8, 8)


def test_cli_train_prior_pixelcnn_beside_the_transformer(tmp_path, tiny_dataset, capsys):
    from engines.cli import main as cli

    vq = str(tmp_path / "vq.safetensors")
    assert cli(["train", "--engine", "vqvae", "--data", "digits", "--size", "8", "--epochs", "1", "--set",
                "codebook_size=8", "--set", "width=8", "--out", vq]) == 0
    t = str(tmp_path / "t.safetensors")
    p = str(tmp_path / "p.safetensors")
    assert cli(["train-prior", "--checkpoint", vq, "--epochs", "1", "--set", "prior_dim=8", "--set", "prior_layers=1",
                "--set", "prior_heads=2", "--out", t]) == 0
    assert cli(["train-prior", "--checkpoint", vq, "--epochs", "1", "--set", "prior=pixelcnn", "--set", "prior_dim=8",
                "--set", "prior_layers=2", "--out", p]) == 0
    assert "training the pixelcnn prior" in capsys.readouterr().err
    a, b = ckpt.load(t, device="cpu"), ckpt.load(p, device="cpu")
    assert a.engine.config.prior == "transformer" and b.engine.config.prior == "pixelcnn"
    assert a.info.metrics["prior_test_nats_per_token"] > 0 and b.info.metrics["prior_test_nats_per_token"] > 0
    # the same codebook under both priors
    assert torch.equal(a.engine.nets["quantizer"].state_dict()["codebook"] if "codebook" in a.engine.nets["quantizer"].state_dict()
                       else next(iter(a.engine.nets["quantizer"].state_dict().values())),
                       b.engine.nets["quantizer"].state_dict()["codebook"] if "codebook" in b.engine.nets["quantizer"].state_dict()
                       else next(iter(b.engine.nets["quantizer"].state_dict().values())))
    assert cli(["train-prior", "--checkpoint", vq, "--epochs", "1", "--set", "prior=lstm"]) == 2


def test_cli_sample_video_and_completions(tmp_path, capsys):
    from PIL import Image

    from engines.cli import main as cli

    m = str(tmp_path / "p.safetensors")
    assert cli(["train", "--engine", "pixelcnn", "--data", "digits", "--size", "8", "--epochs", "1", "--set", "hidden=4",
                "--set", "layers=1", "--set", "kernel=3", "--out", m]) == 0
    gif = str(tmp_path / "g.gif")
    assert cli(["sample", "--checkpoint", m, "--n", "4", "--out", str(tmp_path / "s.png"), "--video", gif,
                "--frames", "9", "--fps", "10"]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 9  # recorded (the first: nothing drawn yet); the last one held
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"))
        assert im.info["duration"] >= 1500
    assert (first[..., 2] > first[..., 0]).any() and not np.array_equal(first, last)  # undrawn pixels tinted
    out = str(tmp_path / "c.png")
    assert cli(["sample", "--checkpoint", m, "--complete", "2", "--per-image", "3", "--out", out]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (1 + 2 * 9, 1 + 5 * 9, 3)  # 2 rows of [given, 3 completions, original]
    from engines.data import load_dataset

    test = load_dataset("digits", size=8).split("test").images[:2, ..., 0]
    for r in range(2):
        y = 1 + r * 9
        original = grid[y:y + 8, 1 + 4 * 9:1 + 4 * 9 + 8, 0]
        assert np.array_equal(original, test[r])
        for k in range(1, 4):
            x = 1 + k * 9
            assert np.array_equal(grid[y:y + 4, x:x + 8, 0], test[r, :4])  # the kept top half, exactly
    assert cli(["sample", "--checkpoint", m, "--n", "2", "--out", out, "--video", str(tmp_path / "v.avi")]) == 2
    vae = str(tmp_path / "v.safetensors")
    assert cli(["train", "--engine", "pca", "--data", "digits", "--size", "8", "--epochs", "1", "--out", vae]) == 0
    assert cli(["sample", "--checkpoint", vae, "--n", "2", "--out", out, "--complete", "1"]) == 2
    assert "pixel by pixel" in capsys.readouterr().err


def test_conditional_completion_uses_each_images_own_class():
    e = make(1, size=6, num_classes=3)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    # at temperature 0 a completion is a function of the image and its class alone
    own = e.complete(x, per_image=2, temperature=0, labels=torch.tensor([2, 0]))
    by_hand = torch.cat([e.complete(x[:1], per_image=2, temperature=0, label=2),
                         e.complete(x[1:], per_image=2, temperature=0, label=0)])
    assert torch.equal(own, by_hand)
    assert not torch.equal(own, e.complete(x, per_image=2, temperature=0, label=1))
    assert torch.equal(e.complete(x, per_image=2, seed=3, labels=torch.tensor([1, 1])),
                       e.complete(x, per_image=2, seed=3, label=1))
    with pytest.raises(ConfigError, match="labels must be within"):
        e.completion_loop(x, labels=torch.tensor([0, 3]))
