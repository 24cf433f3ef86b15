"""Latent arithmetic: attribute vectors, how much to trust them, z + s·Δ, and analogies.

An attribute vector is the difference of group means, Δ = mean(z | A) − mean(z | B): with the
attribute vs without it, one label vs the rest, the upper vs lower half of a continuous
attribute, or two groups picked on the map. For a continuous attribute the regression slope
Cov(z, y)/Var(y) — the shift of E[z | y] per unit of y — is the alternative (for a 0/1 attribute
it equals the mean difference).

A mean difference always exists, even between random groups, so every vector comes with its
`Quality`:

- effect size: Cohen's d of the two groups' projections onto Δ̂ (pooled-std units);
- cosine agreement: the mean cosine between Δ and the differences of random (a, b) pairs across
  the groups — do individual pairs point the same way, or only the average? — next to the same
  statistic for shuffled group labels (what chance produces, including the small positive bias of
  the mean of the pairs) and for random directions (≈ 0);
- held-out accuracy: Δ and a threshold (the midpoint of the group means along Δ̂) from one split,
  balanced accuracy of the side of the threshold on the other split.

Vectors save as JSON with the model's identity (`cache.model_id`); loading onto another model is
refused unless forced, because the same numbers mean something else in another latent space.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from engines import atomic

FORMAT = "latent-explorer-vectors"
FORMAT_VERSION = 1
S_RANGE = (-4.0, 4.0)


class VectorMismatch(ValueError):
    """A saved vector belongs to another model (or latent shape); the message says which."""


@dataclass(frozen=True)
class Quality:
    n_a: int
    n_b: int
    effect_size: float  # Cohen's d along Δ̂
    cosine: float  # mean cos(Δ, z_a − z_b) over random cross-group pairs
    cosine_shuffled: float  # the same for shuffled group labels (mean over shuffles)
    cosine_shuffled_std: float
    cosine_random: float  # mean cos of the pair differences with random directions (≈ 0)
    heldout_accuracy: float | None  # balanced accuracy of the Δ̂ threshold on held-out members

    @property
    def z_score(self) -> float:
        """How many shuffle standard deviations the agreement lies above chance."""
        return (self.cosine - self.cosine_shuffled) / max(self.cosine_shuffled_std, 1e-12)

    @property
    def verdict(self) -> str:
        """A one-word reading for the panel: 'strong', 'weak' or 'not distinguishable from chance'."""
        if self.z_score < 3 or self.effect_size < 0.2:
            return "not distinguishable from chance"
        acc = 1.0 if self.heldout_accuracy is None else self.heldout_accuracy
        return "strong" if self.effect_size >= 0.8 and acc >= 0.75 else "weak"


@dataclass(eq=False)
class AttributeVector:
    name: str
    vector: np.ndarray  # float32 (D,)
    method: str  # "binary", "label", "median", "regression", "groups", …
    model_id: str = ""
    latent_shape: tuple[int, ...] = ()
    created: float = field(default_factory=time.time)
    meta: dict = field(default_factory=dict)  # how it was made: attribute, label, group sizes…
    quality: Quality | None = None

    def __post_init__(self):
        self.vector = np.asarray(self.vector, dtype=np.float32).reshape(-1)
        self.latent_shape = tuple(int(s) for s in self.latent_shape) or (len(self.vector),)

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    def to_dict(self) -> dict:
        return {"name": self.name, "method": self.method, "model_id": self.model_id,
                "latent_shape": list(self.latent_shape), "created": self.created, "meta": self.meta,
                "quality": None if self.quality is None else asdict(self.quality),
                "vector": [float(x) for x in self.vector]}

    @classmethod
    def from_dict(cls, d: dict) -> "AttributeVector":
        q = d.get("quality")
        return cls(str(d["name"]), np.asarray(d["vector"], np.float32), str(d.get("method", "")), str(d.get("model_id", "")),
                   tuple(d.get("latent_shape", ())), float(d.get("created", 0.0)), dict(d.get("meta", {})),
                   None if q is None else Quality(**q))


# ---- making vectors ----------------------------------------------------------------------------------------
def _flat(latents) -> np.ndarray:
    z = np.asarray(latents, dtype=np.float64)
    return z.reshape(len(z), -1)


def mean_difference(latents, idx_a, idx_b) -> np.ndarray:
    z = _flat(latents)
    a, b = np.asarray(idx_a), np.asarray(idx_b)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both groups need at least one member")
    return z[a].mean(0) - z[b].mean(0)


def from_groups(latents, idx_a, idx_b, name: str = "A − B", method: str = "groups", split=None,
                model_id: str = "", latent_shape=(), meta: dict | None = None, quality: bool = True,
                seed: int = 0) -> AttributeVector:
    """Δ = mean(z[idx_a]) − mean(z[idx_b]), e.g. two groups selected on the map. `split`: a boolean
    mask (N,) of training latents for the held-out check (default: a random 70/30 split)."""
    a, b = np.unique(np.asarray(idx_a, np.int64)), np.unique(np.asarray(idx_b, np.int64))
    delta = mean_difference(latents, a, b)
    q = vector_quality(latents, a, b, split=split, seed=seed) if quality else None
    return AttributeVector(name, delta, method, model_id, tuple(latent_shape),
                           meta={"n_a": int(len(a)), "n_b": int(len(b)), **(meta or {})}, quality=q)


def _common(ls) -> dict:
    return {"split": ls.is_train(), "model_id": ls.model_id, "latent_shape": ls.latent_shape}


def from_attribute(ls, attribute: str, method: str = "auto", quality: bool = True, seed: int = 0) -> AttributeVector:
    """From a `cache.LatentSet` attribute. Binary (0/1) attributes: with − without. Continuous:
    method "median" (upper − lower half) or "regression" (Cov(z, y)/Var(y), per unit of y)."""
    y = np.asarray(ls.attributes[attribute], dtype=np.float64)
    binary = np.all(np.isin(y, (0.0, 1.0)))
    if method == "auto":
        method = "binary" if binary else "median"
    if method == "binary":
        if not binary:
            raise ValueError(f"'{attribute}' is not a 0/1 attribute; use method 'median' or 'regression'")
        a, b = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        return from_groups(ls.latents, a, b, attribute, "binary", meta={"attribute": attribute},
                           quality=quality, seed=seed, **_common(ls))
    med = float(np.median(y))
    a, b = np.flatnonzero(y > med), np.flatnonzero(y <= med)
    if method == "median":
        return from_groups(ls.latents, a, b, f"{attribute} (high − low)", "median",
                           meta={"attribute": attribute, "threshold": med}, quality=quality, seed=seed, **_common(ls))
    if method == "regression":
        delta = regression_direction(ls.latents, y)
        q = vector_quality(ls.latents, a, b, split=ls.is_train(), seed=seed, delta=delta) if quality else None
        return AttributeVector(f"{attribute} (per unit)", delta, "regression", ls.model_id, ls.latent_shape,
                               meta={"attribute": attribute, "n_a": int(len(a)), "n_b": int(len(b))}, quality=q)
    raise ValueError(f"unknown method '{method}' (auto, binary, median, regression)")


def from_label(ls, label: int | str, quality: bool = True, seed: int = 0) -> AttributeVector:
    """One label vs the rest."""
    if ls.labels is None:
        raise ValueError("the data set has no labels")
    if isinstance(label, str):
        label = ls.label_names.index(label)
    name = ls.label_names[label] if label < len(ls.label_names) else str(label)
    a, b = np.flatnonzero(ls.labels == label), np.flatnonzero(ls.labels != label)
    return from_groups(ls.latents, a, b, f"{name} (vs rest)", "label", meta={"label": int(label)},
                       quality=quality, seed=seed, **_common(ls))


def regression_direction(latents, y) -> np.ndarray:
    """Cov(z, y)/Var(y): how E[z | y] moves per unit of y (the mean difference for 0/1 y)."""
    z = _flat(latents)
    y = np.asarray(y, dtype=np.float64)
    yc = y - y.mean()
    var = float((yc ** 2).mean())
    if var <= 0:
        raise ValueError("the attribute is constant")
    return ((z - z.mean(0)) * yc[:, None]).mean(0) / var


# ---- quality ------------------------------------------------------------------------------------------------
def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-300)


def _pair_cosine(z, a, b, direction, pairs):
    i = a[pairs[0] % len(a)]
    j = b[pairs[1] % len(b)]
    diffs = z[i] - z[j]
    return float((_unit(diffs) @ _unit(direction)).mean())


def vector_quality(latents, idx_a, idx_b, split=None, n_pairs: int = 2000, n_shuffles: int = 20,
                   seed: int = 0, delta=None) -> Quality:
    """The statistics described in the module docstring. `split`: boolean mask (N,) of the
    training latents, the rest held out; None draws a random 70/30 split of the group members.
    `delta` defaults to the mean difference of the groups."""
    z = _flat(latents)
    a, b = np.asarray(idx_a, np.int64), np.asarray(idx_b, np.int64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each group needs at least two members to judge a vector")
    rng = np.random.default_rng(seed)
    delta = mean_difference(z, a, b) if delta is None else np.asarray(delta, np.float64).reshape(-1)
    u = _unit(delta)
    pa, pb = z[a] @ u, z[b] @ u
    pooled = np.sqrt(((len(pa) - 1) * pa.var(ddof=1) + (len(pb) - 1) * pb.var(ddof=1)) / max(len(pa) + len(pb) - 2, 1))
    effect = float((pa.mean() - pb.mean()) / max(pooled, 1e-12))

    pairs = rng.integers(0, 1 << 62, size=(2, n_pairs))
    cos = _pair_cosine(z, a, b, delta, pairs)
    both = np.concatenate([a, b])
    shuffled = []
    for _ in range(n_shuffles):
        perm = rng.permutation(both)
        sa, sb = perm[:len(a)], perm[len(a):]
        shuffled.append(_pair_cosine(z, sa, sb, mean_difference(z, sa, sb), pairs))
    randoms = rng.normal(size=(8, z.shape[1]))
    cos_random = float(np.mean([_pair_cosine(z, a, b, r, pairs) for r in randoms]))

    if split is None:
        split = np.zeros(len(z), bool)
        split[rng.permutation(both)[: int(0.7 * len(both))]] = True
    split = np.asarray(split, bool)
    acc = _heldout_accuracy(z, a, b, split)
    return Quality(int(len(a)), int(len(b)), effect, cos, float(np.mean(shuffled)), float(np.std(shuffled)),
                   cos_random, acc)


def _heldout_accuracy(z, a, b, train) -> float | None:
    ta, tb = a[train[a]], b[train[b]]
    ha, hb = a[~train[a]], b[~train[b]]
    if min(len(ta), len(tb), len(ha), len(hb)) < 1:
        return None
    u = _unit(z[ta].mean(0) - z[tb].mean(0))
    threshold = 0.5 * (z[ta].mean(0) + z[tb].mean(0)) @ u
    acc_a = float(((z[ha] @ u) > threshold).mean())
    acc_b = float(((z[hb] @ u) <= threshold).mean())
    return 0.5 * (acc_a + acc_b)


# ---- using vectors -----------------------------------------------------------------------------------------
def _vec(v) -> np.ndarray:
    return (v.vector if isinstance(v, AttributeVector) else np.asarray(v)).astype(np.float64).reshape(-1)


def apply(z, edits) -> np.ndarray:
    """z + Σ s·Δ for `edits` = [(Δ, s), …] (Δ an AttributeVector or an array). z: (D,) or (N, D)."""
    out = np.array(z, dtype=np.float64)
    for v, s in edits:
        d = _vec(v)
        if out.shape[-1] != len(d):
            raise ValueError(f"vector of length {len(d)} does not fit latents of length {out.shape[-1]}")
        out = out + float(s) * d
    return out


def strip(z, vector, s_values=None, others=()) -> np.ndarray:
    """Latents z + s·Δ for each s (default −4, −3, …, 4), with fixed `others` [(Δ, s), …] applied
    too: (S, D)."""
    s_values = np.linspace(*S_RANGE, 9) if s_values is None else np.asarray(s_values, dtype=np.float64)
    base = apply(np.asarray(z, np.float64).reshape(-1), others)
    return base[None, :] + s_values[:, None] * _vec(vector)[None, :]


def analogy(a, b, c) -> np.ndarray:
    """a − b + c: "a is to b as ? is to c" — take from a what makes it b-like, add c's instead."""
    a, b, c = (np.asarray(x, np.float64) for x in (a, b, c))
    if not (a.shape == b.shape == c.shape):
        raise ValueError("the three latents must have the same shape")
    return a - b + c


