"""engines/latent: the math behind the latent-space panels (issue #5). Fast: no UMAP compile here
(the real UMAP run is tests/test_latent_umap.py, opt-in)."""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
import torch

import engines
from engines.latent import atlas, attributes, cache, history, interpolate as it, inverse, neighbours, planes, projection
from engines.latent.progress import run
from engines.spec import ImageSpec


# ---- interpolation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_slerp_keeps_norms_and_endpoints(kind):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 64))
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    t = np.linspace(0, 1, 33)
    if kind == "torch":
        a, b = torch.from_numpy(a).float(), torch.from_numpy(b).float()
    out = it.slerp(a, b, t)
    assert type(out) is type(a) and tuple(out.shape) == (33, 64)
    out = np.asarray(out, dtype=np.float64)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(a64), rtol=1e-5)
    np.testing.assert_allclose(out[0], a64, atol=1e-5)
    np.testing.assert_allclose(out[-1], b64, atol=1e-5)
    # lerp dips towards the origin in between, slerp does not
    mid = np.asarray(it.lerp(a64, b64, 0.5))
    assert np.linalg.norm(mid) < 0.9 * np.linalg.norm(a64)


def test_nslerp_interpolates_norm_and_slerp_falls_back_for_parallel():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 16))
    b *= 3.0 * np.linalg.norm(a) / np.linalg.norm(b)
    t = np.linspace(0, 1, 11)
    out = it.nslerp(a, b, t)
    expected = (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), expected, rtol=1e-10)
    np.testing.assert_allclose(out[[0, -1]], np.stack([a, b]), atol=1e-12)
    # equal norms: nslerp == slerp
    c = b * np.linalg.norm(a) / np.linalg.norm(b)
    np.testing.assert_allclose(it.nslerp(a, c, t), it.slerp(a, c, t), atol=1e-12)
    # parallel endpoints: finite, equals lerp
    par = it.slerp(a, 2 * a, t)
    assert np.all(np.isfinite(par))
    np.testing.assert_allclose(par, it.lerp(a, 2 * a, t), atol=1e-12)
    # batched endpoints and scalar t
    A, B = rng.normal(size=(2, 5, 16))
    assert it.slerp(A, B, 0.3).shape == (5, 16) and it.slerp(A, B, t).shape == (11, 5, 16)


@pytest.mark.parametrize("method", it.METHODS)
def test_path_passes_through_points(method):
    pts = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    out = it.path(pts, steps=5, method=method, ease="smoothstep")
    assert out.shape == (11, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out[it.knot_indices(3, 5)], pts)
    # global-time evaluation hits the points at t = 0, ½, 1
    np.testing.assert_allclose(it.along(pts, [0.0, 0.5, 1.0], method), pts, atol=1e-6)
    assert np.all(np.diff(it.ease_in_out_cubic(np.linspace(0, 1, 50))) >= 0)


def test_flatten_unflatten_round_trip():
    z = np.arange(2 * 4 * 3 * 3, dtype=np.float32).reshape(2, 4, 3, 3)
    f = it.flatten(z, (4, 3, 3))
    assert f.shape == (2, 36)
    np.testing.assert_array_equal(it.unflatten(f, (4, 3, 3)), z)
    assert it.flatten(z[0], (4, 3, 3)).shape == (1, 36)


# ---- planes --------------------------------------------------------------------------------------------
def test_plane_mapping_is_exact_and_three_point_plane():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(3, 32))
    p = planes.plane_through(a, b, c)
    np.testing.assert_allclose(p.to_latent([[0, 0], [1, 0], [0, 1]]), np.stack([a, b, c]), atol=1e-14)
    np.testing.assert_allclose(p.to_map(np.stack([a, b, c])), [[0, 0], [1, 0], [0, 1]], atol=1e-12)
    pts = rng.normal(size=(100, 2)) * 5
    np.testing.assert_allclose(p.to_map(p.to_latent(pts)), pts, atol=1e-10)
    assert p.distance(p.to_latent(pts)).max() < 1e-10
    # off-plane latents: to_map is the orthogonal projection (residual ⟂ u, v)
    z = rng.normal(size=(10, 32))
    r = z - p.to_latent(p.to_map(z))
    assert np.abs(r @ p.u).max() < 1e-9 and np.abs(r @ p.v).max() < 1e-9
    assert planes.Plane.from_dict(json.loads(json.dumps(p.to_dict()))).to_map(z) == pytest.approx(p.to_map(z))
    with pytest.raises(ValueError, match="collinear"):
        planes.plane_through(a, b, 2 * b - a)


