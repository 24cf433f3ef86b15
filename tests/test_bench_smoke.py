"""bench/run.py imports, and its row/table/compare plumbing works on one very short benchmark.

The real benchmarks take minutes; only the decode benchmark runs here, on a tiny model."""
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("bench_run", None)


KEYS = {"bench", "case", "ours", "peer", "peer_name", "unit", "better", "kind", "status", "notes", "ratio", "vs_peer"}


def test_decode_benchmark_rows(bench_run):
    import torch

    import engines
    from engines.spec import ImageSpec

    threads = torch.get_num_threads()
    # A tiny VAE in place of the bundled faces model keeps this well under a second.
    tiny = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    bench_run._SHARED["faces_engine"] = (tiny, "tiny VAE")
    o = bench_run.Opts.make(quick=True, threads=1)
    o.decode_repeat, o.grid_repeat = 2, 1
    try:
        rows = bench_run.bench_decode(o)
    finally:
        bench_run._SHARED.clear()
    assert torch.get_num_threads() == threads
    assert [r["case"] for r in rows] == ["decode 1 image, tiny VAE", "decode 16×16 grid (256 latents)"]
    for r in rows:
        assert KEYS <= set(r)
        assert r["status"] == "ok" and r["unit"] == "ms" and r["better"] == "lower"
        assert r["ours"] > 0 and r["peer"] > 0
        assert r["ratio"] == pytest.approx(r["ours"] / r["peer"])
        assert "×" in r["vs_peer"]
        json.dumps(r)  # saved as JSON
    table = bench_run.render(rows)
    assert "decode 1 image" in table and "peer: the same decoder module" in table and "same NumPy latents" in table


def test_not_implemented_rows_have_no_number_and_say_so_in_the_table(bench_run):
    import harness

    r = harness.not_implemented("planned", "a planned case", "img/s", "some peer", "arrives later")
    assert r["status"] == "not implemented yet" and r["ours"] is None and r["vs_peer"] == ""
    table = bench_run.render([r, bench_run.row("planned", "a real case", 2.0, "img/s")])
    assert "not implemented yet" in table and "a planned case" in table and "a real case" in table


def test_export_benchmark_rows(bench_run):
    import engines
    from engines.spec import ImageSpec

    # A tiny VAE in place of the bundled faces model, and a short walk: the frames are still 512 px.
    tiny = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", latent_dim=4, width=8)
    bench_run._SHARED["faces_engine"] = (tiny, "tiny VAE")
    o = bench_run.Opts.make(quick=True, threads=1)
    o.export_frames = 8
    try:
        rows = bench_run.bench_export(o)
    finally:
        bench_run._SHARED.clear()
    assert [r["case"].split(" (")[0] for r in rows] == [f"export {c}" for c in bench_run.EXPORT_CASES]
    for r in rows:
        assert r["status"] == "ok" and r["unit"] == "frames/s" and r["ours"] > 0 and r["peer"] > 0
        assert r["decode_s"] > 0 and r["write_s"] > 0 and "write/decode" in r["notes"]
        assert "8 frames 512×512" in r["case"]


def test_ratio_text_and_compare(bench_run):
    row = bench_run.row
    assert row("t", "a", 180.0, "img/s", peer=100.0)["vs_peer"] == "1.8× faster"
    assert row("t", "a", 70.0, "img/s", peer=100.0)["vs_peer"] == "0.7× (slower)"
    assert row("t", "a", 5.0, "ms", better="lower", peer=10.0)["vs_peer"] == "2× faster"
    assert row("t", "a", 101.0, "ms", better="lower", peer=100.0)["vs_peer"].startswith("≈ same")
    assert row("q", "b", 280.0, "nats/img", better="lower", kind="quality", peer=290.0)["vs_peer"] == "10.0 nats better"
    prev = {"meta": {"date": "then", "opts": {"threads": 2, "quick": True}, "load_average": {"start": [1.0]}},
            "rows": [row("t", "a", 100.0, "img/s"), row("q", "b", 290.0, "nats/img", better="lower", kind="quality")]}
    now = [row("t", "a", 150.0, "img/s"), row("q", "b", 280.0, "nats/img", better="lower", kind="quality"),
           row("t", "new case", 1.0, "img/s")]
    text = bench_run.compare(json.loads(json.dumps(prev)), now)
    assert "1.5× faster" in text and "-10.0 nats/img (better)" in text and "new case" not in text


