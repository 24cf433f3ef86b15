"""engines/latent: the math behind the latent-space panels (issue #5). Fast: no UMAP compile here
(the real UMAP run is tests/test_latent_umap.py, opt-in)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

import engines
from engines.latent import atlas, history, interpolate as it, inverse, neighbours, planes, projection
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


@pytest.mark.parametrize("offset", [0.0, 50.0, -1e3, 3e5])
@pytest.mark.parametrize("n", [4000, 7])
def test_pca_fit_matches_a_float64_reference_far_from_the_origin(offset, n, monkeypatch):
    """The block-wise float32 pass with its measured mean correction and the rank-1 covariance fix
    give the float64 mean, covariance and map coordinates — also when the mean dwarfs the spread,
    with several blocks and a last short one (a tiny block size forces them) or one block."""
    monkeypatch.setattr(planes, "PCA_BLOCK_BYTES", 24 * 4 * 300)  # 300 rows per block: 13 full + 1 short
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(n, 24)) * np.linspace(0.05, 2.0, 24) + offset).astype(np.float32)
    mean, var, vecs = planes.pca_fit(z)
    z64 = z.astype(np.float64)
    ref_mean, ref_cov = z64.mean(0), np.cov(z64.T)
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-7 * (2.0 + abs(offset)))  # float32 data: 1e-7 of it
    np.testing.assert_allclose((vecs * var) @ vecs.T, ref_cov, rtol=0, atol=1e-5 * np.abs(ref_cov).max())
    assert np.all(np.diff(var) <= 0)
    ref_var, ref_vecs = np.linalg.eigh(ref_cov)
    if n > 24:
        np.testing.assert_allclose(var[:3], ref_var[::-1][:3], rtol=1e-5)
        assert np.all(np.abs(np.abs((vecs[:, :3] * ref_vecs[:, ::-1][:, :3]).sum(0)) - 1) < 1e-6)
    # The map: the projection's float32 coordinates against the float64 projection of the data.
    proj = projection.pca_projection(z)
    ref = proj.mapping.to_map(z64)
    assert proj.coords.dtype == np.float32 and proj.coords.shape == (n, 2)
    np.testing.assert_allclose(proj.coords, ref, rtol=0, atol=2e-6 * (1 + np.abs(ref).max()))
    np.testing.assert_allclose(proj.coords.mean(0), 0, atol=1e-4)  # centred on the data mean


def test_covariance_far_from_the_origin_centres_twice():
    """A mean a million spreads from the origin: the float32 BLAS mean misses by a sizeable part of
    the spread and the rank-1 fix alone leaves ~1e-3 relative error (measured: 9e-4); the second
    pass on the corrected mean brings it to float64 rounding."""
    z = (np.random.default_rng(0).normal(size=(200_000, 8)) + 1e6).astype(np.float32)
    mean, cov = planes.covariance(z)
    z64 = z.astype(np.float64)
    ref = np.cov(z64.T)
    assert np.abs(cov - ref).max() < 1e-6 * np.abs(ref).max()
    np.testing.assert_allclose(mean, z64.mean(0), rtol=0, atol=1e-6)


@pytest.fixture
def block_passes(monkeypatch):
    """A list that gets an entry each time the centred, blocked pass (planes._row_blocks) starts."""
    calls = []
    real = planes._row_blocks
    monkeypatch.setattr(planes, "_row_blocks", lambda a: (calls.append(1), real(a))[1])
    return calls


@pytest.mark.parametrize("n, sds, direct", [(5000, 0.0, True), (10_000, 0.95, True), (5000, 1.3, False),
                                             (5000, 40.0, False), (planes.DIRECT_GRAM_MAX_N + 1, 0.0, False)])
def test_direct_gram_and_map_only_near_the_origin(n, sds, direct, block_passes):
    """The uncentred Gram is taken only within DIRECT_GRAM_MEAN_SDS standard deviations of zero and
    up to DIRECT_GRAM_MAX_N rows (the blocked, centred pass is not entered), and the direct Z·Pᵀ map
    only within DIRECT_MAP_SDS; both paths give the float64 covariance — every entry within 1e-5 of
    √(varᵢ·varⱼ), the mean within 5e-6 sd — and map coordinates."""
    rng = np.random.default_rng(7)
    d = 4 if n > 50_000 else 16
    sd = np.linspace(0.1, 2.0, d)
    z = (rng.normal(size=(n, d)) * sd + sds * sd).astype(np.float32)
    calls = block_passes
    mean, cov = planes.covariance(z)
    assert (not calls) == direct
    z64 = z.astype(np.float64)
    ref = np.cov(z64.T)
    ref_sd = np.sqrt(np.diag(ref))
    assert np.all(np.abs(mean - z64.mean(0)) <= 5e-6 * ref_sd)
    assert np.all(np.abs(cov - ref) <= 1e-5 * np.outer(ref_sd, ref_sd))
    calls.clear()
    plane = planes.pca_plane(z)
    calls.clear()
    coords = planes.map_coordinates(plane, z)
    assert (not calls) == (sds <= planes.DIRECT_MAP_SDS)
    ref_map = plane.to_map(z64)
    np.testing.assert_allclose(coords, ref_map, rtol=0, atol=2e-6 * (1 + np.abs(ref_map).max()))


def test_direct_paths_are_refused_for_wide_or_degenerate_data(block_passes):
    """Wide data (D over DIRECT_GRAM_MAX_D) never pays for a Gram it might discard, and a constant
    coordinate (zero variance) sends the covariance to the centred pass."""
    calls = block_passes
    wide = np.random.default_rng(0).normal(size=(600, planes.DIRECT_GRAM_MAX_D + 1)).astype(np.float32)
    mean, cov = planes.covariance(wide)
    assert calls
    np.testing.assert_allclose(cov, np.cov(wide.astype(np.float64).T), rtol=0, atol=1e-5)
    calls.clear()
    flat = np.random.default_rng(1).normal(size=(300, 5)).astype(np.float32)
    flat[:, 2] = 0.0
    mean, cov = planes.covariance(flat)
    assert calls and cov[2, 2] == 0 and np.all(np.isfinite(cov))


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


def test_latent_axes_plane_reads_two_axes_and_holds_the_rest_at_the_data_mean():
    z = np.random.default_rng(6).normal(size=(50, 4)) + np.array([1.0, 2.0, 3.0, 4.0])
    p = planes.latent_axes_plane(z, 1, 3)
    np.testing.assert_allclose(p.to_map(z), z[:, [1, 3]], atol=1e-9)  # map point = (z_1, z_3)
    back = p.to_latent(np.array([[0.5, -2.0]]))[0]
    mean = z.mean(0)
    np.testing.assert_allclose(back, [mean[0], 0.5, mean[2], -2.0], atol=1e-9)
    assert p.kind == "axes" and p.meta == {"i": 1, "j": 3}
    with pytest.raises(ValueError, match="two different latent axes"):
        planes.latent_axes_plane(z, 2, 2)
    proj = projection.axes_projection(z.astype(np.float32), 1, 3)  # the engines' projection uses it
    np.testing.assert_allclose(proj.mapping.to_latent(np.array([[0.5, -2.0]]))[0], back, atol=1e-6)
