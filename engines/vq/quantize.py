"""Vector quantisers for the VQ-VAE family: grids of encoder vectors → grids of code indices.

`VectorQuantizer`: nearest-codebook quantisation with the straight-through estimator; loss
‖sg[z_e] − e‖² + β‖z_e − sg[e]‖² (course notes), or, with `ema`, the codebook follows
exponential moving averages of the vectors assigned to each code (Laplace-smoothed counts) and
only β·commitment is a loss term. The codebook is k-means-initialised from the first training
batch, and codes unused for `dead_after` steps are re-seeded from random encoder outputs of the
current batch (dead-code revival).

`GumbelQuantizer` (dVAE): the encoder predicts logits over the K codes per cell; training uses
the Gumbel-softmax relaxation at an annealed temperature plus KL(q ‖ uniform); inference picks
the most likely code.

Distances and EMA statistics are float32 even under bf16 autocast: argmin over near-equal
distances is where low precision would flip codes.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class QuantOut(NamedTuple):
    z_q: torch.Tensor  # (N, D, h, w) quantised grid (straight-through in training)
    indices: torch.Tensor  # (N, h, w) int64 code indices
    loss: torch.Tensor  # scalar quantiser loss (codebook/commitment or KL), already weighted
    counts: torch.Tensor  # (K,) float code usage in this batch
    terms: dict  # named scalars to report


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the usage distribution: K when all K codes are used equally, 1 for one code."""
    # float32, not float64: MPS has no float64, and counts stay far below float32's exact range
    c = counts.float()
    p = c / c.sum().clamp_min(1e-12)
    h = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return h.exp()


def _counts(idx: torch.Tensor, k: int) -> torch.Tensor:
    """Float (k,) counts of the indices (scatter_add runs on every device; bincount not on all)."""
    return torch.zeros(k, device=idx.device).scatter_add_(0, idx, torch.ones(idx.shape, device=idx.device))


def _sum_over_processes(*tensors: torch.Tensor) -> None:
    """In place: the sum over the processes of a torchrun group. Called only while training under
    `engines.distributed` (`synced` set on the quantiser), where every rank runs each forward pass."""
    import torch.distributed as dist

    for t in tensors:
        dist.all_reduce(t)


def codes_used_within(since_used: torch.Tensor, steps: int) -> int:
    """How many codes were chosen at least once in the last `steps` training steps."""
    return int((since_used < steps).sum())


@torch.no_grad()
def _mark_used(since_used: torch.Tensor, counts: torch.Tensor) -> None:
    since_used.add_(1)
    since_used[counts > 0] = 0


