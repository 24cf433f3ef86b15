"""`python main.py train-prior …`: train a VQ-VAE's prior over code grids, saved into its checkpoint."""
from __future__ import annotations

import json
import sys

from engines.cli.args import EPOCHS, MINUTES, SEED
from engines.cli.common import UsageError, _check_length, _ensure_parent, _load_data, _on_processes, _speaker, _training_data
from engines.cli.terminal import ProgressBar, _drive, _dur


def add_parser(sub) -> None:
    tp = sub.add_parser("train-prior", help="train a VQ-VAE's prior over code grids (after the VQ-VAE itself)")
    tp.add_argument("--checkpoint", required=True, help="a vqvae checkpoint; the prior is saved into it")
    tp.add_argument("--data", help="data set (default: the one the model was trained on)")
    g = tp.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=EPOCHS, help="passes over the training split's code grids (default 10)")
    g.add_argument("--minutes", type=MINUTES, help="train for this many minutes instead")
    tp.add_argument("--seed", type=SEED, default=0)
    tp.add_argument("--out", help="write to this checkpoint instead of updating --checkpoint")
    tp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="prior settings (prior=transformer|pixelcnn, prior_dim, prior_layers, prior_heads, "
                         "prior_lr); any of them starts a fresh prior of that kind")
    tp.add_argument("--device", default="auto")
    tp.set_defaults(func=cmd_train_prior)


def cmd_train_prior(a) -> int:
    _check_length(a)
    out = a.out or a.checkpoint
    if not out.endswith(".safetensors"):
        raise UsageError("--out must end in .safetensors")
    _ensure_parent(out)
    return _on_processes(a.device, lambda dist, device: _train_prior(a, out, dist, device))


def _train_prior(a, out, dist, device) -> int:
    from engines import checkpoint as ckpt
    from engines import config as cfgmod
    from engines.vq.prior_train import train_prior
    from engines.train import TrainControl

    loaded = ckpt.load(a.checkpoint, device=device)
    engine = loaded.engine
    if "code_prior" not in engine.capabilities:
        raise UsageError(f"{engine.name} models have no prior over codes to train (only vqvae)")
    settings = cfgmod.parse_set_args(a.set)
    if settings:
        engine.replace_prior(**settings)
    data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
    say = _speaker(dist)
    say(f"training the {engine.config.prior} prior of {a.checkpoint} on {data.name} codes ({len(data.train_idx)} grids of "
        f"{engine.grid[0]}×{engine.grid[1]}) on {engine.device}"
        + (f" × {dist.world_size} processes" if dist.active else ""), file=sys.stderr)
    control = TrainControl()
    bar = ProgressBar()
    gen = train_prior(engine, data, epochs=a.epochs, minutes=a.minutes, seed=a.seed, out=out, info=loaded.info,
                      control=control, dist=dist)
    last = _drive(gen, control, lambda p: bar.update(p, ("nats_per_token",)) if dist.is_main else None)
    if last is None or last.state == "failed":
        say(f"error: {last.message if last else 'prior training produced nothing'}", file=sys.stderr)
        return 1
    summary = {k: round(v, 4) for k, v in last.metrics.items()}
    say(f"{last.state}: {last.step} prior steps in {_dur(last.elapsed_s)}; saved {last.checkpoint}; "
          f"{json.dumps(summary)}", file=sys.stderr)
    return 0 if last.state == "finished" else 130
