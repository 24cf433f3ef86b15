"""Issue #17, data: a corpus of malformed data files (tests/data_corpus.py, generated here, seeded)
gets one-line DataErrors without big allocations, in process and through `python main.py train`;
the memory budget, label normalisation and folder warnings behave as documented."""
from __future__ import annotations

import logging
import os
import re
import sys
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

import main_process
from PIL import Image

from engines.data import ImageDataset, load_dataset
from engines.data.dataset import DataError
from engines.data.files import load_path
from engines.data.guards import BUDGET_ENV, available_memory, budget

sys.path.insert(0, os.path.dirname(__file__))
from data_corpus import IMG, corpus, idx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = corpus()
PEAK_LIMIT = 16 << 20  # every corpus file is tiny; loading any of them stays far below this
# Each `python main.py train` spends about 2 s importing torch before it reads the data: ten
# cases, two at a time (the machines that run this have two cores), cover every format, a FIFO
# and a device.
CLI_SAMPLE = ["npy-huge", "npy-object-pickle", "npz-labels-1e9-named", "h5-huge-unwritten", "idx-huge",
              "gz-stream-runs-on", "dir-broken-only", "ext-png-as-npz", "fifo-fifo.npz", "devzero-npy"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every case written once: {name: (folder, path)}."""
    base = tmp_path_factory.mktemp("data-corpus")
    out = {}
    for name, make, _, _ in CASES:
        folder = base / name
        folder.mkdir()
        out[name] = (str(folder), make(str(folder)))
    return out


def test_corpus_size_and_coverage():
    kinds = Counter(name.split("-")[0] for name, *_ in CASES)
    assert len(CASES) >= 100 and len({name for name, *_ in CASES}) == len(CASES)
    for kind in ("npy", "npz", "h5", "idx", "gz", "dir", "ext", "fifo"):
        assert kinds[kind] >= 5 if kind != "fifo" else kinds[kind] >= 6, (kind, kinds)
    assert sum(huge for *_, huge in CASES) >= 15


@pytest.mark.parametrize("name, expect, huge", [(n, e, h) for n, _, e, h in CASES], ids=[c[0] for c in CASES])
def test_malformed_file_is_one_line_data_error(made, name, expect, huge):
    folder, path = made[name]
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            load_dataset(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert "\n" not in msg and 0 < len(msg) < 600, msg
    assert folder in msg, msg  # names the file (or folder) it is about
    assert re.search(expect, msg), msg
    assert peak < PEAK_LIMIT, f"{name}: {peak / 2**20:.1f} MB allocated"
    assert not os.path.exists(os.path.join(folder, "PWNED"))  # no pickle payload ever ran


def _run_cli(args: list[str], report: str, timeout: float = 90.0) -> tuple[int, str, int, float]:
    """(exit status, stderr, peak RSS in bytes, seconds) of one `python main.py …` (tests/main_process.py)."""
    r = main_process.run(args, timeout=timeout)
    return r.rc, r.stderr, int(r.peak_mb * 2**20), r.seconds


def test_cli_sample_exits_2_with_one_line(made, tmp_path):
    assert len(CLI_SAMPLE) >= 10

    def one(name):
        _, path = made[name]
        out = tmp_path / f"{name}.safetensors"
        return name, _run_cli(["train", "--engine", "pca", "--data", path, "--epochs", "0.01",
                               "--device", "cpu", "--out", str(out)], str(tmp_path / f"{name}.rusage"))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, CLI_SAMPLE))
    for name, (rc, stderr, rss, seconds) in results:
        lines = stderr.strip().splitlines()
        assert rc == 2, (name, rc, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, (name, stderr)
        assert made[name][0] in lines[0], (name, stderr)
        assert rss < 500 << 20, f"{name}: peak RSS {rss / 2**20:.0f} MB"
        assert seconds < 60, f"{name}: took {seconds:.0f} s"  # the FIFO one included: it never waits on the pipe
        assert not (tmp_path / f"{name}.safetensors").exists()


# ---------------------------------------------------------------- the memory budget


def test_budget_is_half_the_available_memory_or_lower_if_set(tmp_path, monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    limit, why = budget()
    avail = available_memory()
    assert avail is not None and abs(limit - avail // 2) < 0.1 * avail and "half" in why
    monkeypatch.setenv(BUDGET_ENV, "1.5M")
    assert budget() == (3 << 19, f"{BUDGET_ENV}=1.5M")
    monkeypatch.setenv(BUDGET_ENV, "1000P")  # more than the machine has: half the available memory still holds
    assert "half" in budget()[1]
    monkeypatch.setenv(BUDGET_ENV, "lots")
    np.savez(tmp_path / "x.npz", images=IMG)
    with pytest.raises(DataError, match=f"{BUDGET_ENV}='lots' is not a size"):
        load_path(str(tmp_path / "x.npz"))


def _budget_files(tmp):
    big = np.zeros((40, 32, 32), np.uint8)  # 40 KB
    np.savez(tmp / "b.npz", images=big)
    np.save(tmp / "b.npy", big.astype(np.float32) / 255)
    with h5py.File(tmp / "b.h5", "w") as f:
        f["images"] = big
    (tmp / "b-images-idx3-ubyte").write_bytes(idx(big.shape, body=big.tobytes()))
    (tmp / "folder").mkdir()
    for i in range(40):
        Image.fromarray(big[i]).save(tmp / "folder" / f"{i}.png")
    return ["b.npz", "b.npy", "b.h5", "b-images-idx3-ubyte", "folder"]


def test_every_loader_refuses_over_budget_with_the_estimate(tmp_path, monkeypatch):
    files = _budget_files(tmp_path)
    monkeypatch.setenv(BUDGET_ENV, "20K")
    for f in files:
        with pytest.raises(DataError, match=rf"needs about [\d.]+ KB, more than the data memory budget of 20.0 KB "
                                            rf"\({BUDGET_ENV}=20K") as e:
            load_path(str(tmp_path / f))
        assert "\n" not in str(e.value)
    monkeypatch.setenv(BUDGET_ENV, "10M")
    for f in files:
        assert len(load_path(str(tmp_path / f))) == 40


# ---------------------------------------------------------------- labels, values, folders


@pytest.mark.parametrize("values, names", [
    ([10 ** 9, 3, 3, 10 ** 9, 7, 3], ["3", "7", "1000000000"]),
    (np.array([2 ** 64 - 1, 5000, 5000, 2 ** 64 - 1, 5000, 5000], np.uint64), ["5000", "18446744073709551615"]),
    (np.array([1e12, 2000.0, 2000.0, 1e12, 2000.0, 2000.0]), ["2000", "1000000000000"]),
])
def test_large_labels_become_classes_with_their_values_as_names(tmp_path, values, names):
    p = tmp_path / "lab.npz"
    np.savez(p, images=IMG, labels=np.asarray(values))
    tracemalloc.start()
    try:
        ds = load_path(str(p))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ds.label_names == names and ds.labels.dtype == np.int64
    assert [ds.label_names[i] for i in ds.labels] == [str(int(v)) for v in np.asarray(values).tolist()]
    assert peak < PEAK_LIMIT


def test_small_labels_keep_their_numbers_and_datasets_check_labels():
    ds = ImageDataset("x", IMG, labels=np.array([1, 2, 2, 1, 5, 1], np.uint8))
    assert ds.labels.tolist() == [1, 2, 2, 1, 5, 1] and ds.label_names == ["0", "1", "2", "3", "4", "5"]
    ds = ImageDataset("x", IMG, labels=[10 ** 9] * 6)  # built in code: same rules, no 10⁹ names
    assert ds.labels.tolist() == [0] * 6 and ds.label_names == ["1000000000"]
    for bad, msg in (([-1] * 6, "negative"), ([0.5] * 6, "whole"), ([0] * 5, "5 labels for 6"),
                     (["a"] * 6, "whole numbers"), ([3] * 6, "label 3 has no name")):
        with pytest.raises(DataError, match=msg):
            ImageDataset("x", IMG, labels=bad, label_names=["a"] if msg.startswith("label 3") else [])


def test_integer_images_in_range_are_accepted(tmp_path):
    np.savez(tmp_path / "i.npz", images=IMG.astype(np.int64))
    np.save(tmp_path / "u16.npy", IMG.astype(np.uint16).reshape(6, 1, 8, 8))  # channels first
    assert np.array_equal(load_path(str(tmp_path / "i.npz")).images[..., 0], IMG)
    assert np.array_equal(load_path(str(tmp_path / "u16.npy")).images[..., 0], IMG)


def test_big_endian_and_fortran_arrays_load_exactly(tmp_path):
    np.savez(tmp_path / "be.npz", images=(IMG / 255).astype(">f8"), labels=np.array([0, 1, 2, 0, 1, 2], ">i4"))
    np.save(tmp_path / "f.npy", np.asfortranarray(IMG))
    ds = load_path(str(tmp_path / "be.npz"))
    assert np.array_equal(ds.images[..., 0], IMG) and ds.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert np.array_equal(load_path(str(tmp_path / "f.npy")).images[..., 0], IMG)


def test_folder_skips_unreadable_images_with_one_warning(tmp_path, caplog):
    for i in range(3):
        Image.fromarray(IMG[i]).save(tmp_path / f"good{i}.png")
    for i in range(5):
        (tmp_path / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    os.mkfifo(tmp_path / "pipe.png")
    with caplog.at_level(logging.WARNING, logger="engines.data.files"):
        ds = load_path(str(tmp_path))
    assert len(ds) == 3
    records = [r for r in caplog.records if r.name == "engines.data.files"]
    assert len(records) == 1, [r.getMessage() for r in records]
    msg = records[0].getMessage()
    assert "\n" not in msg and "6 unreadable images skipped (bad0.png: " in msg and "bad2.png" in msg
    assert "bad3.png" not in msg and "; …)" in msg  # the first few named, the rest counted
