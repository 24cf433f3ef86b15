"""Our PixelCNN engine against a plain PyTorch gated PixelCNN written the usual way (the layout of
the common public implementations, e.g. the gated PixelCNN prior of the popular pytorch-vqvae
repository: an Embedding of the 256 levels as input, GatedMaskedConv2d layers whose type-A masks
zero the weights' last row/column in `forward`, an unshifted vertical stack cropped after padding,
a 1×1 → 512 → 256 output head, sampling by a full forward pass per pixel).

Same data (digits 28×28, train split, 8-bit levels, unconditional), same width (32 channels),
layers (5), first kernel 7 then 3, Adam 1e-3, batch 32, the same batches in the same order; both
trained for the same wall time in interleaved slices (a change of load hits both alike).

- train: images/s over that budget;
- test bits/dim: exact, on the whole test split, after the budget;
- sample: seconds to draw 4 images pixel by pixel (ours runs the net on the rows that can reach
  the current pixel only; the peer on the whole image).

    python bench/pixelcnn.py [--quick]      (also run by bench/run.py)
"""
from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.on_path()

WIDTH, LAYERS, KERNEL, BATCH, LR = 32, 5, 7, 32, 1e-3


def peer_model(dim: int = WIDTH, n_layers: int = LAYERS, kernel: int = KERNEL, head: int = 512, channels: int = 1):
    """The peer: `n_layers` gated layers of `dim` channels (the first with a `kernel`-wide kernel,
    later 3), a 1×1 → `head` → 256 output head (512 in pytorch-vqvae). With `channels` > 1 (RGB)
    each sub-pixel's level has its own embedding (summed over the channels) and the head gives
    256 logits per channel: the channels of a pixel are modelled independently given the pixels
    before it (no R → G → B masks), the same convolutions otherwise."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class GatedMaskedConv2d(nn.Module):
        def __init__(self, mask_type, dim, kernel, residual=True):
            super().__init__()
            self.mask_type, self.residual = mask_type, residual
            self.vert_stack = nn.Conv2d(dim, dim * 2, (kernel // 2 + 1, kernel), 1, (kernel // 2, kernel // 2))
            self.vert_to_horiz = nn.Conv2d(2 * dim, 2 * dim, 1)
            self.horiz_stack = nn.Conv2d(dim, dim * 2, (1, kernel // 2 + 1), 1, (0, kernel // 2))
            self.horiz_resid = nn.Conv2d(dim, dim, 1)

        def make_causal(self):
            self.vert_stack.weight.data[:, :, -1].zero_()  # the current row
            self.horiz_stack.weight.data[:, :, :, -1].zero_()  # the current pixel

        @staticmethod
        def gate(x):
            a, b = x.chunk(2, 1)
            return torch.tanh(a) * torch.sigmoid(b)

        def forward(self, x_v, x_h):
            if self.mask_type == "A":
                self.make_causal()
            h_vert = self.vert_stack(x_v)[:, :, : x_v.size(-2), :]
            out_v = self.gate(h_vert)
            h_horiz = self.horiz_stack(x_h)[:, :, :, : x_h.size(-1)]
            out = self.gate(self.vert_to_horiz(h_vert) + h_horiz)
            out_h = self.horiz_resid(out)
            return out_v, (out_h + x_h if self.residual else out_h)

    class GatedPixelCNN(nn.Module):
        def __init__(self, levels=256, dim=WIDTH, n_layers=LAYERS):
            super().__init__()
            self.levels = levels
            self.embedding = nn.Embedding(levels * channels, dim)
            self.layers = nn.ModuleList(
                [GatedMaskedConv2d("A" if i == 0 else "B", dim, kernel if i == 0 else 3, residual=i > 0)
                 for i in range(n_layers)])
            self.output_conv = nn.Sequential(nn.Conv2d(dim, head, 1), nn.ReLU(True), nn.Conv2d(head, levels * channels, 1))

        def forward(self, x):  # (N, H, W) levels → (N, 256, H, W); RGB: (N, C, H, W) → (N, 256, C, H, W)
            if channels == 1:
                x = self.embedding(x).permute(0, 3, 1, 2)
            else:
                offset = torch.arange(channels, device=x.device)[:, None, None] * self.levels
                x = self.embedding(x + offset).sum(1).permute(0, 3, 1, 2)
            x_v, x_h = x, x
            for layer in self.layers:
                x_v, x_h = layer(x_v, x_h)
            out = self.output_conv(x_h)
            return out if channels == 1 else out.view(len(out), self.levels, channels, *out.shape[2:])

        @torch.no_grad()
        def generate(self, shape, n, generator):
            x = torch.zeros((n, *shape), dtype=torch.long, device=self.embedding.weight.device)
            for i in range(shape[0]):
                for j in range(shape[1]):
                    probs = F.softmax(self.forward(x)[:, :, i, j], -1)
                    x[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            return x

    return GatedPixelCNN(dim=dim, n_layers=n_layers)


def peer_train_step(peer, opt, v) -> None:
    """One step of the usual loop: cross-entropy of the 256-way logits against the levels `v`."""
    import torch.nn.functional as F

    peer.train()
    loss = F.cross_entropy(peer(v), v)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run(quick: bool = False, train_s: float | None = None, n_sample: int = 4):
    import torch
    import torch.nn.functional as F

    import engines
    from engines.base import Batch
    from engines.data import load_dataset

    train_s = train_s if train_s is not None else (3.0 if quick else 240.0)
    ds = load_dataset("digits", size=28, channels=1)
    tr = torch.from_numpy(ds.split("train").images[..., 0]).long()
    te = torch.from_numpy(ds.split("test").images[..., 0]).long()
    if quick:
        te = te[:32]
    ours = engines.create("pixelcnn", ds.spec, device="cpu", seed=0, hidden=WIDTH, layers=LAYERS, kernel=KERNEL,
                          batch_size=BATCH, lr=LR, grad_clip=0.0)
    torch.manual_seed(0)
    peer = peer_model()
    popt = torch.optim.Adam(peer.parameters(), lr=LR)
    g = torch.Generator().manual_seed(0)
    order = torch.cat([torch.randperm(len(tr), generator=g) for _ in range(1000)])
    state = {"ours": [0, 0.0], "peer": [0, 0.0]}  # batches, seconds

    def step_ours(k):
        x = tr[order[k * BATCH:(k + 1) * BATCH]]
        ours.train_step(Batch(x[:, None].float() / 255))

    def step_peer(k):
        peer_train_step(peer, popt, tr[order[k * BATCH:(k + 1) * BATCH]])

    slices = 2 if quick else 8
    for _ in range(slices):  # interleaved slices of equal wall time
        for name, fn in (("ours", step_ours), ("peer", step_peer)):
            end = time.perf_counter() + train_s / slices
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                fn(state[name][0])
                state[name][0] += 1
            state[name][1] += time.perf_counter() - t0

    def bpd_peer():
        peer.eval()
        with torch.no_grad():
            nll = sum(float(F.cross_entropy(peer(te[i:i + 128]), te[i:i + 128], reduction="sum"))
                      for i in range(0, len(te), 128))
        return nll / (te.numel() * math.log(2))

    bpd_ours = ours.likelihood(te.to(torch.uint8)[:, :, :, None].numpy())["bpd"]
    bpd_p = bpd_peer()
    t_ours, t_peer = [], []
    for rep in range(1 if quick else 2):  # interleaved
        t0 = time.perf_counter()
        ours.sample(n_sample, seed=rep)
        t_ours.append(time.perf_counter() - t0)
        peer.eval()
        t0 = time.perf_counter()
        peer.generate((28, 28), n_sample, torch.Generator().manual_seed(rep))
        t_peer.append(time.perf_counter() - t0)
    peer_name = "plain PyTorch gated PixelCNN (pytorch-vqvae layout)"
    note = (f"{train_s:.0f} s of training each, interleaved; ours {state['ours'][0]} steps, peer {state['peer'][0]}; "
            f"width {WIDTH}, {LAYERS} layers, batch {BATCH}; {torch.get_num_threads()} thread(s), load avg "
            f"{os.getloadavg()[0]:.1f}")
    rows = [
        dict(bench="pixelcnn", case="digits 28: test bits/dim at equal training time", ours=bpd_ours, peer=bpd_p,
             unit="bits/dim", better="lower", kind="quality", peer_name=peer_name, notes=note),
        dict(bench="pixelcnn", case="digits 28: training images/s", ours=state["ours"][0] * BATCH / state["ours"][1],
             peer=state["peer"][0] * BATCH / state["peer"][1], unit="images/s", better="higher", kind="speed",
             peer_name=peer_name, notes=""),
        dict(bench="pixelcnn", case=f"digits 28: sampling {n_sample} images pixel by pixel", ours=min(t_ours),
             peer=min(t_peer), unit="s", better="lower", kind="speed", peer_name=peer_name,
             notes="ours: only the rows that reach the pixel; peer: the whole image per pixel"),
        dict(bench="pixelcnn", case="parameters", ours=ours.n_parameters(), peer=sum(p.numel() for p in peer.parameters()),
             unit="weights", better="lower", kind="speed", peer_name=peer_name, notes="peer: the usual 512-wide head"),
    ]
    return rows


if __name__ == "__main__":
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-s", type=float)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in run(a.quick, a.train_s):
        print(f"{r['case']:<52} ours {r['ours']:10.3f}  peer {r['peer']:10.3f} {r['unit']:<10} {r['notes']}")
