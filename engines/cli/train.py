"""`python main.py train …`: train a model (or resume a run) and save a checkpoint."""
from __future__ import annotations

import json
import sys

from engines.cli.args import EPOCHS, IMAGE_SIDE, MINUTES, SEED, number
from engines.cli.common import _ensure_parent, UsageError, _check_length, _load_data, _on_processes, _speaker, _training_data
from engines.cli.terminal import ProgressBar, _drive, _dur


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("--engine", help="pca, ae, vae, …  (see `info`)")
    t.add_argument("--data", help="built-in data set (shapes, faces, digits), public one downloaded on first use (mnist, fashion-mnist, kmnist, cifar10, celeba; see `datasets`) or a folder/.npz/.h5/IDX path")
    t.add_argument("--size", type=IMAGE_SIDE, help="resize images to SIZE×SIZE, 8 to 256 (default: the data set's own size)")
    t.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=EPOCHS, help="passes over the training split (default 10)")
    g.add_argument("--minutes", type=MINUTES, help="train for this many minutes instead")
    t.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    t.add_argument("--out", help="checkpoint to write (.safetensors)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint")
    t.add_argument("--checkpoint-every", type=number(float, 0, 1e7), default=120.0, metavar="SECONDS", help="periodic checkpoint interval")
    t.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    _check_length(a)
    return _on_processes(a.device, lambda dist, device: _train(a, dist, device))


def _train(a, dist, device) -> int:
    import engines
    from engines import checkpoint as ckpt
    from engines import config as cfgmod
    from engines.distributed import resume_batch
    from engines import bounds
    from engines.train import TrainControl, TrainOptions, check_resume_state, train

    overrides = cfgmod.parse_set_args(a.set)
    if a.resume:
        loaded = ckpt.load(a.resume, device=device)
        engine = loaded.engine
        if set(overrides) - {"batch_size"}:
            raise UsageError("--set cannot change the settings of a resumed run")
        prev = check_resume_state(engine.resume_state)
        resume_batch(prev, engine.config, overrides, dist.world_size)
        data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
        epochs = a.epochs if a.epochs is not None else (prev.get("epochs") if a.minutes is None else None)
        minutes = a.minutes if a.minutes is not None else (prev.get("minutes") if a.epochs is None else None)
        out = a.out or a.resume
        seed = int(prev.get("seed", a.seed))
    else:
        if not a.engine or not a.data:
            raise UsageError("train needs --engine and --data (or --resume CHECKPOINT)")
        if not a.out:
            raise UsageError("train needs --out FILE.safetensors")
        data = _load_data(a.data, size=a.size, channels=a.channels)
        cls = engines.engine_class(a.engine)
        cfg = cfgmod.build(cls.Config, overrides)
        bounds.check_training(cfg, data.spec, len(data.train_idx), device)  # before anything is allocated
        engine = cls(data.spec, cfg, device=device, seed=a.seed)
        epochs, minutes, out, seed = a.epochs, a.minutes, a.out, a.seed
    if not out.endswith(".safetensors"):
        raise UsageError("--out must end in .safetensors")
    _ensure_parent(out)
    where = str(device)
    if dist.active:
        where += f" × {dist.world_size} processes"
        if not engine.closed_form:
            where += f" (effective batch {dist.world_size} × {engine.config.batch_size})"
    say = _speaker(dist)
    say(f"training {engine.name} on {data.name} ({len(data.train_idx)} train / {len(data.test_idx)} test, "
        f"{data.spec}) on {where}, {engine.n_parameters():,} parameters", file=sys.stderr)
    opts = TrainOptions(epochs=epochs, minutes=minutes, seed=seed, out=out, checkpoint_every_s=a.checkpoint_every,
                        dist=dist)
    control = TrainControl()
    bar = ProgressBar()
    keys = ("stage", "loss", "ae_loss", "neg_elbo", "kl", "mse", "d_loss", "g_loss", "diversity")
    last = _drive(train(engine, data, opts, control), control,
                  lambda p: bar.update(p, keys) if dist.is_main else None)
    if last is None:
        raise UsageError("training produced nothing")
    if last.state == "failed":
        say(f"error: {last.message}", file=sys.stderr)
        return 1
    summary = {k: round(v, 5) for k, v in last.metrics.items() if k.startswith("test_")}
    say(f"{last.state}: {last.step} steps in {_dur(last.elapsed_s)}; saved {last.checkpoint}"
        + (f"; {json.dumps(summary)}" if summary else ""), file=sys.stderr)
    return 0 if last.state == "finished" else 130
