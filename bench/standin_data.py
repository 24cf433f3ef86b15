"""Put stand-in public data sets into a data folder of their own, through the real pipeline:
generate files in the official formats under the official names (bench/standin/), serve them on
127.0.0.1, download them through LATENT_EXPLORER_DATA_MIRROR (pooch, checksums), convert them into
the cache. Afterwards `LATENT_EXPLORER_DATA_DIR=FOLDER python main.py … --data fashion-mnist` uses
the stand-in like the real set. For machines without internet; the pixels are drawn (clothing for
the MNIST-format sets), NOT the real data.

    python bench/standin_data.py --data-dir /tmp/standin fashion-mnist
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import common  # noqa: F401  (puts the project on sys.path)

STANDIN_SETS = ("mnist", "fashion-mnist", "kmnist", "cifar10", "celeba")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+", choices=STANDIN_SETS)
    ap.add_argument("--data-dir", required=True, help="a folder of its own for the stand-in cache (never your real one)")
    a = ap.parse_args(argv)
    from engines.cli.main import main as cli
    from standin.files import installed

    with installed(a.names, a.data_dir):
        for name in a.names:
            t0 = time.perf_counter()
            if cli(["datasets", "--fetch", name]) != 0:  # the CLI's own download, progress and errors
                return 2
            print(f"{name}: stand-in cached in {os.path.abspath(a.data_dir)} ({time.perf_counter() - t0:.1f} s)",
                  file=sys.stderr)
    print(f"use them with: LATENT_EXPLORER_DATA_DIR={os.path.abspath(a.data_dir)} python main.py …")
    return 0


if __name__ == "__main__":
    sys.exit(main())