def test_gan_train_rows_against_the_dcgan_loop(bench_run):
    import torch
    from conftest import make_blobs

    from engines.data import to_float

    ds = make_blobs(n=200)
    x = to_float(ds.images)
    o = bench_run.Opts.make(quick=True, threads=1)
    o.train_s = 0.3
    rows = bench_run._gan_train_rows(o, ds, x, "GAN train, blobs 16×16×1", torch.device("cpu"))
    assert [r["case"] for r in rows] == ["GAN train, blobs 16×16×1", "GAN train (no encoder, no EMA), blobs 16×16×1"]
    for r in rows:
        assert KEYS <= set(r) and r["status"] == "ok" and r["unit"] == "img/s"
        assert r["ours"] > 0 and r["peer"] > 0 and "DCGAN" in r["peer_name"]
    # The peer has exactly the parameters of our lean GAN (same stage plan): the comparison is the loop.
    import engines
    import peers

    lean = engines.create("gan", ds.spec, device="cpu", encoder=False, ema_decay=0.0)
    assert peers.n_params(peers.PlainDCGAN(ds.spec, lean.config.latent_dim, lean.config.width)) == lean.n_parameters()


@pytest.mark.parametrize("name", ("ae", "vae"))
def test_ae_and_vae_train_rows_race_a_peer_with_our_layers_and_report_the_usual_net(bench_run, name):
    import collections

    import torch
    from conftest import make_blobs
    from torch import nn

    import engines
    import peers
    from engines.data import to_float
    from engines.spec import ImageSpec

    # The peer is the same work as ours: the same parameters, convolutions and GroupNorms (no
    # BatchNorm, no ReLU) — at 28 px and at 64 px RGB.
    for spec in (ImageSpec(1, 28, 28), ImageSpec(3, 64, 64)):
        e = engines.create(name, spec, device="cpu")
        model, _ = peers.plain_model(name, spec, e.config.latent_dim, e.config.width, layers="ours")
        ours = [m for k in ("encoder", "decoder") for m in e.nets[k].modules()]
        count = lambda mods: collections.Counter(type(m).__name__ for m in mods)  # noqa: E731
        for kind in ("Conv2d", "ConvTranspose2d", "GroupNorm", "BatchNorm2d", "ReLU"):
            assert count(ours)[kind] == count(model.modules())[kind], (spec, kind)
        assert peers.n_params(model) == sum(p.numel() for m in (e.nets["encoder"], e.nets["decoder"])
                                           for p in m.parameters())
        usual, _ = peers.plain_model(name, spec, e.config.latent_dim, e.config.width)
        assert count(usual.modules())["BatchNorm2d"] > 0 and count(usual.modules())["GroupNorm"] == 0
    with pytest.raises(ValueError):
        peers.plain_model(name, ImageSpec(1, 28, 28), layers="other")
    ds = make_blobs(n=200)
    o = bench_run.Opts.make(quick=True, threads=1)
    o.train_s = 0.2
    r = bench_run._plain_train_row(o, ds, to_float(ds.images), f"{name} train, blobs", torch.device("cpu"), name)
    assert KEYS <= set(r) and r["status"] == "ok" and r["ours"] > 0 and r["peer"] > 0
    assert "our layers (GroupNorm/SiLU" in r["peer_name"] and "the usual BatchNorm/ReLU net" in r["notes"]
    assert "usual" in r["notes"].split("per CPU second vs the peer:")[1]


