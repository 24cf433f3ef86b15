"""How good is a trained model? One `evaluate(engine, data)` for every engine.

Sample metrics (engines that can sample, data sets with labels) are computed in the feature
space of a small classifier trained on the data set's own train-split labels
(`engines.metrics.classifier`, cached per data set and spec), comparing `n` samples with the
held-out test images:

  cfid       Fréchet distance between Gaussians fitted to the classifier's penultimate features
             of the samples and of the test images (the FID recipe with a data-set-specific
             network instead of Inception). 0 for identical distributions; lower is better.
  precision  Kynkäänniemi et al. 2019 with k = 3: the fraction of samples that fall inside the
             test images' manifold (the union of balls around each test image reaching its 3rd
             nearest test neighbour). Realism; higher is better.
  recall     the same with the roles swapped: the fraction of test images inside the samples'
             manifold. Variety; higher is better. Both use equally many points per set
             (min(n, test images)), as the paper recommends.
  coverage   mode coverage from the classifier's predicted labels: the fraction of classes whose
             share of the samples is at least half their share of the test images' predicted
             labels (uniform K classes: ≥ 1/(2K) of the samples). Higher is better, 1 = all modes.
  label_tv   total variation between the two predicted-label histograms (0 best, 1 worst);
  label_kl   KL(test ‖ samples) in nats with ½ pseudo-counts (punishes missing modes; 0 best);
  label_hist / label_hist_test   the histograms themselves (lists in label_names order).
  *_ref      the same metrics for min(n, train) *training* images against the test images: what
             a perfect model scores with this many images (the floor of cfid's small-sample bias).

Engine metrics come from `engine.evaluate()` on min(n, test) test images and are passed through:
`mse`/`psnr` (reconstruction, engines that encode), the likelihood of engines with the
'likelihood' capability (`Engine.likelihood`: `elbo_nats`/`iwae_nats` for the VAE, −ELBO and the
−IWAE_k bound on −log p(x) in nats per image; `bpd` for diffusion; lower is better), and what
else an engine adds (`perplexity`, `codes_used_frac` for VQ).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from engines.data.dataset import ImageDataset, to_uint8
from engines.metrics.classifier import Classifier, NoLabels, get_classifier
from engines.metrics.stats import (frechet_distance, kl_divergence, label_histogram, mode_coverage, precision_recall,
                    total_variation)

# key -> (what it means, which direction is better). Also the order of the printed table.
METRICS: dict[str, tuple[str, str]] = {
    "cfid": ("Fréchet distance of classifier features, samples vs test images", "lower"),
    "precision": ("share of samples inside the test images' 3-NN manifold (realism)", "higher"),
    "recall": ("share of test images inside the samples' 3-NN manifold (variety)", "higher"),
    "coverage": ("share of classes given ≥ ½ their test share of samples (modes)", "higher"),
    "label_tv": ("total variation, predicted-label histograms of samples vs test", "lower"),
    "label_kl": ("KL(test ‖ samples) of predicted-label histograms, nats", "lower"),
    "elbo_nats": ("−ELBO on the test split: bound on −log p(x), nats/image", "lower"),
    "iwae_nats": ("−IWAE bound on −log p(x) on the test split, nats/image (tighter)", "lower"),
    "bpd": ("bits/dim bound on the test split", "lower"),
    "explained_variance": ("share of the test images' variance the model's components keep", "higher"),
    "mse": ("reconstruction mean squared error on the test split", "lower"),
    "psnr": ("reconstruction peak signal-to-noise ratio, dB", "higher"),
    "perplexity": ("codebook perplexity (effective number of codes used)", "higher"),
    "diversity": ("GAN: mean pairwise distance of samples ÷ that of test images (≈1 varied; →0 collapse)", ""),
    "inversion_mse": ("GAN: mean squared error of G(z) for z found by inversion, test images", "lower"),
    "inversion_psnr": ("GAN: inversion reconstruction peak signal-to-noise ratio, dB", "higher"),
    "codes_used_frac": ("share of codebook entries used on the test split", "higher"),
    "prior_nats_per_token": ("VQ prior: −log p of the test code grids, nats per code", "lower"),
    "classifier_acc": ("test accuracy of the data set's evaluation classifier", "higher"),
    "iwae_k": ("importance samples per image in the IWAE bound", ""),
}
# Keys stored in a checkpoint's metadata after `evaluate` (scalars, plus the histograms).
SAMPLE_KEYS = ("cfid", "precision", "recall", "coverage", "label_tv", "label_kl")


def _subset(n_total: int, m: int, seed: int) -> np.ndarray:
    if m >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, m, replace=False))


def compare(classifier: Classifier, real, fake, k: int = 3, real_features=None) -> dict:
    """Sample metrics of `fake` against `real` (uint8 (N,H,W,C) arrays or float (N,C,H,W)
    tensors in [0,1] at the classifier's spec): cfid, precision, recall, coverage, label_tv,
    label_kl, label_hist, label_hist_test. `real_features`: (features, logits) already computed."""
    fr, lr = real_features if real_features is not None else classifier.features_and_logits(real)
    ff, lf = classifier.features_and_logits(fake)
    out: dict = {}
    if len(fr) >= 2 and len(ff) >= 2:
        out["cfid"] = frechet_distance(fr.numpy(), ff.numpy())
    m = min(len(fr), len(ff))
    if m > k:
        # Equal set sizes: the k-NN radii of a larger set are smaller, which would bias the scores.
        out["precision"], out["recall"] = precision_recall(fr[:m], ff[:m], k=k)
    kc = classifier.n_classes
    counts = np.bincount(lf.argmax(1).numpy(), minlength=kc)[:kc]
    h_fake = counts / max(counts.sum(), 1)
    h_real = label_histogram(lr.argmax(1).numpy(), kc)
    out["coverage"] = mode_coverage(h_fake, h_real)
    out["label_tv"] = total_variation(h_fake, h_real)
    out["label_kl"] = kl_divergence(h_real, counts)
    out["label_hist"] = [float(v) for v in h_fake]
    out["label_hist_test"] = [float(v) for v in h_real]
    return out


def evaluate(engine, data: ImageDataset, n: int = 1000, seed: int = 0, *, k: int = 3, quick: bool = False,
             classifier: Classifier | None = None, sample_options: dict | None = None, reference: bool = True,
             batch_size: int = 250, progress: Callable[[str], None] | None = None,
             samples: int | None = None) -> dict:
    """Every metric that applies to `engine` on `data`'s test split (see the module docstring).

    Returns a JSON-serialisable dict: the scalar metrics, `label_hist`/`label_hist_test`/
    `label_names` when the classifier ran, `*_ref` reference values (unless `reference=False`),
    `classifier` (its accuracy and provenance), `notes` (why something was skipped), `n_samples`,
    `n_test`, `data`, `seconds`. Non-finite values are reported as None.

    `samples`: how many samples to draw for the sample metrics (default `n`; for an engine that
    draws pixel by pixel — capability "raster" — at most RASTER_SAMPLES unless given, with a note:
    1,000 PixelCNN samples at 28×28 are 784 network passes per batch, minutes on a laptop CPU)."""
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    n = int(n)
    if n < 1:
        raise ValueError("n must be at least 1")
    data = data.to_spec(engine.spec)
    test = data.split("test") if len(data.test_idx) else None
    out: dict = {"data": data.name, "n_test": 0 if test is None else len(test)}
    notes: list[str] = []
    if test is None:
        notes.append(f"{data.name} has no test split: nothing to evaluate on")
        out["notes"] = notes
        return out
    real_idx = _subset(len(test), min(n, len(test)), seed)
    real = test.images[real_idx]

    # Engine metrics: reconstruction, likelihood bounds, codebook statistics, …
    say(f"scoring {len(real)} test images with the {engine.name} model")
    for key, v in engine.evaluate(real, max_images=len(real), quick=quick).items():
        out[key] = float(v)
    if "likelihood" not in engine.capabilities:  # Engine.evaluate reports one for engines that declare it
        notes.append(f"{engine.name} models define no likelihood: no bound on −log p(x)")

    # Sample metrics in the classifier's feature space.
    if "sample" not in engine.capabilities:
        notes.append(f"{engine.name} models cannot sample: sample metrics skipped")
    else:
        clf = classifier
        if clf is None:
            try:
                clf = get_classifier(data, device=engine.device, progress=say)
            except NoLabels as e:
                notes.append(f"{e}: sample metrics (cfid, precision, recall, coverage) skipped")
        if clf is not None:
            m = _sample_count(engine, n, samples, notes)
            say(f"drawing {m} samples")
            fake = []
            for i, start in enumerate(range(0, m, batch_size)):
                b = min(batch_size, m - start)
                opts = dict(sample_options or {})
                if "raster" in engine.capabilities:
                    opts["callback"] = _raster_progress(say, start, b, m)
                # Quantised like the real images, so both go through the same path.
                fake.append(to_uint8(engine.sample(b, seed=seed * 1_000_003 + i, **opts)))
            fake = np.concatenate(fake)
            real_feats = clf.features_and_logits(real)
            out.update(compare(clf, real, fake, k=k, real_features=real_feats))
            out["label_names"] = list(clf.label_names)
            out["n_samples"] = m
            out["classifier_acc"] = float(clf.info.get("test_acc", float("nan")))
            out["classifier"] = {key: clf.info.get(key) for key in ("test_acc", "train_acc", "epochs", "train_s", "from_cache", "path")}
            if reference:
                train = data.split("train")
                ref = train.images[_subset(len(train), min(n, len(train)), seed + 1)]
                out["n_ref"] = len(ref)
                r = compare(clf, real, ref, k=k, real_features=real_feats)
                out.update({f"{key}_ref": r[key] for key in SAMPLE_KEYS if key in r})
            if len(real) <= k:
                notes.append(f"only {len(real)} test images: precision/recall need more than {k}")
    out["notes"] = notes
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return _clean(out)


RASTER_SAMPLES = 200  # default sample count for engines that draw pixel by pixel


def _sample_count(engine, n: int, samples: int | None, notes: list) -> int:
    if samples is not None:
        if int(samples) < 1:
            raise ValueError("samples must be at least 1")
        return int(samples)
    if "raster" in engine.capabilities and n > RASTER_SAMPLES:
        notes.append(f"{engine.name} draws pixel by pixel: sample metrics from {RASTER_SAMPLES} samples, not {n} "
                     f"(--samples N for more; noisier than with {n})")
        return RASTER_SAMPLES
    return n


def _raster_progress(say, start: int, b: int, total: int):
    """A callback for a raster loop: one progress line per tenth of the pixels."""
    state = {"tenth": 0}

    def cb(step):
        f = (step.index + 1) / max(step.total, 1)
        if int(f * 10 + 1e-9) > state["tenth"]:
            state["tenth"] = int(f * 10 + 1e-9)
            say(f"drawing samples {start + 1}–{start + b} of {total}: {f:.0%} of the pixels")
    return cb


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, torch.Tensor):
        return _clean(v.tolist())
    return v


def stored_metrics(result: dict) -> dict:
    """What a checkpoint keeps of an evaluation: the scalar metrics, the histograms, and when/
    on what it was computed (`evaluated_at` is a Unix time)."""
    keep = {k: v for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seconds",)}
    for k in ("label_hist", "label_hist_test", "label_names"):
        if k in result:
            keep[k] = result[k]
    keep["evaluated_on"] = result.get("data")
    keep["evaluated_at"] = time.time()
    return keep


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def format_table(result: dict) -> str:
    """The evaluation as an aligned text table: metric, value, reference, meaning."""
    rows = []
    for key, (meaning, better) in METRICS.items():
        if key in result:
            ref = result.get(f"{key}_ref")
            rows.append((key, _fmt(result[key]), "" if ref is None else _fmt(ref), better, meaning))
    for key, v in result.items():  # anything an engine adds that the table does not know yet
        if key not in METRICS and not key.endswith("_ref") and isinstance(v, float) and key != "seconds":
            rows.append((key, _fmt(v), "", "", ""))
    lines = []
    if rows:
        head = ("metric", "value", "reference", "better", "meaning")
        w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(4)]
        for r in [head, *rows]:
            lines.append(f"{r[0]:{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:{w[3]}}  {r[4]}".rstrip())
    if "label_hist" in result:
        names = result.get("label_names") or [str(i) for i in range(len(result["label_hist"]))]
        pairs = ", ".join(f"{nm} {100 * s:.0f}% ({100 * t:.0f}%)"
                          for nm, s, t in zip(names, result["label_hist"], result["label_hist_test"]))
        lines.append(f"predicted labels of the samples (test images): {pairs}")
    if any(f"{k}_ref" in result for k in SAMPLE_KEYS):
        lines.append(f"reference: {result.get('n_ref', '')} training images scored like samples — about what a perfect model gets")
    clf = result.get("classifier")
    if clf:
        src = "cached" if clf.get("from_cache") else f"trained in {clf.get('train_s')} s"
        lines.append(f"classifier: test accuracy {_fmt(clf.get('test_acc'))} ({src})")
    lines += [f"note: {m}" for m in result.get("notes", [])]
    lines.append(f"{result.get('data', '')}: {result.get('n_test', 0)} test images, "
                 f"{result.get('n_samples', 0)} samples, {result.get('seconds', 0)} s")
    return "\n".join(lines)


__all__ = ["METRICS", "Classifier", "NoLabels", "compare", "evaluate", "format_table", "get_classifier",
           "stored_metrics"]
