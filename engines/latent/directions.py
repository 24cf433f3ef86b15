"""Unsupervised edit directions: GANSpace and SeFa. Attribute vectors need labels; these need none.

GANSpace (Härkönen et al. 2020) — principal components of what the model does with its latents:
- engines that encode exactly (VAE, AE, PCA): PCA of the encoded data's latents, the paper's
  recipe for a latent space that is not isotropic. The directions are the principal axes.
- GANs: z ~ N(0, I) is isotropic, so PCA of sampled z would return noise. As the paper does for
  BigGAN, sample z, take the generator's first-layer activations y = features(z) (linear, batch
  norm, ReLU: `Engine.latent_layer`), find their principal axes V, and carry them back to z space
  by linear regression: U = argmin Σ‖U·xⱼ − zⱼ‖² with xⱼ = Vᵀ(yⱼ − ȳ). The regressed uₖ are not
  exactly orthogonal; they are orthonormalised in order (QR: the first keeps its direction, each
  next loses what it shares with those above), so the basis is orthonormal and sorted by the
  variance of the component it came from. `meta["raw_orthonormal_error"]` says how far from
  orthonormal the regressed basis was.

SeFa (Shen & Zhou 2021) — closed form from the weights: the first layer maps z to A·z (+ b), and
the directions n that change its output the most, max ‖A n‖² with ‖n‖ = 1, are the eigenvectors
of AᵀA, sorted by eigenvalue. Any engine with `latent_layer` (GAN generator, VAE/AE decoder) has it.

A direction's step is one standard deviation σₖ along it of the latents the method works on:
GANSpace on an engine that encodes exactly, the encoded data's latents it decomposed; otherwise
(a GAN's GANSpace, every SeFa, which decomposes the generator's input layer) the prior's
samples. `effect` is the mean absolute pixel change (images in [0, 1]) of that step from 64
fixed prior samples; `random_effect` the same for random unit directions (mean of 8): a
direction that matters changes the image more than a random one.

Layer-restricted edits (GANSpace's "apply to layers a–b") need a generator that reads the
latent at every layer (StyleGAN's w, BigGAN's skip-z). Ours read z once, at the first layer, so
an edit always acts on all layers; `LAYER_NOTE` says so wherever the option would be.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from engines.latent.attributes import AttributeVector
from engines.latent.planes import principal_axes

METHODS = ("ganspace", "sefa")
TITLES = {"ganspace": "GANSpace", "sefa": "SeFa"}
SAMPLES = 4096  # prior latents GANSpace draws for a GAN (and the reference latents without data)
EFFECT_SAMPLES = 64
RANDOM_DIRECTIONS = 8
STRIP_SIGMAS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
LAYER_NOTE = ("Layer-restricted edits (GANSpace's “apply to layers a–b”) need a generator that takes the latent at "
              "every layer (StyleGAN, BigGAN). This model reads z once, at its first layer, so an edit always "
              "acts on all layers.")


class DirectionsError(ValueError):
    """What cannot be done (a method the engine lacks, too many directions): one line."""


@dataclass(frozen=True, eq=False)
class Directions:
    method: str  # "ganspace" | "sefa"
    vectors: np.ndarray  # (K, D) orthonormal rows; zeros in latent entries that are not free
    sigma: np.ndarray  # (K,) standard deviation of the reference latents along each direction
    source: str  # what was decomposed, in words
    variance: np.ndarray | None = None  # GANSpace: variance along each principal axis
    variance_ratio: np.ndarray | None = None  # … as a share of the total variance
    eigenvalues: np.ndarray | None = None  # SeFa: eigenvalues of AᵀA
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.vectors)

    @property
    def orthonormal_error(self) -> float:
        d = np.asarray(self.vectors, np.float64)
        return float(np.abs(d @ d.T - np.eye(len(d))).max()) if len(d) else 0.0

    def name(self, i: int) -> str:
        return f"{TITLES[self.method]} {i + 1}"

    def describe(self, i: int) -> str:
        if self.variance_ratio is not None:
            return f"PC {i + 1} · {100 * self.variance_ratio[i]:.1f} % of the variance"
        return f"eigenvector {i + 1} · eigenvalue {self.eigenvalues[i]:.3g}"

    def to_vectors(self, model_id: str = "", latent_shape=(), effect=None) -> list[AttributeVector]:
        """The directions as attribute vectors Δ = σₖ·uₖ (a slider at s moves s standard deviations),
        so they are saved, restored and exported like any vector; `meta` says what they are."""
        out = []
        for i, u in enumerate(self.vectors):
            meta = {"direction": i, "sigma": float(self.sigma[i]), "source": self.describe(i),
                    "default_name": self.name(i), "decomposed": self.source}
            if self.variance_ratio is not None:
                meta["variance_ratio"] = float(self.variance_ratio[i])
            if self.eigenvalues is not None:
                meta["eigenvalue"] = float(self.eigenvalues[i])
            if effect is not None:
                meta["effect"] = float(effect[i])
            out.append(AttributeVector(self.name(i), self.sigma[i] * u, self.method, model_id, tuple(latent_shape),
                                       meta=meta))
        return out


def is_direction(v) -> bool:
    """Whether an attribute vector is a GANSpace/SeFa direction (`Directions.to_vectors`)."""
    return v.method in METHODS and "direction" in v.meta


# ---- what each engine supports ----------------------------------------------------------------------
def support(engine, method: str) -> str | None:
    """None when `engine` can give `method`'s directions, else why not (one line)."""
    if method not in METHODS:
        return f"unknown method '{method}' (known: {', '.join(METHODS)})"
    caps = engine.capabilities
    if "decode" not in caps:
        return f"{engine.name} models have no decoder: an edit direction cannot be turned into images"
    if len(engine.latent_shape) != 1:
        return (f"{engine.name} latents are a grid {tuple(engine.latent_shape)}, not a vector: "
                "GANSpace and SeFa need a flat latent")
    if method == "sefa" and "latent_layer" not in caps:
        return f"{engine.name} models have no first linear layer on the latent: SeFa needs one (GAN, VAE, AE)"
    if method == "ganspace" and not caps & {"encode_exact", "latent_layer"}:
        return (f"{engine.name} models neither encode exactly nor expose a generator's first layer: GANSpace needs "
                "one of them")
    return None


