"""Compute behind the Codebook panel, run in workers (no Qt here).

`analyse(engine, md)` quantises the Workspace's latents of the model's data set (encoded once
for every panel) to code grids and derives everything the panel shows about the codebook: usage
counts, perplexity, dead codes, each code decoded as a uniform grid of itself, each code's most
typical data patch (the occurrence whose encoder vector lies nearest to the code vector), and a
2-D map of the code vectors. The other functions answer one click or one edit and are cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.data.dataset import to_uint8

PATCH_MARGIN = 0.5  # cells added around a cell for its patch (see VQVAEEngine.cell_box)


@dataclass
class Step:
    message: str
    fraction: float | None = None


@dataclass(eq=False)
class CodebookData:
    source: str
    name: str
    total: int  # images in the data set (the analysis uses at most `max_images` of them)
    images: np.ndarray  # uint8 (N, H, W, C): the data set's images
    grids: np.ndarray  # int16/int32 (N, h, w): their code grids
    counts: np.ndarray  # int64 (K,)
    uniform: np.ndarray  # uint8 (K, H, W, C): each code decoded as a uniform grid
    typical: np.ndarray  # uint8 (K, ph, pw, C): most typical patch per code (grey for dead codes)
    typical_at: np.ndarray  # int (K, 3): (image, i, j) of that patch, −1 for dead codes
    vectors: np.ndarray  # float32 (K, D)
    coords: np.ndarray  # float32 (K, 2): PCA map of the code vectors
    prior_trained: bool

    @property
    def k(self) -> int:
        return len(self.counts)

    @property
    def dead(self) -> np.ndarray:
        return self.counts == 0

    @property
    def perplexity(self) -> float:
        p = self.counts / max(1, self.counts.sum())
        p = p[p > 0]
        return float(np.exp(-(p * np.log(p)).sum()))


def patch(engine, image: np.ndarray, i: int, j: int, margin: float = PATCH_MARGIN) -> np.ndarray:
    """The receptive-field crop around cell (i, j) of one uint8 image, edge-padded at borders."""
    top, left, bottom, right = engine.cell_box(i, j, margin)
    h, w = image.shape[:2]
    pad = max(0, -top, -left, bottom - h, right - w)
    if pad:
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return image[top + pad:bottom + pad, left + pad:right + pad]


def pca_coords(vectors: np.ndarray) -> np.ndarray:
    v = vectors - vectors.mean(0)
    if len(v) < 2 or not np.any(v):
        return np.zeros((len(v), 2), np.float32)
    _, s, vt = np.linalg.svd(v, full_matrices=False)
    c = v @ vt[:2].T
    if c.shape[1] < 2:
        c = np.concatenate([c, np.zeros((len(c), 1))], 1)
    return (c / max(float(c.std()), 1e-9)).astype(np.float32)


def umap_coords(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    import umap

    n = len(vectors)
    reducer = umap.UMAP(n_neighbors=min(15, max(2, n - 1)), min_dist=0.1, random_state=seed, init="random")
    return reducer.fit_transform(vectors).astype(np.float32)


def _quantise(engine, latents: np.ndarray):
    """Flat latents (n, D) as the engine encoded them → (code grids (n, h, w), distance of each
    cell to its code: the encoder vector's squared distance for 'vq', minus the confidence for
    'gumbel'), both numpy. The same codes as `engine.encode_indices` of the images: those are
    the nearest code (or the arg-max logit) of this very latent."""
    z = torch.as_tensor(np.asarray(latents, np.float32)).reshape(len(latents), *engine.latent_shape).to(engine.device)
    with engine.lock, torch.inference_mode():
        idx = engine._indices_of_latent(z)
        if engine.config.quantizer == "vq":  # distance of each encoder vector to its code
            e = engine.nets["quantizer"].lookup(idx).float()
            dist = ((z - e) ** 2).sum(1)
        else:  # gumbel: the most confident cells are the most typical
            dist = -torch.log_softmax(z, 1).max(1).values
    return idx.cpu().numpy(), dist.cpu().numpy()


def code_grids(engine, latents: np.ndarray, chunk: int = 256) -> np.ndarray:
    """int32 (n, h, w) code grids of a VQ engine's latents (e.g. the Workspace's `data.ls.latents`)."""
    out = np.zeros((len(latents), *engine.grid), np.int32)
    for start in range(0, len(latents), chunk):
        out[start:start + chunk] = _quantise(engine, latents[start:start + chunk])[0]
    return out


def analyse(engine, md, max_images: int = 8000, chunk: int = 256):
    """Generator yielding `Step`s; returns `CodebookData`. `md` is the Workspace's ModelData: its
    data set and the latents the engine encoded it to (once, for every panel). The code grids are
    those latents quantised — the data set is not encoded a second time."""
    ds = md.ds
    images = ds.images[:max_images]
    latents = md.ls.latents[:max_images]
    if len(latents) != len(images) or (len(latents) and latents.shape[1] != int(np.prod(engine.latent_shape))):
        raise ValueError("the data's latents do not belong to this model")
    k = engine.codebook_size
    vectors = engine.code_vectors().numpy()
    grids = np.zeros((len(images), *engine.grid), np.int32)
    best = np.full(k, np.inf)
    best_at = np.full((k, 3), -1, np.int64)
    for start in range(0, len(images), chunk):
        yield Step("quantising the data's latents to code grids", start / max(1, len(images)))
        idx, dist = _quantise(engine, latents[start:start + chunk])
        grids[start:start + len(idx)] = idx
        flat_i, flat_d = idx.reshape(-1), dist.reshape(-1)
        order = np.lexsort((flat_d, flat_i))  # by code, then distance: the first of each code is its best
        first = order[np.r_[True, flat_i[order][1:] != flat_i[order][:-1]]]
        for pos in first:
            c = flat_i[pos]
            if flat_d[pos] < best[c]:
                best[c] = flat_d[pos]
                n_, rem = divmod(int(pos), grids.shape[1] * grids.shape[2])
                best_at[c] = (start + n_, *divmod(rem, grids.shape[2]))
    counts = np.bincount(grids.reshape(-1), minlength=k).astype(np.int64)
    yield Step("decoding every code as a uniform grid", 0.9)
    uniform = np.concatenate([to_uint8(engine.decode_indices(
        torch.arange(a, min(a + 64, k))[:, None, None].expand(-1, *engine.grid))) for a in range(0, k, 64)])
    ph, pw = patch(engine, images[0], 0, 0).shape[:2]
    typical = np.full((k, ph, pw, images.shape[-1]), 128, np.uint8)
    for c in np.nonzero(best_at[:, 0] >= 0)[0]:
        n_, i, j = best_at[c]
        typical[c] = patch(engine, images[n_], i, j)
    return CodebookData(md.source, ds.name, len(ds), images, grids, counts, uniform, typical, best_at, vectors,
                        pca_coords(vectors), engine.prior_trained)


# ---- one code ---------------------------------------------------------------------------------------------
@dataclass
class CodeDetail:
    code: int
    count: int
    patches: np.ndarray  # uint8 (n, ph, pw, C)
    patch_tips: list
    occurrences: np.ndarray  # uint8 (m, H, W, C): images with the code's cells outlined
    occurrence_tips: list  # short captions
    occurrence_names: list  # tooltips


def outline(image: np.ndarray, cells, cell: tuple[int, int], colour=(255, 40, 40)) -> np.ndarray:
    """The image (upscaled to at least 64 px, so small cells keep their content) with one-pixel
    frames around the given cells."""
    s = max(1, 64 // max(image.shape[:2]))
    out = np.repeat(np.repeat(image, s, 0), s, 1)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, -1)
    ch, cw = cell[0] * s, cell[1] * s
    for i, j in cells:
        t, l, b, r = i * ch, j * cw, (i + 1) * ch - 1, (j + 1) * cw - 1
        out[t, l:r + 1] = colour
        out[b, l:r + 1] = colour
        out[t:b + 1, l] = colour
        out[t:b + 1, r] = colour
    return out


def code_detail(engine, cd: CodebookData, code: int, n_patches: int = 40, n_images: int = 6, seed: int = 0) -> CodeDetail:
    where = np.argwhere(cd.grids == code)  # (m, 3): image, i, j
    rng = np.random.default_rng(seed + code)
    pick = where if len(where) <= n_patches else where[np.sort(rng.choice(len(where), n_patches, replace=False))]
    patches = np.stack([patch(engine, cd.images[n], i, j) for n, i, j in pick]) if len(pick) else np.zeros((0, 1, 1, 3), np.uint8)
    tips = [f"image {n}, cell ({i}, {j})" for n, i, j in pick]
    per_image = np.bincount(where[:, 0], minlength=len(cd.images)) if len(where) else np.zeros(0, int)
    top = np.argsort(-per_image, kind="stable")[:n_images] if len(where) else []
    occ, occ_tips, occ_names = [], [], []
    for n in top:
        if per_image[n] == 0:
            break
        cells = where[where[:, 0] == n][:, 1:]
        occ.append(outline(cd.images[n], cells, engine.cell_size))
        occ_tips.append(f"{len(cells)} cell{'s' if len(cells) != 1 else ''}")
        occ_names.append(f"image {n} of the data set: the code in {len(cells)} of its cells")
    occ_arr = np.stack(occ) if occ else np.zeros((0, 1, 1, 3), np.uint8)
    return CodeDetail(code, int(cd.counts[code]), patches, tips, occ_arr, occ_tips, occ_names)


# ---- token editor ------------------------------------------------------------------------------------------
def decode_grid(request) -> np.ndarray:
    engine, grid = request
    return to_uint8(engine.decode_indices(torch.as_tensor(np.asarray(grid, np.int64))[None]))[0]


def encode_file(engine, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read an image file, convert it to the model's spec (resize, channels) and encode it:
    (uint8 image, code grid)."""
    from engines.latent.image_file import read_image

    img = read_image(path, engine.spec)
    return img, engine.encode_indices(img[None])[0].cpu().numpy().astype(np.int64)