@pytest.mark.parametrize("case", ("vq", "diffusion"))
def test_vq_and_diffusion_train_rows_have_their_peers(bench_run, case):
    import torch
    from conftest import make_blobs

    import training
    from engines.data import to_float

    ds = make_blobs(n=200)
    x = to_float(ds.images)
    o = bench_run.Opts.make(quick=True, threads=1)
    o.train_s = 0.05
    fn = training._vq_train_row if case == "vq" else training._diffusion_train_row
    tiny = (dict(width=8, codebook_size=16, code_dim=8, batch_size=16) if case == "vq"
            else dict(width=8, levels=2, batch_size=16))
    r = fn(o, ds, x, f"{case} train, blobs 16×16×1", torch.device("cpu"), **tiny)
    assert KEYS <= set(r) and r["status"] == "ok" and r["ours"] > 0 and r["peer"] > 0
    assert ("vector-quantize-pytorch" if case == "vq" else "UNet2DModel") in r["peer_name"]
    assert "per CPU second vs the peer" in r["notes"]


def test_step_race_interleaves_and_counts_images(bench_run):
    import harness

    order = []

    def side(name, n):
        def step(i):
            order.append((name, i))
            return n
        return step

    r = harness.step_race({"a": side("a", 4), "b": side("b", 2)}, seconds=0.0, warmup=1, min_steps=1)
    # warm-up step 0 for both, then one timed step each, in turn
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert r["a"]["steps"] == r["b"]["steps"] == 1 and r["a"]["img_per_s"] > 0
    order.clear()
    # however short the time, each side takes at least min_steps timed steps (default 6)
    r = harness.step_race({"a": side("a", 4), "b": side("b", 2)}, seconds=0.0, warmup=0)
    assert r["a"]["steps"] == r["b"]["steps"] == 6
    assert order == [(k, i) for i in range(6) for k in "ab"]


def test_slice_race_gives_each_side_its_budget_in_turns(bench_run):
    import time

    import harness

    order, after = [], []

    def side(name):
        def step():
            order.append(name)
            time.sleep(0.01)
        return step

    spent = harness.slice_race({"a": side("a"), "b": side("b"), "off": None}, {"a": 0.05, "b": 0.1, "off": 1.0},
                               {"a": 0.02, "b": 0.02, "off": 0.02}, lambda s, t: after.append((s, t)))
    assert "off" not in order and spent["off"] == 0.0
    for k, budget in (("a", 0.05), ("b", 0.1)):  # it stops at the first slice that reaches the budget
        seen = [t for s, t in after if s == k]
        assert all(t < budget for t in seen[:-1]) and seen[-1] == spent[k] >= budget
    assert order[0] == "a" and order.index("b") < order.index("a", 3)  # a slice of a, then one of b, ...
    assert [s for s, _ in after][:4] == ["a", "b", "a", "b"] and after[-1] == ("b", spent["b"])


