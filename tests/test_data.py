"""Built-in shapes and digits, and the loaders for the user's own files."""
import gzip
import os
import struct

import h5py
import numpy as np
import pytest
from PIL import Image

from engines.data import load_dataset
from engines.data.dataset import DataError
from engines.data.digits import load_digits
from engines.data.files import last_report, load_path, read_idx
from engines.data.shapes import SHAPES, make_shapes
from engines.spec import ImageSpec

# ---------------------------------------------------------------- shapes


def test_shapes_deterministic_per_seed():
    a, b, c = make_shapes(16, 40, seed=3), make_shapes(16, 40, seed=3), make_shapes(16, 40, seed=4)
    assert np.array_equal(a.images, b.images)
    assert all(np.array_equal(a.attributes[k], b.attributes[k]) for k in a.attributes)
    assert not np.array_equal(a.images, c.images)
    assert a.source == "shapes(size=16,n=40,seed=3)"


def test_shapes_fewer_images_are_a_prefix():
    assert np.array_equal(make_shapes(16, 10).images, make_shapes(16, 30).images[:10])


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_shapes_sizes(size):
    ds = make_shapes(size, 30)
    assert ds.images.shape == (30, size, size, 3) and ds.images.dtype == np.uint8
    assert ds.label_names == list(SHAPES)
    assert len(ds.labels) == 30 and ds.labels.max() < len(SHAPES)
    assert set(ds.attributes) >= {"shape", "colour", "size", "x", "y", "rotation"}
    assert all(v.shape == (30,) for v in ds.attributes.values())
    assert np.array_equal(ds.attributes["shape"], ds.labels)
    assert len(ds.train_idx) + len(ds.test_idx) == 30
    assert (ds.images.reshape(30, -1).max(1) > 100).all()  # every image shows a shape


def test_shapes_stay_inside_the_frame():
    im = make_shapes(32, 300).images
    border = np.concatenate([im[:, 0], im[:, -1], im[:, :, 0], im[:, :, -1]], 1)
    assert border.max() < 20


def test_shapes_bad_size():
    with pytest.raises(DataError, match="between 8 and 64"):
        make_shapes(4, 10)


def test_load_dataset_shapes_native_size():
    ds = load_dataset("shapes", spec=ImageSpec(1, 16, 16))
    assert ds.images.shape[1:] == (16, 16, 1)


# ---------------------------------------------------------------- digits


def test_digits():
    ds = load_digits()
    assert ds.images.shape == (1797, 8, 8, 1) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255
    assert ds.label_names == [str(d) for d in range(10)]
    assert set(ds.labels.tolist()) == set(range(10))


def test_load_dataset_digits_resized():
    ds = load_dataset("digits", size=28)
    assert ds.images.shape == (1797, 28, 28, 1)


