"""Training loop of a VQ model's prior over code grids (after the autoencoder is trained).

Like `engines.train.train`, a generator of `Progress` driven by a `TrainControl`: the training
split is encoded to code grids once, then the prior takes steps over shuffled batches of grids
(each epoch's order seeded by (seed, epoch)). The checkpoint is rewritten with the prior's
weights and its held-out negative log-likelihood; the autoencoder's weights are untouched.
On several processes (torchrun) it shards and agrees like `engines.train.train`.
"""
from __future__ import annotations

import math
import time
from typing import Iterator

import torch

from engines import checkpoint as ckpt
from engines.data.dataset import ImageDataset
from engines.distributed import SINGLE, Processes
from engines.train import Progress, TrainControl, nonfinite_tensors, sample_grid


def train_prior(engine, data: ImageDataset, epochs: float | None = None, minutes: float | None = None,
                seed: int = 0, out: str | None = None, info=None, batch_size: int | None = None,
                control: TrainControl | None = None, report_every_s: float = 0.1,
                dist: Processes = SINGLE) -> Iterator[Progress]:
    try:
        yield from _train_prior(engine, data, epochs, minutes, seed, out, info, batch_size, control,
                                report_every_s, dist)
    finally:
        dist.detach(engine)
        engine.rest()


def _train_prior(engine, data, epochs, minutes, seed, out, info, batch_size, control, report_every_s, dist):
    if epochs is None and minutes is None:
        epochs = 10
    control = control or TrainControl()
    t0 = time.perf_counter()
    yield Progress("running", 0, None, 0.0, {}, 0.0, 0.0, None, message="encoding the data set to code grids")
    train_ds = data.split("train")
    grids = _encode_all(engine, train_ds.images)
    test = data.split("test") if len(data.test_idx) else None
    test_grids = _encode_all(engine, test.images[:512]) if test is not None else None
    n = len(grids)
    sampler = dist.sampler(n, seed * 1_000_003)  # this rank's share of each epoch's order
    bs = min(int(batch_size or engine.config.batch_size), sampler.num_samples)
    spe = max(1, sampler.num_samples // bs)
    total = int(math.ceil(epochs * spe)) if epochs is not None else None
    # Like engines.train: the time budget and the elapsed time count training only, not pauses.
    deadline = minutes * 60 if minutes is not None else None
    step, acc, acc_n, last, last_report = 0, 0.0, 0, {}, 0.0
    perm = None

    def elapsed():
        return time.perf_counter() - t0

    def progress(state, message="", path=None):
        el = elapsed()
        rate = step * bs * dist.world_size / max(el, 1e-9)
        eta = (total - step) * bs * dist.world_size / rate if total and rate > 0 else None
        if deadline is not None:
            left = max(0.0, deadline - el)
            eta = left if eta is None else min(eta, left)
        return Progress(state, step, total, step / spe, dict(last), rate, el, eta, path, message)

    def save(state):
        if not out:
            return None
        try:
            return _write(state) if dist.is_main else None
        finally:
            dist.barrier()  # no rank moves on before rank 0 has written the file

    def _write(state):
        metrics = dict(info.metrics) if info is not None else {}
        metrics.update({f"prior_{k}": v for k, v in last.items()})
        metrics["prior_steps"] = int(engine.nets["prior"].trained_steps)
        train_state = {k: v for k, v in (info.train_state if info is not None else {}).items() if k not in ("step", "seed")}
        train_state["prior_state"] = state
        return ckpt.save(out, engine, data=(info.data if info is not None else data.describe()), metrics=metrics,
                         train_state=train_state, thumbnail=sample_grid(engine))

    dist.attach(engine)
    pending = None  # the last step's loss, counted at the top of the next turn
    while True:
        now = time.perf_counter()
        # One agreement per step (a no-op on one process): the ranks stop and report together.
        ag = dist.agree(None if pending is None else {"nll": pending}, cancel=control.cancelled,
                        deadline=deadline is not None and elapsed() >= deadline,
                        report=now - last_report >= report_every_s, checkpoint=False)
        if pending is not None:
            nll, pending = ag.metrics["nll"], None
            if not math.isfinite(nll):
                yield progress("failed", f"prior training stopped at step {step}: the loss became NaN/Inf")
                return
            acc += nll
            acc_n += 1
            if ag.report:
                last = {"nats_per_token": acc / acc_n}
                acc, acc_n, last_report = 0.0, 0, now
                yield progress("running")
        if ag.cancel:
            bad = nonfinite_tensors(engine, optimizer=False)
            if bad:
                yield progress("failed", _nonfinite_message(bad, step))
                return
            yield progress("cancelled", "prior training cancelled", save("cancelled"))
            return
        if control.paused and not dist.active:
            pause_start = time.perf_counter()
            yield progress("paused")
            while control.paused and not control.cancelled:
                control.wait_while_paused(0.1)
            t0 += time.perf_counter() - pause_start  # the pause is not training time
            continue
        if (total is not None and step >= total) or ag.deadline:
            break
        epoch, pos = divmod(step, spe)
        if pos == 0 or perm is None:
            sampler.set_epoch(epoch)
            perm = torch.tensor(list(sampler), dtype=torch.long)
        pending = engine.prior_step(grids[perm[pos * bs:(pos + 1) * bs]])
        dist.check_synced(engine)
        step += 1
    bad = nonfinite_tensors(engine, optimizer=False)
    if bad:  # nothing is saved: the file on disk stays the last one whose weights are finite
        yield progress("failed", _nonfinite_message(bad, step))
        return
    if acc_n:
        last = {"nats_per_token": acc / acc_n}
    if test_grids is not None and len(test_grids) and dist.is_main:
        last["test_nats_per_token"] = float(engine.prior_nll(test_grids).mean()) / test_grids[0].numel()
    yield progress("finished", "prior training finished", save("finished"))


def _encode_all(engine, images, chunk: int = 512) -> torch.Tensor:
    parts = [engine.encode_indices(images[i:i + chunk]).cpu() for i in range(0, len(images), chunk)]
    return torch.cat(parts) if parts else torch.zeros((0, *engine.grid), dtype=torch.long)


def _nonfinite_message(bad: list[str], step: int) -> str:
    return (f"prior training stopped at step {step}: weights became NaN/Inf ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); the checkpoint on disk is the last good one")
