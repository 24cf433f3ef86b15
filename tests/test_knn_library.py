"""Nearest neighbours through scikit-learn give the same neighbours as the brute-force code they
replaced (kept here, verbatim in substance, as the reference) on random data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.latent import neighbours
from engines.latent.inverse import ScatterMap
from engines.metrics import stats


# ---- the replaced implementations (as of 151cef8) --------------------------------------------------------
def old_nearest(latents, queries, k=8, exclude=None):
    db = torch.from_numpy(np.asarray(latents, np.float32))
    q = torch.from_numpy(np.asarray(queries, np.float32)).reshape(-1, db.shape[1])
    n = len(db)
    k_eff = min(int(k), n - (1 if exclude is not None else 0))
    idx_out, d_out = [], []
    db_sq = (db * db).sum(1)
    for s in range(0, len(q), 2048):
        qc = q[s:s + 2048]
        d2 = (qc * qc).sum(1, keepdim=True) - 2.0 * qc @ db.T + db_sq
        if exclude is not None:
            ex = torch.as_tensor(np.asarray(exclude)[s:s + 2048], dtype=torch.long)
            d2[torch.arange(len(qc)), ex] = float("inf")
        cand = torch.topk(d2, min(n, k_eff + 4), dim=1, largest=False).indices
        exact = (db[cand] - qc[:, None, :]).norm(dim=2)
        if exclude is not None:
            exact[cand == ex[:, None]] = float("inf")
        order = exact.argsort(dim=1)[:, :k_eff]
        idx_out.append(torch.gather(cand, 1, order))
        d_out.append(torch.gather(exact, 1, order))
    return torch.cat(idx_out).numpy(), torch.cat(d_out).numpy()


def old_knn_latent(latents, z, k):
    latents = np.asarray(latents, np.float64)
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    d2 = (z ** 2).sum(1, keepdims=True) - 2.0 * z @ latents.T + (latents ** 2).sum(1)
    k = min(k, len(latents))
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    d = np.linalg.norm(latents[idx] - z[:, None, :], axis=2)
    order = np.argsort(d, axis=1)
    return np.take_along_axis(d, order, 1), np.take_along_axis(idx, order, 1)


def old_knn_radii(feats, k=3):
    out = torch.empty(len(feats), dtype=feats.dtype)
    for i in range(0, len(feats), 2048):
        d = torch.cdist(feats[i:i + 2048], feats)
        out[i:i + len(d)] = d.kthvalue(k + 1, dim=1).values
    return out


# ---- the pins ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,dim,k", [(500, 2, 1), (400, 8, 5), (300, 64, 8), (50, 3, 60)])
def test_nearest_matches_brute_force(n, dim, k):
    rng = np.random.default_rng(n + dim)
    db = rng.normal(size=(n, dim)).astype(np.float32)
    q = rng.normal(size=(70, dim)).astype(np.float32)
    new = neighbours.nearest(db, q, k=k)
    idx, d = old_nearest(db, q, k=k)
    np.testing.assert_array_equal(new.indices, idx)
    np.testing.assert_allclose(new.distances, d, rtol=1e-5, atol=1e-6)
    # built once (a k-d tree for few dimensions), the same answers
    built = neighbours.Index(db).query(q, k=k)
    np.testing.assert_array_equal(built.indices, idx)
    # leave-one-out over the data themselves, as the in-distribution indicator asks
    ref = rng.choice(n, 40, replace=False)
    new = neighbours.Index(db).query(db[ref], k=min(k, n - 1), exclude=ref)
    idx, d = old_nearest(db, db[ref], k=min(k, n - 1), exclude=ref)
    np.testing.assert_array_equal(new.indices, idx)
    np.testing.assert_allclose(new.distances, d, rtol=1e-5, atol=1e-6)
    assert not (new.indices == ref[:, None]).any()
    one = neighbours.nearest(db, q[0], k=3)  # one (D,) query
    assert one.indices.shape == (1, 3) and one.indices.dtype == np.int64 and one.distances.dtype == np.float32


def test_nearest_exclude_with_duplicates_and_errors():
    db = np.zeros((5, 2), np.float32)  # all the same point: the excluded one may rank anywhere
    nn = neighbours.nearest(db, db[:3], k=2, exclude=np.arange(3))
    assert nn.indices.shape == (3, 2) and not (nn.indices == np.arange(3)[:, None]).any()
    with pytest.raises(ValueError, match="dimensions"):
        neighbours.nearest(db, np.zeros((1, 3)), k=1)
    with pytest.raises(ValueError, match="not enough"):
        neighbours.nearest(db[:1], db[:1], k=1, exclude=np.zeros(1, np.int64))


@pytest.mark.parametrize("dim", [3, 40])
def test_scatter_map_knn_latent_matches_brute_force(dim):
    rng = np.random.default_rng(dim)
    lat = rng.normal(size=(400, dim))
    m = ScatterMap(rng.random((400, 2)), lat, k=6)
    z = rng.normal(size=(25, dim))
    d, idx = m.knn_latent(z, 7)
    d0, idx0 = old_knn_latent(lat, z, 7)
    np.testing.assert_array_equal(idx, idx0)
    np.testing.assert_allclose(d, d0, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n,dim", [(300, 16), (200, 2048)])
def test_knn_radii_and_precision_recall_match_brute_force(n, dim):
    rng = np.random.default_rng(n)
    real = torch.from_numpy(rng.normal(size=(n, dim)))
    fake = torch.from_numpy(rng.normal(0.3, 1.1, size=(n, dim)))
    for k in (1, 3, 5):
        np.testing.assert_allclose(stats.knn_radii(real, k).numpy(), old_knn_radii(real, k).numpy(), rtol=1e-10)
    dup = torch.cat([real[:50], real[:50]])  # duplicates: the k-th *other* point may be at distance 0
    np.testing.assert_allclose(stats.knn_radii(dup, 3).numpy(), old_knn_radii(dup, 3).numpy(), atol=1e-12)
    p, r = stats.precision_recall(real.numpy(), fake.numpy(), k=3)
    want_p = stats._inside(fake, real, old_knn_radii(real, 3)).double().mean().item()
    want_r = stats._inside(real, fake, old_knn_radii(fake, 3)).double().mean().item()
    assert (p, r) == (want_p, want_r)


def test_exact_at_zero_distance():
    """A point's distance to itself is 0, not the 1e-7 the |a|² − 2a·b + |b|² expansion gives."""
    rng = np.random.default_rng(5)
    db = (rng.normal(size=(300, 64)) * 100).astype(np.float32)
    own = neighbours.nearest(db, db[:20], k=1)
    assert own.indices[:, 0].tolist() == list(range(20)) and own.distances.max() == 0
    feats = torch.from_numpy(np.repeat(rng.normal(size=(40, 512)) * 100, 2, axis=0))
    assert stats.knn_radii(feats, 1).max().item() == 0.0  # every point has a twin
    m = ScatterMap(rng.random((300, 2)), db.astype(np.float64))
    d, idx = m.knn_latent(db[:20], 1)
    assert idx[:, 0].tolist() == list(range(20)) and d.max() == 0
