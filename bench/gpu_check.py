"""Each engine trained, sampled and decoded briefly on a GPU, in images/s against the same peers as
bench/run.py: a check that the CUDA paths work and a first speed reading on a lent card.

    python bench/gpu_check.py [--device cuda] [--seconds 5] [--quick] [--channels-last] [--compile]
                              [--no-amp] [--out results.json]

- train: one `train_step` of ours against the peer's step (bench/peers.py, bench/diffusion.py),
  interleaved step by step (`harness.step_race`), CUDA synchronised after every step. Ours runs
  under the engines' own mixed precision (`engines.device.autocast`: bf16 on cards that support
  it); the peer's step runs under the same autocast unless `--no-amp`.
- sample: images/s of `engine.sample(n)` against the peer's generator/decoder called directly on
  prior draws (diffusion: our DDIM against diffusers' DDIMScheduler, both 10 steps), both float32.
- decode: images/s of `engine.decode(z)` against our own decoder module called directly (the
  engine wrapper's cost), both float32, and with `--compile` that module after `torch.compile`.
- `--channels-last` puts both sides' networks and inputs in channels-last memory format.

`--device cpu --quick` runs everything on 16×16 random images with tiny networks in seconds:
tests/test_bench_smoke.py runs it so, on machines without a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import common  # noqa: E402  (puts the project on sys.path)
from harness import render, row, step_race  # noqa: E402

ENGINES = ("ae", "vae", "gan", "vqvae", "diffusion", "latent-diffusion", "flow", "pixelcnn")
TINY = {"ae": dict(width=8, latent_dim=8), "vae": dict(width=8, latent_dim=8), "gan": dict(width=8, latent_dim=8),
        "vqvae": dict(width=8, codebook_size=16, code_dim=8, prior_dim=16, prior_layers=1, prior_heads=2),
        "diffusion": dict(width=8, levels=2), "latent-diffusion": dict(width=16, levels=2, ae_width=8),
        "flow": dict(steps=2, width=8), "pixelcnn": dict(hidden=6, layers=2)}
# Sampling pixel by pixel (64×64×3: 12,288 forward passes a batch): fewer images, one timed call.
SAMPLE_N = {"pixelcnn": (4, 1)}
NO_PEER_SAMPLER = {"vqvae": "no peer sampler (the VQ peer has no code prior)",
                   "pixelcnn": "no peer sampler for RGB (the peer has no R → G → B sub-pixel order)"}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peer_autocast(device, amp: bool):
    """The autocast our engines use (engines.device.autocast), for the peer's step too."""
    from engines.device import autocast

    return autocast(device, enabled=amp) if amp else contextlib.nullcontext()


def images_per_s(fn, n: int, device, repeat: int) -> float:
    """n images / the median wall time of `fn()` (after one warm-up call), synchronised."""
    import statistics

    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def make_data(a, device):
    """(spec, images in [0, 1] on the device): faces 64×64, or 16×16 random images with --quick."""
    import torch

    from engines.data import to_float
    from engines.spec import ImageSpec

    if a.quick:
        spec = ImageSpec(3, 16, 16)
        x = torch.rand(96, *spec.shape, generator=torch.Generator().manual_seed(0))
    else:
        from harness import dataset

        ds = dataset("faces", 64, 3)
        spec, x = ds.spec, to_float(ds.images[ds.train_idx])
    x = x.to(device)
    if a.channels_last:
        import torch

        x = x.contiguous(memory_format=torch.channels_last)
    return spec, x