@dataclass(frozen=True, eq=False)
class AnalogyResult:
    latent: np.ndarray  # (D,)
    image: np.ndarray | None  # uint8 (H, W, C) when an engine was given
    neighbours: np.ndarray  # indices of the nearest data latents
    distances: np.ndarray


def analogy_result(a, b, c, latents, engine=None, k: int = 5) -> AnalogyResult:
    """a − b + c, decoded (when `engine` is given) and with its k nearest data latents."""
    from engines.latent.neighbours import nearest

    z = analogy(a, b, c).reshape(-1)
    nn = nearest(latents, z[None, :], k=k)
    image = None
    if engine is not None:
        from engines.data.dataset import to_uint8

        image = to_uint8(engine.decode(z[None, :].astype(np.float32)))[0]
    return AnalogyResult(z, image, nn.indices[0], nn.distances[0])


def matched_analogy(latents, group_a, group_b, group_c, seed: int = 0) -> tuple[int, int, int]:
    """Indices (a, b, c) for a − b + c across three groups (e.g. smiling woman, neutral woman,
    neutral man): a random member of A, the member of B nearest to a in latent space — so a − b
    is mostly what separates the groups, not two different faces — and a random member of C."""
    from engines.latent.neighbours import nearest

    pools = [np.asarray(g, np.int64).ravel() for g in (group_a, group_b, group_c)]
    if any(len(p) == 0 for p in pools):
        raise ValueError("each of the three groups needs at least one member")
    z = _flat(latents)
    rng = np.random.default_rng(seed)
    a = int(rng.choice(pools[0]))
    b = int(pools[1][nearest(z[pools[1]], z[a], k=1).indices[0, 0]])
    c = int(rng.choice(pools[2]))
    return a, b, c