def test_mnist_5k_ships_real_28px_digits_500_a_class_with_every_class_in_both_splits():
    from engines.data import NATIVE, training_source

    ds = load_dataset("mnist-5k")
    assert ds.images.shape == (5000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert NATIVE["mnist-5k"] == (1, 28)
    assert np.bincount(ds.labels).tolist() == [500] * 10 and ds.label_names == [str(d) for d in range(10)]
    # Real strokes: mostly black background, saturated ink (the upscaled 8×8 `digits` are neither).
    assert (ds.images == 0).mean() > 0.75 and (ds.images >= 250).mean() > 0.05
    digits = load_dataset("digits", size=28).images
    assert (digits == 0).mean() < 0.5 and (digits >= 250).mean() < 0.02
    assert len(ds.train_idx) == 4250 and len(ds.test_idx) == 750
    for idx in (ds.train_idx, ds.test_idx):
        assert np.bincount(ds.labels[idx], minlength=10).min() >= 50
    info = type("Info", (), {"data": ds.describe()})()
    assert training_source(info) == "mnist-5k"
    # Classes interleaved (the first ten images are 0 … 9), the split's images those that
    # fixed_split draws over the shipped (class-sorted) order.
    assert ds.labels[:20].tolist() == list(range(10)) * 2
    assert len(set(ds.labels[ds.test_idx[:30]].tolist())) == 10
    from engines.data.dataset import fixed_split
    from engines.data.idx import read_idx
    from engines.data.mnist5k import IMAGES

    shipped = read_idx(IMAGES)
    rows = lambda a: sorted(x.tobytes() for x in a.reshape(len(a), -1))  # noqa: E731
    assert rows(ds.images[ds.test_idx]) == rows(shipped[fixed_split(5000)[1]])
    assert rows(ds.images[ds.train_idx]) == rows(shipped[fixed_split(5000)[0]])


def test_mnist_5k_damaged_files_are_one_line(tmp_path, monkeypatch):
    import gzip

    from engines.data import mnist5k

    with open(mnist5k.IMAGES, "rb") as f:
        data = f.read()
    cut = tmp_path / "images-idx3-ubyte.gz"
    cut.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(mnist5k, "IMAGES", str(cut))
    with pytest.raises(DataError) as e:
        load_dataset("mnist-5k")
    assert "\n" not in str(e.value) and "images-idx3-ubyte.gz" in str(e.value)
    # A well-formed IDX file of the wrong shape (say, another data set's labels) is named as damaged.
    other = tmp_path / "labels.gz"
    with gzip.open(other, "wb") as g:
        g.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    monkeypatch.setattr(mnist5k, "IMAGES", str(other))
    with pytest.raises(DataError, match="mnist-5k: the shipped files are damaged"):
        load_dataset("mnist-5k")


# ---------------------------------------------------------------- folders of images


def _png(path, size=(12, 10), colour=None, value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if colour:
        Image.new("RGB", size, colour).save(path)
    else:
        Image.new("L", size, value).save(path)


def test_folder_with_class_folders(tmp_path):
    for i in range(3):
        _png(tmp_path / "dogs" / f"d{i}.png")
        _png(tmp_path / "cats" / "inner" / f"c{i}.png")  # deeper levels belong to the first
    _png(tmp_path / "cats" / "odd.png", size=(20, 20))  # resized to the common 12×10
    _png(tmp_path / "stray.png")  # beside the class folders: skipped
    (tmp_path / "dogs" / "notes.txt").write_text("hello")
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / ".DS_Store").write_bytes(b"junk")  # hidden: ignored, not counted

    ds = load_path(str(tmp_path))
    assert ds.label_names == ["cats", "dogs"]
    assert len(ds) == 7 and np.bincount(ds.labels).tolist() == [4, 3]
    assert ds.images.shape[1:] == (10, 12, 1)  # all grey: one channel
    assert ds.source == str(tmp_path)  # still a path that loads again
    rep = last_report()
    assert rep.n_images == 7
    assert rep.skipped_other == [os.path.join("dogs", "notes.txt")]
    assert len(rep.skipped_unreadable) == 1 and rep.skipped_unreadable[0].startswith(os.path.join("cats", "broken.png"))
    assert rep.skipped_unlabelled == ["stray.png"]
    assert rep.n_skipped == 3 and "1 unreadable image skipped" in rep.summary()


def test_folder_mixed_grey_and_colour_is_rgb(tmp_path):
    _png(tmp_path / "a.png", value=200)
    _png(tmp_path / "b.png", colour=(255, 0, 0))
    ds = load_path(str(tmp_path))
    assert ds.labels is None and ds.images.shape == (2, 10, 12, 3)
    assert ds.images[0, 0, 0].tolist() == [200, 200, 200]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="empty"):
        load_path(str(tmp_path))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        load_path(str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"no readable images \(2 files skipped\)") as e:
        load_path(str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_load_dataset_folder_converts(tmp_path):
    for i in range(4):
        _png(tmp_path / f"{i}.png", size=(40, 30))
    ds = load_dataset(str(tmp_path), spec=ImageSpec(3, 16, 16))
    assert ds.images.shape == (4, 16, 16, 3)


# ---------------------------------------------------------------- .npz


def test_npz_good(tmp_path):
    p = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(p, images=rng.random((6, 9, 9)), labels=np.array([0, 1, 2, 0, 1, 2]),
             label_names=np.array(["a", "b", "c"]), attr_brightness=rng.random(6),
             tilt=np.arange(6), mean=np.zeros(3))
    ds = load_path(str(p))
    assert ds.name == "mine" and ds.images.shape == (6, 9, 9, 1) and ds.images.dtype == np.uint8
    assert ds.label_names == ["a", "b", "c"]
    assert set(ds.attributes) == {"brightness", "tilt"}
    assert any("'mean' ignored" in note for note in last_report().notes)


def test_npz_channels_first_and_npy(tmp_path):
    np.savez(tmp_path / "cf.npz", images=np.zeros((5, 3, 8, 10), np.uint8))
    assert load_path(str(tmp_path / "cf.npz")).images.shape == (5, 8, 10, 3)
    np.save(tmp_path / "bare.npy", np.zeros((5, 8, 8), np.uint8))
    assert len(load_path(str(tmp_path / "bare.npy"))) == 5


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((6, 8, 8), np.uint8), "labels": np.zeros(5)}, "5 labels for 6 images"),
    ({"images": np.full((2, 8, 8), 1.5)}, r"\[0, 1\].*1.5"),
    ({"images": np.full((2, 8, 8), 300, np.int64)}, "0-255.*300"),  # refused, not clipped
    ({"images": np.zeros((2, 8, 8), np.complex64)}, "dtype complex64"),
    ({"images": np.zeros((2, 8, 8, 4), np.uint8)}, "shape"),
    ({"images": np.zeros((2, 8, 8), np.uint8), "attr_x": np.zeros(3)}, "attribute 'x'"),
    ({"pictures": np.zeros((2, 8, 8), np.uint8)}, "no 'images'.*pictures"),
])
def test_npz_bad(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=message) as e:
        load_path(str(p))
    assert str(p) in str(e.value)