def build(name: str, spec, x, a, device):
    """(our engine, our step, the peer's step, peer name, the peer's sampler `fn(n)` or None)."""
    import torch

    from types import SimpleNamespace

    import diffusion
    import peers
    from training import engine_step

    ds = SimpleNamespace(spec=spec)  # all engine_step reads of a data set
    config = dict(TINY[name], batch_size=16) if a.quick else {}
    if name == "latent-diffusion":  # every step a diffusion step, as the train row (bench/training.py)
        config["ae_epochs"] = 0.0
    ours, e = engine_step(name, ds, x, device, **config)
    c = e.config
    bs = c.batch_size
    torch.manual_seed(0)
    modules = []  # the peer's networks (channels-last, eval for sampling)
    if name in peers.PLAIN:
        model, loss = peers.plain_model(name, spec, c.latent_dim, c.width, layers="ours")  # as the CPU train row
        model = model.to(device)
        modules.append(model)
        step = peers.plain_step(model, loss, x, bs, c.lr)
        pname = f"plain PyTorch conv {name.upper()}, our layers"
        sample = lambda n: model.decoder(model.act(model.fc_dec(torch.randn(n, c.latent_dim, device=device)))  # noqa: E731
                                         .view(n, *model.start))
    elif name == "gan":
        gan = peers.PlainDCGAN(spec, c.latent_dim, c.width).to(device)
        modules.append(gan)
        step = peers.gan_step(gan, x, bs, c.lr)
        pname = "PyTorch examples' DCGAN loop"
        sample = lambda n: gan.G(torch.randn(n, c.latent_dim, 1, 1, device=device))  # noqa: E731
    elif name == "vqvae":
        model = peers.LucidrainsVQVAE(spec, c).to(device)
        modules.append(model)
        step = peers.vq_step(model, x, bs, c.lr)
        pname = "vector-quantize-pytorch in our encoder/decoder"
        sample = None
    elif name == "diffusion":
        peer = diffusion.Peer(spec, c.lr, width=c.width, levels=c.levels, attn_size=c.attn_size, device=device)
        modules.append(peer.net)
        n_x = len(x)

        def step(i):
            peer.train_step(x[(i * bs) % (n_x - bs):][:bs])
            return bs

        pname = "diffusers UNet2DModel + DDPMScheduler"
        sample = lambda n: diffusion.diffusers_ddim(lambda xt, t: peer.net(xt, t).sample, (n, *spec.shape), 10,  # noqa: E731
                                                    device=device)
    else:
        step, pname, sample = OTHER_PEERS[name](e, x, device, modules)
    if a.channels_last:
        for m in [e.nets, *modules]:
            m.to(memory_format=torch.channels_last)

    def peer_step(i):
        with peer_autocast(device, a.amp):
            n = step(i)
        sync(device)
        return n

    def our_step(i):
        n = ours(i)
        sync(device)
        return n

    def peer_sample(n):
        for m in modules:
            m.eval()
        return sample(n)

    return e, our_step, peer_step, pname, None if sample is None else peer_sample


def _latent_diffusion_peer(e, x, device, modules):
    """diffusers' UNet2DModel on our latent grid, each batch encoded by its own copy of our first
    stage (bench/diffusion.py's `latent_peer`, as the train row); sampling: diffusers' DDIM on the
    latents, then that first stage's decoder."""
    import diffusion
    import torch

    bs, n_x = e.config.batch_size, len(x)
    peer, first = diffusion.latent_peer(e, device)
    modules += [peer.net, first]

    def step(i):
        peer.train_step(x[(i * bs) % (n_x - bs):][:bs])
        return bs

    def sample(n):
        z = diffusion.diffusers_ddim(lambda zt, t: peer.net(zt, t).sample, (n, *e.unet_spec.shape), 10, device=device,
                                     target=e.config.target, raw=True)
        return torch.sigmoid(first.decoder(z / (peer.latent_scale[0] if peer.latent_scale else 1.0)))

    return step, "diffusers UNet2DModel on our latents (DDIM 10 to sample)", sample


def _flow_peer(e, x, device, modules):
    import flow
    import torch

    c, bs, n_x = e.config, e.config.batch_size, len(x)
    model = flow.peer_glow(e.spec, e.levels, c.steps, c.width).to(device)
    modules.append(model)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    g = torch.Generator(device=device).manual_seed(0)

    def step(i):
        flow.peer_train_step(model, opt, x[(i * bs) % (n_x - bs):][:bs], g)
        return bs

    return step, "normflows Glow (same levels, steps, coupling width)", lambda n: model.sample(n)[0]


def _pixelcnn_peer(e, x, device, modules):
    import pixelcnn
    import torch

    c, bs, n_x, ch = e.config, e.config.batch_size, len(x), e.spec.channels
    model = pixelcnn.peer_model(c.hidden, c.layers, c.kernel, head=c.hidden, channels=ch).to(device)
    modules.append(model)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)

    def step(i):
        v = (x[(i * bs) % (n_x - bs):][:bs] * 255).round().long()
        pixelcnn.peer_train_step(model, opt, v[:, 0] if ch == 1 else v)
        return bs

    def sample(n):
        return model.generate((e.spec.height, e.spec.width), n, torch.Generator(device=device).manual_seed(0))

    # the peer samples one channel only (no R → G → B sub-pixel order)
    return step, "plain PyTorch gated PixelCNN (ours: positions on, the default)", sample if ch == 1 else None


