"""Opening each public data set from its cache (engines/data/public/): the time `load_dataset(name)`
takes once the set has been downloaded and converted, and the time to read every image once
(the cache is memory-mapped, so opening does not read the images). Sets not downloaded on this
machine are reported as skipped, never timed from anything else.

    python bench/run.py --only datasets
"""
from __future__ import annotations

import statistics
import time

import common  # noqa: F401  (puts the project on sys.path)
import numpy as np
from harness import row


def bench_datasets(o, repeat: int = 5) -> list[dict]:
    from engines.data import load_dataset
    from engines.data.public import PUBLIC, data_dir, is_cached

    rows = []
    for name, s in PUBLIC.items():
        case = f"open {name} from the cache"
        if not is_cached(name):
            rows.append(row("datasets", case, None, "ms", better="lower", status="skipped",
                            notes=f"not downloaded in {data_dir()} (python main.py datasets --fetch {name})"))
            continue
        opens = []
        for _ in range(1 if o.quick else repeat):
            t0 = time.perf_counter()
            ds = load_dataset(name)
            opens.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        checksum = int(np.asarray(ds.images).sum(dtype=np.uint64))  # touches every byte once
        read = time.perf_counter() - t0
        rows.append(row("datasets", case, statistics.median(opens) * 1e3, "ms", better="lower",
                        notes=f"{len(ds):,} images {'×'.join(map(str, ds.images.shape[1:]))}; reading them all "
                              f"once {read * 1e3:.0f} ms ({ds.images.nbytes / 1e6:,.0f} MB, sum {checksum})"))
    return rows