def uses_data(engine, method: str = "ganspace") -> bool:
    """Whether `method`'s directions on this engine come from (and are scaled by) its encoded data:
    GANSpace on engines that encode exactly."""
    return method == "ganspace" and "encode_exact" in engine.capabilities


def free_dims(engine) -> int:
    return engine.latent_layer().free_dims if "latent_layer" in engine.capabilities else engine.latent_dim


def max_directions(engine, method: str, n_latents: int | None = None) -> int:
    """The most directions `method` gives on this engine (the free latent size; fewer data points)."""
    d = free_dims(engine)
    if uses_data(engine, method) and n_latents is not None:
        d = min(d, max(n_latents - 1, 0))
    return d


def prior_latents(engine, n: int, seed: int = 0) -> np.ndarray:
    import torch

    g = torch.Generator(device=engine.device)
    g.manual_seed(int(seed))
    with engine.lock:
        z = engine.prior_sample(n, g)
    return z.detach().float().cpu().numpy().reshape(n, -1)


# ---- the two methods ---------------------------------------------------------------------------------
def ganspace(engine, k: int, latents=None, samples: int = SAMPLES, seed: int = 0) -> Directions:
    """GANSpace's top-k directions: PCA of `latents` (the encoded data, engines that encode
    exactly) or of a GAN's first-layer activations regressed back to z (module docstring)."""
    t0 = time.perf_counter()
    _check(engine, "ganspace", k, None if latents is None else len(latents))
    if uses_data(engine, "ganspace"):
        if latents is None:
            raise DirectionsError(f"GANSpace on a {engine.name} model needs its encoded data")
        z = np.asarray(latents, np.float64).reshape(len(latents), -1)
        mean, var, vecs, total = principal_axes(z, k)
        out = Directions("ganspace", vecs.T, (z @ vecs).std(0), "encoded data latents", var, var / max(total, 1e-300),
                         meta={"samples": int(len(z))})
    else:
        out = _ganspace_activations(engine, k, samples, seed)
    return _timed(out, t0)