# ---- saving and loading ----------------------------------------------------------------------------------
def save_vectors(path: str, vectors: list[AttributeVector] | AttributeVector) -> str:
    """Write vectors as JSON (atomically)."""
    if isinstance(vectors, AttributeVector):
        vectors = [vectors]
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "vectors": [v.to_dict() for v in vectors]}
    atomic.write_json(path, doc)
    return path


def load_vectors(path: str, model_id: str | None, latent_shape=None, force: bool = False) -> list[AttributeVector]:
    """Read vectors saved by `save_vectors`, refusing (VectorMismatch) any made on a model other
    than `model_id` unless `force`. A vector whose length does not fit `latent_shape` is refused
    even when forced: it cannot be applied at all."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read attribute vectors ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a Latent Explorer vector file")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: written by a newer Latent Explorer (format {doc.get('format_version')})")
    try:
        vectors = [AttributeVector.from_dict(d) for d in doc.get("vectors", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: damaged vector entry ({e})") from None
    for v in vectors:
        if latent_shape is not None and int(np.prod(latent_shape)) != len(v.vector):
            raise VectorMismatch(f"{path}: vector '{v.name}' has {len(v.vector)} dimensions, "
                                 f"this model's latents have {int(np.prod(latent_shape))}")
        if model_id is not None and v.model_id != model_id and not force:
            raise VectorMismatch(f"{path}: vector '{v.name}' was made with model {v.model_id or '(unknown)'}, "
                                 f"not the current model {model_id}; its directions mean something else here "
                                 "(load with force=True to apply it anyway)")
    return vectors
