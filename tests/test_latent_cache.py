"""The latent cache (hits, rebuilds, identity, cancel, wrong spec), every engine through map, scrub and
inspect, and the UMAP runner's plumbing (progress, cache, cancel) with a fake layout."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

import engines
from engines.latent import cache, neighbours, projection
from engines.latent.progress import run
from engines.spec import ImageSpec


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
