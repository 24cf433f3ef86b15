"""The loaded model's data: its data set at the engine's image spec, encoded once through the HDF5
latent cache, plus the in-distribution reference over the training latents. Qt-free: the
Workspace runs `load_model_data` in a worker and hands the one `ModelData` to every panel."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from engines.data import training_source
from engines.latent.progress import Progress

SCATTER_LIMIT = 10_000  # points the map draws; the cache keeps all


def shown_indices(n: int, limit: int = SCATTER_LIMIT, seed: int = 0) -> np.ndarray:
    """Which points the scatter draws: all of them up to `limit`, else a fixed random sample
    (sorted), so the same data set always shows the same points."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


@dataclass(eq=False)
class ModelData:
    ds: object  # engines.data.ImageDataset at the engine's spec
    ls: object  # engines.latent.cache.LatentSet, rows aligned with ds.images
    source: str  # what load_dataset was given
    shown: np.ndarray  # indices of the points drawn on the map
    indicator: object  # engines.latent.neighbours.InDistribution over the training latents

    @property
    def model_id(self) -> str:
        return self.ls.model_id

    @property
    def dim(self) -> int:
        return self.ls.dim

    def binary(self, name: str) -> bool:
        return name in self.binary_attributes

    @property
    def binary_attributes(self) -> list[str]:
        """The 0/1 attributes (computed once: captions are made while hovering)."""
        cached = self.__dict__.get("_binary")
        if cached is None:
            cached = self.__dict__["_binary"] = [k for k, v in self.ls.attributes.items()
                                                 if np.all(np.isin(v, (0.0, 1.0)))]
        return cached

    @property
    def continuous_attributes(self) -> list[str]:
        b = set(self.binary_attributes)
        return [k for k in self.ls.attributes if k not in b]

    def label_name(self, label: int) -> str:
        names = self.ls.label_names
        return names[label] if 0 <= label < len(names) else str(label)

    def caption(self, i: int, short: bool = False) -> str:
        """'#12 · smiling woman · sunglasses, hat': what a data image is, for tooltips and
        captions (`short`: without the attributes)."""
        ls = self.ls
        parts = [f"#{i}"]
        if ls.labels is not None:
            parts.append(self.label_name(int(ls.labels[i])))
        on = [] if short else [k for k in self.binary_attributes if ls.attributes[k][i] == 1.0]
        if on:
            parts.append(", ".join(on))
        return " · ".join(parts)


def load_model_data(engine, info, source: str | None = None, dataset=None):
    """Generator: yields Progress, returns ModelData. `source` overrides the checkpoint's data;
    `dataset` hands over an ImageDataset directly (converted to the engine's spec)."""
    from engines.data import load_dataset
    from engines.latent.cache import encode_dataset
    from engines.latent.neighbours import InDistribution

    if dataset is None:
        source = source or training_source(info)
        yield Progress("data", None, f"loading {os.path.basename(source.rstrip('/')) or source}")
        dataset = load_dataset(source, spec=engine.spec)
    else:
        source = dataset.source or dataset.name
        if dataset.spec != engine.spec:
            dataset = dataset.to_spec(engine.spec)
    # Engines that encode by inversion (GAN) take seconds per chunk: smaller chunks keep the
    # progress bar moving and let a Cancel land sooner, and big data sets are mapped by a subset.
    chunk = 256
    if engine.can("invert"):
        from engines.gan.inversion import inversion_subset

        chunk, dataset = 32, inversion_subset(dataset)
    ls = yield from encode_dataset(engine, dataset, chunk=chunk)
    yield Progress("reference", None, "measuring the training latents")
    indicator = InDistribution(ls.train, engine, indices=ls.train_idx)
    return ModelData(dataset, ls, source, shown_indices(len(ls)), indicator)
