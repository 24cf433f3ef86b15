"""The one latents layout (engines/latent/h5layout.py): written three ways (encode CLI, export CLI,
the latent cache) from the same model and data, read back the same by the one reader and by plain
h5py as the README shows; foreign, damaged, inflated and older files are one-line refusals."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import engines
from engines import checkpoint as ckpt
from engines.cli.main import main
from engines.data import load_dataset
from engines.export import data as dx
from engines.latent import cache, h5layout
from engines.spec import ImageSpec


@pytest.fixture
def three(tmp_path, tiny_dataset):
    """The same model and data written by `encode`, by `export … .h5` and by the cache."""
    ds = tiny_dataset(n=60, size=16, channels=1)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images[..., 0], labels=ds.labels, label_names=np.array(ds.label_names),
             height=ds.attributes["height"])
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=3, latent_dim=3, width=8)
    path = ckpt.save(str(tmp_path / "m.safetensors"), e, data={"name": "blobs", "source": npz})
    enc, exp = str(tmp_path / "enc.h5"), str(tmp_path / "exp.h5")
    assert main(["encode", "--checkpoint", path, "--data", npz, "--out", enc]) == 0
    assert main(["export", "--checkpoint", path, "--data", npz, "--out", exp]) == 0
    engine = ckpt.load(path, device="cpu", with_optimizer=False).engine
    data = load_dataset(npz, spec=engine.spec)
    ls = cache.open_latents(engine, data)  # the export above already cached it
    assert ls.from_cache and os.path.isfile(ls.path)
    return {"encode": enc, "export": exp, "cache": ls.path}, engine, data


def _readme_snippet(path):
    # The README's five lines, verbatim apart from the path and the return.
    with h5py.File(path, "r") as f:
        z, split = f["latents"][()], f["split"][()]  # (N, D) float32; 0 train, 1 test
        labels, names = f["labels"][()], list(f["label_names"].asstr()[()])
        attrs = {k: v[()] for k, v in f["attributes"].items()}
        meta = {k: f.attrs[k] for k in ("model_id", "engine", "latent_shape", "data_name")}
    return z, split, labels, names, attrs, meta


def test_three_writers_one_layout(three):
    files, engine, data = three
    mid, did = cache.model_id(engine), cache.data_id(data)
    want_split = np.zeros(len(data), np.uint8)
    want_split[data.test_idx] = 1
    ref = None
    for how, path in files.items():
        lf = h5layout.read(path)
        assert lf.attrs["format"] == "latent-explorer-latents" and lf.attrs["format_version"] == 2, how
        assert (lf.model_id, lf.data_id, lf.engine, lf.latent_shape) == (mid, did, "vae", (3,)), how
        assert lf.data["name"] == data.name and lf.data["source"] == data.source, how
        assert lf.data["spec"] == data.spec.to_dict() == json.loads(lf.attrs["image_spec"]), how
        assert lf.attrs["data_name"] == data.name and lf.attrs["data_source"] == data.source, how
        assert lf.latents.shape == (60, 3) and lf.latents.dtype == np.float32, how
        np.testing.assert_array_equal(lf.labels, data.labels)
        assert lf.label_names == ["left", "mid", "right"] == list(data.label_names), how
        np.testing.assert_array_equal(lf.split, want_split)
        np.testing.assert_array_equal(lf.test_idx, data.test_idx)
        assert set(lf.attributes) == {"height"}, how
        np.testing.assert_array_equal(lf.attributes["height"], data.attributes["height"])
        z, split, labels, names, attrs, meta = _readme_snippet(path)
        np.testing.assert_array_equal(z, lf.latents)
        np.testing.assert_array_equal(split, lf.split)
        np.testing.assert_array_equal(labels, lf.labels)
        assert names == lf.label_names and set(attrs) == {"height"}
        assert (meta["model_id"], meta["engine"], tuple(meta["latent_shape"]), meta["data_name"]) == \
            (mid, "vae", (3,), data.name)
        if ref is None:
            ref = lf
        else:  # the same latents whichever wrote them
            np.testing.assert_allclose(lf.latents, ref.latents, atol=1e-6)
            assert {k: v for k, v in lf.attrs.items() if k != "checkpoint"} == \
                {k: v for k, v in ref.attrs.items() if k != "checkpoint"}
    assert set(h5layout.read(files["export"]).coords) == {"pca"}  # coords/<projection> when present
    assert h5layout.read(files["encode"]).coords == {} and "coords" not in h5py.File(files["cache"], "r")
    assert os.path.isabs(h5layout.read(files["encode"]).attrs["checkpoint"])
    back = cache.from_file(h5layout.read(files["encode"]))  # any writer's file is a LatentSet again
    assert back.label_names == ["left", "mid", "right"] and back.data_description["name"] == data.name
    assert dx.read_latents(files["export"])["coords"]["pca"].shape == (60, 2)


def _h5(path, fill):
    with h5py.File(path, "w") as f:
        fill(f)
    return str(path)


def test_foreign_damaged_and_inflated_files_are_one_line_refusals(three, tmp_path):
    files, engine, data = three
    good = files["encode"]
    blob = open(good, "rb").read()
    cases = {
        "junk": (tmp_path / "junk.h5", b"PK\x03\x04 not hdf5", "not an HDF5 file"),
        "empty": (tmp_path / "empty.h5", b"", r"not an HDF5 file \(empty\)"),
        "cut": (tmp_path / "cut.h5", blob[: len(blob) // 2], "not a readable HDF5|truncated|damaged|holds only"),
    }
    for name, (p, b, msg) in cases.items():
        p.write_bytes(b)
        with pytest.raises(h5layout.LayoutError, match=msg) as e:
            h5layout.read(str(p))
        assert "\n" not in str(e.value), name
    with pytest.raises(h5layout.LayoutError, match="not a regular file"):
        h5layout.read(str(tmp_path))
    # a data file (images), not latents
    imgs = _h5(tmp_path / "images.h5", lambda f: f.create_dataset("images", data=data.images))
    with pytest.raises(h5layout.LayoutError, match="not a Latent Explorer latents file"):
        h5layout.read(imgs)

    def variant(name, change):
        p = tmp_path / f"{name}.h5"
        p.write_bytes(blob)
        with h5py.File(p, "r+") as f:
            change(f)
        return str(p)

    def replace(f, key, **kw):
        del f[key]
        f.create_dataset(key, **kw)

    bad = {
        "newer": (lambda f: f.attrs.__setitem__("format_version", 3), "version 3.*upgrade"),
        "older-export": (lambda f: f.attrs.__setitem__("format", "latent-explorer-export"), "export it again"),
        "shape": (lambda f: f.attrs.__setitem__("latent_shape", np.array([2, 2])), "latent_shape"),
        "labels-short": (lambda f: replace(f, "labels", data=np.zeros(5, np.int64)), "'labels' has shape"),
        "split-values": (lambda f: replace(f, "split", data=np.full(60, 7, np.uint8)), "'split' holds 7"),
        "attr-text": (lambda f: replace(f["attributes"], "height", data=np.array(["x"] * 60, "S1")), "dtype"),
        # a small file declaring 10⁹ latents that were never written
        "inflated": (lambda f: replace(f, "latents", shape=(10**9, 3), dtype="f4", chunks=(1024, 3)),
                     "has shape|chunks are stored|declares"),
    }
    for name, (change, msg) in bad.items():
        with pytest.raises(h5layout.LayoutError, match=msg) as e:
            h5layout.read(variant(name, change))
        assert "\n" not in str(e.value), name


def test_older_cache_files_miss_and_are_rebuilt(three):
    files, engine, data = three
    path = files["cache"]
    with h5py.File(path, "r+") as f:  # what the cache wrote before the one layout
        f.attrs["format_version"] = 1
    again = cache.open_latents(engine, data)
    assert not again.from_cache and again.path == path
    assert h5layout.read(path).attrs["format_version"] == 2 and cache.open_latents(engine, data).from_cache


def test_fill_refuses_wrong_shapes_and_layout_keys(three, tmp_path):
    files, engine, data = three
    ls = cache.from_file(h5layout.read(files["cache"]))
    with pytest.raises(ValueError, match="projection 'pca'"):
        h5layout.write(str(tmp_path / "a.h5"), ls, coords={"pca": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="attribute of the layout"):
        h5layout.write(str(tmp_path / "b.h5"), ls, extra={"model_id": "x"})
    assert not os.path.exists(tmp_path / "a.h5") and not os.path.exists(tmp_path / "b.h5")
    ls.train_idx, ls.test_idx = ls.train_idx[:10], ls.test_idx  # the rest in neither split
    lf = h5layout.read(h5layout.write(str(tmp_path / "c.h5"), ls))
    assert (lf.split == 2).sum() == 60 - 10 - len(ls.test_idx)
    np.testing.assert_array_equal(lf.train_idx, ls.train_idx)


def test_names_hdf5_cannot_hold_are_refused_and_the_cache_goes_on(three, tmp_path):
    files, engine, data = three
    ls = cache.from_file(h5layout.read(files["cache"]))
    ls.attributes = {"a/b": ls.attributes["height"]}
    with pytest.raises(ValueError, match="cannot name an HDF5 dataset"):
        h5layout.write(str(tmp_path / "slash.h5"), ls)
    assert not cache._write(str(tmp_path / "slash.h5"), ls) and not os.path.exists(tmp_path / "slash.h5")