def test_gpu_check_runs_quick_on_cpu(tmp_path):
    """bench/gpu_check.py, every engine on 16×16 random images with tiny nets: train, sample and
    decode rows, each train row with its peer. (On CUDA it is run by hand when a GPU is lent.)"""
    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(ROOT, "bench", "gpu_check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu.json"
    assert mod.main(["--device", "cpu", "--quick", "--threads", "1", "--channels-last", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    cases = [r["case"] for r in rows]
    for name in mod.ENGINES:
        train = next(r for r in rows if r["case"].startswith(f"{name} train"))
        assert train["ours"] > 0 and train["peer"] > 0 and train["peer_name"]
        assert any(c.startswith(f"{name} sample") for c in cases)
    assert {c.split(" ")[0] for c in cases if " decode " in c} == {"ae", "vae", "gan", "vqvae", "flow"}
    assert all(r["ours"] > 0 for r in rows)
    import engines

    assert set(mod.ENGINES) == set(engines.names()) - {"pca"}  # every trained engine (PCA is fitted)
    for name in ("gan", "diffusion", "latent-diffusion", "flow"):  # these peers sample too
        assert next(r for r in rows if r["case"].startswith(f"{name} sample"))["peer"] > 0
    # the PixelCNN peer samples grey images only (the data above is RGB): its sampler on its own
    import engines as registry
    import torch

    from engines.spec import ImageSpec

    e = registry.create("pixelcnn", ImageSpec(1, 6, 6), device="cpu", hidden=6, layers=2)
    step, _, sample = mod._pixelcnn_peer(e, torch.rand(40, 1, 6, 6), torch.device("cpu"), [])
    assert step(0) == e.config.batch_size
    out = sample(2)
    assert out.shape == (2, 6, 6) and out.dtype == torch.long and 0 <= int(out.min()) <= int(out.max()) <= 255
    # a device that is not there: one line, exit 2
    import torch

    if not torch.cuda.is_available():
        assert mod.main(["--device", "cuda", "--quick"]) == 2


@pytest.mark.parametrize("name", ("latent-diffusion", "flow", "pixelcnn"))
def test_latent_diffusion_flow_and_pixelcnn_train_rows_have_their_peers(bench_run, name):
    """The train group's rows for these engines race ours against the peer (no "no peer written
    yet"); tiny nets on 16×16 blobs, grey and RGB."""
    import torch
    from conftest import make_blobs

    import training
    from engines.data import to_float

    o = bench_run.Opts.make(quick=True, threads=1)
    o.train_s = 0.05
    tiny = {"latent-diffusion": dict(width=16, ae_width=4, batch_size=8),
            "flow": dict(width=8, steps=2, levels=2, batch_size=8),
            "pixelcnn": dict(hidden=6, layers=2, kernel=3, batch_size=8)}[name]
    peer_word = {"latent-diffusion": "UNet2DModel", "flow": "normflows Glow", "pixelcnn": "gated PixelCNN"}[name]
    for channels in (1, 3):
        ds = make_blobs(n=60, channels=channels)
        x = to_float(ds.images)
        r = training.PEER_ROWS[name](o, ds, x, f"{name.upper()} train, blobs", torch.device("cpu"), **tiny)
        assert KEYS <= set(r) and r["status"] == "ok" and r["ours"] > 0 and r["peer"] > 0, r
        assert peer_word in r["peer_name"] and "params" in r["peer_name"]
        assert "per CPU second vs the peer" in r["notes"] and "no peer" not in r["notes"]
    if name == "pixelcnn":  # equal architecture: ours with positions off, the default reported beside
        assert "positions off" in r["case"] and "default (positions on)" in r["notes"]
    if name == "latent-diffusion":  # stage 2 from the first step: the U-Net on the latents
        assert "stage 2" in r["case"]


def test_peer_architectures_follow_our_configs():
    """The peers the train rows build take our config's sizes: the same latent grid and level plan
    for diffusers' U-Net, the same levels/steps/width for normflows' Glow (parameter counts
    within the few known extras), and the gated PixelCNN's layer count and width."""
    import sys

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import diffusion
    import flow
    import pixelcnn

    import engines
    from engines.spec import ImageSpec

    spec = ImageSpec(1, 28, 28)
    ld = engines.create("latent-diffusion", spec, device="cpu", width=16, blocks=2)
    peer = diffusion.peer_unet(ld.unet_spec, 16, ld.config.levels, ld.config.attn_size, blocks=2)
    assert peer.config.layers_per_block == 2 and peer.config.block_out_channels == (16,)  # 7×7: one level
    assert peer.config.in_channels == ld.latent_shape[0]
    ours_unet = sum(p.numel() for p in ld.nets["unet"].parameters())
    # ours: scale-and-shift time embedding (2c per block, diffusers c): 7 blocks × emb·c more
    emb = 4 * 16
    assert ours_unet - sum(p.numel() for p in peer.parameters()) == 7 * (emb * 16 + 16)

    fl = engines.create("flow", spec, device="cpu")  # defaults: 2 levels at 28 px, 8 steps, width 64
    glow = flow.peer_glow(spec, fl.levels, fl.config.steps, fl.config.width)
    n_glow = sum(p.numel() for p in glow.parameters())
    # ours: the split prior is a conv of the kept half (normflows: learned per position)
    assert fl.levels == 2 and abs(fl.n_parameters() - n_glow) < 0.01 * n_glow

    net = pixelcnn.peer_model(dim=12, n_layers=3, kernel=5, head=12, channels=3)
    assert len(net.layers) == 3 and net.output_conv[2].out_channels == 256 * 3
    import torch

    v = torch.randint(0, 256, (2, 3, 8, 8))
    assert net(v).shape == (2, 256, 3, 8, 8)
    assert pixelcnn.peer_model()(v[:, 0]).shape == (2, 256, 8, 8)  # the grey peer unchanged
