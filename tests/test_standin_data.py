"""The stand-in public data sets (bench/standin/) used where the real files cannot be downloaded:
the drawn clothing is recognisable per class (not noise), and the stand-in benchmark runs every
step of the real pipeline (local server, pooch checksum, conversion, cache) and labels its rows."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

from standin import clothes, files  # noqa: E402


def test_drawn_clothing_classes_are_told_apart_by_a_nearest_centroid():
    train_y, test_y = np.arange(600) % 10, np.arange(300) % 10
    train = clothes.draw(train_y, seed=1).reshape(600, -1).astype(np.float32)
    test = clothes.draw(test_y, seed=2).reshape(300, -1).astype(np.float32)
    centroids = np.stack([train[train_y == c].mean(0) for c in range(10)])
    guess = np.argmin(((test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == test_y).mean() > 0.6  # 0.77 here (real Fashion-MNIST: ~0.68); noise would give ~0.1
    imgs = test.reshape(300, 28, 28)
    assert imgs[:, :2, :2].max() < 20 and (imgs > 60).mean() > 0.15  # bright items on black, like the real set
    assert len({img.tobytes() for img in imgs}) == 300  # every image drawn with its own parameters


def test_the_standin_bench_runs_the_real_pipeline_and_says_stand_in(monkeypatch, tmp_path):
    import public_sets

    small = {"fashion-mnist": lambda: files.idx_set(3, n_train=200, n_test=50),
             "celeba": lambda: files.celeba_set(4, n=12)}
    monkeypatch.setattr(files, "make", lambda name: small[name]())
    monkeypatch.setattr(public_sets, "STANDIN_CACHE", str(tmp_path / "files"))
    monkeypatch.setenv("LATENT_EXPLORER_DATA_DIR", str(tmp_path / "real"))  # must stay untouched
    o = type("O", (), {"quick": True})()
    rows = public_sets.bench_datasets_standin(o, names=["fashion-mnist", "celeba"])
    assert [r["case"] for r in rows] == ["open fashion-mnist (stand-in) from the cache", "open celeba (stand-in) from the cache"]
    for r in rows:
        assert r["status"] == "ok" and 0 < r["ours"] < r["peer"] and "STAND-IN" in r["notes"]
    assert "250 images 28×28×1" in rows[0]["notes"] and "12 images 64×64×3" in rows[1]["notes"]
    assert not os.path.exists(tmp_path / "real") and os.environ["LATENT_EXPLORER_DATA_DIR"] == str(tmp_path / "real")
    from engines.data.public import PUBLIC

    assert PUBLIC["celeba"].files[0].hash == "md5:00d2c5bc6d35e252742224ab0c1e8fcb"  # the registry restored


def test_standin_celeba_files_have_the_official_layout():
    f = files.celeba_set(5, n=10)
    attr = f["list_attr_celeba.txt"].decode().split("\r\n")
    assert attr[0] == "10" and attr[1].split()[0] == "5_o_Clock_Shadow" and attr[2].startswith("000001.jpg ")
    assert f["list_eval_partition.txt"].decode().split("\r\n")[9] == "000010.jpg 2"
    assert len(f["list_eval_partition.txt"]) == 14 * 10  # 14 bytes a line, as the official 2,836,386 = 14 × 202,599
