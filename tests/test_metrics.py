"""Evaluation metrics: the statistics against hand-computed cases, a real classifier on a tiny
labelled set (self/train split scores well; blur, noise and mode collapse score clearly worse),
the classifier cache, and `main.py evaluate`."""
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from engines import checkpoint as ckpt
from engines.cli.main import main
from engines.data.dataset import ImageDataset
from engines.metrics import compare, evaluate, format_table, stored_metrics
from engines.metrics import classifier as clfmod
from engines.metrics.stats import (frechet_distance, frechet_from_stats, kl_divergence, label_histogram,
                                   mode_coverage, precision_recall, total_variation)


# ---- statistics -----------------------------------------------------------------------------------
def test_frechet_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(50, 20))  # fewer points than dimensions² : singular-ish
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    g = np.random.default_rng(1).normal(size=(10, 32))  # rank-deficient covariance
    assert frechet_distance(g, g) == pytest.approx(0.0, abs=1e-8)


def test_frechet_gaussian_closed_forms():
    # 1-D: (μ₁−μ₂)² + (σ₁−σ₂)²
    assert frechet_from_stats([1.0], [[4.0]], [3.0], [[1.0]], eps=0) == pytest.approx(4 + 1)
    # 2-D, commuting covariances: ‖Δμ‖² + Σ(σ₁ᵢ−σ₂ᵢ)²
    assert frechet_from_stats([0, 0], np.diag([4.0, 9.0]), [1, 2], np.eye(2), eps=0) == pytest.approx(5 + 1 + 4)
    # 2-D, non-commuting: against the textbook formula with scipy's sqrtm of Σ₁Σ₂
    from scipy.linalg import sqrtm

    r = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    s1, s2 = r @ np.diag([5.0, 0.5]) @ r.T, np.array([[2.0, 0.3], [0.3, 1.0]])
    want = 1.0 + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_from_stats([0, 0], s1, [1, 0], s2, eps=0) == pytest.approx(want, rel=1e-9)
    # From samples: N(0, 1) vs N(2, 0.5²) → 4 + 0.25
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (200_000, 1)), rng.normal(2, 0.5, (200_000, 1))
    assert frechet_distance(a, b) == pytest.approx(4.25, abs=0.03)


def test_precision_recall_basic_cases():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 8))
    real = np.concatenate([c + rng.normal(0, 1, (60, 8)) for c in centres])
    assert precision_recall(real, real) == (1.0, 1.0)
    same_dist = np.concatenate([c + rng.normal(0, 1, (60, 8)) for c in centres])
    p, r = precision_recall(real, same_dist)
    assert p > 0.7 and r > 0.7  # k = 3 manifolds of 60 points per mode in 8-D are patchy
    noise = rng.uniform(-30, 30, (180, 8))
    p, r = precision_recall(real, noise)
    assert p < 0.1
    one_mode = centres[0] + rng.normal(0, 1, (180, 8))
    p, r = precision_recall(real, one_mode)
    assert p > 0.7 and r < 0.4
    with pytest.raises(ValueError):
        precision_recall(real[:3], real[:3])


def test_label_statistics():
    ref = label_histogram([0, 1, 2, 3] * 5, 4)
    assert ref.tolist() == [0.25] * 4
    assert mode_coverage([0.25] * 4, ref) == 1.0
    assert mode_coverage([0.7, 0.2, 0.1, 0.0], ref) == 0.5  # classes 0 and 1 get ≥ 1/8
    assert mode_coverage([0.4, 0.4, 0.125, 0.075], ref) == 0.75
    assert total_variation([1, 0, 0, 0], ref) == pytest.approx(0.75)
    assert kl_divergence(ref, [5, 5, 5, 5]) == pytest.approx(0.0)
    assert kl_divergence(ref, [20, 0, 0, 0]) > 1.0


# ---- a real classifier on a tiny data set ------------------------------------------------------------
_CACHE: dict = {}


@pytest.fixture
def blobs(tiny_dataset):
    """300 labelled 16×16 blob images and their classifier (trained once per test session)."""
    if "blobs" not in _CACHE:
        ds = tiny_dataset(n=300, size=16, channels=1, seed=0)
        _CACHE["blobs"] = ds, clfmod.train_classifier(ds, seed=0, min_steps=24)  # fewer steps: test time
    return _CACHE["blobs"]


def _blur(images: np.ndarray, radius: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im[..., 0]).filter(ImageFilter.GaussianBlur(radius)))[..., None]
                     for im in images])


def test_classifier_learns_the_labels(blobs):
    ds, clf = blobs
    assert clf.info["test_acc"] >= 0.95
    feats = clf.features(ds.images[:10])
    assert feats.shape == (10, clfmod.FEATURE_DIM) and torch.isfinite(feats).all()
    # Deterministic: a second training with the same seed gives the same features.
    again = clfmod.train_classifier(ds, seed=0, max_steps=5)
    again2 = clfmod.train_classifier(ds, seed=0, max_steps=5)
    assert torch.equal(again.features(ds.images[:10]), again2.features(ds.images[:10]))