def sample_grid(engine, seed: int, temperature: float) -> np.ndarray:
    return engine.sample_indices(1, seed=seed, temperature=temperature)[0].cpu().numpy().astype(np.int64)


def inpaint_grid(engine, grid: np.ndarray, mask: np.ndarray, seed: int, temperature: float) -> np.ndarray:
    out = engine.inpaint(torch.as_tensor(grid[None]), torch.as_tensor(mask[None]), seed=seed, temperature=temperature)
    return out[0].cpu().numpy().astype(np.int64)


def code_colours(coords: np.ndarray) -> np.ndarray:
    """uint8 (K, 3) colours: hue from the angle on the code map, saturation from the radius, so
    codes with similar vectors get similar colours in the token overlay."""
    import colorsys

    c = coords - coords.mean(0)
    ang = (np.arctan2(c[:, 1], c[:, 0]) / (2 * np.pi)) % 1.0
    rad = np.hypot(c[:, 0], c[:, 1])
    rad = rad / max(float(np.percentile(rad, 95)), 1e-9)
    out = np.zeros((len(c), 3), np.uint8)
    for k, (h, r) in enumerate(zip(ang, rad)):
        rgb = colorsys.hsv_to_rgb(float(h), 0.35 + 0.6 * min(1.0, float(r)), 0.95)
        out[k] = [int(255 * v) for v in rgb]
    return out
