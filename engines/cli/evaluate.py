"""`python main.py evaluate …`: score a model (sample quality, likelihood, reconstruction)."""
from __future__ import annotations

import json
import sys

from engines.cli.args import SEED, number
from engines.cli.common import UsageError, _load_data, _training_data


def add_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="score a model: sample quality, likelihood, reconstruction")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", help="evaluate on this data set's test split (default: the one the model was trained on)")
    ev.add_argument("--n", type=number(int, 1, 100_000), default=1000,
                    help="samples to draw (and test images to use, at most)")
    ev.add_argument("--samples", type=number(int, 1, 100_000), default=None,
                    help="samples to draw for the sample metrics (default --n; at most 200 for a PixelCNN, "
                         "which draws pixel by pixel, unless given)")
    ev.add_argument("--seed", type=SEED, default=0)
    ev.add_argument("--json", action="store_true", help="print one JSON object (last line) instead of a table")
    ev.add_argument("--quick", action="store_true", help="fewer importance samples for likelihood bounds (VAE: IWAE k ≤ 8)")
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a) -> int:
    from engines import checkpoint as ckpt
    from engines.metrics import evaluate, format_table, stored_metrics

    if a.n <= 0:
        raise UsageError("--n must be positive")
    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    from engines import bounds

    bounds.check_images(max(a.n, a.samples or 0), engine.spec, "evaluating with samples")
    data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
    result = evaluate(engine, data, n=a.n, seed=a.seed, quick=a.quick, samples=a.samples,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        ckpt.update(a.checkpoint, metrics=stored_metrics(result))
    except ckpt.CheckpointError as e:
        print(f"warning: results not stored in the checkpoint ({e})", file=sys.stderr)
    if a.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(format_table(result))
    return 0