def test_metrics_separate_good_from_bad_images(blobs):
    ds, clf = blobs
    test = ds.images[ds.test_idx]
    train = ds.images[ds.train_idx][:135]
    rng = np.random.default_rng(0)
    self_ = compare(clf, test, test)
    assert self_["cfid"] == pytest.approx(0, abs=1e-4)
    assert self_["precision"] == self_["recall"] == self_["coverage"] == 1.0 and self_["label_tv"] == 0
    good = compare(clf, test, train)  # unseen images from the same distribution
    assert good["precision"] >= 0.8 and good["recall"] >= 0.8 and good["coverage"] == 1.0
    blurred = compare(clf, test, _blur(train, 2.0))
    noise = compare(clf, test, rng.integers(0, 256, train.shape, dtype=np.uint8))
    assert blurred["cfid"] > 3 * good["cfid"] and blurred["recall"] < good["recall"] - 0.3
    assert noise["cfid"] > 5 * good["cfid"] and noise["precision"] < 0.5 and noise["recall"] < 0.5


class _CollapsedSampler:
    """A 'generator' that only ever produces training images of one class."""

    name = "collapsed"
    capabilities = frozenset({"sample"})
    device = torch.device("cpu")

    def __init__(self, ds: ImageDataset, cls: int):
        self.spec = ds.spec
        self.pool = ds.images[ds.train_idx][ds.labels[ds.train_idx] == cls]

    def sample(self, n, seed=0):
        idx = np.random.default_rng(seed).integers(0, len(self.pool), n)
        return torch.from_numpy(self.pool[idx]).permute(0, 3, 1, 2).float() / 255

    def evaluate(self, x, max_images=2000, quick=False):
        return {}


class _HonestSampler(_CollapsedSampler):
    def __init__(self, ds: ImageDataset):
        self.spec = ds.spec
        self.pool = ds.images[ds.train_idx]


def test_mode_collapse_shows_in_recall_and_histogram(blobs):
    ds, clf = blobs
    honest = evaluate(_HonestSampler(ds), ds, n=200, classifier=clf)
    collapsed = evaluate(_CollapsedSampler(ds, 0), ds, n=200, classifier=clf)
    assert honest["recall"] >= 0.8 and honest["coverage"] == 1.0
    assert collapsed["recall"] < 0.5 and collapsed["coverage"] <= 1 / 3
    assert collapsed["label_hist"][0] > 0.9 and collapsed["label_tv"] > 0.5
    assert collapsed["label_kl"] > 5 * max(honest["label_kl"], 0.05)
    assert collapsed["cfid"] > 5 * honest["cfid"]
    assert collapsed["precision"] >= 0.8  # the images themselves are fine
    # References: training images against the test images.
    assert honest["cfid_ref"] is not None and honest["recall_ref"] >= 0.8
    assert "cfid" in format_table(collapsed) and "left" in format_table(collapsed)


def test_unlabelled_data_and_non_samplers_skip_sample_metrics(tiny_dataset):
    ds = tiny_dataset(n=60, size=16)
    unlabelled = ImageDataset("nolabels", ds.images, source="nolabels")
    out = evaluate(_HonestSampler(unlabelled), unlabelled, n=20)
    assert "cfid" not in out and any("no labels" in m for m in out["notes"])

    class Encoder(_HonestSampler):
        capabilities = frozenset({"encode"})

        def evaluate(self, x, max_images=2000, quick=False):
            return {"mse": 0.01, "psnr": 20.0, "perplexity": 7.5, "codes_used_frac": 0.5}

    out = evaluate(Encoder(ds), ds, n=20)
    assert out["mse"] == 0.01 and out["perplexity"] == 7.5 and out["codes_used_frac"] == 0.5
    assert "cfid" not in out and any("cannot sample" in m for m in out["notes"])
    assert "codes_used_frac" in format_table(out)