def test_axes_plane_for_2d_latents_is_the_latent_space():
    p = planes.axes_plane(2)
    pts = np.random.default_rng(4).normal(size=(20, 2))
    np.testing.assert_array_equal(p.to_latent(pts), pts)
    np.testing.assert_array_equal(p.to_map(pts), pts)
    proj = projection.axes_projection(pts.astype(np.float32))
    np.testing.assert_allclose(proj.coords, pts, atol=1e-6)


def test_pca_plane_axes_units_and_speed():
    rng = np.random.default_rng(5)
    d = 64
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    scales = np.linspace(0.2, 1.0, d)
    scales[:2] = [5.0, 3.0]
    z = (rng.normal(size=(10_000, d)) * scales) @ basis.T + 7.0
    t0 = time.perf_counter()
    proj = projection.pca_projection(z.astype(np.float32))
    assert time.perf_counter() - t0 < 1.0
    p = proj.mapping
    assert abs(np.dot(p.u / np.linalg.norm(p.u), basis[:, 0])) > 0.999
    assert abs(np.dot(p.v / np.linalg.norm(p.v), basis[:, 1])) > 0.999
    np.testing.assert_allclose(proj.coords.std(0), [1, 1], rtol=0.02)  # map units are std devs
    assert abs(np.corrcoef(proj.coords.T)[0, 1]) < 0.02
    assert p.exact
    pts = rng.normal(size=(50, 2))
    np.testing.assert_allclose(p.to_map(p.to_latent(pts)), pts, atol=1e-9)


def test_plane_projection_and_polygon_selection():
    rng = np.random.default_rng(10)
    z = rng.normal(size=(200, 6))
    plane = planes.plane_through(z[0], z[1], z[2])
    proj = projection.plane_projection(z, plane)
    np.testing.assert_allclose(proj.coords[:3], [[0, 0], [1, 0], [0, 1]], atol=1e-5)
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [-0.1, 0.2], [0.9, 0.99]])
    assert projection.select_polygon(pts, square).tolist() == [0, 3]


# ---- inverse map (UMAP) -----------------------------------------------------------------------------------
def test_scatter_map_exact_at_data_points_and_continuous():
    rng = np.random.default_rng(6)
    coords, z = rng.normal(size=(500, 2)), rng.normal(size=(500, 12))
    m = inverse.ScatterMap(coords, z, k=8)
    np.testing.assert_allclose(m.to_latent(coords), z, atol=1e-12)
    np.testing.assert_allclose(m.to_latent(coords[7]), z[7], atol=1e-12)
    np.testing.assert_allclose(m.to_map(z[:50]), coords[:50], atol=1e-12)
    # Lipschitz along a line: halving the step halves the largest change (no jumps)
    steps = []
    for n in (2001, 4001):
        line = np.stack([np.linspace(-1, 1, n), np.full(n, 0.1)], 1)
        steps.append(np.abs(np.diff(m.to_latent(line), axis=0)).max())
    assert steps[1] < 0.7 * steps[0]
    assert m.support(coords[:3]).max() == 0.0 and m.support([[50.0, 50.0]])[0] > 10


# ---- atlas ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 16), (5, 7), (1, 1)])
def test_atlas_levels_cover_each_cell_once(shape):
    levels = atlas.refinement_levels(*shape)
    idx = np.concatenate([lv.indices for lv in levels])
    assert sorted(idx.tolist()) == list(range(shape[0] * shape[1]))
    assert [lv.stride for lv in levels] == sorted([lv.stride for lv in levels], reverse=True)
    if shape == (16, 16):
        assert len(levels[0].indices) == 4