def _flat(z: torch.Tensor) -> torch.Tensor:
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Plain Lloyd iterations from k distinct random points (with replacement when there are
    fewer than k); empty clusters keep their previous centre."""
    n = len(x)
    if n >= k:
        idx = torch.randperm(n, generator=generator, device=x.device)[:k]
    else:
        idx = torch.randint(0, n, (k,), generator=generator, device=x.device)
    c = x[idx].clone()
    if n < k:  # duplicated points would stay identical forever: split them a little
        c += 1e-3 * x.std() * torch.randn(c.shape, generator=generator, device=x.device)
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        cnt = _counts(assign, k)
        filled = cnt > 0
        c[filled] = sums[filled] / cnt[filled, None]
    return c


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 kmeans_init: bool = True, kmeans_iters: int = 10, dead_after: int = 100, eps: float = 1e-5):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.beta, self.ema, self.decay, self.eps = beta, ema, decay, eps
        self.kmeans_iters = kmeans_iters
        self.dead_after = dead_after
        init = torch.randn(num_codes, dim) / math.sqrt(dim)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        # Saved with the weights so that a resumed run neither re-initialises nor forgets ages.
        self.register_buffer("initialised", torch.tensor(not kmeans_init))
        self.register_buffer("unused_steps", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("revived_total", torch.zeros((), dtype=torch.long))
        # Training steps since each code was last chosen (revival does not count as a use); not
        # saved: it feeds the per-epoch usage report only.
        self.register_buffer("since_used", torch.full((num_codes,), 1 << 30, dtype=torch.long), persistent=False)
        # Set by engines.distributed while training on several processes: usage counts and EMA
        # statistics are then summed over every rank's batch (as one process with the whole
        # batch would see them), not taken from rank 0's alone.
        self.synced = False

    @property
    def code_vectors(self) -> torch.Tensor:
        return self.codebook.detach()

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        e = self.codebook.detach().float()
        # ‖x − e‖² = ‖x‖² − 2x·e + ‖e‖²; ‖x‖² does not change the argmin.
        d = (e * e).sum(1)[None, :] - 2 * flat.float() @ e.T
        return d.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(N, h, w) indices → (N, D, h, w) code vectors."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor, generator: torch.Generator) -> None:
        c = kmeans(flat, self.num_codes, self.kmeans_iters, generator)
        self.codebook.data.copy_(c)
        if self.ema:
            self.ema_sum.copy_(c)
            self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        counts = onehot.sum(0)
        sums = onehot.T @ flat
        if self.synced:
            _sum_over_processes(counts, sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def revive(self, flat: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> int:
        """Age the unused codes; re-seed those unused for `dead_after` steps from random encoder
        outputs of this batch. Returns how many were revived."""
        self.unused_steps.add_(1)
        self.unused_steps[counts > 0] = 0
        if self.dead_after <= 0:
            return 0
        dead = (self.unused_steps >= self.dead_after).nonzero().flatten()
        if len(dead) == 0:
            return 0
        pick = torch.randint(0, len(flat), (len(dead),), generator=generator, device=flat.device)
        new = flat[pick] + 1e-3 * flat.std() * torch.randn((len(dead), self.dim), generator=generator, device=flat.device)
        self.codebook.data[dead] = new
        if self.ema:
            self.ema_sum[dead] = new
            self.ema_count[dead] = 1.0
        self.unused_steps[dead] = 0
        self.revived_total.add_(len(dead))
        return len(dead)

    def forward(self, z_e: torch.Tensor, generator: torch.Generator | None = None) -> QuantOut:
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z = z_e.float()
            flat = _flat(z)
            if self.training and not bool(self.initialised):
                self._init_from(flat.detach(), generator)
            idx = self.nearest(flat.detach())
            counts = _counts(idx, self.num_codes)
            terms = {}
            if self.training and self.synced:
                _sum_over_processes(counts)  # a code used on any rank is alive, not revived
            if self.training:
                _mark_used(self.since_used, counts)
                if self.ema:
                    self._ema_update(flat.detach(), F.one_hot(idx, self.num_codes).float())
                terms["revived"] = torch.tensor(float(self.revive(flat.detach(), counts, generator)))
            e = F.embedding(idx, self.codebook if not self.ema else self.codebook.detach()).view(
                z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
            commit = F.mse_loss(z, e.detach())
            if self.ema:
                loss = self.beta * commit
                terms["commit"] = commit
            else:
                cb = F.mse_loss(e, z.detach())
                loss = cb + self.beta * commit
                terms.update(codebook=cb, commit=commit)
            z_q = z + (e - z).detach()  # straight-through: the decoder's gradient reaches z_e unchanged
        terms["perplexity"] = perplexity(counts)
        terms["codes_used"] = (counts > 0).sum().float()
        return QuantOut(z_q, idx.view(z.shape[0], z.shape[2], z.shape[3]), loss, counts, terms)


class GumbelQuantizer(nn.Module):
    """dVAE quantiser: z_e here are logits over the codes, (N, K, h, w)."""

    def __init__(self, num_codes: int, dim: int, tau_start: float = 1.0, tau_end: float = 0.0625,
                 anneal_steps: int = 5000, kl_weight: float = 5e-4):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.tau_start, self.tau_end, self.anneal_steps = tau_start, tau_end, anneal_steps
        self.kl_weight = kl_weight
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) / math.sqrt(dim))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("since_used", torch.full((num_codes,), 1 << 30, dtype=torch.long), persistent=False)

    @property
    def code_vectors(self) -> torch.Tensor:
        return self.codebook.detach()

    def temperature(self) -> float:
        """Exponential annealing from tau_start to tau_end over anneal_steps."""
        t = min(1.0, float(self.steps) / max(1, self.anneal_steps))
        return self.tau_start * (self.tau_end / self.tau_start) ** t

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    def forward(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> QuantOut:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            idx = logits.argmax(1)
            counts = _counts(idx.flatten(), self.num_codes)
            logq = F.log_softmax(logits, 1)
            # KL(q ‖ uniform) = Σ q log q + log K, per cell, averaged.
            kl = (logq.exp() * logq).sum(1).mean() + math.log(self.num_codes)
            terms = {"kl": kl}
            if self.training:
                tau = self.temperature()
                u = torch.rand(logits.shape, generator=generator, device=logits.device)
                g = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
                soft = F.softmax((logits + g) / tau, 1)
                z_q = torch.einsum("nkhw,kd->ndhw", soft, self.codebook)
                self.steps.add_(1)
                _mark_used(self.since_used, counts)
                terms["tau"] = torch.tensor(tau)
            else:
                z_q = self.lookup(idx)
            loss = self.kl_weight * kl
        terms["perplexity"] = perplexity(counts)
        terms["codes_used"] = (counts > 0).sum().float()
        return QuantOut(z_q, idx, loss, counts, terms)
