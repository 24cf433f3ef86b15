"""`python main.py compare A B [C D] …`: two to four models on the same data set side by side —
the metrics table (printed, `--csv` for a file), and `--samples` for their samples from the same
seeds as one PNG (a row per model). The app's Compare window runs the same code."""
from __future__ import annotations

import json
import sys

from engines.cli.args import SEED, number
from engines.cli.common import _atomic, _ensure_parent


def add_parser(sub) -> None:
    c = sub.add_parser("compare", help="compare 2 to 4 models trained on the same data set")
    c.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="2 to 4 checkpoints")
    c.add_argument("--csv", help="write the table to this .csv file")
    c.add_argument("--samples", help="write the samples from the same seeds to this .png (a row per model)")
    c.add_argument("--n", type=number(int, 1, 100_000), default=1000,
                   help="samples the FD, precision and recall are computed over (an evaluation stored in a "
                        "checkpoint with this count is reused)")
    c.add_argument("--seeds", type=number(int, 1, 64), default=8, help="samples shown per model: each model's sample(SEEDS, seed=SEED)")
    c.add_argument("--seed", type=SEED, default=0)
    c.add_argument("--json", action="store_true", help="print the rows as one JSON object instead of a table")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=cmd_compare)


def cmd_compare(a) -> int:
    from engines import compare
    from engines.cli.common import UsageError

    for path, ext in ((a.csv, ".csv"), (a.samples, ".png")):
        if path and not path.lower().endswith(ext):
            raise UsageError(f"{path}: must end in {ext}")
    options = compare.Options(n_metrics=a.n, seeds=a.seeds, seed=a.seed, map_points=0, device=a.device)
    tty = sys.stderr.isatty()
    gen = compare.run(list(a.checkpoints), options)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if tty:
            print(f"\r{p.message[:100]:<100}", end="", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    table = result.table()
    if a.csv:
        _ensure_parent(a.csv)
        compare.write_csv(a.csv, table)
    if a.samples:
        import numpy as np
        from PIL import Image

        from engines.data.dataset import tile

        grid = tile(np.concatenate([m.samples for m in result.models]), a.seeds)
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        _ensure_parent(a.samples)
        _atomic(a.samples, lambda f: img.save(f, format="PNG"))
    if a.json:
        print(json.dumps({"data": result.data.describe(), "rows": table.rows}, allow_nan=False))
    else:
        print(f"{result.data.describe()}: {len(result.models)} models, samples from seed {a.seed}")
        print(table.text())
        for m in result.models:
            if m.metrics_source == "stored":
                print(f"{m.name}: metrics from the evaluation stored in the checkpoint")
    for path in (a.csv, a.samples):
        if path:
            print(f"wrote {path}", file=sys.stderr)
    return 0
