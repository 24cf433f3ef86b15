"""Our default VAE vs the PyTorch-examples MLP VAE (784-400-20), same data, same time budget.

    python bench/vae_vs_mlp.py [--minutes 5] [--threads 2]

Both are trained on the built-in digits resized to 28×28 (Bernoulli likelihood on grey levels,
as the PyTorch example does) for the same wall-clock time on the same cores, then scored on
the fixed test split with the same estimator: −ELBO (analytic KL, reconstruction term averaged
over k posterior samples) and the IWAE-k bound, in nats per image. Lower is better.
"""
from __future__ import annotations

import argparse
import math
import time

import common  # noqa: F401  (puts the project on sys.path)
import torch
import torch.nn.functional as F
from torch import nn

import engines
from engines.data import load_dataset, to_float
from engines.train import TrainOptions, run_to_end, tile, train

LOG_2PI = math.log(2 * math.pi)


class MLPVAE(nn.Module):
    """github.com/pytorch/examples vae/main.py, unchanged architecture and loss."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar


@torch.no_grad()
def mlp_bounds(model, x, k=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = x.view(-1, 784)
    mu, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    eps = torch.randn((k, *mu.shape), generator=g)
    z = mu + std * eps
    logits = model.decode_logits(z.flatten(0, 1))
    lpx = -F.binary_cross_entropy_with_logits(logits, x.repeat(k, 1), reduction="none").sum(1).view(k, -1)
    lpz = -0.5 * (z ** 2 + LOG_2PI).sum(-1)
    lqz = (-0.5 * (eps ** 2 + LOG_2PI) - 0.5 * logvar).sum(-1)
    nelbo = kl - lpx.mean(0)
    niwae = -(torch.logsumexp(lpx + lpz - lqz, 0) - math.log(k))
    return float(nelbo.mean()), float(niwae.mean())


def train_mlp(xtr, xte, seconds, batch=128, seed=0):
    torch.manual_seed(seed)
    model = MLPVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(xtr)
    flat = xtr.view(n, 784)
    t0 = time.perf_counter()
    steps = 0
    curve = []
    next_eval = 30.0
    while time.perf_counter() - t0 < seconds:
        perm = torch.randperm(n)
        for i in range(0, n - batch + 1, batch):
            xb = flat[perm[i:i + batch]]
            logits, mu, logvar = model(xb)
            bce = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) / len(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            el = time.perf_counter() - t0
            if el >= next_eval:
                model.eval()
                curve.append((round(el), mlp_bounds(model, xte, k=8)[0]))
                model.train()
                next_eval += 30.0
            if el >= seconds:
                break
    model.eval()
    return model, steps * batch / (time.perf_counter() - t0), curve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=64, help="importance samples for the test bounds")
    ap.add_argument("--set", action="append", default=[], help="override our VAE's config (key=value)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset("digits", size=28)
    xtr = to_float(ds.images[ds.train_idx])
    xte = to_float(ds.images[ds.test_idx])
    seconds = a.minutes * 60
    print(f"digits 28×28: {len(xtr)} train / {len(xte)} test images; {a.minutes} min each on {a.threads} threads")

    # Ours, defaults unless --set.
    from engines.config import parse_set_args

    e = engines.create("vae", ds.spec, device="cpu", **parse_set_args(a.set))
    t0 = time.perf_counter()
    last = run_to_end(train(e, ds, TrainOptions(minutes=a.minutes, eval_images=0)))
    ours_rate = last.step * e.config.batch_size / (time.perf_counter() - t0)
    g = torch.Generator().manual_seed(0)
    nelbo, niwae = e.bounds(xte, k=a.k, generator=g)
    ours = {"model": f"ours: conv VAE (defaults, {e.n_parameters():,} params)", "neg_elbo": float(nelbo.mean()),
            "iwae": float(niwae.mean()), "img_per_s": ours_rate, "steps": last.step}

    model, rate, curve = train_mlp(xtr, xte, seconds)
    m_nelbo, m_niwae = mlp_bounds(model, xte, k=a.k)
    peer = {"model": f"peer: MLP VAE 784-400-20 ({sum(p.numel() for p in model.parameters()):,} params)",
            "neg_elbo": m_nelbo, "iwae": m_niwae, "img_per_s": rate, "steps": None}

    rows = [ours, peer]
    print(common.table(rows, ["model", "neg_elbo", "iwae", "img_per_s", "steps"]))
    print(f"test −ELBO, nats/image (lower is better): ours {ours['neg_elbo']:.2f} vs peer {peer['neg_elbo']:.2f} "
          f"→ {'ours ahead' if ours['neg_elbo'] <= peer['neg_elbo'] else 'peer ahead'} by {abs(ours['neg_elbo'] - peer['neg_elbo']):.2f}")
    print("peer test −ELBO over time (k=8):", curve)

    from PIL import Image

    import os

    os.makedirs(common.RESULTS, exist_ok=True)
    Image.fromarray(tile((e.sample(64, seed=0).permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8"), 8)[..., 0]) \
        .resize((8 * 29 * 3, 8 * 29 * 3), Image.Resampling.NEAREST).save(os.path.join(common.RESULTS, "vae_digits_samples.png"))
    with torch.no_grad():
        s = torch.sigmoid(model.decode_logits(torch.randn(64, 20, generator=torch.Generator().manual_seed(0))))
    Image.fromarray(tile((s.view(64, 28, 28, 1).numpy() * 255).round().astype("uint8"), 8)[..., 0]) \
        .resize((8 * 29 * 3, 8 * 29 * 3), Image.Resampling.NEAREST).save(os.path.join(common.RESULTS, "mlp_digits_samples.png"))
    print("saved", common.save("vae_vs_mlp", {"minutes": a.minutes, "rows": rows, "peer_curve": curve}))


if __name__ == "__main__":
    main()