OTHER_PEERS = {"latent-diffusion": _latent_diffusion_peer, "flow": _flow_peer, "pixelcnn": _pixelcnn_peer}


def check(name: str, spec, x, a, device) -> list[dict]:
    import torch

    e, our_step, peer_step, pname, peer_sample = build(name, spec, x, a, device)
    r = step_race({"ours": our_step, "peer": peer_step}, a.seconds, warmup=2)
    where = f"{spec.height}×{spec.width}×{spec.channels}, {device}"
    rows = [row("gpu", f"{name} train, {where}", r["ours"]["img_per_s"], "img/s", peer=r["peer"]["img_per_s"],
                peer_name=pname, notes=f"batch {e.config.batch_size}; {r['ours']['steps']} steps each, interleaved")]
    n, repeat = (8, 2) if a.quick else SAMPLE_N.get(name, (64, 5))
    opts = {"steps": 10, "sampler": "ddim"} if name in ("diffusion", "latent-diffusion") else {}
    ours_s = images_per_s(lambda: e.sample(n, seed=0, **opts), n, device, repeat)
    peer_s = None
    if peer_sample is not None:
        with torch.inference_mode():  # float32 on both sides: our sample/decode use no autocast
            peer_s = images_per_s(lambda: peer_sample(n), n, device, repeat)
    ddim = " (DDIM 10)" if name in ("diffusion", "latent-diffusion") else ""
    rows.append(row("gpu", f"{name} sample {n}, {where}{ddim}", ours_s,
                    "img/s", peer=peer_s, peer_name=None if peer_s is None else f"{pname}: its own sampler",
                    notes="" if peer_s is not None else NO_PEER_SAMPLER.get(name, "")))
    rows += decode_rows(name, e, n, a, device, where, repeat)
    return rows


def decode_rows(name, e, n, a, device, where, repeat) -> list[dict]:
    """engine.decode against our decoder module called directly (and compiled, with --compile)."""
    import torch

    if name in ("diffusion", "latent-diffusion", "pixelcnn"):  # DDIM trajectories from x_T (the sample
        return []  # row covers them); a PixelCNN has no latent
    z = e.prior_sample(n, torch.Generator(device=device).manual_seed(0)) if name != "vqvae" else \
        e.encode(torch.rand(n, *e.spec.shape, device=device))
    module = {"ae": lambda: e.nets["decoder"], "vae": lambda: e.nets["decoder"], "gan": lambda: e.sampler,
              "vqvae": lambda: e.nets["decoder"], "flow": lambda: e.nets["flow"]}[name]()
    inner = {"vqvae": lambda t: module(e.nets["quantizer"].lookup(e._indices_of_latent(t))),
             "flow": e._decode}.get(name, module)

    def bare(fn):  # float32 like engine.decode (no autocast at inference)
        def run():
            with torch.inference_mode():
                return fn(z)
        return run

    was = module.training
    module.eval()
    try:
        ours = images_per_s(lambda: e.decode(z), n, device, repeat)
        direct = images_per_s(bare(inner), n, device, repeat)
        rows = [row("gpu", f"{name} decode {n}, {where}", ours, "img/s", peer=direct,
                    peer_name="our decoder module called directly")]
        if a.compile:
            compiled = torch.compile(inner)
            rows.append(row("gpu", f"{name} decode {n}, torch.compile, {where}", images_per_s(bare(compiled), n, device, repeat),
                            "img/s", peer=direct, peer_name="our decoder module called directly (not compiled)"))
    finally:
        module.train(was)
    return rows


def main(argv=None) -> int:
    import torch

    from engines.device import DeviceError, pick_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=5.0, help="training time per side and engine")
    ap.add_argument("--quick", action="store_true", help="16×16 random images, tiny nets: a smoke run (CPU too)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time the decoder after torch.compile")
    ap.add_argument("--no-amp", dest="amp", action="store_false", help="peers without autocast")
    ap.add_argument("--only", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    try:
        device = pick_device(a.device)
    except DeviceError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    if a.quick:
        a.seconds = min(a.seconds, 0.2)
    spec, x = make_data(a, device)
    rows = []
    for name in a.only:
        rows += check(name, spec, x, a, device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else common.machine()["cpu"]
    print(f"device: {device} ({card}); amp: {a.amp}; channels_last: {a.channels_last}; compile: {a.compile}")
    print(render(rows))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"device": str(device), "card": card, "rows": rows}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