def test_atlas_grid_and_decode(tiny_dataset):
    ds = tiny_dataset(n=64)
    e = engines.create("pca", ds.spec, device="cpu", n_components=4)
    e.fit(ds.images)
    z = e.encode(ds.images).numpy()
    plane = planes.pca_plane(z)
    g = atlas.grid_latents(plane, center=(0.5, -0.5), extent=2.0, resolution=(4, 6))
    assert g.coords.shape == (4, 6, 2) and g.latents.shape == (24, 4)
    assert g.coords[0, 0, 1] > g.coords[-1, 0, 1] and g.coords[0, 0, 0] < g.coords[0, -1, 0]  # top-left first
    np.testing.assert_allclose(plane.to_map(g.latents), g.coords.reshape(-1, 2), atol=1e-9)
    tiles = list(atlas.decode_atlas(e, g, batch=5))
    got = np.concatenate([t.indices for t in tiles])
    assert sorted(got.tolist()) == list(range(24))
    assert tiles[0].images.dtype == np.uint8 and tiles[0].images.shape[1:] == (16, 16, 1)


# ---- attribute vectors ----------------------------------------------------------------------------------------
def _planted(n=2000, d=32, strength=2.0, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = rng.random(n) < 0.4
    z = rng.normal(size=(n, d)) + np.outer(y * strength, u)
    return z.astype(np.float32), y, u


def test_attribute_vector_recovers_planted_direction_and_quality_separates():
    z, y, u = _planted()
    a, b = np.flatnonzero(y), np.flatnonzero(~y)
    v = attributes.from_groups(z, a, b, name="planted")
    cos = v.vector @ u / v.norm
    assert cos > 0.95
    assert v.norm == pytest.approx(2.0, rel=0.1)
    q = v.quality
    assert q.effect_size > 1.5 and q.heldout_accuracy > 0.8 and q.z_score > 10
    assert q.cosine > q.cosine_shuffled + 10 * q.cosine_shuffled_std and abs(q.cosine_random) < 0.1
    assert q.verdict == "strong"
    # random groups: nothing there
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(z))
    shuf = attributes.from_groups(z, perm[:800], perm[800:])
    assert shuf.quality.z_score < 3 and shuf.quality.verdict == "not distinguishable from chance"
    assert abs(shuf.quality.heldout_accuracy - 0.5) < 0.1


def _latent_set(z, attrs=None, labels=None, model="toy-1"):
    n = len(z)
    perm = np.random.default_rng(0).permutation(n)
    return cache.LatentSet(z.astype(np.float32), (z.shape[1],), model, "data", labels=labels,
                           label_names=[] if labels is None else ["x", "y", "z"], attributes=attrs or {},
                           train_idx=np.sort(perm[: int(0.8 * n)]), test_idx=np.sort(perm[int(0.8 * n):]))


def test_attribute_vectors_from_latent_set_binary_label_continuous():
    z, y, u = _planted(seed=3)
    rng = np.random.default_rng(3)
    cont = rng.random(len(z)).astype(np.float32)
    z2 = z + np.outer(cont * 3.0, np.roll(u, 1))  # a continuous factor along another direction
    labels = rng.integers(0, 3, len(z))
    ls = _latent_set(z2, {"planted": y.astype(np.float32), "cont": cont}, labels)
    vb = attributes.from_attribute(ls, "planted")
    assert vb.method == "binary" and vb.model_id == "toy-1" and vb.vector @ u / vb.norm > 0.9
    vr = attributes.from_attribute(ls, "cont", method="regression")
    assert vr.vector @ np.roll(u, 1) / vr.norm > 0.9 and vr.norm == pytest.approx(3.0, rel=0.15)
    vm = attributes.from_attribute(ls, "cont")
    assert vm.method == "median" and vm.vector @ np.roll(u, 1) / vm.norm > 0.9
    vl = attributes.from_label(ls, "y")
    assert vl.quality.verdict == "not distinguishable from chance"  # labels were random
    with pytest.raises(ValueError, match="not a 0/1"):
        attributes.from_attribute(ls, "cont", method="binary")


def test_apply_and_strip():
    z = np.zeros(4)
    d1, d2 = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    np.testing.assert_array_equal(attributes.apply(z, [(d1, 2), (d2, -1)]), [2, -1, 0, 0])
    s = attributes.strip(z, d1, others=[(d2, 0.5)])
    assert s.shape == (9, 4)
    np.testing.assert_array_equal(s[:, 0], np.linspace(-4, 4, 9))
    np.testing.assert_array_equal(s[:, 1], 0.5)


