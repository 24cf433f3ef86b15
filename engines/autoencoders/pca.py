"""PCA: the linear baseline. Fitted in closed form; z = Wᵀ(x − μ), x̂ = Wz + μ."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from engines.base import Engine, as_images
from engines.config import BATCH_MAX, LR_MAX, option


@dataclass
class PCAConfig:
    n_components: int = option(16, "number of principal components (latent size)", minimum=1, maximum=16_384)
    whiten: bool = option(False, "scale each component to unit variance (latents ~ N(0, I))")
    exact_limit: int = option(256, "use an exact SVD when the smaller side of the data matrix is at most this (or "
                              "when the components are too many for a randomized method to save time); a seeded "
                              "block Krylov method, accurate to float precision, otherwise", minimum=1, maximum=1_000_000)
    # The shared trainer reads these; PCA ignores the learning rate.
    lr: float = option(0.0, "unused: PCA is fitted in closed form", minimum=0.0, maximum=LR_MAX)
    batch_size: int = option(256, "images per chunk when evaluating", minimum=1, maximum=BATCH_MAX)


# The randomized path is a block Krylov method (Musco & Musco 2015) with Rayleigh–Ritz: blocks of
# b = k + OVERSAMPLE directions, Q_0 = orth(XΩ), Q_j = orth(XXᵀQ_{j−1}) made orthogonal to the earlier
# blocks, KRYLOV_DEPTH + 1 blocks in all; every Zⱼ = XᵀQⱼ is kept, so the Ritz values come from
# ZᵀZ (float64, m × m, m = b·(depth + 1)) and the right singular vectors are Z·U/σ — no extra pass
# over the data for B = QᵀX and no SVD of B. Its 2·(depth + 1) products with b columns each (240
# for k = 16) are 0.36× the column-products of the randomized SVD it replaces (q = 2k + 16, 6 power
# iterations: 672), ~1.7× faster on one core, and as accurate: within 1e-7 of a full SVD on digits
# (k = 16), 4e-7 on faces 64×64, 8e-6 on slowly decaying spectra, 2e-7 on data of rank 16–100
# (tests/test_infer_speedups.py; the old path: 7e-7, 6e-6, 9e-6; depth 3 is 2e-4 off on the slow
# spectrum).
OVERSAMPLE = 8
KRYLOV_DEPTH = 4
BASIS_TOL = 1e-4  # QᵀQ's eigenvalues under this (relative): directions already in the basis
LOW_RANK = 1e-5  # σ_k / σ_1 under this: the data has rank < k, the exact SVD is used
RANDOMIZED_Q = 16  # the path choice: exact when 4·(2k + RANDOMIZED_Q) exceeds the smaller side


def _block_krylov(xc: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(components (k, d), singular values (k,)) of `xc` (n, d) by block Krylov + Rayleigh–Ritz;
    None when the data has fewer than k directions with variance (rank < k)."""
    n, d = xc.shape
    b = k + OVERSAMPLE
    m = b * (KRYLOV_DEPTH + 1)
    g = torch.Generator(device=xc.device).manual_seed(int(seed))
    omega = torch.randn(d, b, generator=g, device=xc.device, dtype=xc.dtype)
    q_all = torch.empty(n, m, device=xc.device, dtype=xc.dtype)
    z_all = torch.empty(d, m, device=xc.device, dtype=xc.dtype)
    y = xc @ omega
    for j in range(KRYLOV_DEPTH + 1):
        q = q_all[:, j * b:(j + 1) * b]
        if j:  # block Gram–Schmidt against the earlier blocks (their span keeps only what is new)
            prev = q_all[:, :j * b]
            y.sub_(prev @ (prev.T @ y))
        q.copy_(torch.linalg.qr(y)[0])
        z = z_all[:, j * b:(j + 1) * b]
        torch.mm(xc.T, q, out=z)
        if j < KRYLOV_DEPTH:
            y = xc @ z
    # Rayleigh–Ritz in float64 on an orthonormal basis of span(Q): Q·T with T = E·Λ^(−1/2) from
    # QᵀQ = EΛEᵀ (directions with Λ ≈ 0 dropped). In float32 the blocks lose some orthogonality,
    # and on data of low rank the space runs out and later blocks are rounding noise that a QR
    # cannot make orthogonal to the earlier ones; this basis is exact either way.
    q64 = q_all.double()
    lam, e = torch.linalg.eigh(q64.T @ q64)
    keep = lam > BASIS_TOL * lam[-1]
    if int(keep.sum()) < k:
        return None
    zt = z_all.double() @ (e[:, keep] / lam[keep].sqrt())  # Xᵀ·(Q·T), (d, m')
    w, u = torch.linalg.eigh(zt.T @ zt)  # ascending
    w, u = w[-k:].flip(0), u[:, -k:].flip(1)
    s = w.clamp_min(0).sqrt()
    if not s[-1] > LOW_RANK * s[0]:
        return None  # fewer than k directions with variance: Xᵀu/σ would not be orthonormal
    vh = (zt @ (u / s)).T
    return vh.to(xc.dtype), s.to(xc.dtype)


