"""Running a comparison: each model is loaded in turn, sampled from the same seeds (timed),
scored with `engines.metrics.evaluate` (or its evaluation stored in the checkpoint reused), and
its encoding of the same data points projected to a 2-D map by the same method.

`run(paths, options)` is a generator in the project's worker protocol: it yields `Progress`,
and a Cancel (the worker closing it) lands at the next yield — between stages, and between
chunks while encoding; one model's evaluation runs to its end. It returns a `Comparison`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Generator

import numpy as np

from engines.compare.models import DataIdentity, check_comparable, model_name, read_infos
from engines.compare.table import Table, row
from engines.latent.progress import Progress

PROJECTIONS = ("pca", "umap")


@dataclass(frozen=True)
class Options:
    n_metrics: int = 1000  # samples the FD/precision/recall use (evaluate's default: stored evaluations match)
    seeds: int = 8  # samples shown per model: its sample(seeds, seed=seed), the same call for every model
    seed: int = 0
    timing_batch: int = 16  # ms per sample: one batch of this many, after the shown samples warmed up
    map_points: int = 500  # data points on the maps (test split first); 0: no maps
    projection: str = "pca"  # pca | umap
    reuse_stored: bool = True  # an evaluation in the checkpoint with the same sample count is reused
    device: str = "auto"


@dataclass(eq=False)
class ModelResult:
    path: str
    name: str
    engine: str
    capabilities: tuple[str, ...]
    samples: np.ndarray  # uint8 (seeds, H, W, C): the model's own sample(seeds, seed=seed)
    ms_per_sample: float
    parameters: int
    train_s: float | None
    metrics: dict  # what evaluate() reported (or the checkpoint stored)
    metrics_source: str  # "stored" | "computed"
    latents: np.ndarray | None = None  # float32 (map points, D); None when the model cannot encode
    coords: np.ndarray | None = None  # float32 (map points, 2) on the shared projection method
    note: str = ""


@dataclass(eq=False)
class Comparison:
    data: DataIdentity
    models: list[ModelResult]
    options: Options
    map_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # data indices of the map points
    images: np.ndarray | None = None  # uint8 (map points, H, W, C): the data points themselves
    labels: np.ndarray | None = None  # int64 (map points,)
    label_names: list[str] = field(default_factory=list)

    def table(self) -> Table:
        return Table.of([row(m.name, m.engine, m.capabilities, m.metrics, m.parameters, m.train_s, m.ms_per_sample)
                         for m in self.models])


def map_indices(data, n: int, seed: int = 0) -> np.ndarray:
    """The data points every model encodes for its map: the test split (then the training
    split, if n asks for more), a fixed random subset of n, in data order."""
    order = np.concatenate([np.asarray(data.test_idx, np.int64), np.asarray(data.train_idx, np.int64)])
    if not len(order):
        order = np.arange(len(data), dtype=np.int64)
    if len(order) > n:
        test = np.asarray(data.test_idx, np.int64)
        if len(test) >= n:
            order = np.random.default_rng(seed).choice(test, n, replace=False)
        else:
            rest = np.asarray(data.train_idx, np.int64)
            order = np.concatenate([test, np.random.default_rng(seed).choice(rest, n - len(test), replace=False)])
    return np.sort(order)


def parameters(engine) -> int:
    """The model's learned parameters (every network in the file: a GAN's discriminator too);
    for a closed-form model (PCA: no trained parameters) the numbers of its fitted weights."""
    return int(engine.n_parameters() or sum(t.numel() for t in engine.state_tensors().values()
                                            if t.is_floating_point()))


def stored_evaluation(info, data_name: str, n: int) -> dict | None:
    """The evaluation the checkpoint holds, when it was made on this data with n samples."""
    m = info.metrics or {}
    if "evaluated_at" in m and m.get("n_samples") == n and m.get("evaluated_on") == data_name:
        return dict(m)
    return None


def _samples(engine, options: Options):
    from engines.data.dataset import to_uint8

    imgs = to_uint8(engine.sample(options.seeds, seed=options.seed))  # also the timing's warm-up
    b = max(1, options.timing_batch)
    t0 = time.perf_counter()
    engine.sample(b, seed=options.seed + 1)
    ms = 1000 * (time.perf_counter() - t0) / b
    return imgs, ms


def _encode(engine, images: np.ndarray, say) -> Generator[Progress, None, np.ndarray]:
    chunk = 32 if "encode_approx" in engine.capabilities else 256  # inversion: many passes per image
    parts = []
    for start in range(0, len(images), chunk):
        z = engine.encode(images[start:start + chunk])
        parts.append(z.detach().to("cpu").float().reshape(len(z), -1).numpy())
        yield say(min(1.0, (start + chunk) / len(images)), f"encoding {min(len(images), start + chunk)}/{len(images)} data points")
    return np.ascontiguousarray(np.concatenate(parts).astype(np.float32))


def _project(latents: np.ndarray, method: str, say) -> Generator[Progress, None, np.ndarray]:
    from engines.latent import projection as proj

    if method == "pca":
        return proj.pca_projection(latents).coords
    gen = proj.run_umap(latents)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value.coords
        yield say(p.fraction or 0.0, f"UMAP: {p.message or p.stage}")


def run(paths: list[str], options: Options = Options(), data=None) -> Generator[Progress, None, Comparison]:
    """Compare the checkpoints at `paths` (2 to 4, trained on the same data set: CompareError
    otherwise). `data`: the data set (default: the one the checkpoints record, loaded)."""
    from engines import checkpoint as ckpt
    from engines.metrics import evaluate

    if options.seeds < 1 or options.n_metrics < 1:
        raise ValueError("a comparison needs at least one seed and one sample to score")
    if options.projection not in PROJECTIONS:
        raise ValueError(f"unknown projection '{options.projection}' (known: {', '.join(PROJECTIONS)})")
    infos = read_infos(paths)
    ident = check_comparable(infos)
    if data is None:
        from engines.data import load_dataset, training_source

        yield Progress("data", 0.0, f"loading {ident.describe()}")
        data = load_dataset(training_source(infos[0]), spec=infos[0].spec)
    data = data.to_spec(infos[0].spec)
    idx = map_indices(data, options.map_points, options.seed) if options.map_points > 0 else np.zeros(0, np.int64)
    images = data.images[idx]
    share = 0.9 / len(paths)
    results: list[ModelResult] = []
    for k, (path, info) in enumerate(zip(paths, infos)):
        name = model_name(path)

        def say(frac, msg, k=k, name=name):
            return Progress("model", k * share + share * min(max(frac, 0.0), 1.0), f"{name}: {msg}")

        yield say(0.0, "loading")
        engine = ckpt.load(path, device=options.device, with_optimizer=False).engine
        yield say(0.05, f"sampling from seed {options.seed}")
        samples, ms = _samples(engine, options)
        metrics = stored_evaluation(info, data.name, options.n_metrics) if options.reuse_stored else None
        source = "stored"
        if metrics is None:
            yield say(0.15, f"scoring {options.n_metrics} samples against the test images")
            metrics, source = evaluate(engine, data, n=options.n_metrics, seed=options.seed, reference=False), "computed"
        res = ModelResult(path, name, engine.name, tuple(sorted(engine.capabilities)), samples, ms, parameters(engine),
                          info.train_state.get("elapsed_s"), metrics, source)
        if len(idx) and "encode" in engine.capabilities:
            res.latents = yield from _encode(engine, images, lambda f, m: say(0.6 + 0.4 * f, m))
        elif len(idx):
            res.note = f"{engine.name} models cannot encode images: no map"
        results.append(res)
        del engine
    label_names = list(data.label_names)
    comp = Comparison(ident, results, options, idx, images,
                      None if data.labels is None else np.asarray(data.labels, np.int64)[idx], label_names)
    for k, res in enumerate(results):
        if res.latents is None:
            continue
        yield Progress("map", 0.9 + 0.1 * k / len(results), f"{res.name}: {options.projection.upper()} map")
        res.coords = yield from _project(res.latents, options.projection,
                                         lambda f, m, k=k: Progress("map", 0.9 + 0.1 * (k + f) / len(results), m))
    yield Progress("done", 1.0, "compared")
    return comp