class LinearToy:
    """A toy linear generative model: image = W z + b, encode = least squares."""

    name = "linear-toy"
    capabilities = frozenset({"encode", "decode"})
    latent_shape = (3,)

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.W = torch.from_numpy(rng.uniform(-0.1, 0.1, size=(3, 48))).float()
        self.b = torch.full((48,), 0.5)  # images stay inside [0, 1]
        self.lock = threading.RLock()
        self.model_id = "linear-toy-0"

    def decode(self, z):
        z = torch.as_tensor(z, dtype=torch.float32)
        return (z @ self.W + self.b).view(len(z), 3, 4, 4)


def test_analogy_on_a_toy_linear_model():
    # latents: (gender, smile, hat) factor codes of 8 "people"; the data are their decodings
    codes = np.array([[g, s, h] for g in (0, 1) for s in (0, 1) for h in (0, 1)], dtype=np.float64)
    e = LinearToy()
    a, b, c = codes[0b110], codes[0b100], codes[0b000]  # (woman, smiling) − (woman) + (man)
    res = attributes.analogy_result(a, b, c, codes, engine=e, k=2)
    np.testing.assert_allclose(res.latent, codes[0b010])  # smiling man
    assert res.neighbours[0] == 0b010 and res.distances[0] == pytest.approx(0.0, abs=1e-6)
    dec = [e.decode(torch.from_numpy(codes[[i]]).float()) for i in (0b110, 0b100, 0b000)]
    expected = dec[0] - dec[1] + dec[2]  # a linear decoder: image arithmetic = latent arithmetic
    assert res.image.shape == (4, 4, 3) and res.image.dtype == np.uint8
    np.testing.assert_allclose(res.image.astype(float) / 255, expected[0].permute(1, 2, 0).numpy(), atol=1 / 255)


def test_vector_save_load_round_trip_and_model_check(tmp_path):
    z, y, u = _planted(n=300)
    v = attributes.from_groups(z, np.flatnonzero(y), np.flatnonzero(~y), name="smile", model_id="vae-abc", latent_shape=(32,))
    path = attributes.save_vectors(str(tmp_path / "v" / "vecs.json"), [v])
    (w,) = attributes.load_vectors(path, "vae-abc", latent_shape=(32,))
    np.testing.assert_array_equal(w.vector, v.vector)
    assert w.name == "smile" and w.model_id == "vae-abc" and w.quality == v.quality and w.meta == v.meta
    with pytest.raises(attributes.VectorMismatch, match="vae-abc"):
        attributes.load_vectors(path, "vae-other")
    (forced,) = attributes.load_vectors(path, "vae-other", force=True)
    np.testing.assert_array_equal(forced.vector, v.vector)
    with pytest.raises(attributes.VectorMismatch, match="dimensions"):
        attributes.load_vectors(path, "vae-other", latent_shape=(16,), force=True)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        attributes.load_vectors(str(tmp_path / "bad.json"), "x")


# ---- neighbours and the in-distribution indicator ---------------------------------------------------------------
def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(7)
    db, q = rng.normal(size=(3000, 16)), rng.normal(size=(40, 16))
    nn = neighbours.nearest(db, q, k=5)
    d = np.linalg.norm(q[:, None] - db[None], axis=2)
    np.testing.assert_array_equal(nn.indices, np.argsort(d, 1)[:, :5])
    np.testing.assert_allclose(nn.distances, np.sort(d, 1)[:, :5], rtol=1e-5)
    own = neighbours.nearest(db, db[:10], k=1)
    assert own.indices[:, 0].tolist() == list(range(10)) and own.distances.max() == 0
    ex = neighbours.nearest(db, db[:10], k=1, exclude=np.arange(10))
    assert not np.any(ex.indices[:, 0] == np.arange(10))


def test_in_distribution_indicator():
    rng = np.random.default_rng(8)
    train = rng.normal(size=(2000, 8))
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=8)
    ind = neighbours.InDistribution(train, e)
    typical = ind(rng.normal(size=8))
    far = ind(np.full(8, 6.0))
    assert typical.verdict == "typical" and far.verdict == "far from the data"
    assert far.nn_percentile == 100 and far.nn_ratio > 3
    assert far.log_prior < typical.log_prior and far.prior_percentile > 99
    assert neighbours.InDistribution(train)(np.zeros(8)).log_prior is None  # no prior: distance only


# ---- the latent cache -------------------------------------------------------------------------------------------
def _pca(ds, k=4):
    e = engines.create("pca", ds.spec, device="cpu", n_components=k)
    e.fit(ds.images[ds.train_idx])
    return e