# ---- cache ---------------------------------------------------------------------------------------------
def test_classifier_cache_hit_and_corrupt_file_retrained(tiny_dataset, monkeypatch):
    ds = tiny_dataset(n=90, size=8, channels=3, seed=5)
    trained = []
    real_train = clfmod.train_classifier
    monkeypatch.setattr(clfmod, "train_classifier", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    first = clfmod.get_classifier(ds, max_steps=8)
    path = first.info["path"]
    assert os.path.exists(path) and not first.info["from_cache"] and len(trained) == 1
    second = clfmod.get_classifier(ds, max_steps=8)
    assert second.info["from_cache"] and len(trained) == 1
    assert torch.equal(first.features(ds.images[:5]), second.features(ds.images[:5]))
    assert second.info["test_acc"] == first.info["test_acc"]
    # Other data or another recipe is another file.
    assert clfmod.cache_path(ds.subset(np.arange(80)), options={"max_steps": 8}) != path
    assert clfmod.cache_path(ds, options={"max_steps": 9}) != path
    assert clfmod.cache_path(ds, options={"max_steps": 8}) == path
    # Corrupt files (garbage, truncated) are trained again and replaced.
    for damage in (b"garbage", open(path, "rb").read()[:200]):
        with open(path, "wb") as f:
            f.write(damage)
        third = clfmod.get_classifier(ds, max_steps=8)
        assert not third.info["from_cache"]
        assert clfmod.get_classifier(ds, max_steps=8).info["from_cache"]
    assert len(trained) == 3


def test_no_labels_raises(tiny_dataset):
    ds = tiny_dataset(n=30, size=8)
    with pytest.raises(clfmod.NoLabels):
        clfmod.get_classifier(ImageDataset("x", ds.images))
    with pytest.raises(clfmod.NoLabels):
        clfmod.get_classifier(ImageDataset("x", ds.images, labels=np.zeros(30, int)))


# ---- command line ------------------------------------------------------------------------------------
@pytest.fixture
def vae_checkpoint(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=120, size=16, channels=1)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images[..., 0], labels=ds.labels)
    out = str(tmp_path / "vae.safetensors")
    assert main(["train", "--engine", "vae", "--data", str(data), "--epochs", "2", "--set", "latent_dim=3",
                 "--set", "width=8", "--set", "iwae_k=4", "--out", out]) == 0
    return out, str(data)


def test_cli_evaluate_json_and_stored_metrics(vae_checkpoint, capsys):
    out, data = vae_checkpoint
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", out, "--n", "50", "--json"]) == 0
    stdout = capsys.readouterr().out
    result = json.loads(stdout.strip().splitlines()[-1])
    for key in ("cfid", "precision", "recall", "coverage", "elbo_nats", "iwae_nats", "mse", "psnr"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert result["iwae_nats"] <= result["elbo_nats"] + 1.0  # both Monte Carlo estimates
    assert "perplexity" not in result
    stored = ckpt.read_info(out).metrics
    for key in ("cfid", "precision", "recall", "coverage", "elbo_nats", "iwae_nats", "mse", "psnr"):
        assert stored[key] == pytest.approx(result[key]), key
    assert stored["evaluated_at"] > 0 and stored["evaluated_on"] == "blobs"
    assert "test_mse" in stored  # the training metrics are kept
    # The table, with an explicit --data, and the classifier now from the cache.
    assert main(["evaluate", "--checkpoint", out, "--data", data, "--n", "50"]) == 0
    table = capsys.readouterr().out
    assert "cfid" in table and "elbo_nats" in table and "cached" in table


def test_cli_evaluate_user_errors(vae_checkpoint, tmp_path, capsys):
    out, data = vae_checkpoint
    os.unlink(data)  # the training data has gone
    assert main(["evaluate", "--checkpoint", out]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["evaluate", "--checkpoint", out, "--data", "digits", "--n", "0"]) == 2


def test_stored_metrics_are_json_scalars_and_lists():
    s = stored_metrics({"cfid": 1.5, "notes": ["x"], "classifier": {"a": 1}, "label_hist": [0.5, 0.5],
                        "seconds": 3.0, "data": "d", "ok": True})
    assert set(s) == {"cfid", "label_hist", "evaluated_on", "evaluated_at"}
    assert s["cfid"] == 1.5 and s["label_hist"] == [0.5, 0.5]
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_pixel_by_pixel_sampler_draws_fewer_samples_by_default_and_reports_progress(blobs):
    """A PixelCNN draws each sample with one network pass per pixel: evaluate caps its sample
    metrics at RASTER_SAMPLES unless asked for more, says so in the notes, and reports the raster
    progress (one line per tenth of the pixels) instead of sitting on "drawing N samples"."""
    import engines
    from engines.metrics import RASTER_SAMPLES

    ds, clf = blobs
    e = engines.create("pixelcnn", ds.spec, device="cpu", seed=0, hidden=4, layers=2, kernel=3)
    said = []
    out = evaluate(e, ds, n=RASTER_SAMPLES + 50, classifier=clf, reference=False, batch_size=RASTER_SAMPLES,
                   progress=said.append)
    assert out["n_samples"] == RASTER_SAMPLES
    assert any("pixel by pixel" in note and str(RASTER_SAMPLES) in note for note in out["notes"])
    pixel_lines = [m for m in said if "of the pixels" in m]
    assert len(pixel_lines) == 10 and pixel_lines[-1].endswith("100% of the pixels")
    asked = evaluate(e, ds, n=RASTER_SAMPLES + 50, classifier=clf, reference=False, samples=7)
    assert asked["n_samples"] == 7 and not any("pixel by pixel" in note for note in asked["notes"])
    # Other engines draw n, as before.
    assert evaluate(_HonestSampler(ds), ds, n=RASTER_SAMPLES + 50, classifier=clf,
                    reference=False)["n_samples"] == RASTER_SAMPLES + 50
