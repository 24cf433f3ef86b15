"""What the Arithmetic panel computes, as plain functions run in workers (no Qt here).

- `Condition` / `select`: which data images a filter (label, attribute value) keeps: the
  browser's filter and the two groups of a vector.
- `Recipe` / `make_vector`: an attribute vector from an attribute, a label, or two groups.
- `render_edit`, `render_strip`, `render_analogy`: decode z + Σ s·Δ, the strip s = −4…4, a − b + c.
- `base_from_file`, `base_from_sample`: a base latent from the user's image file or the prior.

The model's data (`explorer.workspace.data.ModelData`) is the Workspace's, loaded once for every
panel. The math itself lives in `engines.latent` (attributes, cache, neighbours); this module
only adapts it to the panel's requests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engines.latent import attributes as attr

if TYPE_CHECKING:  # the Workspace's data; imported for annotations only (this module stays Qt-free)
    from explorer.workspace.data import ModelData

S_MIN, S_MAX = attr.S_RANGE
STRIP_S = tuple(float(s) for s in np.linspace(S_MIN, S_MAX, 9))


# ---- filters and groups ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One test on a data image: its label is `key`, or attribute `key` compares to `value`."""

    kind: str  # "label" | "attr"
    key: object  # label index (int) or attribute name (str)
    op: str = "="  # "=", "≥", "<"
    value: float = 1.0

    def test(self, ls) -> np.ndarray:
        if self.kind == "label":
            if ls.labels is None:
                return np.zeros(len(ls), bool)
            return ls.labels == int(self.key)
        y = ls.attributes[self.key]
        if self.op == "≥":
            return y >= self.value
        if self.op == "<":
            return y < self.value
        return y == self.value

    def describe(self, md: ModelData | None = None) -> str:
        if self.kind == "label":
            return md.label_name(int(self.key)) if md is not None else f"label {self.key}"
        if self.op == "=" and self.value in (0.0, 1.0):
            return str(self.key) if self.value == 1.0 else f"no {self.key}"
        return f"{self.key} {self.op} {self.value:g}"


def select(ls, conditions, exclude=None) -> np.ndarray:
    """Indices of the images that satisfy every condition (all images when there are none)."""
    mask = np.ones(len(ls), bool)
    for c in conditions:
        mask &= c.test(ls)
    if exclude is not None and len(exclude):
        mask[np.asarray(exclude, np.int64)] = False
    return np.flatnonzero(mask)


def describe_group(conditions, md=None) -> str:
    return " & ".join(c.describe(md) for c in conditions) or "all images"


