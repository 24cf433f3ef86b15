"""Opening each public data set from its cache (engines/data/public/).

`datasets`: the sets downloaded on this machine — the time `load_dataset(name)` takes from the
cache, and to read every image once (the cache is memory-mapped, so opening does not read the
images). Sets not downloaded here are listed as skipped, never timed from anything else.

`datasets-standin`: for machines that cannot download the real files, every set through the whole
pipeline on STAND-IN files (bench/standin/: official formats, names and image counts — CelebA:
4,000 of 202,599 images — with drawn pixels): served on 127.0.0.1, downloaded through
LATENT_EXPLORER_DATA_MIRROR with pooch's checksum, converted, then opened from the cache. Each row
is the second open (from the cache) against the first (download + convert + open), in a fresh
temporary data folder. Rows say "stand-in"; they time the pipeline, not the real files' sizes.

    python bench/run.py --only datasets datasets-standin
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import common  # noqa: F401  (puts the project on sys.path)
import numpy as np
from harness import row

STANDIN_CACHE = os.path.join(common.ROOT, "bench", "results", "standin-files")  # generated files, kept between runs


def _open_rows(name: str, case: str, repeat: int, **extra) -> dict:
    from engines.data import load_dataset

    opens = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ds = load_dataset(name)
        opens.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    checksum = int(np.asarray(ds.images).sum(dtype=np.uint64))  # touches every byte once
    read = time.perf_counter() - t0
    notes = (f"{len(ds):,} images {'×'.join(map(str, ds.images.shape[1:]))}; reading them all once {read * 1e3:.0f} ms "
             f"({ds.images.nbytes / 1e6:,.0f} MB, sum {checksum})")
    return row("datasets", case, statistics.median(opens) * 1e3, "ms", better="lower",
               notes=(extra.pop("notes_prefix", "") + notes), **extra)


def bench_datasets(o, repeat: int = 5) -> list[dict]:
    from engines.data.public import PUBLIC, data_dir, is_cached

    rows = []
    for name in PUBLIC:
        case = f"open {name} from the cache"
        if not is_cached(name):
            rows.append(row("datasets", case, None, "ms", better="lower", status="skipped",
                            notes=f"not downloaded in {data_dir()} (python main.py datasets --fetch {name})"))
            continue
        rows.append(_open_rows(name, case, 1 if o.quick else repeat))
    return rows


def bench_datasets_standin(o, repeat: int = 5, names=None) -> list[dict]:
    from engines.data.public import PUBLIC, load_public
    from standin.files import installed

    names = list(names or PUBLIC)
    rows = []
    data = tempfile.mkdtemp(prefix="standin-data-")
    try:
        with installed(names, data, root=STANDIN_CACHE):
            for name in names:
                size = PUBLIC[name].download_size
                t0 = time.perf_counter()
                load_public(name)
                first = time.perf_counter() - t0
                rows.append(_open_rows(
                    name, f"open {name} (stand-in) from the cache", 1 if o.quick else repeat,
                    peer=first * 1e3, peer_name="first use: download from 127.0.0.1 + convert + open",
                    notes_prefix=f"STAND-IN files ({size / 1e6:,.1f} MB download); "))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return rows