def test_latent_cache_hits_rebuilds_and_tracks_identity(tiny_dataset):
    ds = tiny_dataset(n=120)
    e = _pca(ds)
    seen = []
    first = run(cache.encode_dataset(e, ds, chunk=50), seen.append)
    assert not first.from_cache and first.path and os.path.isfile(first.path)
    assert [p.stage for p in seen] == ["encode"] * 3 and seen[-1].fraction == 1.0
    np.testing.assert_allclose(first.latents, e.encode(ds.images).numpy(), atol=1e-6)
    again = cache.open_latents(e, ds)
    assert again.from_cache and again.path == first.path
    np.testing.assert_array_equal(again.latents, first.latents)
    np.testing.assert_array_equal(again.labels, ds.labels)
    np.testing.assert_array_equal(again.attributes["height"], ds.attributes["height"])
    np.testing.assert_array_equal(again.test_idx, ds.test_idx)
    assert again.label_names == ds.label_names and again.latent_shape == (4,)
    # a corrupt file is rebuilt
    with open(first.path, "wb") as f:
        f.write(b"\x89HDF\r\n garbage")
    rebuilt = cache.open_latents(e, ds)
    assert not rebuilt.from_cache and cache.open_latents(e, ds).from_cache
    # identities follow the content
    assert cache.model_id(e) == cache.model_id(e) and cache.model_id(e).startswith("pca-")
    e2 = _pca(ds, k=3)
    assert cache.model_id(e2) != cache.model_id(e)
    ds2 = tiny_dataset(n=120, seed=1)
    assert cache.data_id(ds2) != cache.data_id(ds)


@pytest.mark.parametrize("name", ["pca", "ae", "vae"])
def test_every_engine_goes_through_map_scrub_and_inspect(tiny_dataset, name):
    ds = tiny_dataset(n=60, seed=2)
    e = engines.create(name, ds.spec, device="cpu", **({"n_components": 4} if name == "pca" else {"latent_dim": 4, "width": 8}))
    if name == "pca":
        e.fit(ds.images)
    ls = cache.open_latents(e, ds)
    assert ls.latents.shape == (60, 4) and ls.model_id.startswith(name + "-")
    proj = projection.pca_projection(ls.latents)
    z = proj.mapping.to_latent([[0.5, -0.5]])
    assert e.decode(z.astype(np.float32)).shape == (1, 1, 16, 16)
    ind = neighbours.InDistribution(ls.train, e)
    assert (ind(z[0]).log_prior is None) == (name == "ae")  # the AE has no prior density


def test_latent_cache_not_written_when_model_changes_while_encoding(tiny_dataset):
    ds = tiny_dataset(n=40, seed=4)
    e = _pca(ds)
    gen = cache.encode_dataset(e, ds, chunk=10)
    next(gen)
    with torch.no_grad():
        e.basis.mean.add_(0.01)  # a training step lands mid-encode
    ls = run(gen)
    assert ls.path is None and not cache.open_latents(e, ds).from_cache


def test_latent_cache_cancel_writes_nothing(tiny_dataset):
    ds = tiny_dataset(n=100, seed=5)
    e = _pca(ds)
    gen = cache.encode_dataset(e, ds, chunk=10)
    next(gen)
    gen.close()  # the worker's Cancel
    path = cache.cache_path(cache.model_id(e), cache.data_id(ds))
    assert not os.path.exists(path)
    folder = os.path.dirname(path)
    assert not os.path.isdir(folder) or not any(n.startswith(".tmp-") for n in os.listdir(folder))


def test_latent_cache_refuses_wrong_spec(tiny_dataset):
    ds = tiny_dataset(n=40)
    e = engines.create("pca", ImageSpec(1, 8, 8), device="cpu", n_components=2)
    with pytest.raises(ValueError, match="to_spec"):
        cache.open_latents(e, ds)


# ---- UMAP runner plumbing (a fake layout: the real UMAP test is opt-in) --------------------------------------
def _fake_fit(epochs=20, delay=0.005):
    calls = {"n": 0, "stopped_at": None}

    def fit(z, params, report, stopped):
        calls["n"] += 1
        report("graph", 0, 1)
        for ep in range(epochs + 1):
            report("layout", ep, epochs)
            if stopped():
                calls["stopped_at"] = ep
                from engines.latent.projection import _Stop
                raise _Stop()
            time.sleep(delay)
        return z[:, :2] * 2.0

    return fit, calls


