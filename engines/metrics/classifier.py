"""A small per-data-set classifier whose penultimate features the sample metrics are computed in.

Trained on the data set's *train* split labels at the data set's image spec (so one network per
data set and size), with small random shifts as augmentation. Deterministic for a seed on a
given device. Cached as safetensors (weights + JSON metadata, never pickle) in
`<cache>/classifiers/<key>.safetensors`, where `<cache>` is `$LATENT_EXPLORER_CACHE` or the user
cache dir and the key hashes everything the network depends on; an unreadable or mismatching
cache file is retrained and replaced.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from engines import atomic
from engines.base import as_images
from engines.data.dataset import ImageDataset
from engines.spec import ImageSpec

FORMAT = "latent-explorer-classifier"
# Bump whenever the architecture or the training recipe changes: old cache files are then unused.
VERSION = 1
FEATURE_DIM = 128
WIDTH = 16


class NoLabels(ValueError):
    """The data set cannot train a classifier (no labels, or a single class)."""


# ---- network ------------------------------------------------------------------------------------
class ClassifierNet(nn.Module):
    """Conv stem + three 3×3 conv stages (stride 2 while the map is larger than 4×4) with
    BatchNorm/ReLU, flattened into a `feature_dim` ReLU layer (the features), then a linear
    head. Works for 1 or 3 channels and any side from 4 to 256; from 24 px up the stem already
    halves the resolution, so no full-size feature maps are computed (they dominate CPU time)."""

    def __init__(self, spec: ImageSpec, n_classes: int, width: int = WIDTH, feature_dim: int = FEATURE_DIM):
        super().__init__()
        h, w = spec.height, spec.width
        stride = 2 if min(h, w) >= 24 else 1
        layers: list[nn.Module] = [nn.Conv2d(spec.channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        h, w = math.ceil(h / stride), math.ceil(w / stride)
        c_in = width
        for c_out in (2 * width, 4 * width, 4 * width):
            stride = 2 if min(h, w) > 4 else 1
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            h, w = math.ceil(h / stride), math.ceil(w / stride)
            c_in = c_out
        # Larger inputs end above 4×4 only when a side is odd all the way down; pool to ≤ 4×4.
        layers.append(nn.AdaptiveAvgPool2d((min(h, 4), min(w, 4))))
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c_in * min(h, 4) * min(w, 4), feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.trunk(x * 2 - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ---- the wrapper the metrics use ---------------------------------------------------------------
@dataclass
class Classifier:
    net: ClassifierNet
    spec: ImageSpec
    label_names: list[str]
    device: torch.device
    # key, path, test_acc, train_acc, epochs, steps, train_s, n_train, n_test, from_cache
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @torch.no_grad()
    def features_and_logits(self, x, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (N, FEATURE_DIM) and logits (N, K), float32 on the CPU."""
        self.net.eval()
        feats, logits = [], []
        n = len(x)
        for i in range(0, n, chunk):
            xb = as_images(x[i:i + chunk], self.device)
            if tuple(xb.shape[1:]) != self.spec.shape:
                raise ValueError(f"classifier expects {self.spec} images, got {tuple(xb.shape[1:])}")
            f = self.net.features(xb)
            feats.append(f.float().cpu())
            logits.append(self.net.head(f).float().cpu())
        if not feats:
            return torch.zeros(0, self.net.head.in_features), torch.zeros(0, self.n_classes)
        return torch.cat(feats), torch.cat(logits)

    def features(self, x) -> torch.Tensor:
        return self.features_and_logits(x)[0]

    def predict(self, x) -> np.ndarray:
        return self.features_and_logits(x)[1].argmax(1).numpy()


# ---- cache ------------------------------------------------------------------------------------------
def cache_dir() -> str:
    from engines.data.faces import cache_root

    return os.path.join(cache_root(), "classifiers")


def _check_labelled(ds: ImageDataset) -> int:
    if ds.labels is None:
        raise NoLabels(f"{ds.name}: the data set has no labels, so no classifier can be trained")
    k = max(len(ds.label_names), int(ds.labels.max()) + 1)
    if len(np.unique(ds.labels[ds.train_idx])) < 2:
        raise NoLabels(f"{ds.name}: the training split holds fewer than two classes, so no classifier can be trained")
    return k


