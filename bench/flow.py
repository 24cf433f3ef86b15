"""Our Glow-style flow against normflows' Glow (a bench-only dependency: `pip install normflows`,
the `bench` extra; without it the peer columns stay empty and say why).

Same data (digits 28×28, train split, uniform dequantisation y = (k + u)/256), same architecture
on both sides — 2 levels × 8 steps of actnorm, LU 1×1 conv, affine coupling (sigmoid scale, conv
3×3 → 1×1 → zero-initialised 3×3 with 32 hidden channels), a learned prior at each split and at the
top — built for the peer the way normflows' Glow example builds it (GlowBlock, Squeeze, Merge,
GlowBase, MultiscaleFlow) and trained the usual way (`forward_kld`, Adam at the same learning rate,
batch 64). Both sides train for the same wall time in interleaved slices, then:

- test bits/dim: the same bound for both, −log p(y)/(D ln 2) + 8, on the whole test split with
  the same dequantisation draws (4 per image);
- training images/s;
- sampling: seconds per 100 images at T = 1.

    python bench/flow.py [--quick] [--minutes M]   (also run by bench/run.py --only flow)
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from harness import slice_race  # noqa: E402

common.on_path()

LEVELS, STEPS, HIDDEN, LR, BATCH = 2, 8, 32, 1e-3, 64
EVAL_DRAWS = 4


def normflows_available() -> str | None:
    try:
        importlib.import_module("normflows")
    except ImportError:
        return "normflows is not installed (pip install normflows)"
    return None


def peer_glow(spec, levels: int = LEVELS, steps: int = STEPS, hidden: int = HIDDEN):
    """normflows' multi-scale Glow as its example notebook builds it (unconditional): `levels`
    levels of `steps` GlowBlocks with `hidden`-channel coupling nets."""
    import normflows as nf

    c, size = spec.channels, spec.height
    q0, merges, flows = [], [], []
    for i in range(levels):
        level = [nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                 for _ in range(steps)]
        flows.append(level + [nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            shape = (c * 2 ** (levels - i), size // 2 ** (levels - i), size // 2 ** (levels - i))
        else:
            shape = (c * 2 ** (levels + 1), size // 2 ** levels, size // 2 ** levels)
        q0.append(nf.distributions.GlowBase(shape))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def peer_train_step(peer, opt, xb, g) -> None:
    """One step of the usual normflows loop on images `xb` in [0, 1] (dequantised with `g`)."""
    import torch

    peer.train()
    loss = peer.forward_kld(dequantised(xb, g))
    opt.zero_grad(set_to_none=True)
    if torch.isfinite(loss):
        loss.backward()
        opt.step()


def dequantised(x, g):
    """Images in [0, 1] (k/255) → y = (k + u)/256, the same for both sides."""
    import torch

    k = torch.round(x * 255)
    return (k + torch.rand(k.shape, generator=g, device=k.device)) / 256


def run(quick: bool = False, train_s: float | None = None, n_time: int | None = None):
    import torch

    import engines
    from engines.base import Batch
    from engines.data import load_dataset, to_float

    train_s = train_s if train_s is not None else (8.0 if quick else 240.0)
    n_time = n_time or (10 if quick else 50)
    ds = load_dataset("digits", size=28, channels=1)
    x_all = to_float(ds.split("train").images)
    x_test = to_float(ds.split("test").images)
    D = ds.spec.numel
    ours = engines.create("flow", ds.spec, device="cpu", seed=0, levels=LEVELS, steps=STEPS, width=HIDDEN, lr=LR,
                          batch_size=BATCH)
    why_not = normflows_available()
    peer = opt = None
    if not why_not:
        torch.manual_seed(0)
        peer = peer_glow(ds.spec)
        opt = torch.optim.Adam(peer.parameters(), lr=LR)
    g = torch.Generator().manual_seed(0)
    counts = {"ours": 0, "peer": 0}

    def step(side):
        xb = x_all[torch.randint(0, len(x_all), (BATCH,), generator=g)]
        if side == "ours":
            ours.train_step(Batch(xb))
        else:
            peer_train_step(peer, opt, xb, g)
        counts[side] += BATCH

    slice_s = min(2.0, train_s / 4)
    spent = slice_race({"ours": lambda: step("ours"), "peer": None if peer is None else lambda: step("peer")},
                       {"ours": train_s, "peer": train_s}, {"ours": slice_s, "peer": slice_s})

    # Test bits/dim: the same dequantisation draws for both models.
    draws = 1 if quick else EVAL_DRAWS
    bits = {"ours": 0.0, "peer": 0.0}
    ge = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ours.nets.eval()
        if peer is not None:
            peer.eval()
        for _ in range(draws):
            y = dequantised(x_test, ge)
            bits["ours"] += float(-ours.nets["flow"].log_prob(y).sum())
            if peer is not None:
                bits["peer"] += float(-peer.log_prob(y, None).double().sum())
    bpd = {k: v / (draws * len(x_test) * D * math.log(2)) + 8 for k, v in bits.items()}
    # The engine's own number for the same images (its dequantisation draws differ: a check, not the row).
    engine_bpd = ours.evaluate(x_test)["bpd"]

    def best_time(fn) -> float:
        best = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    scale = 100.0 / n_time
    t_ours = best_time(lambda: ours.sample(n_time, seed=0, temperature=1.0))
    t_peer = None
    if peer is not None:
        def peer_sample():
            with torch.no_grad():
                return peer.sample(n_time)[0]
        t_peer = best_time(peer_sample)

    n_ours = ours.n_parameters()
    n_peer = sum(p.numel() for p in peer.parameters()) if peer is not None else None
    peer_name = "normflows Glow (MultiscaleFlow)"
    sizes = why_not or f"ours {n_ours:,} parameters, peer {n_peer:,}"
    rows = [
        dict(bench="flow", case=f"test bits/dim after {train_s:.0f} s of training, digits 28", ours=bpd["ours"],
             peer=bpd["peer"] if peer is not None else None, unit="bits/dim", better="lower", kind="quality",
             peer_name=peer_name,
             notes=f"{len(x_test)} test digits × {draws} dequantisation draws, the same for both; {sizes}; "
                   f"interleaved; ours trained {counts['ours'] // BATCH} steps, peer {counts['peer'] // BATCH}; "
                   f"the engine's own evaluate: {engine_bpd:.3f}"
                   + ("; quick: far too little training to mean much" if quick else "")),
        dict(bench="flow", case="train on digits 28 (batch 64)", ours=counts["ours"] / spent["ours"],
             peer=counts["peer"] / spent["peer"] if peer is not None else None, unit="images/s", better="higher",
             kind="speed", peer_name=peer_name, notes=f"{sizes}; {train_s:.0f} s each, interleaved"),
        dict(bench="flow", case="sample at T = 1", ours=t_ours * scale, peer=None if t_peer is None else t_peer * scale,
             unit="s/100 images", better="lower", kind="speed", peer_name=peer_name,
             notes=(why_not or "") + (f"timed on {n_time} images, scaled; " if n_time != 100 else "")
             + "faster of 2 interleaved runs"),
    ]
    return rows


def bench_flow(o) -> list[dict]:
    """bench/run.py's entry: the rows above through the harness's `row`."""
    from harness import as_rows

    return as_rows(run(o.quick, train_s=8.0 if o.quick else 240.0))


if __name__ == "__main__":
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="training time of each side (default 4)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in run(a.quick, train_s=None if a.minutes is None else a.minutes * 60):
        ours, peer = r["ours"], r["peer"]
        print(f"{r['case']:<48} ours {ours:10.3f}  peer {'' if peer is None else f'{peer:10.3f}':>10} {r['unit']:<14} {r['notes']}")