def test_umap_runner_progress_cache_and_cancel():
    z = np.random.default_rng(9).normal(size=(60, 5)).astype(np.float32)
    params = projection.UmapParams(n_neighbors=5, min_dist=0.2, n_epochs=20)
    fit, calls = _fake_fit()
    seen = []
    proj = run(projection.run_umap(z, params, _fit=fit, heartbeat_s=0.05), seen.append)
    assert calls["n"] == 1 and not proj.from_cache and proj.kind == "umap"
    np.testing.assert_allclose(proj.coords, z[:, :2] * 2.0)
    layout = [p for p in seen if p.stage == "layout"]
    assert layout and all(0 <= p.fraction <= 1 for p in seen)
    assert [p.fraction for p in layout] == sorted(p.fraction for p in layout)
    np.testing.assert_allclose(proj.mapping.to_latent(proj.coords), z, atol=1e-6)  # inverse exact at data
    # reopened from the cache without computing
    again = run(projection.run_umap(z, params, _fit=fit))
    assert again.from_cache and calls["n"] == 1
    np.testing.assert_array_equal(again.coords, proj.coords)
    assert projection.load_cached_umap(z, params) is not None
    assert projection.load_cached_umap(z, projection.UmapParams(n_neighbors=6)) is None
    # cancel: closing the generator stops the helper within an epoch, nothing is cached
    slow, calls2 = _fake_fit(epochs=500, delay=0.01)
    p2 = projection.UmapParams(n_neighbors=7)
    gen = projection.run_umap(z, p2, _fit=slow, heartbeat_s=0.02)
    for p in gen:
        if p.stage == "layout" and p.fraction > 0.25:
            break
    gen.close()
    deadline = time.time() + 5
    while calls2["stopped_at"] is None and time.time() < deadline:
        time.sleep(0.01)
    assert calls2["stopped_at"] is not None and calls2["stopped_at"] < 500
    assert projection.load_cached_umap(z, p2) is None


def test_umap_params_validated():
    with pytest.raises(ValueError):
        projection.UmapParams(metric="nope")
    with pytest.raises(ValueError):
        projection.UmapParams(min_dist=2)


# ---- history and bookmarks ----------------------------------------------------------------------------------------
def test_history_undo_redo_coalesce_and_bound():
    h = history.History(max_len=4)
    assert h.current is None and not h.can_undo
    for i in range(3):
        h.visit(np.full(2, i), "click")
    assert h.current.tolist() == [2, 2]
    assert h.undo().tolist() == [1, 1] and h.undo().tolist() == [0, 0] and h.undo().tolist() == [0, 0]
    assert h.redo().tolist() == [1, 1]
    h.visit(np.full(2, 9))  # drops the redo branch
    assert not h.can_redo and len(h) == 3
    for x in (10, 11, 12):
        h.visit(np.full(2, x), "drag", coalesce=True)  # one gesture → one entry
    h.end_gesture()
    assert len(h) == 4 and h.current.tolist() == [12, 12]
    assert h.undo().tolist() == [9, 9]
    h.redo()
    h.visit(np.full(2, 13))
    assert len(h) == 4 and h.entries[0].latent.tolist() == [1, 1]  # bounded: oldest fell off
    h.visit(np.full(2, 13))  # revisiting the current latent is a no-op
    assert len(h) == 4
    back = history.History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.current.tolist() == [13, 13] and len(back) == 4 and back.undo().tolist() == [12, 12]


def test_bookmarks_round_trip():
    bm = history.Bookmarks()
    bm.add("smile", [1.0, 2.0], note="nice", model_id="vae-1")
    bm.add("frown", [3.0, 4.0], model_id="vae-2")
    bm.rename("smile", "big smile")
    assert [b.name for b in bm] == ["big smile", "frown"]
    with pytest.raises(ValueError):
        bm.rename("frown", "big smile")
    back = history.Bookmarks.from_dict(json.loads(json.dumps(bm.to_dict())))
    assert back["big smile"].note == "nice" and back["big smile"].latent.tolist() == [1.0, 2.0]
    assert [b.name for b in back.for_model("vae-2")] == ["frown"]