def cache_key(ds: ImageDataset, seed: int = 0, options: dict | None = None) -> str:
    """Hash of everything the trained network depends on: recipe version and non-default
    training `options`, seed, the data set's description, spec, label names, size and split,
    all labels and a sample of 256 images."""
    n = len(ds)
    meta = {"version": VERSION, "seed": int(seed), "source": ds.source or ds.name, "spec": ds.spec.to_dict(),
            "label_names": list(ds.label_names), "n": n, "n_train": int(len(ds.train_idx)),
            "feature_dim": FEATURE_DIM, "width": WIDTH,
            "options": {k: v for k, v in sorted((options or {}).items()) if k != "progress"}}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    idx = np.unique(np.linspace(0, n - 1, min(n, 256)).round().astype(np.int64))
    h.update(np.ascontiguousarray(ds.images[idx]).tobytes())
    if ds.labels is not None:
        h.update(np.ascontiguousarray(ds.labels, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(ds.train_idx, dtype=np.int64).tobytes())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", ds.name)[:40] or "data"
    s = ds.spec
    return f"{stem}-{s.height}x{s.width}x{s.channels}-{h.hexdigest()[:20]}"


def cache_path(ds: ImageDataset, seed: int = 0, options: dict | None = None) -> str:
    return os.path.join(cache_dir(), cache_key(ds, seed, options) + ".safetensors")


def _save(path: str, clf: Classifier, key: str) -> bool:
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    info = {k: v for k, v in clf.info.items() if k not in ("path", "from_cache")}
    meta = {"format": FORMAT, "version": str(VERSION), "key": key, "spec": json.dumps(clf.spec.to_dict()),
            "label_names": json.dumps(clf.label_names), "info": json.dumps(info),
            "arch": json.dumps({"width": WIDTH, "feature_dim": FEATURE_DIM})}
    try:
        atomic.write_bytes(path, st_save(tensors, metadata=meta))
        return True
    except OSError:
        return False  # an unwritable cache only costs time


def _load(path: str, key: str, spec: ImageSpec, n_classes: int, device) -> Classifier | None:
    """The cached classifier, or None when the file is missing, unreadable or not this one."""
    from safetensors import safe_open

    if not os.path.exists(path):
        return None
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or meta.get("version") != str(VERSION) or meta.get("key") != key:
                return None
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        label_names = json.loads(meta["label_names"])
        info = json.loads(meta.get("info", "{}"))
        if ImageSpec.from_dict(json.loads(meta["spec"])) != spec or len(label_names) != n_classes:
            return None
        net = ClassifierNet(spec, n_classes)
        net.load_state_dict(tensors, strict=True)
    except Exception:  # truncated, corrupt or foreign: train again
        return None
    net.to(device).eval()
    info.update(path=path, from_cache=True)
    return Classifier(net, spec, label_names, torch.device(device), info)


def get_classifier(ds: ImageDataset, device="cpu", seed: int = 0, progress: Callable[[str], None] | None = None,
                   use_cache: bool = True, **train_options) -> Classifier:
    """The data set's classifier: from the cache when a valid one is there, else trained (and
    cached). Raises NoLabels for data sets without (at least two) labelled classes."""
    from engines.device import pick_device

    device = pick_device(device) if isinstance(device, str) else device
    k = _check_labelled(ds)
    key = cache_key(ds, seed, train_options)
    path = os.path.join(cache_dir(), key + ".safetensors")
    if use_cache:
        clf = _load(path, key, ds.spec, k, device)
        if clf is not None:
            return clf
    if progress:
        progress(f"training the evaluation classifier for {ds.name} {ds.spec} (once: it is cached)")
    clf = train_classifier(ds, device=device, seed=seed, progress=progress, **train_options)
    clf.info["key"] = key
    if use_cache and _save(path, clf, key):
        clf.info["path"] = path
    return clf


# ---- training ------------------------------------------------------------------------------------
def _shift(x: torch.Tensor, s: int, g: torch.Generator) -> torch.Tensor:
    """Random per-image translation by up to ±s pixels (edge pixels repeated)."""
    if s <= 0:
        return x
    n, _, h, w = x.shape
    xp = nn.functional.pad(x, (s, s, s, s), mode="replicate")
    oy = torch.randint(0, 2 * s + 1, (n,), generator=g).to(x.device)
    ox = torch.randint(0, 2 * s + 1, (n,), generator=g).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N,1,H,1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N,1,1,W)
    b = torch.arange(n, device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[b, c, rows, cols]


@torch.no_grad()
def _recalibrate_batchnorm(net: ClassifierNet, x_u8: torch.Tensor, device, chunk: int = 512) -> None:
    """Exact BatchNorm statistics over the (un-augmented) training images, so eval-mode
    features do not depend on how many steps the running averages had to settle."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for i in range(0, len(x_u8), chunk):
        net.features(as_images(x_u8[i:i + chunk], device))
    for m in bns:
        m.momentum = 0.1
    net.eval()


def accuracy(clf: Classifier, images, labels) -> float:
    """Share of `images` whose predicted class is `labels`."""
    return float((clf.predict(images) == np.asarray(labels)).mean()) if len(labels) else float("nan")


def train_classifier(ds: ImageDataset, device="cpu", seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
                     max_epochs: int = 12, min_steps: int = 60, max_steps: int | None = None,
                     target_acc: float = 0.98, time_limit_s: float = 600.0, max_train_images: int = 20000,
                     progress: Callable[[str], None] | None = None) -> Classifier:
    """Train on the train split (a fixed random subset of `max_train_images` of it for large
    sets); stop at the end of the first epoch (after at least `min_steps` steps) whose running
    training accuracy reaches `target_acc`, after `max_epochs` epochs (or enough epochs for
    `min_steps` on tiny sets), or at `time_limit_s` (a safety net only)."""
    from engines.device import pick_device

    device = pick_device(device) if isinstance(device, str) else device
    k = _check_labelled(ds)
    t0 = time.perf_counter()
    train_idx = np.asarray(ds.train_idx)
    if len(train_idx) > max_train_images:
        train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, max_train_images, replace=False))
    x = torch.from_numpy(np.ascontiguousarray(ds.images[train_idx])).to(device)
    y = torch.from_numpy(ds.labels[train_idx].astype(np.int64)).to(device)
    n = len(x)
    # Tiny sets: smaller batches, so that an epoch is still a few steps.
    bs = max(1, min(batch_size, max(16, n // 8), n))
    spe = max(1, n // bs)
    epochs = max(max_epochs, math.ceil(min_steps / spe))
    if max_steps is not None:
        epochs = min(epochs, max(1, math.ceil(max_steps / spe)))
    shift = max(1, round(min(ds.spec.height, ds.spec.width) / 16))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClassifierNet(ds.spec, k).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    step, train_acc, epoch = 0, 0.0, 0
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(n, generator=g).to(device)
        correct = seen = 0
        for j in range(spe):
            idx = perm[j * bs:(j + 1) * bs]
            xb = _shift(as_images(x[idx], device), shift, g)
            logits = net(xb)
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            correct += int((logits.argmax(1) == y[idx]).sum())
            seen += len(idx)
        train_acc = correct / max(seen, 1)
        if progress:
            progress(f"classifier for {ds.name} {ds.spec}: epoch {epoch}/{epochs}, train accuracy {train_acc:.3f}")
        if (step >= min_steps and train_acc >= target_acc) or time.perf_counter() - t0 > time_limit_s:
            break
    _recalibrate_batchnorm(net, x, device)
    train_s = time.perf_counter() - t0
    clf = Classifier(net, ds.spec, list(ds.label_names) or [str(i) for i in range(k)], device, {})
    if len(clf.label_names) < k:
        clf.label_names += [str(i) for i in range(len(clf.label_names), k)]
    test_acc = accuracy(clf, ds.images[ds.test_idx], ds.labels[ds.test_idx]) if len(ds.test_idx) else float("nan")
    clf.info = {"test_acc": test_acc, "train_acc": train_acc, "epochs": epoch, "steps": step,
                "train_s": round(train_s, 2), "n_train": n, "n_test": int(len(ds.test_idx)),
                "seed": seed, "from_cache": False}
    if progress:
        progress(f"classifier for {ds.name} {ds.spec}: test accuracy {test_acc:.3f} after {epoch} epochs ({train_s:.0f} s)")
    return clf
