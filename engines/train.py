"""One training loop for every engine.

`train(...)` is a generator: it yields `Progress` at most every `report_every_s` seconds and at
every change of state, so the GUI (from a worker thread) and the CLI's progress bar consume the
same stream. Pause/resume/cancel arrive through a `TrainControl` from any thread; cancel lands
between two steps. Each step's noise comes from a generator seeded by (seed, step) and each
epoch's order from (seed, epoch), so a run resumed from a checkpoint continues exactly as if
it had never stopped.

Before every save the weights (and optimizer state) are checked to be finite: a step that turned
them into NaN/Inf stops the run as "failed" without writing, so the file at `options.out` stays
the last checkpoint whose weights are finite. A resumed run's training state is checked first
(`check_resume_state`): a damaged one is a ConfigError, not a traceback mid-run.

On several processes (torchrun) every rank runs this same loop on its shard of each epoch;
`options.dist` (engines/distributed.py) averages gradients and metrics and makes the ranks
take every decision together; only rank 0 writes checkpoints.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from engines import checkpoint as ckpt
from engines.base import Batch
from engines.config import ConfigError
from engines.data.dataset import ImageDataset, tile, to_uint8
from engines.distributed import SINGLE, Processes


@dataclass
class TrainOptions:
    epochs: float | None = None  # stop after this many passes over the training split
    minutes: float | None = None  # …or after this much training time (whichever comes first)
    seed: int = 0
    out: str | None = None  # checkpoint path; None trains without saving
    checkpoint_every_s: float = 120.0
    report_every_s: float = 0.1
    eval_images: int = 256  # test images scored when training ends
    extra_state: dict = field(default_factory=dict)  # recorded in the checkpoint's train_state
    dist: Processes = SINGLE  # this process's rank among several (torchrun); batch_size is per rank

    def __post_init__(self):
        if self.epochs is None and self.minutes is None:
            self.epochs = 10
        for name, lo, hi, optional in (("epochs", 0.0, 1e12, True), ("minutes", 0.0, 1e12, True),
                                       ("checkpoint_every_s", 0.0, 1e12, False), ("report_every_s", 0.0, 1e6, False)):
            v = getattr(self, name)
            if optional and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise ConfigError(f"training option '{name}' must be a finite number in [{lo:g}, {hi:g}], got {v!r}")
            if name in ("epochs", "minutes") and v == 0:
                raise ConfigError(f"training option '{name}' must be positive")
        for name, hi in (("seed", 2**63 - 1), ("eval_images", 10**6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
                raise ConfigError(f"training option '{name}' must be an integer in [0, {hi}], got {v!r}")


@dataclass
class Progress:
    state: str  # running | paused | finished | cancelled | failed
    step: int
    total_steps: int | None
    epoch: float
    metrics: dict[str, float]
    images_per_s: float
    elapsed_s: float
    eta_s: float | None
    checkpoint: str | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        return None


class TrainControl:
    """Thread-safe switches the GUI flips while the loop runs in a worker."""

    def __init__(self):
        self._run = threading.Event()
        self._run.set()
        self._cancel = threading.Event()

    def pause(self):
        self._run.clear()

    def resume(self):
        self._run.set()

    def cancel(self):
        self._cancel.set()
        self._run.set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait_while_paused(self, timeout: float) -> None:
        self._run.wait(timeout)


class TrainingFailed(RuntimeError):
    pass


class _Diverged(Exception):
    """The weights became NaN/Inf: this save must not happen."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""))


def sample_grid(engine, n: int = 16, seed: int = 0) -> np.ndarray:
    """A fixed-seed grid of samples, uint8 (H, W, C): the checkpoint's thumbnail."""
    imgs = to_uint8(engine.sample(n, seed=seed))
    return tile(imgs, int(math.ceil(math.sqrt(n))))


def _finite(metrics: dict) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())


def nonfinite_tensors(engine, optimizer: bool = True) -> list[str]:
    """Names of the engine's weights and buffers (and optimizer state tensors) holding NaN/Inf."""
    bad = []
    with torch.no_grad():
        for k, v in engine.nets.state_dict().items():
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                bad.append(k)
        if optimizer:
            for name, opt in getattr(engine, "optimizers", {}).items():
                for i, st in enumerate(opt.state.values()):
                    for k, v in st.items():
                        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                            bad.append(f"optimizer {name}/{i}/{k}")
    return bad


_STATE_NUMBERS = {  # key: (integer, lowest, highest, may be None)
    "step": (True, 0, 10**12, False), "seed": (True, 0, 2**63 - 1, False),
    "elapsed_s": (False, 0.0, 1e9, False), "epochs": (False, 0.0, 1e6, True), "minutes": (False, 0.0, 1e6, True),
    "images_seen": (True, 0, 10**15, False), "world_size": (True, 1, 65_536, False),
    "effective_batch": (True, 1, 10**7, False),
}


