"""The real UMAP run behind the Map panel: staged progress, Cancel within an epoch, disk cache.

Part of the default suite (it was opt-in, so CI skipped it): numba compiles UMAP on first use in a
process, 15–70 s on a 2-core CPU, within the suite's budget. tests/test_latent.py covers the same
runner with a fake layout."""
from __future__ import annotations

import time

import numpy as np

from engines.latent import projection
from engines.latent.progress import run

def test_real_umap_progress_cancel_and_cache():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 1, (100, 8)), rng.normal(6, 1, (100, 8))]).astype(np.float32)
    params = projection.UmapParams(n_neighbors=10, n_epochs=60, seed=0)
    seen = []
    proj = run(projection.run_umap(z, params), seen.append)
    stages = [p.stage for p in seen]
    assert stages[0] == "graph" and "layout" in stages
    epochs = [p for p in seen if p.stage == "layout"]
    assert len(epochs) >= 30  # reported epoch by epoch
    assert proj.coords.shape == (200, 2) and np.all(np.isfinite(proj.coords))
    # the two clusters stay apart on the map
    c0, c1 = proj.coords[:100].mean(0), proj.coords[100:].mean(0)
    spread = max(proj.coords[:100].std(0).max(), proj.coords[100:].std(0).max())
    assert np.linalg.norm(c0 - c1) > 3 * spread
    np.testing.assert_allclose(proj.mapping.to_latent(proj.coords), z, atol=1e-5)
    t0 = time.perf_counter()
    again = run(projection.run_umap(z, params))
    assert again.from_cache and time.perf_counter() - t0 < 0.5
    np.testing.assert_array_equal(again.coords, proj.coords)

    # Cancel during the layout: the helper thread stops within an epoch and nothing is cached
    import threading

    long = projection.UmapParams(n_neighbors=10, n_epochs=100000, seed=1)
    gen = projection.run_umap(z, long, heartbeat_s=0.05)
    layout_reports = 0
    for p in gen:
        layout_reports += p.stage == "layout"
        if layout_reports >= 5:
            break
    gen.close()
    deadline = time.time() + 5
    while any(t.name == "umap" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "umap" for t in threading.enumerate())
    assert projection.load_cached_umap(z, long) is None
