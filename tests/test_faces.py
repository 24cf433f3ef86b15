import numpy as np
import pytest

from engines.data import load_dataset
from engines.data.dataset import DataError
from engines.data.faces import BINARY, CONTINUOUS, EYE_REGION, LABEL_NAMES, make_faces


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_deterministic_per_seed():
    a = make_faces(size=32, n=60, seed=3, cache=False)
    b = make_faces(size=32, n=60, seed=3, cache=False)
    c = make_faces(size=32, n=60, seed=4, cache=False)
    assert np.array_equal(a.images, b.images)
    for k in a.attributes:
        assert np.array_equal(a.attributes[k], b.attributes[k])
    assert not np.array_equal(a.images, c.images)


def test_smaller_n_is_a_prefix():
    a = make_faces(size=16, n=30, seed=1, cache=False)
    b = make_faces(size=16, n=50, seed=1, cache=False)
    assert np.array_equal(a.images, b.images[:30])
    assert np.array_equal(a.attributes["hat"], b.attributes["hat"][:30])


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shape_and_dtype(size):
    ds = make_faces(size=size, n=40)
    assert ds.images.shape == (40, size, size, 3)
    assert ds.images.dtype == np.uint8
    assert ds.name == "faces"
    assert ds.source == f"faces(size={size},n=40,seed=0)"
    assert ds.spec.channels == 3 and ds.spec.height == size
    assert len(ds.train_idx) + len(ds.test_idx) == 40
    assert not set(ds.train_idx) & set(ds.test_idx)
    # Faces differ from one another.
    assert len({im.tobytes() for im in ds.images}) == 40


def test_attributes_and_labels():
    ds = make_faces(size=32, n=200)
    assert set(ds.attributes) == set(BINARY) | set(CONTINUOUS)
    for k in ("sunglasses", "smiling", "hat", "beard", "female"):
        v = ds.attributes[k]
        assert v.dtype == np.float32 and v.shape == (200,)
        assert set(np.unique(v)) <= {0.0, 1.0}
        assert 0.2 <= v.mean() <= 0.6, (k, v.mean())
    for k in ("skin_tone", "hair_colour", "face_width", "eye_size"):
        v = ds.attributes[k]
        assert v.min() >= 0.0 and v.max() <= 1.0 and v.std() > 0.15
    assert ds.label_names == LABEL_NAMES
    expected = 2 * ds.attributes["female"] + ds.attributes["smiling"]
    assert np.array_equal(ds.labels, expected.astype(np.int64))
    assert set(np.unique(ds.labels)) == {0, 1, 2, 3}


@pytest.mark.parametrize("size", [32, 64])
def test_sunglasses_darken_the_eye_region(size):
    ds = make_faces(size=size, n=200)
    t, b, l, r = (round(f * size) for f in EYE_REGION)
    eyes = ds.images[:, t:b, l:r].astype(np.float32).mean(axis=(1, 2, 3))
    sg = ds.attributes["sunglasses"] == 1
    assert eyes[sg].mean() < eyes[~sg].mean() - 25
    # Dark pixels (the lenses) in the eye region of nearly every face with sunglasses.
    dark = (ds.images[:, t:b, l:r].max(axis=-1) < 60).mean(axis=(1, 2))
    assert np.median(dark[sg]) > 2 * np.median(dark[~sg]) + 0.05


def test_hat_adds_colour_on_top():
    ds = make_faces(size=32, n=200)
    top = ds.images[:, 2:9, 8:24].astype(np.float32)
    sat = (top.max(-1) - top.min(-1)).mean(axis=(1, 2))
    hat = ds.attributes["hat"] == 1
    assert sat[hat].mean() > sat[~hat].mean() + 20


def test_cache_round_trip(cache_dir):
    a = make_faces(size=16, n=50, seed=2)
    files = list((cache_dir / "datasets").glob("faces-16-50-2-v*.npz"))
    assert len(files) == 1
    b = make_faces(size=16, n=50, seed=2)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, b.labels)
    assert a.attributes.keys() == b.attributes.keys()
    for k in a.attributes:
        assert np.array_equal(a.attributes[k], b.attributes[k])
    assert np.array_equal(a.train_idx, b.train_idx)
    # A damaged cache file is replaced, not trusted.
    files[0].write_bytes(b"not an npz")
    c = make_faces(size=16, n=50, seed=2)
    assert np.array_equal(a.images, c.images)


def test_any_size_from_8_to_64():
    for size in (8, 28, 48):
        assert make_faces(size=size, n=5, cache=False).images.shape == (5, size, size, 3)
    with pytest.raises(DataError):
        make_faces(size=2, n=5)


def test_load_dataset_builtin(monkeypatch):
    import engines.data.faces as faces

    monkeypatch.setattr(faces, "make_faces", lambda size=64, n=8000, seed=0: make_faces(size=size, n=30, seed=seed))
    ds = load_dataset("faces", size=32)
    assert ds.images.shape == (30, 32, 32, 3)
