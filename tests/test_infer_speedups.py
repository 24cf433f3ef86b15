"""The equivalences the inference speed-ups of issue #22 rest on: the PCA fit's randomized path
gives scikit-learn's full-SVD basis, the decode wrapper's fast path gives the old path's output,
and the export's writer thread and faster encoders give the same frames as before."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import engines
from engines import checkpoint as ckpt
from engines.autoencoders.pca import top_components
from engines import base
from engines.base import INFER_CHUNK
from engines.spec import ImageSpec

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models")


def _aligned_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest entry of got − ref after flipping each row of `got` to ref's sign."""
    s = np.sign((got * ref).sum(1, keepdims=True))
    return float(np.abs(got * s - ref).max())


def _spectrum_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Data with a decaying spectrum (like images): the hard case for a randomized SVD is a slow decay."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = 1.0 / (1.0 + np.arange(d)) ** 0.7
    return (rng.standard_normal((n, d)) * scales) @ basis.T + 0.5


@pytest.mark.parametrize("n,d,k", [(1200, 784, 16), (400, 900, 16), (300, 64, 8), (700, 600, 24)])
def test_pca_basis_matches_scikit_learn_full_svd(n, d, k):
    x = _spectrum_data(n, d).astype(np.float32)
    ref = PCA(k, svd_solver="full").fit(x)
    side = int(np.sqrt(d))
    spec = ImageSpec(1, side, d // side)
    e = engines.create("pca", spec, device="cpu", n_components=k)
    out = e.fit(torch.from_numpy(x).view(n, *spec.shape))
    comps = e.basis.components.numpy()
    assert _aligned_error(comps, ref.components_) < 1e-4
    assert np.allclose(e.basis.variance.numpy(), ref.explained_variance_, rtol=1e-4)
    assert np.allclose(e.basis.mean.numpy(), ref.mean_, atol=1e-6)
    assert out["explained_variance"] == pytest.approx(float(ref.explained_variance_ratio_.sum()), rel=1e-4)
    if n > d:  # scikit-learn spreads the rest over min(n, d) − k directions, ours over d − k
        assert e.basis.noise_variance.item() == pytest.approx(ref.noise_variance_, rel=1e-3)
    # Sign convention: each component's largest entry (in magnitude) is positive.
    assert (comps[np.arange(k), np.abs(comps).argmax(1)] > 0).all()
    assert np.abs(comps @ comps.T - np.eye(k)).max() < 1e-5


@pytest.mark.parametrize("rank", [5, 16, 17, 30, 100])
def test_pca_randomized_path_on_low_rank_data(rank):
    """Data whose rank is below the Krylov space (120 directions for k = 16) or even below k: the
    later blocks are rounding noise; the basis must still be the full SVD's, orthonormal."""
    rng = np.random.default_rng(rank)
    x = ((rng.standard_normal((600, rank)) * 0.97 ** np.arange(rank)) @ rng.standard_normal((rank, 500)))
    xc = x.astype(np.float32)
    xc -= xc.mean(0)
    _, s_ref, vh_ref = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    vh, s = top_components(torch.from_numpy(xc), 16, 256, seed=0)
    top = min(16, rank - 1)  # centring removes one direction
    assert _aligned_error(vh[:top].numpy(), vh_ref[:top]) < 1e-4
    assert np.allclose(s[:top].numpy(), s_ref[:top], rtol=1e-4)
    assert (vh @ vh.T - torch.eye(16)).abs().max() < 1e-5


def test_pca_path_is_chosen_by_shape(monkeypatch):
    from engines.autoencoders import pca

    calls = []
    krylov = pca._block_krylov
    monkeypatch.setattr(pca, "_block_krylov", lambda *a, **kw: calls.append("randomized") or krylov(*a, **kw))
    xc = torch.from_numpy(_spectrum_data(600, 500).astype(np.float32))
    xc -= xc.mean(0)
    top_components(xc, 16, 256, seed=0)  # 2k + 16 = 48: under a quarter of the smaller side
    top_components(xc, 150, 256, seed=0)  # 316 > 500 / 4: a full SVD is no slower
    top_components(xc[:200], 16, 256, seed=0)  # 200 ≤ exact_limit
    assert calls == ["randomized"]
    # Seeded: the same data and seed give the same basis, bit for bit.
    a, _ = top_components(xc, 16, 256, seed=3)
    b, _ = top_components(xc, 16, 256, seed=3)
    assert torch.equal(a, b)


def test_bundled_pca_loads_and_a_refit_gives_its_basis():
    path = os.path.join(MODELS, "pca-digits-28.safetensors")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing (assets/build_models.py pca-digits-28)")
    from engines.data import load_dataset, to_float

    bundled = ckpt.load(path, device="cpu", with_optimizer=False).engine
    b = bundled.basis
    z = torch.randn(5, bundled.latent_dim, generator=torch.Generator().manual_seed(0))
    # Decoding is the formula, as when the file was written (the fit changed, not the model).
    expected = (z @ b.components + b.mean).view(5, *bundled.spec.shape).clamp(0, 1)
    assert torch.equal(bundled.decode(z), expected)
    # Refitting on the same images with the new (randomized) path gives the bundled exact basis.
    ds = load_dataset("digits", spec=bundled.spec)
    fresh = engines.create("pca", bundled.spec, device="cpu", n_components=bundled.config.n_components)
    fresh.fit(to_float(ds.images[ds.train_idx]))
    if not torch.allclose(fresh.basis.mean, b.mean, atol=1e-6):
        pytest.fail("the bundled PCA was fitted on other images than the digits training split")
    assert _aligned_error(fresh.basis.components.numpy(), b.components.numpy()) < 1e-4
    assert torch.allclose(fresh.basis.variance, b.variance, rtol=1e-4)


# ---- decode wrapper -----------------------------------------------------------------------------------
def _old_decode(engine, z):
    """The wrapper before issue #22, kept as the reference: `nn.Module.train` walks, a split and a
    lambda on every call, and the nets' mode restored as a whole."""
    z = torch.as_tensor(z, dtype=torch.float32).to(engine.device)
    if z.shape[1:] != engine.latent_shape:
        z = z.reshape(len(z), *engine.latent_shape)
    with engine.lock, torch.inference_mode():
        was = engine.nets.training
        engine.nets.eval()
        try:
            fn = lambda c: engine._decode(c).clamp_(0, 1)  # noqa: E731
            outs = [fn(c) for c in z.split(INFER_CHUNK)] if len(z) else [fn(z)]
        finally:
            engine.nets.train(was)
    return torch.cat(outs) if len(outs) > 1 else outs[0]


@pytest.mark.parametrize("name,config", [("vae", {}), ("vae", {"likelihood": "gaussian"}), ("ae", {}), ("gan", {}),
                                         ("pca", {})])
def test_decode_is_identical_to_the_old_wrapper(name, config):
    """Bit-identical to the old wrapper, which clamped every decode (sigmoid decoders now skip it)."""
    spec = ImageSpec(1, 16, 16)
    e = engines.create(name, spec, device="cpu", seed=1, **config)
    if name == "pca":
        e.fit(torch.rand(64, 1, 16, 16))
    else:
        e.train_step(torch.rand(8, 1, 16, 16))  # weights moved off their initial values, nets in training mode
    g = torch.Generator().manual_seed(0)
    for n in (1, 3, INFER_CHUNK + 5, 0):
        z = torch.randn(n, e.latent_dim, generator=g)
        assert torch.equal(e.decode(z), _old_decode(e, z)), n
        assert torch.equal(e.decode(z.numpy()), _old_decode(e, z)), n


def test_inference_restores_each_modules_own_mode():
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    e.nets.train()
    e.nets["decoder"].eval()  # e.g. a part frozen by its owner
    seen = []
    with e.inference():
        seen = [m.training for m in e.nets.modules()]
    assert not any(seen)
    assert e.nets.training and e.nets["encoder"].training
    assert not any(m.training for m in e.nets["decoder"].modules())


def test_inference_calls_an_overridden_train():
    class Mode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def train(self, mode=True):
            self.calls.append(mode)
            return super().train(mode)

    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    e.nets["extra"] = Mode()
    e.nets.train()
    e.nets["extra"].calls.clear()
    with contextlib.ExitStack() as stack:
        stack.enter_context(e.inference())
        assert not e.nets["extra"].training
    assert e.nets["extra"].calls == [False, True] and e.nets["extra"].training


@pytest.mark.parametrize("name", ["ae", "vae", "gan"])
def test_in_place_silu_trains_exactly_like_the_plain_one(name):
    """The conv nets' SiLU runs in place: the same losses and the same weights after two steps as
    with out-of-place SiLU (a module whose backward needed its output would fail or differ)."""
    spec = ImageSpec(1, 16, 16)
    ours = engines.create(name, spec, device="cpu", seed=3)
    plain = engines.create(name, spec, device="cpu", seed=3)
    silus = [m for m in plain.nets.modules() if isinstance(m, torch.nn.SiLU)]
    assert silus and all(m.inplace for m in silus)
    for m in silus:
        m.inplace = False
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        assert ours.train_step(x) == plain.train_step(x)
    for (k, a), b in zip(ours.nets.state_dict().items(), plain.nets.state_dict().values()):
        assert torch.equal(a, b), k


def test_nets_rest_in_eval_mode_so_a_decode_switches_nothing(tiny_dataset):
    """Built, loaded, trained or cancelled: the nets rest in eval mode, so the decode of a drag finds
    no module to switch (issue #22); a train step still trains in training mode."""
    from engines.train import TrainControl, TrainOptions, run_to_end, train

    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    assert not any(m.training for m in e.nets.modules())
    seen = []
    orig = e._loss
    e._loss = lambda batch: (seen.append(all(m.training for m in e.nets.modules())), orig(batch))[1]
    e.train_step(torch.rand(8, 1, 16, 16))
    assert seen == [True]
    data = tiny_dataset(n=96, size=16, channels=1)
    run_to_end(train(e, data, TrainOptions(epochs=1, eval_images=8)))
    assert seen[-1] and not any(m.training for m in e.nets.modules())
    control = TrainControl()
    for p in train(e, data, TrainOptions(epochs=5, eval_images=8), control):
        control.cancel()  # cancelled mid-way: back to rest all the same
    assert not any(m.training for m in e.nets.modules())
    switched = []
    import engines.base as base
    real = base._set_eval
    try:
        base._set_eval = lambda mods: switched.append(real(mods)) or switched[-1]
        e.decode(torch.zeros(1, 4))
    finally:
        base._set_eval = real
    assert switched == []  # a VAE has no flag-reading module: _set_eval is not even called


# ---- export encoders ------------------------------------------------------------------------------------
def _walk_frames(channels: int, n: int = 6, size: int = 48) -> np.ndarray:
    """Upscaled smooth images (like an exported latent walk) with a held frame in the middle."""
    rng = np.random.default_rng(channels)
    small = np.cumsum(rng.normal(size=(n, size // 4, size // 4, channels)), 1) * 12 + 128
    f = np.repeat(np.repeat(np.clip(small, 0, 255).astype(np.uint8), 4, 1), 4, 2)
    f[3] = f[2]  # a held frame
    return f


def _old_gif(frames: np.ndarray, path: str, delay_ms: int) -> None:
    """The GIF writer before issue #22: every frame quantized, then Pillow's save_all."""
    from PIL import Image

    ims = [Image.fromarray(f[..., 0], "L") if f.shape[-1] == 1 else
           Image.fromarray(f, "RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
           for f in frames]
    ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=delay_ms, disposal=1,
                optimize=False, loop=0)


def _decoded_gif(path: str) -> tuple[list[np.ndarray], list[int], int]:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        im.seek(0)
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        return frames, durations, im.info.get("loop")


@pytest.mark.parametrize("channels", [3, 1])
def test_gif_frames_equal_the_old_writer_pixel_for_pixel(tmp_path, channels):
    from engines.export.writers import GifWriter

    frames = _walk_frames(channels)
    w = GifWriter(str(tmp_path / "new.gif"), fps=24)
    with w:
        w.append(frames[:4])
        w.append(frames[4:])
        w.commit()
    _old_gif(frames, str(tmp_path / "old.gif"), w.delay_ms)
    new, new_d, new_loop = _decoded_gif(str(tmp_path / "new.gif"))
    old, old_d, old_loop = _decoded_gif(str(tmp_path / "old.gif"))
    assert len(new) == len(old) == len(frames) - 1  # the held frame is stored once ...
    assert new_d == old_d and new_d[2] == 2 * w.delay_ms  # ... and shown twice as long
    assert new_loop == old_loop == 0
    for a, b in zip(new, old):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("channels", [3, 1])
def test_png_sequence_decodes_to_the_frames(tmp_path, channels):
    from PIL import Image

    from engines.export.encode import encode_png
    from engines.export.writers import PngWriter

    frames = _walk_frames(channels, n=5)
    w = PngWriter(str(tmp_path / "seq.png"), fps=24, sequence=True)
    with w:
        w.append(frames[:2])
        w.append(frames[2:])
        folder = w.commit()
    names = sorted(os.listdir(folder))
    assert names == [f"frame_{i:05d}.png" for i in range(5)]
    for name, f in zip(names, frames):
        with Image.open(os.path.join(folder, name)) as im:
            assert im.mode == ("L" if channels == 1 else "RGB")
            assert np.array_equal(np.asarray(im).reshape(f.shape), f)
    # Rows that differ, odd sizes, all byte values: the "Up" filter's wrap-around decodes exactly.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    import io

    with Image.open(io.BytesIO(encode_png(noise))) as im:
        assert np.array_equal(np.asarray(im), noise)


def test_to_uint8_equals_the_old_conversion():
    from engines.data.dataset import to_uint8

    x = torch.rand(3, 3, 5, 4) * 1.4 - 0.2  # outside [0, 1] too, and exact halves below
    x[0, 0, 0, :3] = torch.tensor([0.5 / 255, 1.5 / 255, 254.5 / 255])
    for lo_hi in ((0.0, 1.0), (-1.0, 1.0)):
        lo, hi = lo_hi
        y = (x - lo) / (hi - lo) if lo_hi != (0.0, 1.0) else x
        old = y.clamp(0, 1).mul(255).round().numpy().astype(np.uint8).transpose(0, 2, 3, 1)
        new = to_uint8(x, lo_hi)
        assert new.dtype == np.uint8 and new.flags.c_contiguous and np.array_equal(new, old)
    with torch.inference_mode():
        z = torch.rand(2, 1, 4, 4)
    assert np.array_equal(to_uint8(z), z.clamp(0, 1).mul(255).round().numpy().astype(np.uint8).transpose(0, 2, 3, 1))


def test_gif_frames_of_an_upscaled_image_are_quantized_small_to_the_same_bytes(monkeypatch):
    """Quantizing a pixel-repeated frame at its own resolution gives the full-size quantization's
    bytes exactly (the shortcut of encode.quantize), on walk-like frames and on noise."""
    from engines.export import encode

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (16, 24, 3), np.uint8).repeat(5, 0).repeat(5, 1)
    frames = list(_walk_frames(3, n=4, size=64)) + [noise]
    shortcut = [encode.encode_gif_frame(f) for f in frames]
    assert [encode.block_size(f) for f in frames] == [4, 4, 4, 4, 5]
    monkeypatch.setattr(encode, "block_size", lambda f: 1)
    assert [encode.encode_gif_frame(f) for f in frames] == shortcut
    # Not a pixel-repeated frame: found out, quantized at full size.
    odd = frames[0].copy()
    odd[5, 7] += 1
    monkeypatch.undo()
    assert encode.block_size(odd) == 1 and encode.block_size(frames[0][:, :-1]) == 1


def test_a_net_added_after_a_decode_is_switched_too():
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    e.decode(torch.zeros(1, 4))  # the module list is cached here
    e.nets["extra"] = torch.nn.Dropout(0.5)
    e.nets.train()
    with e.inference():
        assert not e.nets["extra"].training
    assert e.nets["extra"].training


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_fit_reports_the_reconstruction_error_of_decode_encode(whiten):
    x = torch.from_numpy(_spectrum_data(300, 256).astype(np.float32)).view(300, 1, 16, 16).clamp(0, 1)
    e = engines.create("pca", ImageSpec(1, 16, 16), device="cpu", n_components=8, whiten=whiten)
    m = e.fit(x)
    expected = float(((e.decode(e.encode(x)) - x) ** 2).mean())
    assert m["mse"] == pytest.approx(expected, rel=1e-5)


def test_decode_takes_every_latent_form_alike(tmp_path):
    """engine.decode on float32 NumPy (shared with torch.from_numpy: the drag's case), a read-only
    array, float64, big-endian, a list and a tensor: the same images; the caller's array is left
    as it was."""
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=0)
    z = np.random.default_rng(0).standard_normal((3, e.latent_dim)).astype(np.float32)
    keep = z.copy()
    ref = e.decode(torch.from_numpy(z.copy()))
    ro = z.copy()
    ro.flags.writeable = False
    mm = np.lib.format.open_memmap(str(tmp_path / "z.npy"), mode="w+", dtype=np.float32, shape=z.shape)
    mm[:] = z
    import warnings

    for form in (z, ro, z.astype(np.float64), z.astype(">f4"), z.tolist(), mm,
                 np.load(str(tmp_path / "z.npy"), mmap_mode="r")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "not writable" warning for read-only memory
            assert torch.equal(e.decode(form), ref)
    # column-major: the first linear layer reads it strided (another BLAS path: float rounding)
    assert torch.allclose(e.decode(np.asfortranarray(z)), ref, atol=1e-6)
    assert np.array_equal(z, keep)


@pytest.mark.parametrize("name", ["ae", "vae", "gan", "vqvae", "flow", "pca", "latent-diffusion"])
def test_decode_switches_only_mode_dependent_modules_and_gives_the_eval_output(name):
    """A decode switches only modules whose forward reads the training flag (engines.base.MODE_FREE):
    with every net left in training mode, it gives exactly the output of the old wrapper, which put
    the whole tree in eval mode, and every module's flag comes back."""
    spec = ImageSpec(1, 16, 16)
    e = engines.create(name, spec, device="cpu", seed=2)
    if name == "pca":
        e.fit(torch.rand(64, 1, 16, 16))
    e.nets.train()
    z = torch.randn(5, *e.latent_shape, generator=torch.Generator().manual_seed(0))
    got = e.decode(z)
    assert all(m.training for m in e.nets.modules())
    assert torch.equal(got, _old_decode(e, z))
    dependent = e._mode_modules()
    assert all(not base.mode_free(m) for m in dependent)
    assert len(dependent) < len(e._all_modules())


def test_mode_free_is_by_exact_type_and_declared_by_our_classes():
    vae = engines.create("vae", ImageSpec(1, 28, 28), device="cpu")
    assert vae._mode_modules() == ()  # GroupNorm/SiLU/conv nets: a drag's decode switches nothing
    gan = engines.create("gan", ImageSpec(1, 28, 28), device="cpu")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in gan._mode_modules())

    class Reads(torch.nn.Linear):  # a subclass may read the flag: not mode-free
        def forward(self, x):
            return super().forward(x) * (2.0 if self.training else 1.0)

    class Declared(torch.nn.Module):
        mode_free = True

    class DeclaredButOverridesTrain(Declared):
        mode_free = True

        def train(self, mode=True):
            return super().train(mode)

    class Inherits(Declared):  # the declaration is not inherited: a subclass must make its own
        pass

    assert base.mode_free(torch.nn.Linear(2, 2)) and base.mode_free(Declared())
    assert not base.mode_free(Reads(2, 2)) and not base.mode_free(DeclaredButOverridesTrain())
    assert not base.mode_free(Inherits()) and not base.mode_free(torch.nn.Dropout())

    # A module that reads the flag, added after a decode cached the lists, is switched during decodes.
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", latent_dim=4, width=8)
    e.decode(torch.zeros(1, 4))
    e.nets["extra"] = Reads(4, 4)
    e.nets.train()
    seen = []
    orig = e._decode
    e._decode = lambda z: (seen.append(e.nets["extra"].training), orig(z))[1]
    e.decode(torch.zeros(1, 4))
    assert seen == [False] and e.nets["extra"].training
