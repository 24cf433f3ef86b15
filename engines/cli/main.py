"""`python main.py train|sample|encode|info …` — the command line, headless (never imports Qt).

User errors (bad data, bad checkpoint, bad settings) exit with status 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys

from engines.cli.args import EPOCHS, IMAGE_SIDE, MINUTES, SAMPLE_MAX, SEED, check_sampling_option
from engines.cli.args import number as _number  # noqa: F401 — engines/cli/export.py takes it from here
from engines.cli.terminal import ProgressBar, _drive, _dur

USAGE_ERROR = 2


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(USAGE_ERROR)


def _user_errors() -> tuple:
    from engines.checkpoint import CheckpointError
    from engines.config import ConfigError
    from engines.data.dataset import DataError
    from engines.device import DeviceError
    from engines.distributed import DistributedError
    from engines import UnknownEngine
    from engines.export.writers import ExportError

    return (DistributedError, UsageError, CheckpointError, ConfigError, DataError, DeviceError, UnknownEngine, ExportError)


# ---- commands ---------------------------------------------------------------------------------
def _load_data(name_or_path, spec=None, size=None, channels=None):
    from engines.data import load_dataset

    return load_dataset(name_or_path, spec=spec, size=size, channels=channels)


def _check_length(a) -> None:
    if a.epochs is not None and a.epochs <= 0:
        raise UsageError("--epochs must be positive")
    if a.minutes is not None and a.minutes <= 0:
        raise UsageError("--minutes must be positive")


def _on_processes(device_name, run) -> int:
    """`run(dist, device)` on this process's rank: under torchrun in its process group (joined
    here, left after; engines/distributed.py), otherwise as the one process."""
    from engines.distributed import setup

    dist, device = setup(device_name)
    ok = False
    try:
        rc = run(dist, device)
        ok = True
        return rc
    finally:
        dist.close(ok)


def _speaker(dist):
    """print on rank 0, silence elsewhere: one progress bar and one summary per run."""
    return print if dist.is_main else (lambda *_, **__: None)


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
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"{out_dir}: folder does not exist")
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
    keys = ("loss", "neg_elbo", "kl", "mse", "d_loss", "g_loss", "diversity")
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


def cmd_train_prior(a) -> int:
    _check_length(a)
    out = a.out or a.checkpoint
    if not out.endswith(".safetensors"):
        raise UsageError("--out must end in .safetensors")
    _ensure_parent(out)
    return _on_processes(a.device, lambda dist, device: _train_prior(a, out, dist, device))


def _train_prior(a, out, dist, device) -> int:
    from engines import checkpoint as ckpt
    from engines.vq.prior_train import train_prior
    from engines.train import TrainControl

    loaded = ckpt.load(a.checkpoint, device=device)
    engine = loaded.engine
    if "code_prior" not in engine.capabilities:
        raise UsageError(f"{engine.name} models have no prior over codes to train (only vqvae)")
    data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
    say = _speaker(dist)
    say(f"training the prior of {a.checkpoint} on {data.name} codes ({len(data.train_idx)} grids of "
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


def _sampling_options(engine, overrides: dict) -> dict:
    allowed = getattr(engine, "sampling_options", {})
    out = {}
    for k, v in overrides.items():
        if k not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise UsageError(f"unknown sampling option '{k}' for {engine.name} (valid: {names})")
        try:
            out[k] = allowed[k](v)
        except (ValueError, OverflowError):
            raise UsageError(f"sampling option '{k}' needs a {allowed[k].__name__}, got {str(v)[:40]!r}") from None
        problem = check_sampling_option(k, out[k])
        if problem:
            raise UsageError(f"sampling option '{k}' {problem}, got {str(v)[:40]!r}")
    return out


def cmd_sample(a) -> int:
    import numpy as np

    from engines import checkpoint as ckpt
    from engines import config as cfgmod
    from engines.data.dataset import to_uint8
    from engines.train import tile

    if a.n <= 0:
        raise UsageError("--n must be positive")
    ext = os.path.splitext(a.out)[1].lower()
    if ext not in (".png", ".npz"):
        raise UsageError("--out must end in .png (a grid) or .npz (key 'images')")
    engine = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False).engine
    if "sample" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot sample")
    from engines import bounds

    bounds.check_images(a.n, engine.spec, "sampling")
    opts = _sampling_options(engine, cfgmod.parse_set_args(a.set))
    if "trajectory" in engine.capabilities:  # step-wise: a step counter on a terminal
        loop = engine.sample_loop(a.n, seed=a.seed, **opts)
        tty = sys.stderr.isatty()
        for rec in loop:
            if tty:
                print(f"\rsampling: step {rec.index + 1}/{len(loop)}", end="", file=sys.stderr, flush=True)
        if tty:
            print(file=sys.stderr)
        imgs = to_uint8(loop.result)
    else:
        imgs = to_uint8(engine.sample(a.n, seed=a.seed, **opts))
    _ensure_parent(a.out)
    if ext == ".npz":
        arr = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
        _atomic(a.out, lambda f: np.savez(f, images=arr))
    else:
        from PIL import Image

        grid = tile(imgs, a.cols or int(math.ceil(math.sqrt(a.n))))
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        if a.scale > 1:
            img = img.resize((img.width * a.scale, img.height * a.scale), Image.Resampling.NEAREST)
        _atomic(a.out, lambda f: img.save(f, format="PNG"))
    print(f"wrote {a.n} samples to {a.out}", file=sys.stderr)
    return 0


def cmd_encode(a) -> int:
    import h5py
    import numpy as np

    from engines import checkpoint as ckpt

    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    if "encode" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot encode images")
    data = _load_data(a.data or loaded.info.data.get("name") or "", spec=engine.spec)
    z = engine.encode(data.images).cpu().numpy().astype(np.float32)
    split = np.zeros(len(data), dtype=np.uint8)
    split[data.test_idx] = 1

    def write(f):
        with h5py.File(f, "w") as h:
            h.create_dataset("latents", data=z, compression="gzip")
            h.create_dataset("split", data=split)
            if data.labels is not None:
                h.create_dataset("labels", data=data.labels)
                h.attrs["label_names"] = json.dumps(data.label_names)
            g = h.create_group("attributes")
            for k, v in data.attributes.items():
                g.create_dataset(k, data=v)
            h.attrs["engine"] = engine.name
            h.attrs["checkpoint"] = os.path.abspath(a.checkpoint)
            h.attrs["data"] = json.dumps(data.describe())

    _ensure_parent(a.out)
    _atomic(a.out, write, binary_path=True)
    inv = getattr(engine, "last_inversion", None)  # GAN: encode is inversion; say how well it fits
    fit = f" (inversion: mean MSE {float(inv.mse.mean()):.4f}, PSNR {float(inv.psnr.mean()):.1f} dB)" if inv is not None else ""
    print(f"wrote latents {z.shape} of {data.name} to {a.out}{fit}", file=sys.stderr)
    return 0


def _training_data(info) -> str:
    """The data set a checkpoint was trained on, as something `load_dataset` accepts."""
    from engines.data import DataUnavailable, training_source

    try:
        return training_source(info)
    except DataUnavailable:
        known = info.data.get("source") or info.data.get("name") or "unknown"
        raise UsageError(f"the data set this model was trained on ({known}) is not available; pass --data") from None


def cmd_evaluate(a) -> int:
    from engines import checkpoint as ckpt
    from engines.metrics import evaluate, format_table, stored_metrics

    if a.n <= 0:
        raise UsageError("--n must be positive")
    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    from engines import bounds

    bounds.check_images(a.n, engine.spec, "evaluating with samples")
    data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
    result = evaluate(engine, data, n=a.n, seed=a.seed, quick=a.quick,
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


def cmd_info(a) -> int:
    from importlib import metadata

    import engines
    from engines import config as cfgmod
    from engines.device import describe

    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: ver(p) for p in ("torch", "numpy", "PySide6-Essentials", "pyqtgraph", "umap-learn",
                                           "h5py", "safetensors", "pillow", "imageio", "imageio-ffmpeg")},
        "devices": describe(),
        "engines": {},
    }
    for name in engines.names():
        cls = engines.engine_class(name)
        info["engines"][name] = {
            "capabilities": sorted(cls.capabilities),
            "config": cfgmod.describe(cls.Config),
        }
    if a.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"Latent Explorer — Python {info['python']} on {info['platform']}")
    for k, v in info["packages"].items():
        print(f"  {k:20s} {v}")
    d = info["devices"]
    print(f"devices: cpu{', cuda ' + str(d.get('cuda_devices')) if d['cuda'] else ''}{', mps' if d['mps'] else ''} (default {d['default']})")
    print("engines:")
    for name, e in info["engines"].items():
        print(f"  {name:10s} {', '.join(e['capabilities'])}")
        for row in e["config"]:
            print(f"      {row['name']:18s} = {row['default']!s:10s} {row['help']}")
    return 0


def cmd_screenshot(a) -> int:
    # The only command that needs Qt: imported here, never at module level.
    from explorer import screenshot

    try:
        return screenshot.main(a.panel, a.out, model=a.model, size=a.size, train_seconds=a.train_seconds,
                               data=a.data, data_size=a.data_size, panel_only=a.panel_only)
    except screenshot.ScreenshotError as e:
        raise UsageError(str(e)) from None


def _ensure_parent(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UsageError(f"{d}: folder does not exist")


def _atomic(path: str, write, binary_path: bool = False) -> None:
    """Write via a temp file in the same folder, then rename: no half-written output."""
    from engines import atomic

    try:
        with atomic.replacing(path) as tmp:
            if binary_path:
                write(tmp)
            else:
                with open(tmp, "wb") as f:
                    write(f)
    except OSError as e:
        raise UsageError(f"{path}: could not write ({e.strerror or e})") from None


# ---- entry point --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="main.py", description="Latent Explorer: train generative models and explore their latent spaces. "
                "Run without arguments to open the app.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("--engine", help="pca, ae, vae, …  (see `info`)")
    t.add_argument("--data", help="built-in data set (shapes, faces, digits) or a folder/.npz/.h5/IDX path")
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
    t.add_argument("--checkpoint-every", type=_number(float, 0, 1e7), default=120.0, metavar="SECONDS", help="periodic checkpoint interval")
    t.set_defaults(func=cmd_train)

    tp = sub.add_parser("train-prior", help="train a VQ-VAE's prior over code grids (after the VQ-VAE itself)")
    tp.add_argument("--checkpoint", required=True, help="a vqvae checkpoint; the prior is saved into it")
    tp.add_argument("--data", help="data set (default: the one the model was trained on)")
    g = tp.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=EPOCHS, help="passes over the training split's code grids (default 10)")
    g.add_argument("--minutes", type=MINUTES, help="train for this many minutes instead")
    tp.add_argument("--seed", type=SEED, default=0)
    tp.add_argument("--out", help="write to this checkpoint instead of updating --checkpoint")
    tp.add_argument("--device", default="auto")
    tp.set_defaults(func=cmd_train_prior)

    s = sub.add_parser("sample", help="draw samples from a model")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=_number(int, 1, SAMPLE_MAX), default=64, help=f"samples, 1 to {SAMPLE_MAX}")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="sampling option, e.g. temperature=0.8")
    s.add_argument("--out", required=True, help=".png (grid) or .npz (uint8 'images')")
    s.add_argument("--cols", type=_number(int, 1, SAMPLE_MAX), help="grid columns (default: square)")
    s.add_argument("--scale", type=_number(int, 1, 64), default=1, help="nearest-neighbour upscaling of the PNG")
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("encode", help="encode a data set to latents (HDF5)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", help="data set (default: the one the model was trained on)")
    e.add_argument("--out", required=True, help="latents.h5")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_encode)

    ev = sub.add_parser("evaluate", help="score a model: sample quality, likelihood, reconstruction")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", help="evaluate on this data set's test split (default: the one the model was trained on)")
    ev.add_argument("--n", type=_number(int, 1, 100_000), default=1000,
                    help="samples to draw (and test images to use, at most)")
    ev.add_argument("--seed", type=SEED, default=0)
    ev.add_argument("--json", action="store_true", help="print one JSON object (last line) instead of a table")
    ev.add_argument("--quick", action="store_true", help="fewer importance samples for likelihood bounds (VAE: IWAE k ≤ 8)")
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("info", help="versions, devices and engines")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    sh = sub.add_parser("screenshot", help="render a panel of the app offscreen to a PNG")
    sh.add_argument("--panel", default="train", help="train (more panels as they come)")
    sh.add_argument("--model", help="checkpoint to load first")
    sh.add_argument("--out", required=True, help="file.png")
    sh.add_argument("--size", default="1280x800", help="window size WIDTHxHEIGHT")
    sh.add_argument("--train-seconds", type=_number(float, 0, 3600), default=0.0, help="Train panel: train this long first")
    sh.add_argument("--data", help="Train panel: data set to select")
    sh.add_argument("--data-size", type=IMAGE_SIDE, help="Train panel: resize the data set's images to N×N")
    sh.add_argument("--panel-only", action="store_true", help="grab the panel, not the whole window")
    sh.set_defaults(func=cmd_screenshot)

    from engines.cli.export import add_parser as add_export_parser

    add_export_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad argument (one line already written) or --help
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write(f"error: {msg}\n")
        return USAGE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into `head` and friends
        return 0


if __name__ == "__main__":
    sys.exit(main())