def test_npz_object_array_is_refused_unrun(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, images=np.array([np.zeros((2, 2)), "x"], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        load_path(str(p))


def test_npz_truncated(tmp_path):
    p = tmp_path / "cut.npz"
    np.savez(p, images=np.zeros((20, 8, 8), np.uint8))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataError, match="cut.npz"):
        load_path(str(p))


# ---------------------------------------------------------------- HDF5


def test_h5_with_attributes(tmp_path):
    p = tmp_path / "set.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((4, 8, 8, 3), np.uint8)
        f["labels"] = np.array([0, 1, 1, 0])
        f.attrs["label_names"] = ["off", "on"]
        f["attributes/size"] = np.arange(4.0)
        f["attributes/lit"] = np.array([True, False, True, False])
    ds = load_path(str(p))
    assert ds.label_names == ["off", "on"] and ds.labels.tolist() == [0, 1, 1, 0]
    assert ds.attributes["size"].tolist() == [0, 1, 2, 3] and ds.attributes["lit"].tolist() == [1, 0, 1, 0]


def test_h5_bad(tmp_path):
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((4, 8, 8), np.uint8)
        f["attributes/size"] = np.arange(3.0)
    with pytest.raises(DataError, match="attribute 'size'"):
        load_path(str(p))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="junk.h5"):
        load_path(str(tmp_path / "junk.h5"))


# ---------------------------------------------------------------- IDX


def _idx(path, array, code=0x08):
    data = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 3, 7).astype(np.uint8)
    _idx(tmp_path / f"train-images-idx3-ubyte{gz}", images)
    _idx(tmp_path / f"train-labels-idx1-ubyte{gz}", labels)
    ds = load_path(str(tmp_path / f"train-images-idx3-ubyte{gz}"))
    assert np.array_equal(ds.images[..., 0], images) and np.array_equal(ds.labels, labels)
    assert np.array_equal(read_idx(str(tmp_path / f"train-labels-idx1-ubyte{gz}")), labels)


def test_idx_folder_keeps_official_split(tmp_path):
    _idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((8, 6, 6), np.uint8))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.ones(8, np.uint8))
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 6, 6), np.uint8))
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.ones(3, np.uint8))
    ds = load_path(str(tmp_path))
    assert len(ds) == 11 and ds.test_idx.tolist() == [0, 1, 2]  # sorted: t10k first


def test_idx_float_and_errors(tmp_path):
    p = tmp_path / "f-images-idx3-ubyte"
    _idx(p, np.full((2, 4, 4), 0.5, np.float32), code=0x0D)
    assert load_path(str(p)).images.max() == 128
    data = p.read_bytes()
    p.write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated"):
        load_path(str(p))
    p.write_bytes(b"\x00\x00\x99\x03" + data[4:])
    with pytest.raises(DataError, match="magic"):
        load_path(str(p))
    _idx(tmp_path / "x-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8))
    _idx(tmp_path / "x-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="2 labels for the 3 images"):
        load_path(str(tmp_path / "x-images-idx3-ubyte"))


# ---------------------------------------------------------------- conversion through load_dataset


def test_load_dataset_path_converts(tmp_path):
    p = tmp_path / "grey.npz"
    np.savez(p, images=np.zeros((3, 28, 28), np.uint8), labels=np.array([0, 1, 0]))
    ds = load_dataset(str(p), spec=ImageSpec(3, 16, 16))
    assert ds.images.shape == (3, 16, 16, 3) and ds.labels.tolist() == [0, 1, 0]


def test_large_images_are_scaled_to_fit(tmp_path):
    p = tmp_path / "big.npz"
    np.savez(p, images=np.zeros((2, 300, 600), np.uint8))
    assert load_path(str(p)).images.shape == (2, 128, 256, 1)


def test_unknown_file_type(tmp_path):
    p = tmp_path / "data.csv"
    p.write_text("1,2,3")
    with pytest.raises(DataError, match="unsupported"):
        load_path(str(p))


def test_to_uint8_and_tile_for_both_value_ranges_and_borders():
    import torch

    from engines.data.dataset import tile, to_uint8

    x = torch.tensor([0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 2)
    assert to_uint8(x)[0, ..., 0].tolist() == [[0, 128], [255, 255]]  # (N, C, H, W) → (N, H, W, C)
    signed = torch.tensor([-1.0, 0.0, 1.0, -3.0]).reshape(1, 1, 2, 2)  # model space of diffusion: [−1, 1]
    assert to_uint8(signed, value_range=(-1.0, 1.0))[0, ..., 0].tolist() == [[0, 128], [255, 0]]
    imgs = np.zeros((5, 4, 3, 1), np.uint8)
    framed = tile(imgs, 2)  # white gaps around every image, the border included
    assert framed.shape == (3 * 5 + 1, 2 * 4 + 1, 1) and framed[0].min() == 255
    inner = tile(imgs, border=False)  # square by default, gaps only between images
    assert inner.shape == (2 * 4 + 1, 3 * 3 + 2, 1) and inner[0, 0, 0] == 0 and inner[4, 0, 0] == 255
    assert (inner[:4, :3] == 0).all() and (inner[-4:, 8:11] == 255).all()  # the empty sixth cell stays white
