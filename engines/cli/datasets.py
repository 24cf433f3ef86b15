"""`python main.py datasets`: every data set known by name — built-in and public — with its size,
image shape, classes/attributes, licence and whether it is already downloaded and cached.
`--json` for scripts; `--fetch NAME` downloads and converts one now (progress on stderr)."""
from __future__ import annotations

import json
import sys

BUILTIN_ROWS = {
    "shapes": {"title": "generated shapes", "images": None, "shape": [32, 32, 3], "classes": None, "attributes": None},
    "faces": {"title": "drawn cartoon faces", "images": None, "shape": [64, 64, 3], "classes": None, "attributes": None},
    "digits": {"title": "scikit-learn's 8×8 digits", "images": 1797, "shape": [8, 8, 1], "classes": 10, "attributes": 0},
    "mnist-5k": {"title": "MNIST, 5,000 training images (500 a class)", "images": 5000, "shape": [28, 28, 1],
                 "classes": 10, "attributes": 0, "licence": "CC BY-SA 3.0 (MNIST), ships with the app"},
}


def add_parser(sub) -> None:
    d = sub.add_parser("datasets", help="list the built-in and public data sets (public ones download on first use)")
    d.add_argument("--json", action="store_true", help="one JSON document")
    d.add_argument("--fetch", metavar="NAME", help="download and cache this public set now")
    d.set_defaults(func=cmd_datasets)


def rows() -> list[dict]:
    from engines.data import BUILTIN
    from engines.data.public import PUBLIC, describe

    out = [{"name": n, "kind": "built-in", "licence": "ships with the app", **BUILTIN_ROWS.get(n, {}),
            "download_bytes": 0, "cached": True} for n in BUILTIN]
    return out + [describe(n) for n in PUBLIC]


def _mb(n: int) -> str:
    return "—" if not n else f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def cmd_datasets(a) -> int:
    if a.fetch:
        return _fetch(a.fetch)
    table = rows()
    if a.json:
        print(json.dumps({"datasets": table}))
        return 0
    print(f"{'name':14s} {'images':>8s}  {'shape':10s} {'classes/attrs':14s} {'download':>9s}  {'cached':6s}  licence")
    for r in table:
        h, w, c = r["shape"]
        what = "; ".join(x for x in (f"{r['classes']} classes" if r.get("classes") else "",
                                     f"{r['attributes']} attrs" if r.get("attributes") else "") if x) or "—"
        images = f"{r['images']:,}" if r.get("images") else "generated"
        print(f"{r['name']:14s} {images:>8s}  {f'{h}×{w}×{c}':10s} {what:14s} {_mb(r['download_bytes']):>9s}  "
              f"{'yes' if r['cached'] else 'no':6s}  {r['licence']}")
    from engines.data.public import data_dir

    print(f"public sets are downloaded on first use into {data_dir()} (LATENT_EXPLORER_DATA_DIR overrides it)")
    return 0


def _fetch(name: str) -> int:
    from engines.data.public import load_public, progress_line

    last = [""]

    def report(done, total, stage):
        line = progress_line(name, done, total, stage)
        if line != last[0]:
            sys.stderr.write(f"\r{line:{len(last[0])}s}")
            sys.stderr.flush()
            last[0] = line

    ds = load_public(name, progress=report)
    sys.stderr.write("\n")
    print(f"{name}: {len(ds):,} images cached")
    return 0