def _ganspace_activations(engine, k: int, samples: int, seed: int) -> Directions:
    import torch

    layer = engine.latent_layer()
    d = layer.free_dims
    z = prior_latents(engine, samples, seed)
    with engine.inference():
        zt = torch.as_tensor(z, dtype=torch.float32, device=engine.device)
        y = torch.cat([layer.features(c).float() for c in zt.split(512)]).cpu().numpy().astype(np.float64)
    mean, var, vecs, total = principal_axes(y, k)
    x = (y - mean) @ vecs  # PCA coordinates (N, k)
    zf = z[:, :d] - z[:, :d].mean(0)
    u_raw = np.linalg.lstsq(x, zf, rcond=None)[0]  # (k, d): z ≈ Σ xₖ uₖ
    resid = zf - x @ u_raw
    r2 = 1.0 - float((resid ** 2).sum() / max((zf ** 2).sum(), 1e-300))
    units = u_raw / np.maximum(np.linalg.norm(u_raw, axis=1, keepdims=True), 1e-300)
    raw_error = float(np.abs(units @ units.T - np.eye(k)).max())
    q, r = np.linalg.qr(u_raw.T)  # orthonormalised in order of variance
    q = q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))[None, :]
    u = np.zeros((k, engine.latent_dim))
    u[:, :d] = q.T
    sigma = (z @ u.T).std(0)
    return Directions("ganspace", u, sigma, "first-layer activations, regressed to z", var, var / max(total, 1e-300),
                      meta={"samples": int(samples), "features": int(y.shape[1]), "regression_r2": r2,
                            "raw_orthonormal_error": raw_error})


def sefa(engine, k: int, latents=None, samples: int = SAMPLES, seed: int = 0) -> Directions:
    """SeFa's top-k directions: eigenvectors of AᵀA for the first linear layer's weight A, sorted
    by eigenvalue; σ from prior samples (`latents` is not used: the weights take the prior's z)."""
    t0 = time.perf_counter()
    _check(engine, "sefa", k, None)
    layer = engine.latent_layer()
    d = layer.free_dims
    with engine.lock:
        a = layer.weight.detach().float().cpu().numpy().astype(np.float64)[:, :d]
    ev, vecs = np.linalg.eigh(a.T @ a)
    order = np.argsort(ev)[::-1][:k]
    ev, vecs = ev[order], vecs[:, order]
    vecs = vecs * np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(k)])
    u = np.zeros((k, engine.latent_dim))
    u[:, :d] = vecs.T
    ref = reference_latents(engine, "sefa", None, samples, seed)
    out = Directions("sefa", u, (ref @ u.T).std(0), "first linear layer's weight AᵀA", eigenvalues=ev,
                     meta={"weight_shape": list(a.shape)})
    return _timed(out, t0)


def compute(engine, method: str, k: int, latents=None, seed: int = 0) -> Directions:
    """`method`'s top-k directions (`latents`: the encoded data, for engines that encode exactly)."""
    if method not in METHODS:
        raise DirectionsError(support(engine, method))
    return (ganspace if method == "ganspace" else sefa)(engine, k, latents=latents, seed=seed)


def _check(engine, method: str, k: int, n_latents: int | None) -> None:
    why = support(engine, method)
    if why:
        raise DirectionsError(why)
    top = max_directions(engine, method, n_latents)
    if not 1 <= int(k) <= top:
        raise DirectionsError(f"{TITLES[method]} on this {engine.name} model gives 1 to {top} directions, "
                              f"asked for {k}")