def top_components(xc: torch.Tensor, k: int, exact_limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(components (k, d), singular values (k,)) of the centred data `xc` (n, d), chosen by shape:
    an exact SVD where it is cheap (the smaller side at most `exact_limit`) or where a randomized
    method would not save time (2k + 16 directions over a quarter of the smaller side) or where the
    data has rank below k; a seeded block Krylov method otherwise (the same data and seed give the
    same basis)."""
    small = min(xc.shape)
    q = min(2 * k + RANDOMIZED_Q, small)
    if small > exact_limit and 4 * q <= small:
        got = _block_krylov(xc, k, seed)
        if got is not None:
            return got
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    return vh[:k], s[:k]


class _Basis(nn.Module):
    def __init__(self, d: int, k: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("components", torch.zeros(k, d))  # orthonormal rows
        self.register_buffer("variance", torch.ones(k))  # variance along each component
        self.register_buffer("noise_variance", torch.zeros(()))  # mean variance of the discarded directions
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))


class PCAEngine(Engine):
    name = "pca"
    Config = PCAConfig
    capabilities = frozenset({"encode", "encode_exact", "decode", "sample", "log_prior"})
    closed_form = True

    def build(self):
        d = self.spec.numel
        return {"basis": _Basis(d, self.config.n_components)}

    @property
    def latent_shape(self):
        return (self.config.n_components,)

    @property
    def basis(self) -> _Basis:
        return self.nets["basis"]

    def make_optimizers(self):
        return {}

    def _scale(self):
        return self.basis.variance.clamp_min(1e-12).sqrt() if self.config.whiten else None

    def _encode(self, x):
        z = (x.flatten(1) - self.basis.mean) @ self.basis.components.T
        s = self._scale()
        return z / s if s is not None else z

    def _decode(self, z):
        s = self._scale()
        if s is not None:
            z = z * s
        return (z @ self.basis.components + self.basis.mean).view(len(z), *self.spec.shape)

    def prior_sample(self, n, generator, temperature: float = 1.0, **_):
        eps = torch.randn((n, self.config.n_components), generator=generator, device=self.device) * float(temperature)
        return eps if self.config.whiten else eps * self.basis.variance.sqrt()

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, Λ) of the latent Gaussian, per latent vector."""
        var = torch.ones_like(self.basis.variance) if self.config.whiten else self.basis.variance.clamp_min(1e-12)
        return -0.5 * ((z ** 2) / var + var.log() + math.log(2 * math.pi)).sum(-1)

    def fit(self, x, progress=None):
        """Closed-form fit on the whole training set (uint8 array or float tensor)."""
        x = as_images(x, self.device).flatten(1)
        n, d = x.shape
        k = self.config.n_components
        if k > min(n, d):
            raise ValueError(f"n_components={k} exceeds min(images={n}, pixels={d})")
        with self.lock, torch.no_grad():
            mean = x.mean(0)
            xc = x - mean
            comps, sing = top_components(xc, k, self.config.exact_limit, self.seed)
            # Fix each component's sign so the same data always gives the same basis.
            flip = torch.sign(comps[torch.arange(k), comps.abs().argmax(1)])
            comps = comps * flip[:, None]
            var = sing ** 2 / max(n - 1, 1)
            total = float(torch.linalg.vector_norm(xc)) ** 2 / max(n - 1, 1)
            b = self.basis
            b.mean.copy_(mean)
            b.components.copy_(comps)
            b.variance.copy_(var)
            rest = max(total - float(var.sum()), 0.0)
            b.noise_variance.fill_(rest / max(d - k, 1))
            b.fitted.fill_(True)
            self.step += 1
            # Reconstruction error on up to 2048 images: decode(encode(x)) (whitening cancels out)
            # from the centred data at hand, in chunks of ~2M values (small temporaries: ~3× faster
            # at 64×64×3; one chunk at 28×28, where each chunk's fixed cost would dominate). The
            # residual is formed in place and squared per image by a dot product (float32 sums of
            # d values, then a float64 sum over images): 2.2× faster at 28×28 than a float64 sum
            # over every pixel, and within 1e-9 of it.
            sq, m = 0.0, min(n, 2048)
            rows = max(256, (1 << 21) // d)
            for start in range(0, m, rows):
                stop = min(m, start + rows)
                res = torch.addmm(mean, xc[start:stop] @ comps.T, comps).clamp_(0, 1).sub_(x[start:stop])
                sq += float(torch.linalg.vecdot(res, res).sum(dtype=torch.float64))
            mse = sq / max(m * d, 1)
        return {"mse": mse, "explained_variance": float(var.sum()) / max(total, 1e-12)}

    def train_step(self, batch):
        raise NotImplementedError("PCA is fitted in closed form: call fit() on the whole training set")

    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False):
        out = super().evaluate(x, max_images)
        x = as_images(x, self.device)[:max_images].flatten(1)
        xc = x - self.basis.mean
        total = float((xc ** 2).sum(1).mean())
        kept = float(((xc @ self.basis.components.T) ** 2).sum(1).mean())
        out["explained_variance"] = kept / max(total, 1e-12)
        return out
