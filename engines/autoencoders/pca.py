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
                              "when the components are too many for a randomized SVD to save time); a randomized "
                              "SVD, accurate to float precision, otherwise", minimum=1, maximum=1_000_000)
    # The shared trainer reads these; PCA ignores the learning rate.
    lr: float = option(0.0, "unused: PCA is fitted in closed form", minimum=0.0, maximum=LR_MAX)
    batch_size: int = option(256, "images per chunk when evaluating", minimum=1, maximum=BATCH_MAX)


# A randomized SVD (Halko et al. 2011) on q = 2k + OVERSAMPLE directions with this many power
# iterations gives the top components to float precision: within 1e-6 of a full SVD on digits
# (k = 16) and 4e-5 on faces 64×64 (scikit-learn's randomized solver: 6e-6 and 9e-5), 1e-4 on
# slowly decaying spectra (tests/test_infer_speedups.py), in a fraction of a full SVD's time.
# (q = k + 16 is 25% faster on faces but 3e-4 off on the slow spectrum.)
OVERSAMPLE = 16
POWER_ITERATIONS = 6


def top_components(xc: torch.Tensor, k: int, exact_limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(components (k, d), singular values (k,)) of the centred data `xc` (n, d), chosen by shape:
    an exact SVD where it is cheap (the smaller side at most `exact_limit`) or where a randomized
    one would not save time (its q = 2k + 16 directions are over a quarter of the smaller side);
    a seeded randomized SVD otherwise (the same data and seed give the same basis)."""
    small = min(xc.shape)
    q = min(2 * k + OVERSAMPLE, small)
    if small <= exact_limit or 4 * q > small:
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)
        return vh[:k], s[:k]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, v = torch.svd_lowrank(xc, q=q, niter=POWER_ITERATIONS)
    return v[:, :k].T, s[:k]


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
            # from the centred data at hand, in chunks (small temporaries: ~3× faster at 64×64×3).
            sq, m = 0.0, min(n, 2048)
            for start in range(0, m, 256):
                stop = min(m, start + 256)
                rec = ((xc[start:stop] @ comps.T) @ comps).add_(mean).clamp_(0, 1)
                sq += float(((rec - x[start:stop]) ** 2).sum(dtype=torch.float64))
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