def _timed(d: Directions, t0: float) -> Directions:
    return dataclasses.replace(d, seconds=time.perf_counter() - t0)


def reference_latents(engine, method: str, latents=None, samples: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """The latents `method`'s σ is measured on (random directions' too): the encoded data
    `latents` where the method decomposes them (`uses_data`), else prior samples."""
    if latents is not None and uses_data(engine, method):
        return np.asarray(latents, np.float64).reshape(len(latents), -1)
    return prior_latents(engine, samples, seed).astype(np.float64)


# ---- how much a direction changes the images ------------------------------------------------------------
def effects(engine, vectors, sigma, n: int = EFFECT_SAMPLES, seed: int = 0) -> np.ndarray:
    """Per direction: the mean absolute pixel change (images in [0, 1]) of a step σₖ·uₖ from n
    fixed prior samples."""
    z = prior_latents(engine, n, seed)
    base = engine.decode(z).float()
    out = []
    for u, s in zip(np.asarray(vectors, np.float64), np.asarray(sigma, np.float64)):
        moved = engine.decode((z + s * u).astype(np.float32)).float()
        out.append(float((moved - base).abs().mean()))
    return np.asarray(out)


def random_effect(engine, reference, count: int = RANDOM_DIRECTIONS, n: int = EFFECT_SAMPLES, seed: int = 0) -> float:
    """`effects` of `count` random unit directions (in the free latent entries), each stepped by
    the reference latents' σ along it, averaged."""
    d = free_dims(engine)
    rng = np.random.default_rng(seed + 1)
    r = np.zeros((count, engine.latent_dim))
    r[:, :d] = rng.normal(size=(count, d))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    sigma = (np.asarray(reference, np.float64) @ r.T).std(0)
    return float(effects(engine, r, sigma, n, seed).mean())


def report(engine, directions: Directions, latents=None) -> dict:
    """What `main.py directions --json` prints: the directions, their variance or eigenvalues,
    their effect against random directions', and how orthonormal they are."""
    eff = effects(engine, directions.vectors, directions.sigma)
    rnd = random_effect(engine, reference_latents(engine, directions.method, latents))
    f = lambda a: None if a is None else [float(x) for x in a]  # noqa: E731
    return {"method": directions.method, "engine": engine.name, "k": directions.k,
            "latent_size": int(engine.latent_dim), "source": directions.source,
            "directions": [[float(x) for x in row] for row in directions.vectors],
            "sigma": f(directions.sigma), "variance": f(directions.variance),
            "variance_ratio": f(directions.variance_ratio), "eigenvalues": f(directions.eigenvalues),
            "effect": f(eff), "random_effect": rnd, "orthonormal_error": directions.orthonormal_error,
            "seconds": directions.seconds, "meta": directions.meta}


# ---- strips ------------------------------------------------------------------------------------------
def strip_latents(z, vector, sigmas=STRIP_SIGMAS) -> np.ndarray:
    """z + s·Δ for s in `sigmas` (Δ = σ·u: steps of one standard deviation): (S, D) float32."""
    z = np.asarray(z, np.float64).reshape(-1)
    v = np.asarray(vector, np.float64).reshape(-1)
    return (z[None, :] + np.asarray(sigmas, np.float64)[:, None] * v[None, :]).astype(np.float32)


def strips(engine, z, vectors, sigmas=STRIP_SIGMAS) -> np.ndarray:
    """One strip per vector (Δ = σ·u) around latent z: uint8 (K, S, H, W, C)."""
    from engines.data.dataset import to_uint8

    vectors = list(vectors)
    if not vectors:
        return np.zeros((0, len(sigmas), engine.spec.height, engine.spec.width, engine.spec.channels), np.uint8)
    lat = np.concatenate([strip_latents(z, v, sigmas) for v in vectors])
    imgs = to_uint8(engine.decode(lat))
    return imgs.reshape(len(vectors), len(sigmas), *imgs.shape[1:])
