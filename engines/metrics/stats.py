"""Distribution comparisons on feature vectors: Fréchet distance, k-NN precision/recall, label
histograms. Pure numpy/torch, no model knowledge; `engines.metrics.evaluate` feeds them the
classifier's penultimate features."""
from __future__ import annotations

import numpy as np
import torch


# ---- Fréchet distance -------------------------------------------------------------------------
def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_stats(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    """‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁^½ Σ₂ Σ₁^½)^½): the Fréchet (2-Wasserstein²) distance
    between two Gaussians. `eps`·(mean variance)·I is added to both covariances, which keeps
    rank-deficient estimates (fewer samples than dimensions) well conditioned and cancels
    exactly when the two sets are identical. Symmetric eigen-decompositions only, so there is
    no complex round-off to discard (unlike scipy.linalg.sqrtm on Σ₁Σ₂)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    d = len(mu1)
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError("frechet_from_stats: mismatched shapes")
    if eps > 0:
        scale = max((np.trace(s1) + np.trace(s2)) / (2 * d), 1e-12)
        s1 = s1 + eps * scale * np.eye(d)
        s2 = s2 + eps * scale * np.eye(d)
    r1 = _sqrt_psd(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)
    return max(fd, 0.0)


def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    return frechet_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b), eps=eps)


# ---- precision / recall (Kynkäänniemi et al. 2019) ----------------------------------------------
def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048):
    for i in range(0, len(a), chunk):
        yield i, torch.cdist(a[i:i + chunk], b)


def knn_radii(feats: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Distance from each point to its k-th nearest *other* point in the same set (exact k-NN by
    scikit-learn's `NearestNeighbors`)."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(torch.as_tensor(feats).detach().cpu().numpy())
    # Each point is its own nearest neighbour (distance 0), so the k-th other one is column k of
    # the k + 1 nearest. Distances recomputed directly over a few spare candidates (a brute-force
    # ranking by the |a|² − 2a·b + |b|² expansion is not exact near 0).
    _, idx = NearestNeighbors().fit(x).kneighbors(x, n_neighbors=min(len(x), k + 5))
    d = np.sort(np.linalg.norm(x[idx] - x[:, None, :], axis=2), axis=1)
    return torch.as_tensor(d[:, k], dtype=feats.dtype)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point: does it lie in at least one ball (centre, radius)?"""
    hit = torch.zeros(len(points), dtype=torch.bool)
    for i, d in _pairwise(points, centres):
        hit[i:i + len(d)] = (d <= radii[None, :]).any(dim=1)
    return hit


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius = distance to the
    point's k-th nearest neighbour in the same set. precision = fraction of `fake` inside the
    real manifold (are samples realistic?); recall = fraction of `real` inside the fake
    manifold (is the data's variety covered?). Both in [0, 1], higher is better."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if len(r) <= k or len(f) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points per set (got {len(r)} and {len(f)})")
    precision = _inside(f, r, knn_radii(r, k)).double().mean().item()
    recall = _inside(r, f, knn_radii(f, k)).double().mean().item()
    return float(precision), float(recall)


# ---- label histograms (mode coverage) ----------------------------------------------------------
def label_histogram(labels, n_classes: int) -> np.ndarray:
    """Fractions of each class (sums to 1)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def mode_coverage(sample_hist, ref_hist, threshold: float = 0.5) -> float:
    """Fraction of the reference's classes whose share among the samples is at least
    `threshold` × their share in the reference (with a uniform reference of K classes and the
    default ½: a class counts as covered when it gets ≥ 1/(2K) of the samples). Classes absent
    from the reference are ignored. 1 = every mode present in roughly its proportion."""
    s, r = np.asarray(sample_hist, np.float64), np.asarray(ref_hist, np.float64)
    present = r > 0
    if not present.any():
        return float("nan")
    return float((s[present] >= threshold * r[present]).mean())


def total_variation(p, q) -> float:
    """½ Σ |p − q| ∈ [0, 1]: the share of samples that would have to change class."""
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def kl_divergence(ref_hist, sample_counts, pseudo: float = 0.5) -> float:
    """KL(reference ‖ samples) in nats, with `pseudo` counts added to every sample class so a
    missing mode gives a large but finite value. This direction punishes missing modes."""
    p = np.asarray(ref_hist, np.float64)
    c = np.asarray(sample_counts, np.float64) + pseudo
    q = c / c.sum()
    m = p > 0
    return float((p[m] * np.log(p[m] / q[m])).sum())