def check_resume_state(state) -> dict:
    """The checkpoint's training state, checked: ConfigError naming the first damaged value."""
    if not isinstance(state, dict):
        raise ConfigError(f"damaged training state: not an object but {type(state).__name__}")
    for key, (integer, lo, hi, optional) in _STATE_NUMBERS.items():
        if key not in state or (optional and state[key] is None):
            continue
        v = state[key]
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not math.isfinite(v) or not lo <= v <= hi:
            raise ConfigError(f"damaged training state: '{key}' is {str(v)[:40]!r}, "
                              f"not {'an integer' if integer else 'a number'} in [{lo:g}, {hi:g}]")
        if key in ("epochs", "minutes") and v == 0:
            raise ConfigError(f"damaged training state: '{key}' is 0")
    return state


def train(engine, data: ImageDataset, options: TrainOptions, control: TrainControl | None = None) -> Iterator[Progress]:
    try:
        yield from _train(engine, data, options, control or TrainControl())
    finally:
        options.dist.detach(engine)
        engine.rest()


def _train(engine, data: ImageDataset, options: TrainOptions, control: TrainControl) -> Iterator[Progress]:
    state0 = dict(check_resume_state(getattr(engine, "resume_state", {}) or {}))
    if state0:
        bad = nonfinite_tensors(engine)
        if bad:
            raise ConfigError(f"damaged training state: {bad[0]} holds NaN/Inf"
                              + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    elapsed0 = float(state0.get("elapsed_s", 0.0))
    train_ds = data.split("train")
    test_ds = data.split("test") if len(data.test_idx) else None
    # Whole training split on the device as uint8: batches are then an index + a cast.
    x_all = torch.from_numpy(np.ascontiguousarray(train_ds.images)).to(engine.device)
    y_all = None if train_ds.labels is None else torch.from_numpy(train_ds.labels).to(engine.device)
    n = len(x_all)

    def to_float(u8):
        return u8.permute(0, 3, 1, 2).float().div_(255.0)

    def save(state: str, metrics: dict) -> str | None:
        """The path written; None without `options.out`; raises _Diverged (nothing written) when
        the weights are no longer finite."""
        if not options.out:
            return None
        dist.sync_buffers(engine)
        # on every rank: they keep identical state
        engine.prepare_checkpoint(to_float(x_all[: min(n, 4096)]))
        bad = nonfinite_tensors(engine)  # the same on every rank: they hold the same weights
        if bad:
            raise _Diverged(bad)
        try:
            return _write(state, metrics) if dist.is_main else None
        finally:
            dist.barrier()  # no rank moves on (or reads the file) before rank 0 has written it

    def _write(state: str, metrics: dict) -> str:
        meta_metrics = dict(metrics)
        train_state = {
            "elapsed_s": elapsed0 + (time.perf_counter() - t0),
            "epochs": options.epochs, "minutes": options.minutes,
            "state": state, "images_seen": engine.step * gbs, **options.extra_state,
        }
        if dist.active or "effective_batch" in state0:
            train_state.update(world_size=dist.world_size,
                               effective_batch=int(getattr(engine.config, "batch_size", n)) * dist.world_size)
        thumb = sample_grid(engine) if "sample" in engine.capabilities else None
        return ckpt.save(options.out, engine, data=data.describe(), metrics=meta_metrics,
                         train_state=train_state, thumbnail=thumb)

    dist = options.dist
    # Rank r's share of each epoch: every W-th image of the epoch's permutation (with W = 1
    # exactly the single-process order).
    sampler = dist.sampler(n, options.seed * 1_000_003)
    bs = min(int(getattr(engine.config, "batch_size", n)), sampler.num_samples)
    gbs = bs * dist.world_size  # images per optimizer step over all ranks
    t0 = time.perf_counter()
    if engine.closed_form:
        yield Progress("running", 0, 1, 0.0, {}, 0.0, 0.0, None, message="fitting")
        metrics = engine.fit(to_float(x_all))
        if test_ds is not None:
            metrics.update({f"test_{k}": v for k, v in engine.evaluate(test_ds.images[: options.eval_images]).items()})
        try:
            path = save("finished", metrics)
        except _Diverged as e:
            yield Progress("failed", 0, 1, 0.0, metrics, 0.0, time.perf_counter() - t0, None,
                           message=f"fitting gave NaN/Inf weights ({e}); nothing was saved")
            return
        el = time.perf_counter() - t0
        yield Progress("finished", 1, 1, 1.0, metrics, n / max(el, 1e-9), el, 0.0, path)
        return

    dist.attach(engine)
    spe = max(1, sampler.num_samples // bs)  # the last partial batch is dropped so every step sees bs images
    engine.epoch_steps = spe  # for engines that report per-epoch statistics (VQ: codes used per epoch)
    total = int(math.ceil(options.epochs * spe)) if options.epochs is not None else None
    deadline = elapsed0 + options.minutes * 60 if options.minutes is not None else None
    perm, perm_epoch = None, -1
    last_report = last_ckpt = time.perf_counter()
    last_report -= options.report_every_s  # the first step reports at once: the user sees a loss immediately
    # Sums and counts per term: some terms are measured only every N steps (a GAN's diversity
    # indicator); a report averages each over the steps that measured it and keeps the previous
    # value of a term no step of its interval measured.
    acc: dict[str, float] = {}
    acc_n: dict[str, int] = {}
    last_metrics: dict[str, float] = {}
    rate = 0.0
    rate_t, rate_step = time.perf_counter(), engine.step
    last_path = None

    def elapsed():
        return elapsed0 + time.perf_counter() - t0

    def progress(state, message="", path=None):
        eta = None
        if total and rate > 0:
            eta = (total - engine.step) * gbs / rate
        if deadline is not None:
            left = max(0.0, deadline - elapsed())
            eta = left if eta is None else min(eta, left)
        return Progress(state, engine.step, total, engine.step / spe, dict(last_metrics), rate, elapsed(), eta, path, message)

    def diverged(e: _Diverged) -> Progress:
        msg = f"training stopped at step {engine.step}: the weights became NaN/Inf ({e})"
        msg += f"; last good checkpoint kept at {last_path}" if last_path else "; nothing was saved"
        return progress("failed", msg, last_path)

    pending = None  # the last step's metrics, counted at the top of the next turn
    while True:
        now = time.perf_counter()
        # One agreement per step (a no-op on one process): the ranks stop, report and save together.
        ag = dist.agree(pending, cancel=control.cancelled,
                        deadline=deadline is not None and elapsed() >= deadline,
                        report=now - last_report >= options.report_every_s,
                        checkpoint=bool(options.out) and now - last_ckpt >= options.checkpoint_every_s)
        if pending is not None:
            pending, metrics = None, ag.metrics
            if not _finite(metrics):
                bad = ", ".join(k for k, v in metrics.items() if not math.isfinite(v))
                msg = f"training stopped at step {engine.step}: {bad} became NaN/Inf"
                msg += f"; last good checkpoint kept at {last_path}" if last_path else "; nothing was saved"
                yield progress("failed", msg, last_path)
                return
            for k, v in metrics.items():
                acc[k] = acc.get(k, 0.0) + v
                acc_n[k] = acc_n.get(k, 0) + 1
            if now - rate_t >= 0.5:
                inst = (engine.step - rate_step) * gbs / (now - rate_t)
                rate = inst if rate == 0 else 0.7 * rate + 0.3 * inst
                rate_t, rate_step = now, engine.step
            if ag.report:
                last_metrics = {**last_metrics, **{k: v / acc_n[k] for k, v in acc.items()}}
                acc, acc_n = {}, {}
                last_report = now
                if rate == 0 and now > t0:
                    rate = engine.step * gbs / max(now - t0, 1e-9) if state0 == {} else rate
                yield progress("running")
            if ag.checkpoint:
                try:
                    last_path = save("running", last_metrics)
                except _Diverged as e:
                    yield diverged(e)
                    return
                last_ckpt = time.perf_counter()
        if ag.cancel:
            try:
                path = save("cancelled", last_metrics)
            except _Diverged as e:
                yield diverged(e)
                return
            yield progress("cancelled", "training cancelled; checkpoint kept" if path else "training cancelled", path)
            return
        # Pausing is for the app's single process; on several the others would wait in a collective.
        if control.paused and not dist.active:
            pause_start = time.perf_counter()
            yield progress("paused")
            while control.paused and not control.cancelled:
                control.wait_while_paused(0.1)
            # Paused time is not training time.
            t0 += time.perf_counter() - pause_start
            rate_t = time.perf_counter()
            rate_step = engine.step
            continue
        if (total is not None and engine.step >= total) or ag.deadline:
            break

        epoch, pos = divmod(engine.step, spe)
        if epoch != perm_epoch:
            sampler.set_epoch(epoch)  # this rank's share of the permutation seeded by (seed, epoch)
            perm = torch.tensor(list(sampler), dtype=torch.long).to(engine.device)
            perm_epoch = epoch
        idx = perm[pos * bs:(pos + 1) * bs]
        batch = Batch(to_float(x_all[idx]), None if y_all is None else y_all[idx])
        engine.rng.manual_seed(dist.noise_seed(options.seed * 1_000_003 + engine.step + 7))
        pending = engine.train_step(batch)
        dist.check_synced(engine)

    if acc_n:
        last_metrics = {**last_metrics, **{k: v / acc_n[k] for k, v in acc.items()}}
    final = dict(last_metrics)
    if test_ds is not None and dist.is_main:  # only rank 0's checkpoint needs them
        final.update({f"test_{k}": v for k, v in engine.evaluate(test_ds.images[: options.eval_images], quick=True).items()})
    # Every rank ends with rank 0's model: steps, and its evaluation, may have moved buffers.
    dist.sync_buffers(engine)
    try:
        path = save("finished", final)
    except _Diverged as e:
        yield diverged(e)
        return
    last_metrics = final
    yield progress("finished", "training finished", path)


def run_to_end(gen: Iterator[Progress]) -> Progress:
    last = None
    for last in gen:
        pass
    return last
