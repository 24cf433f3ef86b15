"""One training loop for every engine.

`train(...)` is a generator: it yields `Progress` at most every `report_every_s` seconds and at
every change of state, so the GUI (from a worker thread) and the CLI's progress bar consume the
same stream. Pause/resume/cancel arrive through a `TrainControl` from any thread; cancel lands
between two steps. Each step's noise comes from a generator seeded by (seed, step) and each
epoch's order from (seed, epoch), so a run resumed from a checkpoint continues exactly as if
it had never stopped.

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


def sample_grid(engine, n: int = 16, seed: int = 0) -> np.ndarray:
    """A fixed-seed grid of samples, uint8 (H, W, C): the checkpoint's thumbnail."""
    imgs = to_uint8(engine.sample(n, seed=seed))
    return tile(imgs, int(math.ceil(math.sqrt(n))))


def _finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values())


def train(engine, data: ImageDataset, options: TrainOptions, control: TrainControl | None = None) -> Iterator[Progress]:
    try:
        yield from _train(engine, data, options, control or TrainControl())
    finally:
        options.dist.detach(engine)


def _train(engine, data: ImageDataset, options: TrainOptions, control: TrainControl) -> Iterator[Progress]:
    state0 = dict(getattr(engine, "resume_state", {}) or {})
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
        if not options.out:
            return None
        dist.sync_buffers(engine)
        # on every rank: they keep identical state
        engine.prepare_checkpoint(to_float(x_all[: min(n, 4096)]))
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
        path = save("finished", metrics)
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
    acc: dict[str, float] = {}
    acc_n = 0
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
            acc_n += 1
            if now - rate_t >= 0.5:
                inst = (engine.step - rate_step) * gbs / (now - rate_t)
                rate = inst if rate == 0 else 0.7 * rate + 0.3 * inst
                rate_t, rate_step = now, engine.step
            if ag.report:
                last_metrics = {k: v / acc_n for k, v in acc.items()}
                acc, acc_n = {}, 0
                last_report = now
                if rate == 0 and now > t0:
                    rate = engine.step * gbs / max(now - t0, 1e-9) if state0 == {} else rate
                yield progress("running")
            if ag.checkpoint:
                last_path = save("running", last_metrics)
                last_ckpt = time.perf_counter()
        if ag.cancel:
            path = save("cancelled", last_metrics)
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
        last_metrics = {k: v / acc_n for k, v in acc.items()}
    final = dict(last_metrics)
    if test_ds is not None and dist.is_main:  # only rank 0's checkpoint needs them
        final.update({f"test_{k}": v for k, v in engine.evaluate(test_ds.images[: options.eval_images], quick=True).items()})
    # Every rank ends with rank 0's model: steps, and its evaluation, may have moved buffers.
    dist.sync_buffers(engine)
    path = save("finished", final)
    last_metrics = final
    yield progress("finished", "training finished", path)


def run_to_end(gen: Iterator[Progress]) -> Progress:
    last = None
    for last in gen:
        pass
    return last
