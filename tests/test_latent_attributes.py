"""Attribute vectors: planted directions recovered, quality measures, z + s·Δ, strips, analogies,
vector files tied to a model."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engines.latent import attributes, cache


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