# ---- making vectors ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How to make a vector. kind: "attribute" (binary: with − without; continuous: `method`
    "median" = high − low half, "regression" = per unit), "label" (`label` − `versus`, −1 = all
    the others), "groups" (mean of `group_a` − mean of `group_b`; an empty `group_b` means every
    image not in A), "indices" (explicit `idx_a`, `idx_b`: groups picked on a map)."""

    kind: str
    name: str = ""
    attribute: str = ""
    method: str = "auto"
    label: int = -1
    versus: int = -1
    group_a: tuple = ()
    group_b: tuple = ()
    idx_a: tuple = field(default=(), compare=False)
    idx_b: tuple = field(default=(), compare=False)
    source: str = ""  # for "indices": where the groups came from ("map selection")


def make_vector(md: ModelData, r: Recipe) -> attr.AttributeVector:
    ls = md.ls
    common = {"split": ls.is_train(), "model_id": ls.model_id, "latent_shape": ls.latent_shape}
    if r.kind == "attribute":
        v = attr.from_attribute(ls, r.attribute, r.method)
        if v.method == "binary":
            v.meta["source"] = f"attribute: with {r.attribute} − without"
        elif v.method == "median":
            v.meta["source"] = f"attribute: {r.attribute} upper − lower half"
        else:
            v.meta["source"] = f"attribute: {r.attribute} regression slope (per unit)"
    elif r.kind == "label":
        if ls.labels is None:
            raise ValueError("this data set has no labels")
        if r.versus < 0:
            v = attr.from_label(ls, int(r.label))
            v.meta["source"] = f"label: {md.label_name(r.label)} − all others"
        else:
            a, b = np.flatnonzero(ls.labels == r.label), np.flatnonzero(ls.labels == r.versus)
            _need_two(a, b)
            name = f"{md.label_name(r.label)} − {md.label_name(r.versus)}"
            v = attr.from_groups(ls.latents, a, b, name, "label",
                                 meta={"label": int(r.label), "versus": int(r.versus),
                                       "source": f"labels: {name}"}, **common)
    elif r.kind == "groups":
        a = select(ls, r.group_a)
        b = select(ls, r.group_b, exclude=a) if r.group_b else np.setdiff1d(np.arange(len(ls)), a)
        _need_two(a, b)
        da, db = describe_group(r.group_a, md), describe_group(r.group_b, md) if r.group_b else "the rest"
        v = attr.from_groups(ls.latents, a, b, f"{da} − {db}", "groups",
                             meta={"source": f"groups: [{da}] − [{db}]"}, **common)
    elif r.kind == "indices":
        v = vector_from_indices(ls.latents, r.idx_a, r.idx_b, r.name or "A − B", source=r.source or "picked",
                                **common)
    else:
        raise ValueError(f"unknown vector recipe '{r.kind}'")
    if r.name:
        v.name = r.name
    return v


def _need_two(a, b) -> None:
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each group needs at least two images (A has {len(a)}, B has {len(b)})")


def vector_from_indices(latents, idx_a, idx_b, name, model_id, latent_shape, split=None, source="map selection"):
    """A vector from two explicit groups of data indices (the Manifold panel's selections)."""
    a = np.unique(np.asarray(idx_a, np.int64))
    b = np.setdiff1d(np.unique(np.asarray(idx_b, np.int64)), a)
    _need_two(a, b)
    return attr.from_groups(latents, a, b, name, "groups", split=split, model_id=model_id, latent_shape=latent_shape,
                            meta={"source": f"groups: {source} ({len(a)} − {len(b)} images)"})


# ---- base latents --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Base:
    """The image being edited: its latent and, when it has one, the image it was encoded from."""

    z: np.ndarray  # float32 (D,)
    image: np.ndarray | None  # uint8 (H, W, C): the data image or the user's file at the model's spec
    kind: str  # "data" | "sample" | "file"
    caption: str
    index: int | None = None  # data index for kind "data"


def base_from_file(engine, path: str) -> Base:
    """Read an image file, convert it to the model's spec (resize, channels), encode it."""
    from engines.latent.image_file import encode_image_file

    z, img = encode_image_file(engine, path)
    return Base(z, img, "file", f"{os.path.basename(path)} (encoded)")


def base_from_sample(engine, seed: int) -> Base:
    import torch

    g = torch.Generator(device=engine.device)
    g.manual_seed(int(seed))
    with engine.lock:
        z = engine.prior_sample(1, g)
    return Base(z.detach().to("cpu").float().reshape(-1).numpy().astype(np.float32), None, "sample",
                f"sample, seed {seed}")


def make_base(request) -> Base:
    """("sample", engine, seed) or ("file", engine, path): the LatestRequestRunner's job."""
    kind, engine, arg = request
    return base_from_sample(engine, arg) if kind == "sample" else base_from_file(engine, arg)


# ---- decoding --------------------------------------------------------------------------------------------------
def _decode(engine, zs: np.ndarray, psi: float = 1.0) -> np.ndarray:
    """Decoded latents; ψ < 1 applies the engine's truncation trick (GAN) after the edit."""
    from engines.data.dataset import to_uint8

    zs = np.asarray(zs, np.float32)
    if psi != 1.0 and "truncate" in engine.capabilities:
        zs = np.asarray(engine.truncate(zs, psi), np.float32)
    return to_uint8(engine.decode(zs))


@dataclass(frozen=True, eq=False)
class EditRequest:
    engine: object
    z: np.ndarray
    edits: tuple  # ((AttributeVector, s), …)
    psi: float = 1.0  # truncation ψ (engines with `truncate`)


def render_edit(req: EditRequest) -> np.ndarray:
    """The decoded z + Σ s·Δ, uint8 (H, W, C)."""
    return _decode(req.engine, attr.apply(req.z, req.edits)[None], req.psi)[0]


@dataclass(frozen=True, eq=False)
class StripRequest:
    engine: object
    z: np.ndarray
    vector: object  # AttributeVector
    others: tuple  # the other active edits, held fixed
    psi: float = 1.0


def render_strip(req: StripRequest) -> np.ndarray:
    """Decoded z + s·Δ (+ the other edits) for s = −4 … 4: uint8 (9, H, W, C)."""
    return _decode(req.engine, attr.strip(req.z, req.vector, STRIP_S, req.others), req.psi)


@dataclass(frozen=True, eq=False)
class AnalogyRequest:
    engine: object
    md: ModelData
    picks: tuple  # three data indices (a, b, c)
    k: int = 5


def render_analogy(req: AnalogyRequest) -> attr.AnalogyResult:
    z = req.md.ls.latents
    a, b, c = (z[i] for i in req.picks)
    return attr.analogy_result(a, b, c, z, req.engine, k=req.k)


def example_picks(md: ModelData, a_label: int, b_label: int, c_label: int, seed: int = 0) -> tuple[int, int, int]:
    """A random `a_label` image, the `b_label` image nearest to it in latent space, a random
    `c_label` image (`attributes.matched_analogy`)."""
    ls = md.ls
    if ls.labels is None:
        raise ValueError("this data set has no labels")
    for lab in (a_label, b_label, c_label):
        if not np.any(ls.labels == lab):
            raise ValueError(f"no image is labelled {md.label_name(lab)}")
    return attr.matched_analogy(ls.latents, *(np.flatnonzero(ls.labels == lab) for lab in (a_label, b_label, c_label)),
                                seed=seed)
